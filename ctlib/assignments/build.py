"""``assignments build``: student, instructor and nbgrader notebooks from the exercise sources.

* ``DIR/student/<assignment>.ipynb``    -- solutions replaced by ``# YOUR CODE HERE`` +
  ``raise NotImplementedError()`` (written answers by ``YOUR ANSWER HERE``), hidden tests removed,
  outputs cleared;
* ``DIR/instructor/<assignment>.ipynb`` -- solutions and hidden tests, executed (outputs stored);
* ``--format nbgrader``: ``DIR/source/<assignment>/<assignment>.ipynb`` with nbgrader's cell metadata
  and a ``DIR/nbgrader_config.py``, ready for ``nbgrader generate_assignment``.

An existing output folder is never overwritten unless ``overwrite=True``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import nbformat

from .source import Source, instructor_notebook, load_sources, nbgrader_notebook, student_notebook

FORMATS = ("plain", "nbgrader")

NBGRADER_CONFIG = '''\
# nbgrader course written by `python -m ctlib assignments build --format nbgrader`; run nbgrader in this folder
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "ctlib-course"
c.ExecutePreprocessor.timeout = {timeout}
c.ExecutePreprocessor.kernel_name = "python3"
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
'''


class BuildError(RuntimeError):
    """An output folder exists (and overwrite was not asked for), or a notebook failed to execute."""


def _targets(out: Path, fmt: str) -> list[Path]:
    if fmt == "nbgrader":
        return [out / "source", out / "nbgrader_config.py"]
    return [out / "student", out / "instructor"]


def execute(nb, timeout: int = 300, cwd: str | Path | None = None):
    """Run a notebook in a fresh ``python3`` kernel (errors stop it) and return it with outputs."""
    from nbclient import NotebookClient

    from ..cli import KERNEL_ARGUMENTS

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", extra_arguments=KERNEL_ARGUMENTS,
                            resources={"metadata": {"path": str(cwd or Path.cwd())}})
    client.execute()
    return nb


def build(out: str | Path, *, fmt: str = "plain", overwrite: bool = False, execute_instructor: bool = True,
          only: list[str] | None = None, src_dir: str | Path | None = None, timeout: int = 300,
          log=print) -> list[Path]:
    """Write the notebooks; returns the paths written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    sources: dict[str, Source] = load_sources(src_dir)
    if only:
        unknown = sorted(set(only) - set(sources))
        if unknown:
            raise ValueError(f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(sources)}")
        sources = {k: v for k, v in sources.items() if k in only}
    existing = [p for p in _targets(out, fmt) if p.exists()]
    if existing and not overwrite:
        raise BuildError(f"{', '.join(str(p) for p in existing)} already exist(s): pass --overwrite to replace "
                         "them, or choose another --out")
    for p in existing:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    written: list[Path] = []
    if fmt == "nbgrader":
        (out / "source").mkdir(parents=True)
        (out / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(timeout=timeout))
        written.append(out / "nbgrader_config.py")
        for name, src in sources.items():
            folder = out / "source" / name
            folder.mkdir()
            path = folder / f"{name}.ipynb"
            nbformat.write(nbgrader_notebook(src.nb, name), path)
            written.append(path)
            log(f"wrote {path}")
        return written
    (out / "student").mkdir(parents=True)
    (out / "instructor").mkdir(parents=True)
    for name, src in sources.items():
        path = out / "student" / f"{name}.ipynb"
        nbformat.write(student_notebook(src.nb), path)
        written.append(path)
        log(f"wrote {path}")
        nb = instructor_notebook(src.nb)
        if execute_instructor:
            t0 = time.perf_counter()
            try:
                execute(nb, timeout=timeout, cwd=out / "instructor")
            except Exception as exc:
                raise BuildError(f"the instructor notebook {name} failed to run: {exc}") from exc
            log(f"executed {name} in {time.perf_counter() - t0:.1f} s")
        path = out / "instructor" / f"{name}.ipynb"
        nbformat.write(nb, path)
        written.append(path)
        log(f"wrote {path}")
    return written
