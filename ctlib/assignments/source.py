"""Reading the exercise sources and turning them into student, instructor and nbgrader notebooks.

A source is a percent-format Python file read with jupytext.  Its cells have one of four roles,
recognised from their text (so a notebook keeps them whatever its metadata):

* ``solution`` -- a code cell holding ``### BEGIN SOLUTION`` / ``### END SOLUTION`` regions;
* ``check``    -- a code cell calling ``check("E<n>", ...)``, possibly with a
  ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS`` region (graders' extra trials);
* ``written``  -- a markdown answer cell starting ``**Answer (W<n>).**`` with a solution region;
* ``plain``    -- everything else.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TEXT_STUB = "YOUR ANSWER HERE"
CHECK_RE = re.compile(r"^\s*check\(\s*[\"'](E\d+)[\"']", re.M)
WRITTEN_RE = re.compile(r"\*\*Answer \((W\d+)\)\.\*\*")

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def default_source_dir() -> Path:
    """``notebooks/src/exercises`` of the checkout the package lives in."""
    return Path(__file__).resolve().parents[2] / "notebooks" / "src" / "exercises"


@dataclass
class Source:
    name: str  # the assignment's name, e.g. a1_forward_process
    path: Path
    nb: nbformat.NotebookNode


def find_sources(src_dir: str | Path | None = None) -> list[Path]:
    d = Path(src_dir) if src_dir is not None else default_source_dir()
    if not d.is_dir():
        raise FileNotFoundError(f"no exercise sources: {d} is not a folder")
    paths = sorted(p for p in d.glob("*.py") if not p.name.startswith("_"))
    if not paths:
        raise FileNotFoundError(f"no exercise sources (*.py) in {d}")
    return paths


def read_source(path: str | Path) -> Source:
    import jupytext

    path = Path(path)
    nb = jupytext.read(path, fmt="py:percent")
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["ctlib"] = {"assignment": path.stem}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{path.stem[:2]}-cell-{i:02d}"  # stable ids: builds are reproducible, diffs small
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return Source(path.stem, path, nb)


def load_sources(src_dir: str | Path | None = None) -> dict[str, Source]:
    return {p.stem: read_source(p) for p in find_sources(src_dir)}


def role(cell) -> tuple[str, str | None]:
    src = cell.source
    if cell.cell_type == "markdown":
        m = WRITTEN_RE.search(src)
        return ("written", m.group(1)) if m else ("plain", None)
    if cell.cell_type != "code":
        return "plain", None
    m = CHECK_RE.search(src)
    if m:
        return "check", m.group(1)
    if BEGIN_SOLUTION in src:
        return "solution", None
    return "plain", None


def _replace_regions(source: str, begin: str, end: str, stub: tuple[str, ...] | None) -> str:
    """Replace every begin..end region (marker lines included) by ``stub`` at the marker's indent."""
    out, inside = [], False
    for line in source.split("\n"):
        if begin in line:
            if inside:
                raise ValueError(f"nested {begin!r}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in (stub or ()))
        elif end in line:
            if not inside:
                raise ValueError(f"{end!r} without {begin!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{begin!r} without {end!r}")
    return "\n".join(out)


def remove_markers(source: str, begin: str, end: str) -> str:
    """Keep the regions' content, drop the marker lines."""
    return "\n".join(ln for ln in source.split("\n") if begin not in ln and end not in ln)


def student_cell(cell):
    cell = copy.deepcopy(cell)
    kind, _ = role(cell)
    if cell.cell_type == "code":
        if BEGIN_SOLUTION in cell.source:
            cell.source = _replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB)
        if BEGIN_HIDDEN in cell.source:
            cell.source = _replace_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, None).rstrip("\n")
        cell.outputs, cell.execution_count = [], None
    elif kind == "written":
        cell.source = _replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, (TEXT_STUB,))
    return cell


def student_notebook(nb):
    out = copy.deepcopy(nb)
    out.cells = [student_cell(c) for c in nb.cells]
    return out


def instructor_notebook(nb):
    """Solutions and hidden tests kept, marker lines removed (a clean, runnable notebook)."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        for b, e in ((BEGIN_SOLUTION, END_SOLUTION), (BEGIN_HIDDEN, END_HIDDEN)):
            cell.source = remove_markers(cell.source, b, e)
    return out


def canonical_checks(nb) -> dict[str, str]:
    """exercise id -> the check cell's full code (hidden trials included, markers removed)."""
    return {ex: remove_markers(remove_markers(c.source, BEGIN_HIDDEN, END_HIDDEN), BEGIN_SOLUTION, END_SOLUTION)
            for c in nb.cells for kind, ex in [role(c)] if kind == "check"}


def nbgrader_notebook(nb, assignment: str):
    """The source notebook with nbgrader cell metadata (solution, grade, locked, grade_id, points)."""
    from ctlib.exercises import EXERCISES, WRITTEN

    out = copy.deepcopy(nb)
    seen: set[str] = set()
    for i, cell in enumerate(out.cells):
        kind, ex = role(cell)
        meta = {"grade": False, "solution": False, "locked": True, "task": False, "schema_version": 3,
                "grade_id": f"{assignment}-cell-{i:02d}"}
        if kind == "solution":
            meta.update(solution=True, locked=False, grade_id=f"{assignment}-solution-{i:02d}")
        elif kind == "check":
            if ex in seen:
                raise ValueError(f"{assignment}: two check cells for {ex}")
            seen.add(ex)
            meta.update(grade=True, grade_id=ex, points=EXERCISES[ex].points)
        elif kind == "written":
            meta.update(solution=True, grade=True, locked=False, grade_id=ex, points=WRITTEN[ex].points)
        cell.metadata["nbgrader"] = meta
    return out
