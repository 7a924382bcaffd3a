"""The stored notebooks: built from their sources, clean in JupyterLab, free of machine paths.

* every ``notebooks/*.ipynb`` holds exactly the cells jupytext reads from ``notebooks/src/<name>.py``
  (``scripts/build_notebook.py`` builds them; a hand edit of either side fails here);
* its kernelspec is ipykernel's (what ``jupyter kernelspec list --json`` shows for ``python3``), so
  JupyterLab marks nothing modified when it opens the notebook;
* no cell carries execution timestamps or other bookkeeping metadata (only ``tags``);
* no stored output shows an absolute path of the machine that ran it;
* each notebook ends with a timing cell, and the run time its introduction states for the ``cpu``
  profile (the stored run) agrees with that cell's measurement within a factor of 2.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TEXT_MIME = ("text/plain", "text/markdown", "text/html", "text/latex", "application/json")


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def output_texts(nb: dict) -> list[str]:
    """Every text a notebook's stored outputs show (streams, text data, tracebacks; not images)."""
    texts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if "text" in out:
                texts.append("".join(out["text"]) if isinstance(out["text"], list) else out["text"])
            for mime, value in out.get("data", {}).items():
                if mime in TEXT_MIME:
                    texts.append(value if isinstance(value, str) else json.dumps(value) if mime.endswith("json")
                                 else "".join(value))
            if out.get("output_type") == "error":
                texts.extend(out.get("traceback", []))
                texts.append(out.get("evalue", ""))
    return texts


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 7, f"expected the seven lesson notebooks, found {[p.name for p in NOTEBOOKS]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_equal_the_source_read_by_jupytext(path):
    jupytext = pytest.importorskip("jupytext")
    src = ROOT / "notebooks" / "src" / f"{path.stem}.py"
    assert src.is_file(), f"{path.name} has no source {src.relative_to(ROOT)}"
    want = jupytext.read(src, fmt="py:percent").cells
    have = _load(path)["cells"]
    assert len(have) == len(want), (f"{path.name} has {len(have)} cells, its source {len(want)}: "
                                    f"rebuild with python scripts/build_notebook.py {src.relative_to(ROOT)}")
    for i, (h, w) in enumerate(zip(have, want)):
        where = f"{path.name} cell {i}: rebuild with python scripts/build_notebook.py {src.relative_to(ROOT)}"
        assert h["cell_type"] == w.cell_type, where
        assert _source(h) == w.source, where
        assert h["metadata"].get("tags", []) == w.metadata.get("tags", []), where


def _ipykernel_spec() -> dict:
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        spec = KernelSpecManager().get_kernel_spec("python3")
        return {"name": "python3", "display_name": spec.display_name, "language": spec.language}
    except (ImportError, NoSuchKernel):  # no python3 kernelspec installed: the one ipykernel would install
        from ipykernel.kernelspec import get_kernel_dict

        d = get_kernel_dict()
        return {"name": "python3", "display_name": d["display_name"], "language": d["language"]}


def test_build_script_uses_ipykernels_kernelspec():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_notebook
    finally:
        sys.path.pop(0)
    assert build_notebook.KERNELSPEC == _ipykernel_spec()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_kernelspec_is_ipykernels(path):
    stored = _load(path)["metadata"].get("kernelspec")
    want = _ipykernel_spec()
    assert stored == want, (f"{path.name} stores kernelspec {stored}, ipykernel's is {want}: JupyterLab would mark "
                            "it modified on opening; rebuild it with scripts/build_notebook.py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_carry_no_execution_metadata(path):
    for i, cell in enumerate(_load(path)["cells"]):
        extra = sorted(set(cell.get("metadata", {})) - {"tags"})
        assert not extra, f"{path.name} cell {i} carries metadata {extra} (timestamps churn every diff)"


def machine_paths() -> list[str]:
    """Absolute paths that betray the machine a notebook ran on."""
    paths = {"/root", "/tmp", "/work", "/home", sys.prefix, str(Path.home()), str(ROOT)}
    return sorted(p for p in paths if p and p != "/")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_show_no_absolute_machine_paths(path):
    pattern = re.compile("|".join(re.escape(p) + r"(?=/|\b)" for p in machine_paths()))
    for text in output_texts(_load(path)):
        m = pattern.search(text)
        assert m is None, (f"{path.name}: a stored output shows the machine path {m.group(0)!r}: "
                           f"...{text[max(0, m.start() - 60): m.end() + 60]}...")


def test_output_path_check_catches_a_path():
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": ["wrote /tmp/x/a.png\n"]}]}]}
    pattern = re.compile("|".join(re.escape(p) + r"(?=/|\b)" for p in machine_paths()))
    assert any(pattern.search(t) for t in output_texts(nb))


DURATION = re.compile(r"(\d+(?:\.\d+)?)(?:\s*[–-]\s*(\d+(?:\.\d+)?))?\s*(s|seconds?|min|minutes?)\b")


def stated_cpu_seconds(intro: str) -> list[float]:
    """The durations the introduction gives for the ``cpu`` profile, in seconds: the text between
    "`cpu`" and the next "`smoke`" of its **Run time** paragraph."""
    para = intro[intro.index("**Run time**"):]
    para = para[: para.index("\n\n")] if "\n\n" in para else para
    start = para.index("`cpu`")
    end = para.find("`smoke`", start)
    seconds = []
    for m in DURATION.finditer(para[start: end if end > 0 else None]):
        scale = 60.0 if m.group(3).startswith("min") else 1.0
        seconds += [float(m.group(1)) * scale] + ([float(m.group(2)) * scale] if m.group(2) else [])
    return seconds


def measured_seconds(nb: dict) -> float | None:
    """The run time printed by the notebook's last code cell ("... ran in 12.3 s")."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if not code:
        return None
    for text in output_texts({"cells": [code[-1]]}):
        m = re.search(r"ran in (\d+(?:\.\d+)?) s", text)
        if m:
            return float(m.group(1))
    return None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stated_run_time_matches_the_timing_cell(path):
    nb = _load(path)
    intro = _source(nb["cells"][0])
    assert "**Run time**" in intro and "`cpu`" in intro and "`smoke`" in intro, \
        f"{path.name}: the first cell must state the run time per profile (**Run time**, `cpu`, `smoke`)"
    measured = measured_seconds(nb)
    assert measured is not None, f"{path.name}: the last code cell must print 'notebook ran in N s'"
    stated = stated_cpu_seconds(intro)
    assert stated, f"{path.name}: no duration stated for the cpu profile"
    assert min(stated) / 2 <= measured <= max(stated) * 2, \
        f"{path.name}: states {stated} s for profile cpu, its timing cell measured {measured} s"


def test_run_time_parsing():
    intro = ("**Run time** (2 cores): profile `cpu` (the stored outputs) about 1–2 minutes, most of it training;\n"
             "profile `smoke` about 20 s.")
    assert stated_cpu_seconds(intro) == [60.0, 120.0]
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": "notebook ran in 75.2 s\n"}]}]}
    assert measured_seconds(nb) == 75.2


def _build_module():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_notebook
    finally:
        sys.path.pop(0)
    return build_notebook


def test_builder_writes_clean_notebooks(tmp_path):
    """The builder (without executing) writes ipykernel's kernelspec, stable ids, tags only, and the
    source's cells; a notebook whose cells differ from its source is told apart."""
    pytest.importorskip("jupytext")
    build_notebook = _build_module()
    src = tmp_path / "src" / "99_demo.py"
    src.parent.mkdir()
    src.write_text('# %% [markdown]\n# # Demo\n# Some text.\n\n# %% tags=["parameters"]\nprofile = "cpu"\n\n\n'
                   "# %%\nprint(profile)\n")
    out = build_notebook.build(src, execute=False)
    nb = _load(out)
    assert nb["metadata"]["kernelspec"] == _ipykernel_spec()
    assert "jupytext" not in nb["metadata"]
    assert [c["id"] for c in nb["cells"]] == ["c00", "c01", "c02"]
    assert [c["metadata"] for c in nb["cells"]] == [{}, {"tags": ["parameters"]}, {}]
    assert [_source(c) for c in nb["cells"]] == ["# Demo\nSome text.", 'profile = "cpu"', "print(profile)"]
    nb["cells"][0]["metadata"]["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00Z"}
    cleaned = build_notebook.clean(__import__("nbformat").from_dict(nb))
    assert cleaned.cells[0].metadata == {}
