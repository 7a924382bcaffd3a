"""The command line: `python -m ctlib reproduce` runs notebooks headless and never overwrites results."""

from __future__ import annotations

import json

import nbformat
import pytest

from ctlib.cli import find_notebooks, fresh_output_dir, main


def _write_notebook(path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "cpu"\nresults_dir = "."')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_fresh_output_dir_never_reuses_a_used_folder(tmp_path):
    base = tmp_path / "smoke"
    assert fresh_output_dir(base) == base
    base.mkdir()
    assert fresh_output_dir(base) == base  # empty folder is fine
    (base / "old.ipynb").write_text("{}")
    assert fresh_output_dir(base) == tmp_path / "smoke_2"
    (tmp_path / "smoke_2").mkdir()
    assert fresh_output_dir(base) == tmp_path / "smoke_3"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError):
        fresh_output_dir(tmp_path / "afile")


def test_find_notebooks_orders_and_filters(tmp_path):
    for name in ("02_b.ipynb", "01_a.ipynb", "notes.ipynb", "10_c.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in find_notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    assert [p.name for p in find_notebooks(tmp_path, ["2"])] == ["02_b.ipynb"]
    with pytest.raises(ValueError, match="no notebook numbered 07"):
        find_notebooks(tmp_path, ["07"])
    with pytest.raises(FileNotFoundError):
        find_notebooks(tmp_path / "missing")


def test_unknown_profile_is_a_clear_error(capsys):
    assert main(["reproduce", "--profile", "fast"]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'fast'" in err and "smoke, cpu, gpu, paper" in err


def test_reproduce_runs_notebooks_with_the_profile(tmp_path, capsys):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    _write_notebook(nbdir / "01_first.ipynb",
                    "import json, pathlib\n"
                    "pathlib.Path(results_dir, 'seen.json').write_text(json.dumps({'profile': profile}))")
    out = tmp_path / "results"
    assert main(["reproduce", "--profile", "smoke", "--notebooks", str(nbdir), "--out", str(out),
                 "--no-progress"]) == 0
    assert json.loads((out / "seen.json").read_text()) == {"profile": "smoke"}
    executed = nbformat.read(out / "01_first.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    # a second run goes to a new folder
    assert main(["reproduce", "--profile", "smoke", "--notebooks", str(nbdir), "--out", str(out),
                 "--no-progress"]) == 0
    assert (tmp_path / "results_2" / "01_first.ipynb").exists()
    assert "results_2" in capsys.readouterr().out


def test_reproduce_reports_a_failing_notebook(tmp_path, capsys):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    _write_notebook(nbdir / "01_bad.ipynb", "raise RuntimeError('boom')")
    assert main(["reproduce", "--notebooks", str(nbdir), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    assert "boom" in capsys.readouterr().err


def test_reproduce_keeps_the_terminal_free_of_kernel_warnings_and_shows_progress(tmp_path, capfd):
    """A real papermill run of a tiny notebook through run_notebooks: no 'without encryption' warning
    from the kernel, the cells' progress bar, and the kernel sees CTLIB_TERMINAL_PROGRESS=1 (so the
    table's row bar is drawn on the terminal)."""
    import nbformat

    from ctlib.cli import TERMINAL_PROGRESS_ENV, run_notebooks

    src = tmp_path / "nb"
    src.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(f"import os\nprint('flag', os.environ.get('{TERMINAL_PROGRESS_ENV}'))")]
    nbformat.write(nb, src / "01_tiny.ipynb")
    done = run_notebooks([src / "01_tiny.ipynb"], tmp_path / "out", "smoke", progress=True)
    err = capfd.readouterr().err
    assert "without encryption" not in err
    assert "Executing" in err  # papermill's bar over the cells
    out = nbformat.read(done[0][0], as_version=4)
    assert "flag 1" in "".join(o.get("text", "") for o in out.cells[0].outputs)
    assert TERMINAL_PROGRESS_ENV not in __import__("os").environ
