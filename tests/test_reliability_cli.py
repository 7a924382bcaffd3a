"""Issue 18, the command line as a whole: Ctrl-C during `reproduce` leaves a notebook marked partial
(papermill metadata and file name) and a clean notice (item 10); output locations that cannot be used
are usage errors, exit 2 (item 15); the exit codes are distinct."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import nbformat
import pytest

from ctlib import cli
from ctlib.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main

from .conftest import ROOT
from .test_cli import _write_notebook


def test_exit_codes_are_distinct():
    assert len({EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED}) == 4 and (EXIT_OK, EXIT_FAILED, EXIT_USAGE) == (0, 1, 2)


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_in_reproduce_leaves_a_notebook_marked_partial(tmp_path):
    """Item 10: after Ctrl-C the executed notebook's papermill metadata said every cell completed and no
    exception, and the CLI printed a raw KeyboardInterrupt traceback."""
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    # the kernel's parent is the CLI process: the cell sends it Ctrl-C, then would run for a while
    _write_notebook(nbdir / "01_first.ipynb", "print('first done')")
    _write_notebook(nbdir / "02_long.ipynb",
                    "import os, signal, time\nos.kill(os.getppid(), signal.SIGINT)\ntime.sleep(20)\nprint('never')")
    _write_notebook(nbdir / "03_after.ipynb", "print('never run')")
    out = tmp_path / "results"
    with open(tmp_path / "stdout", "w") as so, open(tmp_path / "stderr", "w") as se:
        rc = subprocess.run([sys.executable, "-m", "ctlib", "reproduce", "--profile", "smoke", "--notebooks",
                             str(nbdir), "--out", str(out), "--no-progress"], cwd=ROOT, stdout=so, stderr=se,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode
    err = (tmp_path / "stderr").read_text()
    assert rc == EXIT_INTERRUPTED, err
    # no traceback, neither the CLI's nor the kernel's (shut down mid-cell, it logs its ZMQ error at ERROR level)
    assert "interrupted (Ctrl-C): partial output is in" in err and "KeyboardInterrupt" not in err
    assert "ctlib/cli.py" not in err and "papermill" not in err
    assert sorted(p.name for p in out.iterdir()) == ["01_first.ipynb", "02_long.INTERRUPTED.ipynb"]
    nb = nbformat.read(out / "02_long.INTERRUPTED.ipynb", as_version=4)
    assert nb.metadata.papermill.exception is True and nb.metadata.ctlib.partial is True
    statuses = [c.metadata.papermill.status for c in nb.cells[1:]]
    assert statuses[-1] == "failed" and "completed" not in statuses[-1:]  # the long cell did not complete
    assert nb.cells[-1].outputs[-1].ename == "KeyboardInterrupt"
    assert "PARTIAL OUTPUT" in nb.cells[0].source
    complete = nbformat.read(out / "01_first.ipynb", as_version=4)
    assert complete.metadata.papermill.exception is None  # the finished notebook is left as it is


def test_mark_interrupted_marks_pending_cells(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"x = {i}") for i in range(3)]
    for i, cell in enumerate(nb.cells):
        cell.metadata["papermill"] = {"status": "completed", "exception": None,
                                      "start_time": "2026-01-01T00:00:00" if i < 2 else None}
    nb.metadata["papermill"] = {"exception": None}
    nbformat.write(nb, tmp_path / "05_x.ipynb")
    marked = cli.mark_interrupted(tmp_path / "05_x.ipynb")
    assert marked.name == "05_x.INTERRUPTED.ipynb" and not (tmp_path / "05_x.ipynb").exists()
    back = nbformat.read(marked, as_version=4)
    assert [c.metadata.papermill.status for c in back.cells[1:]] == ["completed", "failed", "pending"]
    assert back.metadata.ctlib.reason == "interrupted (Ctrl-C) in cell 2 of 3"


def test_reproduce_refuses_an_unwritable_output_folder(tmp_path, capsys, monkeypatch):
    """Item 15: an output folder that cannot be created gave a traceback (exit 1)."""
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    _write_notebook(nbdir / "01_a.ipynb", "print(1)")
    (tmp_path / "afile").write_text("x")
    assert main(["reproduce", "--notebooks", str(nbdir), "--out", str(tmp_path / "afile" / "r"), "--no-progress"]) \
        == EXIT_USAGE
    assert "cannot be created" in capsys.readouterr().err

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("ctlib.files.tempfile.mkstemp", read_only)
    assert main(["reproduce", "--notebooks", str(nbdir), "--out", str(tmp_path / "r"), "--no-progress"]) == EXIT_USAGE
    assert "is not writable" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_ctrl_c_during_setup_is_a_clean_notice(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["reproduce"].set_defaults(func=interrupted)
    assert main(["reproduce"]) == EXIT_INTERRUPTED
    assert "interrupted (Ctrl-C)" in capsys.readouterr().err
