"""The ``assignments`` command: ``build`` and ``grade`` (exit codes: 0 ok, 1 some inputs failed,
2 usage or environment error)."""

from __future__ import annotations

import argparse
import sys


def _build(args: argparse.Namespace) -> int:
    from .build import BuildError, build

    try:
        build(args.out, fmt=args.format, overwrite=args.overwrite, execute_instructor=not args.no_execute,
              only=args.only, src_dir=args.src, timeout=args.timeout)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if "already exist" in str(exc) else 1
    return 0


def _grade(args: argparse.Namespace) -> int:
    from .grade import GradeError, grade_files

    try:
        results, bad = grade_files(args.files, timeout=args.timeout, json_out=args.json)
    except (GradeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if bad else 0


def register(subparsers) -> None:
    """Add ``assignments {build,grade}`` to an argparse sub-parser collection."""
    p = subparsers.add_parser("assignments", help="course assignments: build student/instructor/nbgrader "
                              "notebooks, grade submissions",
                              description="Build the course's exercise notebooks and grade submissions "
                              "(see notebooks/exercises/README.md).")
    sub = p.add_subparsers(dest="assignments_command", metavar="{build,grade}")
    sub.required = True
    b = sub.add_parser("build", help="write DIR/student and DIR/instructor (or an nbgrader source/ tree)")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--format", choices=("plain", "nbgrader"), default="plain",
                   help="plain: student/ + instructor/ notebooks (default); nbgrader: source/<assignment>/ "
                        "with nbgrader cell metadata and nbgrader_config.py")
    b.add_argument("--overwrite", action="store_true", help="replace existing output folders")
    b.add_argument("--no-execute", action="store_true", help="do not execute the instructor notebooks")
    b.add_argument("--only", nargs="+", metavar="ASSIGNMENT", help="build only these assignments")
    b.add_argument("--src", default=None, help="folder of the exercise sources (default: notebooks/src/exercises)")
    b.add_argument("--timeout", type=int, default=300, help="seconds per notebook when executing (default 300)")
    b.set_defaults(func=_build)
    g = sub.add_parser("grade", help="execute submissions headless and score every exercise")
    g.add_argument("files", nargs="+", metavar="FILE.ipynb")
    g.add_argument("--json", default=None, metavar="OUT.json", help="write the results as JSON")
    g.add_argument("--timeout", type=float, default=300.0, help="seconds per notebook (default 300)")
    g.set_defaults(func=_grade)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ctlib.assignments")
    sub = parser.add_subparsers(dest="command", metavar="{assignments}")
    register(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "assignments":
        argv = ["assignments", *argv]  # `python -m ctlib.assignments build ...`
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return int(args.func(args))
