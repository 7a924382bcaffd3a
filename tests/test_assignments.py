"""assignments build / grade end to end: the student build scores 0 with every exercise 'not
attempted', the instructor build full marks, a named wrong answer fails only its exercise, a crash
or a timeout keeps the points of the checks that ran, submissions are never modified, and folders
are never overwritten without --overwrite."""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ctlib.assignments.cli import main
from ctlib.assignments.grade import grade_files
from ctlib.assignments.source import load_sources
from ctlib.exercises import EXERCISES, WRITTEN

from .conftest import ROOT

SOURCES = load_sources()
NAMES = sorted(SOURCES)


def _cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m ctlib.assignments ARGS`` in a subprocess (used sparingly: each one imports torch)."""
    return subprocess.run([sys.executable, "-m", "ctlib.assignments", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


def _main(*args: str, capsys=None) -> tuple[int, str]:
    """The same command in-process; returns (exit code, stderr)."""
    code = main(list(args))
    return code, (capsys.readouterr().err if capsys is not None else "")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("course")
    assert main(["build", "--out", str(out), "--no-execute"]) == 0
    return out


def _digest(paths) -> dict:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def test_build_writes_student_and_instructor_notebooks(built):
    for name in NAMES:
        nb = nbformat.read(built / "student" / f"{name}.ipynb", as_version=4)
        student = "\n".join(c.source for c in nb.cells)
        instructor = nbformat.read(built / "instructor" / f"{name}.ipynb", as_version=4)
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "hidden=True"):
            assert marker not in student
        assert "raise NotImplementedError()" in student and "# YOUR CODE HERE" in student
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        assert nb.metadata.kernelspec.name == "python3"
        src = "\n".join(c.source for c in instructor.cells if c.cell_type == "code")
        assert "hidden=True" in src and "BEGIN SOLUTION" not in src and "NotImplementedError()" not in src
        for ex in (e for e in EXERCISES.values() if e.assignment == name):
            assert f'check("{ex.id}"' in student and f"({ex.points} points" in student
        for w in (w for w in WRITTEN.values() if w.assignment == name):
            assert f"**Answer ({w.id}).**" in student and "YOUR ANSWER HERE" in student


def test_build_refuses_to_overwrite(built, tmp_path, capsys):
    before = _digest((built / "student").glob("*.ipynb"))
    code, err = _main("build", "--out", str(built), "--no-execute", capsys=capsys)
    assert code == 2 and "--overwrite" in err
    assert _digest((built / "student").glob("*.ipynb")) == before
    out = tmp_path / "c"
    assert _main("build", "--out", str(out), "--format", "nbgrader")[0] == 0
    code, err = _main("build", "--out", str(out), "--format", "nbgrader", capsys=capsys)
    assert code == 2 and "already exist" in err
    (out / "source" / "a1_forward_process" / "a1_forward_process.ipynb").write_text("changed")
    assert _main("build", "--out", str(out), "--format", "nbgrader", "--overwrite")[0] == 0
    assert "changed" not in (out / "source" / "a1_forward_process" / "a1_forward_process.ipynb").read_text()


def test_usage_errors_exit_2(tmp_path, capsys):
    assert _main("build")[0] == 2  # --out missing
    assert _main("build", "--out", str(tmp_path / "x"), "--only", "nope", "--no-execute")[0] == 2
    assert _main("grade")[0] == 2
    assert _main("frobnicate")[0] == 2


def _grade(files, tmp_path, timeout=300.0):
    before = _digest(files)
    results, bad = grade_files(files, timeout=timeout, json_out=tmp_path / "out.json", log=lambda s: None)
    assert _digest(files) == before, "a submission was modified"
    assert json.loads((tmp_path / "out.json").read_text()) == results
    for r in results:  # the schema
        assert set(r) >= {"file", "exercises", "points", "max_points"}
        for e in r["exercises"]:
            assert set(e) >= {"id", "status", "points", "max_points", "message"}
            assert e["status"] in ("passed", "failed", "not attempted", "error")
        assert r["points"] == sum(e["points"] for e in r["exercises"])
    return {Path(r["file"]).stem: r for r in results}, bad


def test_instructor_notebooks_get_full_marks(built, tmp_path):
    res, bad = _grade(sorted((built / "instructor").glob("*.ipynb")), tmp_path)
    assert bad == 0 and sorted(res) == NAMES
    for name, r in res.items():
        assert [e["status"] for e in r["exercises"]] == ["passed"] * len(r["exercises"]), r
        assert r["points"] == r["max_points"] == sum(e.points for e in EXERCISES.values() if e.assignment == name)
        assert all(w["status"] == "to grade by hand" for w in r["written"])
    assert sum(r["max_points"] for r in res.values()) == sum(e.points for e in EXERCISES.values())


def test_student_notebooks_get_nothing(built, tmp_path):
    res, bad = _grade(sorted((built / "student").glob("*.ipynb")), tmp_path)
    assert bad == 0
    for r in res.values():
        assert r["points"] == 0
        assert {e["status"] for e in r["exercises"]} == {"not attempted"}, r
        assert all(w["status"] == "not answered" for w in r["written"])


def _replace_solution(nb, name: str, code: str):
    """A copy of ``nb`` with ``code`` (a wrong answer) after the solution cell that defines ``name``."""
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and f"def {name}(" in cell.source:
            nb.cells.insert(i + 1, nbformat.v4.new_code_cell(code))
            return nb
    raise LookupError(name)


def test_wrong_answers_crashes_and_timeouts(built, tmp_path):
    inst = {n: nbformat.read(built / "instructor" / f"{n}.ipynb", as_version=4) for n in NAMES}
    files = []

    def save(nb, stem):
        p = tmp_path / f"{stem}.ipynb"
        nbformat.write(nb, p)
        files.append(p)

    # a named wrong answer in an otherwise correct notebook: that exercise fails, the others pass
    save(_replace_solution(inst["a1_forward_process"], "marginal",
                           "def marginal(x0, y, t, schedule):\n    e = float(schedule.eta(t))\n"
                           "    return x0 + e * (y - x0), schedule.kappa**2 * float(schedule.alpha(t))"), "wrong_a1")
    nb = _replace_solution(inst["a2_schedules_and_grids"], "lam_from",
                           "def lam_from(a, alpha_end):\n    return math.log10(1 + alpha_end / a)")
    save(_replace_solution(nb, "nfe_of", "def nfe_of(solver, n_steps):\n    return n_steps"), "wrong_a2")
    # the kernel dies in E9's cell: E8 keeps its points
    save(_replace_solution(inst["a3_solvers"], "resshift_step", "import os\nos._exit(1)"), "crash_a3")
    res, bad = _grade(files, tmp_path)
    assert bad == 0
    st = {k: {e["id"]: e for e in r["exercises"]} for k, r in res.items()}
    assert st["wrong_a1"]["E1"]["status"] == "failed" and "erratum 1" in st["wrong_a1"]["E1"]["message"]
    assert [st["wrong_a1"][e]["status"] for e in ("E2", "E3")] == ["passed", "passed"]
    assert res["wrong_a1"]["points"] == 10
    assert st["wrong_a2"]["E4"]["status"] == "failed" and "base-10" in st["wrong_a2"]["E4"]["message"]
    assert st["wrong_a2"]["E7"]["status"] == "failed" and "erratum 7" in st["wrong_a2"]["E7"]["message"]
    assert [st["wrong_a2"][e]["status"] for e in ("E5", "E6")] == ["passed", "passed"]
    assert st["crash_a3"]["E8"]["status"] == "passed" and res["crash_a3"]["points"] == 10
    assert st["crash_a3"]["E9"]["status"] == st["crash_a3"]["E10"]["status"] == "error"
    assert "kernel died" in st["crash_a3"]["E9"]["message"] and res["crash_a3"]["stopped"]


def test_timeout_keeps_the_points_of_checks_that_ran(built, tmp_path):
    # E3's cell never finishes: E1 and E2 keep their points (the file is named as no assignment is:
    # the grader finds the assignment in the notebook's metadata)
    inst = nbformat.read(built / "instructor" / "a1_forward_process.ipynb", as_version=4)
    p = tmp_path / "slow.ipynb"
    nbformat.write(_replace_solution(inst, "pf_drift", "import time\ntime.sleep(600)"), p)
    res, _ = _grade([p], tmp_path, timeout=25.0)
    st = {e["id"]: e for e in res["slow"]["exercises"]}
    assert [st[e]["status"] for e in ("E1", "E2", "E3")] == ["passed", "passed", "error"]
    assert "time limit" in st["E3"]["message"] and res["slow"]["points"] == 10


def test_deleted_or_edited_check_cells_are_restored(built, tmp_path):
    """The grader runs its own check cells: a student cannot pass by editing or deleting them."""
    nb = nbformat.read(built / "student" / "a1_forward_process.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if 'check("E2"' not in c.source]
    for c in nb.cells:
        if 'check("E1"' in c.source:
            c.source = 'check("E1", lambda *a: None) if False else print("E1 passed")'
        if "def marginal(" in c.source:
            c.source += "\n\ndef check(*args, **kwargs):\n    print(args[0], 'passed')"
    p = tmp_path / "a1_forward_process.ipynb"
    nbformat.write(nb, p)
    res, _ = _grade([p], tmp_path)
    r = res["a1_forward_process"]
    assert r["points"] == 0 and [e["id"] for e in r["exercises"]] == ["E1", "E2", "E3"]
    assert {e["status"] for e in r["exercises"]} == {"not attempted"}


def test_unreadable_file_exits_1(tmp_path):
    bad = tmp_path / "x.ipynb"
    bad.write_text("not json")
    assert _main("grade", str(bad), "--json", str(tmp_path / "o.json"))[0] == 1
    assert "not a readable notebook" in json.loads((tmp_path / "o.json").read_text())[0]["error"]


def test_module_entry_point():
    r = _cli("build")  # --out missing: a usage error, exit 2, before anything is written
    assert r.returncode == 2 and "--out" in r.stderr


def test_build_executes_instructor_notebooks(tmp_path):
    assert main(["build", "--out", str(tmp_path / "c"), "--only", "a1_forward_process"]) == 0
    nb = nbformat.read(tmp_path / "c" / "instructor" / "a1_forward_process.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    for ex in ("E1", "E2", "E3"):
        assert f"{ex} passed:" in text and f"{ex} passed (hidden trials)" in text


def test_nbgrader_source_metadata(tmp_path):
    assert main(["build", "--out", str(tmp_path), "--format", "nbgrader"]) == 0
    assert (tmp_path / "nbgrader_config.py").exists()
    for name in NAMES:
        nb = nbformat.read(tmp_path / "source" / name / f"{name}.ipynb", as_version=4)
        ids = [c.metadata.nbgrader["grade_id"] for c in nb.cells]
        assert len(ids) == len(set(ids))
        graded = {c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader for c in nb.cells
                  if c.metadata.nbgrader["grade"]}
        want = {e.id: e.points for e in EXERCISES.values() if e.assignment == name}
        want.update({w.id: w.points for w in WRITTEN.values() if w.assignment == name})
        assert {k: m["points"] for k, m in graded.items()} == want
        for c in nb.cells:
            m = c.metadata.nbgrader
            assert m["schema_version"] == 3 and set(m) >= {"solution", "grade", "locked", "grade_id"}
            if "BEGIN SOLUTION" in c.source:
                assert m["solution"] and not m["locked"]
            if "BEGIN HIDDEN TESTS" in c.source:
                assert m["grade"] and not m["solution"] and c.cell_type == "code"
            if not m["solution"] and not m["grade"]:
                assert m["locked"]


def test_register_plugs_into_a_parent_cli(tmp_path, capsys):
    """What ctlib.cli does with register(): `python -m ctlib assignments ...`."""
    import argparse

    from ctlib.assignments.cli import register

    ap = argparse.ArgumentParser(prog="python -m ctlib")
    register(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(["assignments", "build", "--out", str(tmp_path / "c"), "--format", "nbgrader"])
    assert args.func(args) == 0 and (tmp_path / "c" / "source").is_dir()
    args = ap.parse_args(["assignments", "build", "--out", str(tmp_path / "c"), "--format", "nbgrader"])
    assert args.func(args) == 2


def test_main_cli_runs_the_assignments_command(tmp_path):
    import argparse

    import ctlib.cli

    parser = ctlib.cli.build_parser()
    choices = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "assignments" not in choices:
        pytest.skip("ctlib.cli does not register the assignments command yet")
    assert ctlib.cli.main(["assignments", "build", "--out", str(tmp_path / "c"), "--format", "nbgrader"]) == 0
    assert ctlib.cli.main(["assignments", "build", "--out", str(tmp_path / "c"), "--format", "nbgrader"]) == 2


def test_builds_are_reproducible(built, tmp_path):
    assert main(["build", "--out", str(tmp_path), "--no-execute"]) == 0
    for name in NAMES:
        for part in ("student", "instructor"):
            assert (tmp_path / part / f"{name}.ipynb").read_bytes() == (built / part / f"{name}.ipynb").read_bytes()
        nbformat.validate(nbformat.read(tmp_path / "student" / f"{name}.ipynb", as_version=4))
