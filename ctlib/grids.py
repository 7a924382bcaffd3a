r"""Time grids for the samplers: the report's rho grid, its mirrored negative-rho form, and the
uniform grid of the official discrete sampler.

Every grid is a float64 numpy array that starts at ``t = 1`` (the most noise), decreases strictly
and ends with ``t = 0`` (the image).  The points before the final 0 are where a sampler evaluates
the denoiser; the last step, into ``t = 0``, is special for every solver (``eta(0) = 0`` makes the
probability-flow drift singular there; see :mod:`ctlib.samplers`).

The report's grid (docs/maths.md §5), with ``n`` points before the final 0::

    t_i = (1 + i/(n-1) ((1/T)^(1/rho) - 1))^rho,   i = 0..n-1,   then 0 appended

runs from ``t_0 = 1`` to ``t_{n-1} = 1/T`` (the official last step).  It is the EDM/Karras grid
with ``t_max = 1``, ``t_min = 1/T``: the points are uniform in ``t^(1/rho)``.

A negative ``rho`` is run, as the report's code does, as ``|rho|`` on the mirrored grid: the full
grid ``[1, t_1, ..., 1/T, 0]`` of ``|rho|`` becomes ``1 - reversed(...) = [1, 1 - 1/T, ...,
1 - t_1, 0]``.  The first step is therefore always ``1 -> 1 - 1/T``, and the last step into 0 starts
at ``1 - t_1`` (a large step for large ``|rho|``).  The report prints the literal formula
``t_{N-1-i} = 1 - (1 + i/(N-1) ((1/T)^(1/rho) - 1))^rho`` with the negative rho inserted, which
would start at ``1 - 1/T`` instead of 1; its public code (``--reverse_ro``: ``1 - timesteps[::-1]``
with the positive ``ro``) and docs/maths.md §5 use the mirrored ``|rho|`` grid, and so do we.

What "higher rho" means.  In words: ``rho = 1`` spaces the points evenly in ``t``; a larger
positive ``rho`` packs them towards ``t = 0`` (small eta: near the image, where the fine detail is
decided); a negative ``rho`` packs them towards ``t = 1`` (near the noisy LR start), the more the
larger ``|rho|``.  In numbers, for ``T = 15``, the fraction of the evaluation points (all points
but the final 0) that lie below ``t = 0.5`` / below ``t = 0.2``, and the median evaluation time:

    ======  =============  =============  =============  ==============
    rho     n = 5          n = 8          n = 15         median, n = 15
    ======  =============  =============  =============  ==============
    1       0.400 / 0.200  0.500 / 0.125  0.467 / 0.133  0.533
    4       0.600 / 0.400  0.625 / 0.375  0.667 / 0.333  0.323
    8       0.600 / 0.400  0.625 / 0.375  0.667 / 0.400  0.289
    -4      0.200 / 0.000  0.250 / 0.000  0.267 / 0.067  0.733
    -8      0.200 / 0.000  0.250 / 0.000  0.267 / 0.067  0.762
    ======  =============  =============  =============  ==============

(``n = 15`` is Euler at nfe = 15, ``n = 8`` Heun at nfe = 15; ``tests/test_grids.py`` checks the
table.)  Beyond ``rho ~ 4`` the counts barely move: a larger ``rho`` mostly shrinks the steps
nearest to ``t = 1/T`` (rho 8, n = 15: the last three steps before 1/T are 0.025, 0.021, 0.017; rho 1:
1/15 = 0.067 each).
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import check_int

__all__ = ["rho_grid", "uniform_grid", "check_grid"]


def _check_rho(rho: float) -> float:
    try:
        r = float(rho)
    except (TypeError, ValueError):
        raise ValueError(f"rho must be a nonzero finite number, got {rho!r}") from None
    if not math.isfinite(r) or r == 0:
        raise ValueError(f"rho must be a nonzero finite number, got {rho!r}")
    return r


def rho_grid(n: int, rho: float = 1.0, T: int = 15) -> np.ndarray:
    """The report's time grid: ``n`` evaluation points from ``t = 1`` then a final ``0`` (``n + 1`` values).

    ``rho > 0``: ``t_i = (1 + i/(n-1) ((1/T)^(1/rho) - 1))^rho`` from 1 down to ``1/T``.
    ``rho < 0``: ``1 - reversed(rho_grid(n, |rho|, T))`` = ``[1, 1 - 1/T, ..., 1 - t_1, 0]``.
    ``n = 1`` gives ``[1, 0]`` (one step straight into 0).  See the module docstring for what rho does.
    """
    n = check_int(n, "n", minimum=1)
    rho = _check_rho(rho)
    T = check_int(T, "T", minimum=2)
    if rho < 0:
        return 1.0 - rho_grid(n, -rho, T)[::-1].copy()
    if n == 1:
        return np.array([1.0, 0.0])
    i = np.arange(n, dtype=np.float64)
    t = (1.0 + i / (n - 1) * ((1.0 / T) ** (1.0 / rho) - 1.0)) ** rho
    t[0], t[-1] = 1.0, 1.0 / T  # exact end points (rounding of the power)
    return np.concatenate([t, [0.0]])


def uniform_grid(T: int = 15) -> np.ndarray:
    """The official discrete sampler's grid ``[T/T, (T-1)/T, ..., 1/T, 0]`` (``T + 1`` values)."""
    T = check_int(T, "T", minimum=1)
    return np.arange(T, -1, -1, dtype=np.float64) / T


def check_grid(ts, name: str = "ts") -> np.ndarray:
    """Validate a time grid and return it as a float64 numpy array.

    A grid is 1-D with at least two values in [0, 1], strictly decreasing; only the last value may
    be 0 (the denoiser is never evaluated at ``t = 0``).
    """
    arr = np.asarray(ts.detach().cpu() if hasattr(ts, "detach") else ts, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"{name} must be a 1-D grid with at least 2 times, got shape {arr.shape}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"{name} must hold finite times in [0, 1], got values in [{arr.min()}, {arr.max()}]")
    if not (np.diff(arr) < 0).all():
        raise ValueError(f"{name} must be strictly decreasing (from the most noise to the least)")
    return arr


def levels_grid(nfe: int, T: int) -> np.ndarray:
    """``nfe`` of the discrete levels ``k/T`` (``k = round(linspace(T, 1, nfe))``, all distinct), then 0."""
    nfe = check_int(nfe, "nfe", minimum=1)
    T = check_int(T, "T", minimum=1)
    if nfe > T:
        raise ValueError(f"exp1_levels visits distinct trained levels k/T: nfe must be <= T = {T}, got {nfe}")
    ks = np.array([T]) if nfe == 1 else np.round(np.linspace(T, 1, nfe))
    return np.append(ks / T, 0.0)
