"""``assignments grade``: run submissions headless and score them exercise by exercise.

Each submission is read (never written), its check cells are replaced by the canonical ones from
the exercise sources (hidden trials included; a missing check cell is appended), and it runs in a
fresh ``python3`` kernel in a temporary folder under a per-notebook time limit.  A check cell's
outcome gives the exercise's status:

* ``passed``        -- the check printed its line and raised nothing (full points);
* ``failed``        -- the check raised ExerciseFailed (its message says what is wrong);
* ``not attempted`` -- an answer still raises NotImplementedError;
* ``error``         -- anything else: a NameError because the answer's cell crashed, the kernel
  died, the time ran out before the check ran, ...

Exercises whose checks ran before a crash or a timeout keep their points.  Written answers are
listed for grading by hand (``answered`` or not) and do not count in ``points``.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat

from .source import TEXT_STUB, WRITTEN_RE, canonical_checks, load_sources, role

STATUSES = ("passed", "failed", "not attempted", "error")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CHECK_IMPORT = "from ctlib.exercises import check  # the grader's own check\n"


class GradeError(RuntimeError):
    """The submission cannot be graded at all (not a notebook, unknown assignment)."""


def _assignment_of(nb, path: Path, known: dict) -> str:
    name = nb.metadata.get("ctlib", {}).get("assignment")
    if name in known:
        return name
    if path.stem in known:
        return path.stem
    ids = {ex for c in nb.cells for kind, ex in [role(c)] if kind == "check"}
    from ctlib.exercises import EXERCISES

    names = {EXERCISES[i].assignment for i in ids if i in EXERCISES}
    if len(names) == 1:
        return names.pop()
    raise GradeError(f"{path}: cannot tell which assignment this is (no ctlib metadata, file name not one of "
                     f"{', '.join(known)}, check cells of {len(names)} assignments)")


def _error_text(outputs) -> tuple[str, str] | None:
    for out in outputs:
        if out.get("output_type") == "error":
            return out.get("ename", ""), _ANSI.sub("", out.get("evalue", ""))
    return None


def _stdout(outputs) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")


def _run(nb, timeout: float, cwd: str) -> tuple[set[int], str | None]:
    """Execute cell by cell under one deadline; return the indices run and why it stopped early."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from ..cli import KERNEL_ARGUMENTS

    client = NotebookClient(nb, timeout=int(max(timeout, 1)), kernel_name="python3", allow_errors=True,
                            extra_arguments=KERNEL_ARGUMENTS, resources={"metadata": {"path": cwd}})
    ran: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    return ran, f"the notebook's time limit ({timeout:.0f} s) ran out before cell {index}"
                client.timeout = max(1, int(left))
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    return ran, f"cell {index} ran past the notebook's time limit ({timeout:.0f} s)"
                except DeadKernelError:
                    return ran, f"the kernel died in cell {index}"
                ran.add(index)
    except DeadKernelError:
        return ran, "the kernel died"
    except RuntimeError as exc:  # kernel failed to start
        if not ran:
            raise GradeError(f"could not start a python3 kernel: {exc}") from exc
        return ran, f"the kernel stopped: {exc}"
    return ran, None


def grade_notebook(path: str | Path, *, timeout: float = 300.0, sources: dict | None = None) -> dict[str, Any]:
    """Grade one submission; returns the result dict of the JSON schema (see the module docstring)."""
    from ctlib.exercises import EXERCISES, WRITTEN

    path = Path(path)
    t0 = time.perf_counter()
    sources = sources if sources is not None else load_sources()
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        raise GradeError(f"{path}: not a readable notebook ({type(exc).__name__}: {exc})") from exc
    nb = copy.deepcopy(nb)
    name = _assignment_of(nb, path, sources)
    canon = canonical_checks(sources[name].nb)
    ex_ids = [e for e, ex in EXERCISES.items() if ex.assignment == name]
    # canonical check cells: the submission's own are replaced, missing ones appended
    at: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        kind, ex = role(cell)
        if kind == "check" and ex in canon and ex not in at:
            cell.source = _CHECK_IMPORT + canon[ex]
            at[ex] = i
    for ex in ex_ids:
        if ex not in at:
            nb.cells.append(nbformat.v4.new_code_cell(_CHECK_IMPORT + canon[ex]))
            at[ex] = len(nb.cells) - 1
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    with tempfile.TemporaryDirectory(prefix="ctlib-grade-") as cwd:
        ran, reason = _run(nb, timeout, cwd)
    first_error = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and role(cell)[0] != "check" and i in ran:
            err = _error_text(cell.outputs)
            if err and first_error is None:
                first_error = f"cell {i} raised {err[0]}: {err[1]}"
    exercises = []
    for ex_id in ex_ids:
        ex, i = EXERCISES[ex_id], at[ex_id]
        cell = nb.cells[i]
        if i not in ran:
            status, msg = "error", f"its check did not run: {reason or 'the notebook stopped'}"
        else:
            err = _error_text(cell.outputs)
            if err is None:
                status, msg = ("passed", "") if f"{ex_id} passed" in _stdout(cell.outputs) else (
                    "error", "the check printed no result")
            elif err[0] == "NotAttempted":
                status, msg = "not attempted", err[1]
            elif err[0] == "ExerciseFailed":
                status, msg = "failed", err[1]
            else:
                status, msg = "error", f"{err[0]}: {err[1]}"
                if err[0] == "NameError" and first_error:
                    msg += f" (an earlier cell failed: {first_error})"
        exercises.append({"id": ex_id, "title": ex.title, "status": status,
                          "points": ex.points if status == "passed" else 0, "max_points": ex.points,
                          "message": msg})
    written = []
    for w in (w for w in WRITTEN.values() if w.assignment == name):
        cells = [c for c in nb.cells if c.cell_type == "markdown" and (m := WRITTEN_RE.search(c.source))
                 and m.group(1) == w.id]
        text = WRITTEN_RE.sub("", cells[0].source).replace(TEXT_STUB, "").strip() if cells else ""
        written.append({"id": w.id, "title": w.title, "status": "to grade by hand" if text else "not answered",
                        "points": None, "max_points": w.points})
    return {
        "file": str(path),
        "assignment": name,
        "exercises": exercises,
        "written": written,
        "points": sum(e["points"] for e in exercises),
        "max_points": sum(e["max_points"] for e in exercises),
        "stopped": reason,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def format_table(results: list[dict]) -> str:
    rows = [("file", "exercise", "status", "points", "message")]
    for r in results:
        if "error" in r:
            rows.append((Path(r["file"]).name, "-", "ungraded", "-", r["error"]))
            continue
        for e in r["exercises"]:
            msg = e["message"].replace("\n", " ")
            rows.append((Path(r["file"]).name, e["id"], e["status"], f"{e['points']}/{e['max_points']}",
                         msg[:100] + ("..." if len(msg) > 100 else "")))
        for w in r["written"]:
            rows.append((Path(r["file"]).name, w["id"], w["status"], f"?/{w['max_points']}", "graded by hand"))
        rows.append((Path(r["file"]).name, "total", "", f"{r['points']}/{r['max_points']}",
                     f"auto-graded; {r['seconds']} s" + (f"; stopped: {r['stopped']}" if r["stopped"] else "")))
    widths = [max(len(str(row[k])) for row in rows) for k in range(4)]
    lines = []
    for j, row in enumerate(rows):
        lines.append("  ".join(str(v).ljust(widths[k]) for k, v in enumerate(row[:4])) + "  " + str(row[4]))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(lines)


def grade_files(files: list[str | Path], *, timeout: float = 300.0, json_out: str | Path | None = None,
                log=print) -> tuple[list[dict], int]:
    """Grade every file; returns (results, number of files that could not be graded)."""
    sources = load_sources()
    results, bad = [], 0
    for f in files:
        try:
            results.append(grade_notebook(f, timeout=timeout, sources=sources))
        except GradeError as exc:
            bad += 1
            results.append({"file": str(f), "error": str(exc), "exercises": [], "written": [], "points": 0,
                            "max_points": 0, "stopped": str(exc), "seconds": 0.0})
    if json_out is not None:
        Path(json_out).write_text(json.dumps(results, indent=2) + "\n")
    log(format_table(results))
    return results, bad
