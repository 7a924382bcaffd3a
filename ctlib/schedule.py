r"""Noise schedules of ResShift in discrete and continuous time.

A schedule gives, for continuous time ``t`` in [0, 1] (``t = 1`` is the most noise and
``t = k/T`` is the official discrete step ``k``):

* ``eta(t)``   -- the residual-shift level; the forward marginal is
  ``q(x_t | x0, y) = N(x0 + eta(t) (y - x0), kappa^2 eta(t) I)`` (docs/maths.md §1, §3);
* ``alpha(t)`` -- its time derivative ``d eta / dt`` (the SDE ``dx = alpha e0 dt + kappa sqrt(alpha) dw``);
* ``T``, ``kappa`` and ``etas`` -- the number of official steps, the noise scale, and
  ``eta(k/T)`` for ``k = 1..T`` as a float64 numpy array.

Two families are provided:

``ResShiftSchedule``
    The official 'exponential' schedule of ResShift,
    ``sqrt(eta_k) = p (q/p) ** (((k-1)/(T-1)) ** power)``, with ``p = min(min_noise_level/kappa,
    min_noise_level)`` and ``q = etas_end``.  The formula is defined for real ``k`` in [1, T], which
    makes it an *exact* continuous extension through every ``eta_k``; on [0, 1/T] we continue it
    linearly down to ``eta(0) = 0``.

``ExpAlphaSchedule``
    The report's form ``alpha(t) = a (exp(lam t) - 1)``, ``eta(t) = a ((exp(lam t) - 1)/lam - t)``,
    and ``fit_exp_alpha`` to fit ``a, lam`` to a discrete schedule with scipy.

Every function accepts Python floats, numpy arrays and torch tensors (float32 or float64) and
returns the same kind; the arithmetic is done in float64 and cast back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._checks import check_int, check_positive, check_unit_interval, is_tensor

__all__ = [
    "Schedule",
    "ResShiftSchedule",
    "ExpAlphaSchedule",
    "ExpAlphaFit",
    "fit_exp_alpha",
    "schedule_from_dict",
]


def _apply(t: Any, fn: Callable[[np.ndarray], np.ndarray]) -> Any:
    """Evaluate ``fn`` (a float64 numpy function) on ``t`` and return the input's kind and dtype."""
    if is_tensor(t):
        dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
        out = fn(t.detach().to("cpu", torch.float64).numpy())
        return torch.as_tensor(out, dtype=torch.float64).to(device=t.device, dtype=dtype)
    if isinstance(t, np.ndarray):
        dtype = t.dtype if np.issubdtype(t.dtype, np.floating) else np.float64
        return fn(t.astype(np.float64)).astype(dtype)
    return float(fn(np.asarray(float(t), dtype=np.float64)))


class Schedule:
    """Base class: subclasses implement ``_eta`` and ``_alpha`` on float64 numpy arrays."""

    T: int
    kappa: float

    def eta(self, t: Any) -> Any:
        """eta(t) for t in [0, 1]; float, numpy array or torch tensor in, same kind out."""
        check_unit_interval(t, "t")
        return _apply(t, self._eta)

    def alpha(self, t: Any) -> Any:
        """alpha(t) = d eta / dt for t in [0, 1]."""
        check_unit_interval(t, "t")
        return _apply(t, self._alpha)

    @property
    def etas(self) -> np.ndarray:
        """eta(k/T) for k = 1..T (float64)."""
        return self._eta(np.arange(1, self.T + 1, dtype=np.float64) / self.T)

    @property
    def eta_T(self) -> float:
        """eta(1), the prior's level: x_T = y + kappa sqrt(eta_T) eps."""
        return float(self._eta(np.asarray(1.0)))

    def _eta(self, t: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _alpha(self, t: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


def _check_kappa_T(kappa: float, T: int) -> tuple[float, int]:
    return check_positive(kappa, "kappa"), check_int(T, "T", minimum=2)


class ResShiftSchedule(Schedule):
    """The official ResShift 'exponential' eta schedule and its exact continuous extension.

    Parameters are those of the official config (realsr x4 v1 by default):
    ``T=15, kappa=2.0, min_noise_level=0.04, etas_end=0.99, power=0.3``.

    Continuous time: with ``u = (T t - 1)/(T - 1)``,

    * for ``t >= 1/T``: ``eta(t) = (p (q/p) ** (u ** power)) ** 2`` (passes through every eta_k);
      ``alpha(t) = 2 power ln(q/p) u ** (power - 1) T/(T - 1) eta(t)``;
    * for ``t < 1/T``: ``eta(t) = T t eta_1`` (linear to zero), ``alpha(t) = T eta_1``.

    For ``power < 1`` the derivative of ``u ** power`` is infinite at ``u = 0``: alpha has an
    integrable singularity just right of ``t = 1/T``.  At ``t = 1/T`` exactly, ``alpha`` returns the
    left-hand value ``T eta_1`` (so an Euler step from 1/T to 0 is the exact secant step in eta).
    """

    def __init__(
        self,
        T: int = 15,
        kappa: float = 2.0,
        min_noise_level: float = 0.04,
        etas_end: float = 0.99,
        power: float = 0.3,
    ) -> None:
        self.kappa, self.T = _check_kappa_T(kappa, T)
        self.min_noise_level = check_positive(min_noise_level, "min_noise_level")
        self.etas_end = check_positive(etas_end, "etas_end")
        self.power = check_positive(power, "power")
        self.p = min(self.min_noise_level / self.kappa, self.min_noise_level)  # sqrt(eta_1)
        self.q = self.etas_end  # sqrt(eta_T)
        if not self.q > self.p:
            raise ValueError(
                f"etas_end ({etas_end}) must exceed the first sqrt(eta) = min(min_noise_level/kappa, "
                f"min_noise_level) = {self.p}"
            )

    # -- discrete arrays, computed exactly as the official code does ------------------------
    @property
    def sqrt_etas(self) -> np.ndarray:
        """Official ``sqrt_etas``: p * increaser ** ((T-1) u ** power), u = linspace(0, 1, T)."""
        T = self.T
        increaser = math.exp(1.0 / (T - 1) * math.log(self.q / self.p))
        power_timestep = np.linspace(0, 1, T, endpoint=True) ** self.power * (T - 1)
        return np.power(np.full(T, increaser), power_timestep) * self.p

    @property
    def etas(self) -> np.ndarray:
        """Official discrete eta_k, k = 1..T (float64)."""
        return self.sqrt_etas**2

    @property
    def etas_prev(self) -> np.ndarray:
        """eta_{k-1} (eta_0 = 0)."""
        return np.concatenate([[0.0], self.etas[:-1]])

    @property
    def alphas(self) -> np.ndarray:
        """Discrete increments alpha_k = eta_k - eta_{k-1} (alpha_1 = eta_1)."""
        return self.etas - self.etas_prev

    def posterior_coefficients(self) -> dict[str, np.ndarray]:
        """The official posterior arrays of q(x_{k-1} | x_k, x0, y), indexed by k-1 = 0..T-1.

        ``coef1 = eta_{k-1}/eta_k``, ``coef2 = alpha_k/eta_k``,
        ``variance = kappa^2 eta_{k-1}/eta_k alpha_k``; ``variance_clipped`` replaces entry 0 by entry 1
        (as the official code does before taking the log).
        """
        etas, prev, alphas = self.etas, self.etas_prev, self.alphas
        variance = self.kappa**2 * prev / etas * alphas
        clipped = np.concatenate([variance[1:2], variance[1:]])
        return {
            "posterior_mean_coef1": prev / etas,
            "posterior_mean_coef2": alphas / etas,
            "posterior_variance": variance,
            "posterior_variance_clipped": clipped,
            "posterior_log_variance_clipped": np.log(clipped),
        }

    # -- continuous extension ---------------------------------------------------------------
    def _u(self, t: np.ndarray) -> np.ndarray:
        # k = T t is snapped to the nearest integer when within 1e-6 of it: float32 cannot hold k/T,
        # and u ** power (power < 1) is so steep near u = 0 that float32 rounding of 1/T alone would
        # move eta(1/T) by 2%.  The snap keeps eta monotone; its jump is below 3e-5 (at k = 1).
        k = self.T * t
        k_round = np.round(k)
        k = np.where(np.abs(k - k_round) < 1e-6, k_round, k)
        return np.clip((k - 1.0) / (self.T - 1), 0.0, None)

    def _eta(self, t: np.ndarray) -> np.ndarray:
        eta1 = self.p**2
        upper = (self.p * (self.q / self.p) ** (self._u(t) ** self.power)) ** 2
        return np.where(self.T * t >= 1.0 - 1e-6, upper, self.T * t * eta1)

    def _alpha(self, t: np.ndarray) -> np.ndarray:
        eta1 = self.p**2
        u = self._u(t)
        with np.errstate(divide="ignore", invalid="ignore"):
            upper = (
                2.0 * self.power * math.log(self.q / self.p) * u ** (self.power - 1.0)
                * self.T / (self.T - 1) * self._eta(t)
            )
        # t within float32 rounding of 1/T counts as 1/T (left-hand value; see the class docstring)
        return np.where(self.T * t - 1.0 > 1e-6, upper, self.T * eta1 + 0.0 * t)

    def to_dict(self) -> dict:
        return {
            "kind": "resshift",
            "T": self.T,
            "kappa": self.kappa,
            "min_noise_level": self.min_noise_level,
            "etas_end": self.etas_end,
            "power": self.power,
        }

    def __repr__(self) -> str:
        return (
            f"ResShiftSchedule(T={self.T}, kappa={self.kappa}, min_noise_level={self.min_noise_level}, "
            f"etas_end={self.etas_end}, power={self.power})"
        )


class ExpAlphaSchedule(Schedule):
    """The report's schedule: ``alpha(t) = a (exp(lam t) - 1)``, ``eta(t) = a ((exp(lam t) - 1)/lam - t)``.

    ``eta`` is the exact integral of ``alpha`` from 0 (computed with ``expm1`` to avoid cancellation).
    ``T`` only says how continuous time maps to the network's discrete index (index = T t - 1).
    """

    def __init__(self, a: float, lam: float, kappa: float = 2.0, T: int = 15) -> None:
        self.a = check_positive(a, "a")
        self.lam = check_positive(lam, "lam")
        self.kappa, self.T = _check_kappa_T(kappa, T)

    @classmethod
    def report(cls, kappa: float = 2.0, T: int = 15) -> ExpAlphaSchedule:
        """The report code's preset: a = 1.1113, alpha(1) = 2.3177576, lam = ln(1 + alpha(1)/a) = 1.1268.

        (The report prints lam = 0.489, which is log10 of the same base: erratum 2.)
        """
        a, alpha_1 = 1.1113, 2.3177576
        return cls(a=a, lam=math.log(1.0 + alpha_1 / a), kappa=kappa, T=T)

    def _eta(self, t: np.ndarray) -> np.ndarray:
        x = self.lam * t
        # (expm1(x) - x) / lam, with a series for tiny x where the subtraction cancels
        series = x * x / 2.0 * (1.0 + x / 3.0 * (1.0 + x / 4.0 * (1.0 + x / 5.0)))
        return self.a * np.where(np.abs(x) < 1e-4, series, np.expm1(x) - x) / self.lam

    def _alpha(self, t: np.ndarray) -> np.ndarray:
        return self.a * np.expm1(self.lam * t)

    def to_dict(self) -> dict:
        return {"kind": "exp_alpha", "a": self.a, "lam": self.lam, "kappa": self.kappa, "T": self.T}

    def __repr__(self) -> str:
        return f"ExpAlphaSchedule(a={self.a:.6g}, lam={self.lam:.6g}, kappa={self.kappa}, T={self.T})"


def schedule_from_dict(d: dict) -> Schedule:
    """Rebuild a schedule from ``Schedule.to_dict()`` (used by checkpoints)."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind == "resshift":
        return ResShiftSchedule(**d)
    if kind == "exp_alpha":
        return ExpAlphaSchedule(**d)
    raise ValueError(f"unknown schedule kind {kind!r}; expected 'resshift' or 'exp_alpha'")


# ---------------------------------------------------------------------------------------------
# fitting alpha(t) = a (exp(lam t) - 1) to a discrete schedule
# ---------------------------------------------------------------------------------------------
@dataclass
class ExpAlphaFit:
    """Result of :func:`fit_exp_alpha`."""

    schedule: ExpAlphaSchedule
    target: str  # "alpha" or "eta"
    constrained: bool  # alpha(1) = T alpha_T imposed
    t: np.ndarray  # where the fit was evaluated (k/T)
    data: np.ndarray  # the fitted values (T alpha_k or eta_k)
    residuals: np.ndarray  # model - data at t
    success: bool
    message: str

    @property
    def a(self) -> float:
        return self.schedule.a

    @property
    def lam(self) -> float:
        return self.schedule.lam

    @property
    def rms(self) -> float:
        return float(np.sqrt(np.mean(self.residuals**2)))


def fit_exp_alpha(
    schedule: Schedule,
    target: str = "alpha",
    constrained: bool = False,
    x0: tuple[float, float] = (1.0, 1.0),
) -> ExpAlphaFit:
    """Least-squares fit of ``alpha(t) = a (exp(lam t) - 1)`` to a discrete schedule (scipy).

    ``target="alpha"``: fit ``alpha(k/T)`` to ``T alpha_k`` (the report's ``alpha(t) = T alpha_{tT}``);
    ``target="eta"``: fit ``eta(k/T)`` to ``eta_k`` (what preserves the marginals).
    ``constrained=True`` imposes the report code's ``alpha(1) = T alpha_T`` and fits ``lam`` alone
    (``a = T alpha_T / (exp(lam) - 1)``).
    Returns an :class:`ExpAlphaFit` with the fitted schedule and the residuals (model - data).
    """
    from scipy.optimize import least_squares

    if target not in ("alpha", "eta"):
        raise ValueError(f"target must be 'alpha' or 'eta', got {target!r}")
    T, kappa = schedule.T, schedule.kappa
    t = np.arange(1, T + 1, dtype=np.float64) / T
    etas = np.asarray(schedule.etas, dtype=np.float64)
    alphas = np.diff(np.concatenate([[0.0], etas]))
    data = T * alphas if target == "alpha" else etas
    alpha_end = T * alphas[-1]

    def model(a: float, lam: float) -> np.ndarray:
        s = ExpAlphaSchedule(a, lam, kappa=kappa, T=T)
        return s._alpha(t) if target == "alpha" else s._eta(t)

    if constrained:

        def a_of(lam: float) -> float:
            return alpha_end / math.expm1(lam)

        res = least_squares(lambda p: model(a_of(p[0]), p[0]) - data, [x0[1]], bounds=([1e-6], [50.0]))
        a, lam = a_of(res.x[0]), float(res.x[0])
    else:
        res = least_squares(lambda p: model(p[0], p[1]) - data, list(x0), bounds=([1e-9, 1e-6], [1e3, 50.0]))
        a, lam = float(res.x[0]), float(res.x[1])
    fitted = ExpAlphaSchedule(a, lam, kappa=kappa, T=T)
    return ExpAlphaFit(
        schedule=fitted,
        target=target,
        constrained=constrained,
        t=t,
        data=data,
        residuals=model(a, lam) - data,
        success=bool(res.success),
        message=str(res.message),
    )
