"""Course assignments: build student / instructor / nbgrader notebooks from the exercise sources
(``notebooks/src/exercises/*.py``, percent format) and grade submissions headless.

``python -m ctlib.assignments build --out DIR [--format nbgrader] [--overwrite]`` and
``python -m ctlib.assignments grade FILE.ipynb [...] --json OUT.json``; see
``notebooks/exercises/README.md`` for the instructor's guide.
"""
