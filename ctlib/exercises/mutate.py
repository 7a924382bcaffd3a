"""Mutation testing of the exercise checks: small automatic changes of each reference solution
(a flipped sign or operator, a dropped factor, a changed exponent, a constant off by 1%) must be
reported as failed.

``python -m ctlib.exercises.mutate [E1 E2 ...]`` runs every mutant of every solution in-process and
prints a table; :func:`mutants`, :func:`exercise_namespace` and :func:`run_check` are what the
tests use.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ._core import EXERCISES, ExerciseFailed, NotAttempted, check

KINDS = ("sign", "factor", "exponent", "constant")


@dataclass
class Mutant:
    kind: str
    description: str
    source: str


def _region_lines(source: str) -> set[int]:
    from ctlib.assignments.source import BEGIN_SOLUTION, END_SOLUTION

    lines, inside = set(), False
    for i, line in enumerate(source.split("\n"), start=1):
        if BEGIN_SOLUTION in line:
            inside = True
        elif END_SOLUTION in line:
            inside = False
        elif inside:
            lines.add(i)
    return lines


class _Site(ast.NodeTransformer):
    """Apply mutation number ``target`` (counting candidate sites in walk order) and describe it."""

    def __init__(self, lines: set[int], target: int, text: list[str]) -> None:
        self.lines, self.target, self.count, self.done, self.text = lines, target, 0, None, text

    def _hit(self) -> bool:
        hit = self.count == self.target
        self.count += 1
        return hit

    def visit_BinOp(self, node: ast.BinOp):
        self.generic_visit(node)
        if getattr(node, "lineno", -1) not in self.lines or self.done:
            return node
        swaps = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
        text = ast.unparse(node)
        for op, new in swaps.items():
            if isinstance(node.op, op) and self._hit():
                self.done = ("sign", f"{type(node.op).__name__} -> {new.__name__} in `{text}`")
                return ast.BinOp(node.left, new(), node.right)
        if isinstance(node.op, ast.Mult | ast.Div):
            if self._hit():
                self.done = ("factor", f"dropped the right operand of `{text}`")
                return node.left
        if isinstance(node.op, ast.Mult) and self._hit():
            self.done = ("factor", f"dropped the left operand of `{text}`")
            return node.right
        if isinstance(node.op, ast.Pow) and self._hit():
            self.done = ("exponent", f"exponent + 1 in `{text}`")
            return ast.BinOp(node.left, ast.Pow(), ast.BinOp(node.right, ast.Add(), ast.Constant(1)))
        if isinstance(node.op, ast.Pow) and self._hit():
            self.done = ("exponent", f"exponent halved in `{text}`")
            return ast.BinOp(node.left, ast.Pow(), ast.BinOp(node.right, ast.Div(), ast.Constant(2)))
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp):
        self.generic_visit(node)
        if getattr(node, "lineno", -1) in self.lines and not self.done and isinstance(node.op, ast.USub) \
                and self._hit():
            self.done = ("sign", f"dropped the minus of `{ast.unparse(node)}`")
            return node.operand
        return node

    def visit_Call(self, node: ast.Call):
        self.generic_visit(node)
        name = ast.unparse(node.func)
        if getattr(node, "lineno", -1) in self.lines and not self.done and name in ("math.sqrt", "np.sqrt") \
                and len(node.args) == 1 and self._hit():
            self.done = ("exponent", f"square root dropped in `{ast.unparse(node)}`")
            return node.args[0]
        return node

    def visit_Constant(self, node: ast.Constant):
        if getattr(node, "lineno", -1) in self.lines and not self.done and type(node.value) in (int, float) \
                and node.value != 0 and self._hit():
            line = self.text[node.lineno - 1].strip()
            self.done = ("constant", f"constant {node.value!r} -> {node.value * 1.01!r} in `{line}`")
            return ast.Constant(node.value * 1.01)
        return node


def mutants(source: str) -> Iterator[Mutant]:
    """Every single-site mutant of the solution regions of a cell's source."""
    lines = _region_lines(source)
    tree = ast.parse(source)
    target = 0
    while True:
        t = _Site(lines, target, source.split("\n"))
        new = t.visit(copy.deepcopy(tree))
        if t.done is None:
            return
        yield Mutant(t.done[0], t.done[1], ast.unparse(ast.fix_missing_locations(new)))
        target += 1


def exercise_namespace(assignment_nb) -> dict:
    """Run the setup cell and every solution cell of an assignment's source (in-process)."""
    from ctlib.assignments.source import role

    ns: dict = {}
    code = [c for c in assignment_nb.cells if c.cell_type == "code"]
    exec(compile(code[0].source, "<setup>", "exec"), ns)
    for cell in code[1:]:
        if role(cell)[0] == "solution":
            exec(compile(cell.source, "<solution>", "exec"), ns)
    return ns


def solution_cell(assignment_nb, ex_id: str) -> str:
    """The source of the solution cell that precedes exercise ``ex_id``'s check cell."""
    from ctlib.assignments.source import role

    last = None
    for cell in assignment_nb.cells:
        kind, ex = role(cell)
        if kind == "solution":
            last = cell.source
        elif kind == "check" and ex == ex_id:
            if last is None:
                raise LookupError(f"no solution cell before the check of {ex_id}")
            return last
    raise LookupError(f"no check cell for {ex_id}")


def run_check(ns: dict, ex_id: str, hidden: bool = False) -> tuple[str, str]:
    """('passed' | 'failed' | 'not attempted' | 'error', message) of ``check(ex_id, ...)`` on ``ns``."""
    try:
        answers = [ns[name] for name in EXERCISES[ex_id].names]
    except KeyError as exc:
        return "error", f"{exc.args[0]} is not defined"
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            check(ex_id, *answers, hidden=hidden)
    except NotAttempted as exc:
        return "not attempted", str(exc)
    except ExerciseFailed as exc:
        return "failed", str(exc)
    except Exception as exc:  # pragma: no cover - a check itself crashed
        return "error", f"{type(exc).__name__}: {exc}"
    return "passed", buf.getvalue().strip()


def with_cell(ns: dict, source: str) -> dict:
    """A copy of ``ns`` with ``source`` executed in it (a mutant that does not compile fails)."""
    new = dict(ns)
    exec(compile(source, "<mutant>", "exec"), new)
    return new


def main(argv: list[str] | None = None) -> int:
    from ctlib.assignments.source import load_sources

    wanted = set(argv if argv is not None else sys.argv[1:])
    total = caught = 0
    for src in load_sources().values():
        ns = exercise_namespace(src.nb)
        for ex_id, ex in EXERCISES.items():
            if ex.assignment != src.name or (wanted and ex_id not in wanted):
                continue
            cell = solution_cell(src.nb, ex_id)
            for m in mutants(cell):
                t0 = time.perf_counter()
                try:
                    status, msg = run_check(with_cell(ns, m.source), ex_id)
                except Exception as exc:
                    status, msg = "failed", f"does not run: {type(exc).__name__}"
                total += 1
                caught += status != "passed"
                print(f"{ex_id:4s} {m.kind:9s} {'caught ' if status != 'passed' else 'SURVIVED'} "
                      f"{time.perf_counter() - t0:5.2f}s  {m.description}  | {msg[:90]}")
    print(f"{caught}/{total} mutants caught")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
