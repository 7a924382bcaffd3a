"""nbgrader, for real and offline: a scratch course from `assignments build --format nbgrader`,
`nbgrader generate_assignment`, then `nbgrader autograde` on the solution notebooks (full marks) and
on the generated student notebooks (zero autograded points)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from ctlib.assignments.cli import main
from ctlib.exercises import EXERCISES, WRITTEN

nbgrader_api = pytest.importorskip("nbgrader.api", reason="nbgrader is the `course` extra: pip install -e '.[course]'")

ASSIGNMENTS = ["a1_forward_process", "a2_schedules_and_grids", "a3_solvers", "a4_training_and_metrics"]


def _nbgrader(*args: str, cwd) -> None:
    env = dict(os.environ, no_proxy="*", http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    r = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=900, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_nbgrader_round_trip(tmp_path):
    course = tmp_path / "course"
    assert main(["build", "--out", str(course), "--format", "nbgrader"]) == 0
    _nbgrader("generate_assignment", "*", "--force", cwd=course)
    for a in ASSIGNMENTS:
        release = course / "release" / a / f"{a}.ipynb"
        text = release.read_text()
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "NotImplementedError" in text
        for who, src in (("solution", course / "source" / a / f"{a}.ipynb"), ("student", release)):
            (course / "submitted" / who / a).mkdir(parents=True)
            shutil.copy(src, course / "submitted" / who / a / f"{a}.ipynb")
    _nbgrader("autograde", "*", "--create", cwd=course)
    with nbgrader_api.Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for a in ASSIGNMENTS:
            auto_ids = {e.id for e in EXERCISES.values() if e.assignment == a}
            manual_ids = {w.id for w in WRITTEN.values() if w.assignment == a}
            for who in ("solution", "student"):
                grades = {g.name: g for g in gb.find_submission_notebook(a, a, who).grades}
                assert set(grades) == auto_ids | manual_ids, (a, who, set(grades))
                auto = sum(grades[i].auto_score for i in auto_ids)
                if who == "solution":
                    assert auto == sum(EXERCISES[i].points for i in auto_ids), (a, auto)
                    assert all(grades[i].needs_manual_grade for i in manual_ids)
                else:
                    assert auto == 0, (a, auto)
