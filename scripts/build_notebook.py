"""Build a notebook from its percent-format source and execute it, storing the outputs.

The notebooks are written as plain Python files in ``notebooks/src/`` ("percent" format, as
jupytext reads them) so that they diff and review like code:

    # %% [markdown]
    # # Title
    # Some text.

    # %% tags=["parameters"]
    profile = "cpu"

    # %% tags=["nbval-ignore-output"]
    print(time.time())

Usage (from the repository root):

    python scripts/build_notebook.py notebooks/src/01_markov_chain_to_sde.py [--no-execute]

writes ``notebooks/01_markov_chain_to_sde.ipynb`` executed with the ``python3`` kernel in the
``notebooks/`` folder, so that nbval can compare its outputs in CI.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import nbformat

CELL_RE = re.compile(r"^# %%(?P<md> \[markdown\])?(?P<rest>.*)$")


def parse_percent(text: str) -> list[nbformat.NotebookNode]:
    cells: list[nbformat.NotebookNode] = []
    kind, tags, lines = None, [], []

    def flush() -> None:
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(re.sub(r"^# ?", "", ln) for ln in body.split("\n"))
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell(body)
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)

    for line in text.split("\n"):
        m = CELL_RE.match(line)
        if m:
            flush()
            kind = "markdown" if m.group("md") else "code"
            tm = re.search(r"tags=(\[.*\])", m.group("rest"))
            tags = json.loads(tm.group(1)) if tm else []
            lines = []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def build(src: Path, execute: bool = True, timeout: int = 1200) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = parse_percent(src.read_text())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    out = src.parent.parent / (src.stem + ".ipynb")
    if execute:
        from nbclient import NotebookClient

        start = time.perf_counter()
        resources = {"metadata": {"path": str(out.parent)}}
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources).execute()
        print(f"executed {out.name} in {time.perf_counter() - start:.1f} s")
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell["id"] = f"c{i:02d}"
    nbformat.write(nb, out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sources", nargs="+", type=Path)
    ap.add_argument("--no-execute", action="store_true")
    args = ap.parse_args(argv)
    for src in args.sources:
        print("wrote", build(src, execute=not args.no_execute))
    return 0


if __name__ == "__main__":
    sys.exit(main())
