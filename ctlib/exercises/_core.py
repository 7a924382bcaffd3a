"""The machinery shared by every exercise check: the registry, the two exceptions a check raises,
calling a student's function safely, and comparisons whose messages describe a mistake without
giving the answer away."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "ExerciseFailed",
    "NotAttempted",
    "Exercise",
    "Written",
    "EXERCISES",
    "WRITTEN",
    "exercise",
    "written",
    "check",
    "call",
    "as_numpy",
]


class ExerciseFailed(AssertionError):
    """The answer was tried and is wrong; the message says what is wrong and where to look."""


class NotAttempted(AssertionError):
    """The answer still raises NotImplementedError (the blank handed to students)."""


@dataclass(frozen=True)
class Exercise:
    """One auto-graded exercise: ``check(*answers, rng=..., hidden=...)`` raises on a wrong answer."""

    id: str
    title: str
    points: int
    minutes: int
    assignment: str
    names: tuple[str, ...]  # the names the student defines, in the order check() receives them
    check: Callable[..., None] = field(repr=False)


@dataclass(frozen=True)
class Written:
    """One hand-graded written question and its rubric (points per criterion)."""

    id: str
    title: str
    points: int
    minutes: int
    assignment: str
    rubric: tuple[tuple[int, str], ...]


EXERCISES: dict[str, Exercise] = {}
WRITTEN: dict[str, Written] = {}


def exercise(id: str, title: str, *, points: int, minutes: int, assignment: str, names: Sequence[str]):
    """Register a check function under ``id``."""

    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        if id in EXERCISES:
            raise ValueError(f"exercise {id} registered twice")
        EXERCISES[id] = Exercise(id, title, points, minutes, assignment, tuple(names), fn)
        return fn

    return deco


def written(id: str, title: str, *, points: int, minutes: int, assignment: str,
            rubric: Sequence[tuple[int, str]]) -> None:
    if sum(p for p, _ in rubric) != points:
        raise ValueError(f"{id}: the rubric's points do not add up to {points}")
    WRITTEN[id] = Written(id, title, points, minutes, assignment, tuple(rubric))


def check(ex_id: str, *answers: Any, hidden: bool = False) -> None:
    """Check the answers to exercise ``ex_id``; print one line when they pass, raise when they do not.

    Raises :class:`NotAttempted` while an answer still raises NotImplementedError and
    :class:`ExerciseFailed` (an AssertionError) with a hint when an answer is wrong.
    ``hidden=True`` runs the graders' extra trials (other random inputs).
    """
    if ex_id not in EXERCISES:
        raise KeyError(f"unknown exercise {ex_id!r}; known: {', '.join(EXERCISES)}")
    ex = EXERCISES[ex_id]
    if len(answers) != len(ex.names):
        raise TypeError(f"check({ex_id!r}, ...) takes {len(ex.names)} answer(s): {', '.join(ex.names)}")
    rng = np.random.default_rng(1000 + int(ex_id[1:]) if hidden else int(ex_id[1:]))
    torch_threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a grade cell must not write to stderr (nbgrader reads it as a failure)
            ex.check(*answers, rng=rng, hidden=hidden)
    except NotAttempted as exc:
        raise NotAttempted(f"{ex_id} not attempted: {exc}") from None
    except ExerciseFailed as exc:
        raise ExerciseFailed(f"{ex_id} ({ex.title}): {exc}") from None
    finally:
        torch.set_num_threads(torch_threads)
    print(f"{ex_id} passed{' (hidden trials)' if hidden else ''}: {ex.title} [{ex.points} points]")


def call(fn: Any, *args: Any, name: str | None = None, **kwargs: Any) -> Any:
    """Call a student's function; NotImplementedError means 'not attempted', any other error fails."""
    label = name or getattr(fn, "__name__", repr(fn))
    if not callable(fn):
        raise ExerciseFailed(f"{label} must be a function (or a class), got {type(fn).__name__}")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotAttempted(f"{label} still raises NotImplementedError: replace the stub with your code") from None
    except (ExerciseFailed, NotAttempted):
        raise
    except Exception as exc:  # the student's code crashed: say where, not how to fix it
        raise ExerciseFailed(f"calling {label} raised {type(exc).__name__}: {exc}") from None


def as_numpy(value: Any, label: str) -> np.ndarray:
    """A student's result as a float64 numpy array (tensor, array, list or float)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().to(torch.float64).numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ExerciseFailed(f"{label} must be a number, an array or a tensor, got {type(value).__name__}") from None


def need_tensor(value: Any, like: torch.Tensor, label: str) -> torch.Tensor:
    """The result must be a tensor of ``like``'s shape and dtype (float64 stays float64)."""
    if not isinstance(value, torch.Tensor):
        raise ExerciseFailed(f"{label} must return a torch tensor, got {type(value).__name__}")
    if tuple(value.shape) != tuple(like.shape):
        raise ExerciseFailed(f"{label} returned shape {tuple(value.shape)}, expected {tuple(like.shape)} (the input's)")
    if value.dtype != like.dtype:
        raise ExerciseFailed(
            f"{label} returned {value.dtype} for {like.dtype} inputs: keep the inputs' dtype; float32 "
            "(torch's default, or a .float() somewhere) loses the digits this check compares"
        )
    return value


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b))), 1e-300)
    return float(np.max(np.abs(a - b))) / scale


def matches(a: Any, b: Any, rtol: float = 1e-9) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and rel_error(a, b) <= rtol


def compare(student: Any, reference: Any, label: str, *, rtol: float = 1e-9, where: str = "",
            diagnoses: Sequence[tuple[Any, str]] = (), hint: str = "") -> None:
    """Fail unless ``student`` equals ``reference`` to ``rtol`` (relative to the reference's size).

    ``diagnoses`` lists (value of a known mistake, what to say when the answer equals it); the
    first match gives the message.  Otherwise the message gives the size of the error, ``where``
    it was seen and the ``hint``; never the expected value.
    """
    s = as_numpy(student, label)
    r = np.asarray(reference, dtype=np.float64)
    if s.shape != r.shape:
        try:
            s = np.broadcast_to(s, r.shape)
        except ValueError:
            raise ExerciseFailed(f"{label} has shape {s.shape}, expected {r.shape}{' ' + where if where else ''}") from None
    if not np.all(np.isfinite(s)):
        raise ExerciseFailed(f"{label} is not finite (NaN or inf){' ' + where if where else ''}. {hint}".strip())
    if rel_error(s, r) <= rtol:
        return
    for wrong, say in diagnoses:
        try:
            if matches(s, np.broadcast_to(np.asarray(wrong, dtype=np.float64), r.shape), max(rtol, 1e-7)):
                raise ExerciseFailed(f"{label} is wrong{' ' + where if where else ''}: {say}")
        except ValueError:
            continue
    err = rel_error(s, r)
    ratio = ""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = s / r
    q = q[np.isfinite(q) & (np.abs(r) > 1e-12 * max(float(np.max(np.abs(r))), 1e-300))]
    if q.size and np.allclose(q, q.flat[0], rtol=1e-6) and abs(q.flat[0] - 1) > 1e-6:
        ratio = f" (your values are {q.flat[0]:.4g} times the right ones everywhere)"
    elif 1e-9 < err < 1e-5:
        ratio = " (close, but not to the digits float64 gives: a float32 step, or an approximation?)"
    raise ExerciseFailed(
        f"{label} is wrong{' ' + where if where else ''}: relative error {err:.3g}{ratio}. {hint}".strip()
    )
