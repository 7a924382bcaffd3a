"""Argument checks shared by the library: every message names the offending argument (values,
shapes, time points, devices).  Files -- output locations, atomic writes, hashes -- are
:mod:`ctlib.files`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

ArrayLike = Any  # float | np.ndarray | torch.Tensor


def is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    """Return ``float(value)`` if it is a finite number > 0 (>= 0 with ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return v


def check_int(value: Any, name: str, *, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _minmax(t: ArrayLike) -> tuple[float, float, bool]:
    if is_tensor(t):
        if t.numel() == 0:
            return 0.0, 0.0, True
        finite = bool(torch.isfinite(t).all())
        return float(t.min()), float(t.max()), finite
    a = np.asarray(t, dtype=np.float64)
    if a.size == 0:
        return 0.0, 0.0, True
    return float(a.min()), float(a.max()), bool(np.isfinite(a).all())


def check_unit_interval(t: ArrayLike, name: str = "t", *, tol: float = 1e-12) -> None:
    """Raise ValueError unless every entry of ``t`` is finite and inside [0, 1]."""
    lo, hi, finite = _minmax(t)
    if not finite:
        raise ValueError(f"{name} must be finite, got non-finite values")
    if lo < -tol or hi > 1 + tol:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.6g}, {hi:.6g}]")


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_finite(x: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


# ---------------------------------------------------------------------------------------------
# devices and output locations: checked before any expensive work (the commands' exit code 2)
# ---------------------------------------------------------------------------------------------
def check_device(device: Any, name: str = "device") -> torch.device:
    """``torch.device(device)`` if it names a device this machine has: ``cpu``, or ``cuda`` /
    ``cuda:N`` with a CUDA GPU (index N present).  Raises ValueError saying what to pass instead."""
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = torch.device(str(device))
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(f"{name} must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {str(device)!r} was requested but this machine has no usable CUDA GPU "
                             "(use cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name} {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s) "
                             f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    elif dev.type != "cpu":
        raise ValueError(f"{name} must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return dev
