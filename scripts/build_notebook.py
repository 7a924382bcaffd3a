"""Build a notebook from its percent-format source and execute it, storing the outputs.

The notebooks are written as plain Python files in ``notebooks/src/`` in jupytext's "percent"
format, so that they diff and review like code:

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

jupytext reads the source (the same reader JupyterLab's jupytext extension uses, so a user can pair
a source with its notebook: ``jupytext --set-formats ipynb,src//py:percent notebooks/NN_x.ipynb``).
The stored notebook is made to open clean in JupyterLab: its kernelspec is ipykernel's own (same
name, display name and language, so opening it marks nothing modified), cells keep only their
tags (no execution timestamps, no jupytext bookkeeping), and cell ids are stable (``c00``, ``c01``,
...) so that a rebuild only changes what changed.  ``tests/test_notebooks.py`` checks all of this.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jupytext
import nbformat

#: the kernelspec ipykernel installs as ``python3`` (``jupyter kernelspec list --json``)
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
#: cell metadata kept in the stored notebook (everything else, e.g. ``execution``, is dropped)
KEPT_CELL_METADATA = ("tags",)


def read_source(src: Path) -> nbformat.NotebookNode:
    """The notebook (cells only, no outputs) of a percent-format source, as jupytext reads it."""
    nb = jupytext.read(src, fmt="py:percent")
    return nbformat.from_dict(nb)


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Stable ids, only the kept cell metadata, ipykernel's kernelspec, no jupytext metadata."""
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:02d}"
        cell.metadata = nbformat.NotebookNode({k: v for k, v in cell.metadata.items() if k in KEPT_CELL_METADATA})
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def build(src: Path, execute: bool = True, timeout: int = 1200) -> Path:
    nb = clean(read_source(src))
    out = src.parent.parent / (src.stem + ".ipynb")
    if execute:
        from nbclient import NotebookClient

        start = time.perf_counter()
        resources = {"metadata": {"path": str(out.parent)}}
        NotebookClient(nb, timeout=timeout, kernel_name=KERNELSPEC["name"], resources=resources,
                       record_timing=False).execute()
        print(f"executed {out.name} in {time.perf_counter() - start:.1f} s")
    nbformat.validate(nb)
    nbformat.write(clean(nb), out)
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
