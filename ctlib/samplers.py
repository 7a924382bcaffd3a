r"""Samplers for (continuous-in-time) ResShift: one short function per solver, and :func:`sample`.

A denoiser is ``denoiser(x_t, t, y) -> x0_hat`` with ``t`` a float tensor of shape (B,) in (0, 1]
(docs/design.md §3).  Tensors may have any shape with the batch first, (B, ...).  Every solver works with
``eta = schedule.eta(t)`` and ``alpha = schedule.alpha(t)`` computed once, in float64, on its time
grid (:mod:`ctlib.grids`); the state keeps the dtype and device of ``x``.

The probability-flow ODE (docs/maths.md §4), with ``x0_hat = denoiser(x, t, y)``:

    dx/d eta = (y - x0_hat) + (x - (1 - eta) x0_hat - eta y) / (2 eta),   dx/dt = alpha(t) dx/d eta.

Solvers (``solver=`` in :func:`sample`; evaluations per call in brackets):

``resshift``        the official discrete sampler on the schedule's ``T`` levels ``eta(k/T)``:
                    posterior mean ``(eta_{k-1}/eta_k) x + (alpha_k/eta_k) x0_hat`` plus noise of
                    variance ``kappa^2 (eta_{k-1}/eta_k) alpha_k``, no noise at the last step, whose
                    mean is the last x0 guess [T; ``nfe`` must equal ``T``].
``euler``           Euler on dx/dt along the report's grid [one per step].
``heun``            Heun (explicit trapezoid) on dx/dt; a step into t = 0 is a plain Euler step
                    (the drift cannot be evaluated at eta = 0), as in the report's code
                    [2 per Heun step, 1 per Euler step].
``exp1``            first-order exponential integrator: dx/d eta solved exactly with x0_hat held
                    fixed over the step (``pf_exact_step``; the deterministic, DDIM-like counterpart
                    of ResShift) [one per step].
``exp2m``           second-order multistep exponential integrator (DPM-Solver++(2M) in spirit):
                    x0_hat linear in ``eta`` through the last two evaluations, integrated exactly
                    (:func:`exp_multistep_step`; derived in notebook 04); the first step is ``exp1``
                    [one per step].
``exp2m_sqrt``      the same with x0_hat linear in ``sqrt(eta)``.
``exp3m``           third order: x0_hat quadratic in ``eta`` through the last three evaluations; its
                    first step is an exp1 prediction corrected with the evaluation it needs anyway at
                    the next grid point (so it costs nothing and keeps order 3) [one per step].
``euler_maruyama``  Euler–Maruyama on the reverse SDE in eta,
                    ``x <- x + d_eta (y - x0_hat + (x - (1-eta) x0_hat - eta y)/eta) + kappa sqrt(|d_eta|) z``;
                    the step into eta = 0 adds no noise (it lands on x0_hat, to rounding) [one per step].

How ``nfe`` maps to steps (:func:`solver_grid`): ``euler``, ``exp1``, ``exp2m(_sqrt)``, ``exp3m`` and
``euler_maruyama`` take ``nfe`` steps on ``rho_grid(nfe, rho, T)`` (``nfe - 1`` steps down to 1/T
plus the final step into 0: Euler with nfe = 15 evaluates at t = 15/15, ..., 1/15 for rho = 1).
``heun`` with an odd ``nfe`` takes ``(nfe - 1)/2`` Heun steps plus the final Euler step (nfe = 15:
7 + 1, the report's variant, erratum 7); with an even ``nfe`` its grid has one point more and its
shortest step (before the final one) is an Euler step (:func:`heun_euler_step`).

End points.  The last step, into t = 0, starts at the last grid point ``t_last`` (1/T for rho > 0,
``1 - t_1`` for rho < 0), so its error does not shrink with ``nfe``.  Each deterministic solver
therefore converges, as nfe grows, to *the exact PF-ODE down to t_last followed by its final step*:

* ``euler``, ``heun``: the report's Euler step in t (on the official schedule ``alpha(1/T) = T eta_1``,
  so it is the secant step in eta, i.e. :func:`~ctlib.diffusion.pf_final_step`);
* ``exp1``, ``exp2m``, ``exp2m_sqrt``, ``exp3m``: x0_hat held fixed (:func:`~ctlib.diffusion.pf_exact_step`
  into 0 lands on x0_hat, as the official sampler's last step does), or with ``final_step="euler_eta"``
  :func:`~ctlib.diffusion.pf_final_step` (Euler in eta), off the exact x(0) by O(eta_a^2) instead of
  O(eta_a) when the flow is smooth in eta.  On the exact toy ``euler_eta`` is 5-30x closer to x(0);
  with the shipped model it scores about 1.1 dB lower PSNR-Y (notebook 04).  A polynomial
  extrapolation of x0_hat into eta = 0 is *not* used: as nfe grows it converges to
  ``x0_hat - eta_a dx0_hat/d eta``, neither x0_hat nor the exact end point.

``tests/test_samplers_convergence.py`` measures the error against these end points at nfe = 15, 31,
61 on the exact toy for both schedules and rho in {1, 4, 8, -4, -8}.

Each update line calls the formula docs/maths.md names (§6-§9): :func:`~ctlib.diffusion.pf_drift`,
:func:`~ctlib.diffusion.pf_exact_step`, :func:`~ctlib.diffusion.pf_final_step`,
:func:`~ctlib.diffusion.posterior_mean_variance`, :func:`~ctlib.diffusion.reverse_sde_drift_eta`, and
:func:`exp2m_step`, :func:`exp_multistep_step` here; ``x + c d`` is written ``torch.add(x, d, alpha=c)``
(one pass over memory fewer).  ``tests/test_samplers.py::test_every_update_is_its_named_formula``
checks every step bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tqdm import trange

from ._checks import check_int
from .diffusion import (
    pf_drift,
    pf_exact_step,
    pf_final_step,
    posterior_mean_variance,
    prior_sample,
    randn_like,
    reverse_sde_drift_eta,
)
from .grids import _check_rho, check_grid, rho_grid, uniform_grid

__all__ = [
    "SOLVERS",
    "STOCHASTIC_SOLVERS",
    "Denoiser",
    "sample",
    "solver_grid",
    "min_nfe",
    "sample_resshift",
    "sample_euler",
    "sample_heun",
    "sample_exp1",
    "sample_exp2m",
    "sample_exp3m",
    "sample_exp_multistep",
    "exp_moments",
    "exp_multistep_weights",
    "exp_multistep_step",
    "EXP_VARIABLES",
    "EXP_MULTISTEP",
    "FINAL_STEPS",
    "sample_euler_maruyama",
    "exp2m_step",
    "exp2m_weight",
    "EXP2M_VARIABLES",
]

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict[str, Any]], None]
Noise = torch.Tensor | Sequence[torch.Tensor] | None

SOLVERS: tuple[str, ...] = ("resshift", "euler", "heun", "exp1", "exp2m", "exp2m_sqrt", "exp3m", "euler_maruyama")
#: solver -> (order of the exponential multistep family, variable x0_hat is interpolated in)
EXP_MULTISTEP: dict[str, tuple[int, str]] = {"exp2m": (2, "eta"), "exp2m_sqrt": (2, "sqrt_eta"), "exp3m": (3, "eta")}
STOCHASTIC_SOLVERS: tuple[str, ...] = ("resshift", "euler_maruyama")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _denoise(denoiser: Denoiser, x: torch.Tensor, t: float, y: torch.Tensor) -> torch.Tensor:
    """Call the denoiser at time ``t`` (a (B,) tensor in x's dtype) and check what comes back."""
    x0_hat = denoiser(x, x.new_full((x.shape[0],), t), y)
    if not isinstance(x0_hat, torch.Tensor):
        raise TypeError(f"the denoiser must return a tensor (x0_hat), got {type(x0_hat).__name__}")
    if x0_hat.shape != x.shape:
        raise ValueError(
            f"the denoiser returned shape {tuple(x0_hat.shape)} for x_t of shape {tuple(x.shape)} at "
            f"t = {t:.6g}; x0_hat must have the shape of x_t"
        )
    # a sum is non-finite iff an entry is (or the sum overflows: then the exact test decides); it is
    # ~20x cheaper than isfinite().all() on large states
    if not math.isfinite(float(x0_hat.sum())) and not bool(torch.isfinite(x0_hat).all()):
        raise ValueError(f"the denoiser returned NaN or infinite values at t = {t:.6g}")
    return x0_hat.to(dtype=x.dtype, device=x.device)


def _levels(schedule, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """eta and alpha on the grid, float64 (computed once per run)."""
    eta = np.asarray(schedule.eta(ts), dtype=np.float64)
    alpha = np.asarray(schedule.alpha(ts), dtype=np.float64)
    return eta, alpha


def _report(callback: Callback | None, i: int, ts, x, x_next, x0_hat) -> None:
    if callback is not None:
        callback({"i": i, "t": float(ts[i]), "t_next": float(ts[i + 1]), "x": x, "x_next": x_next,
                  "x0_hat": x0_hat})


def _check_noise(noise: Noise, n_steps: int, x: torch.Tensor) -> Noise:
    """Per-step noise: ``n_steps`` (or ``n_steps - 1``) tensors shaped like x; entry i is used at step i."""
    if noise is None:
        return None
    n = len(noise)
    if n not in (n_steps, n_steps - 1):
        raise ValueError(
            f"noise must hold one tensor per step ({n_steps}, the last one unused; or {n_steps - 1}), got {n}"
        )
    for i in range(n):
        if tuple(noise[i].shape) != tuple(x.shape):
            raise ValueError(f"noise[{i}] has shape {tuple(noise[i].shape)}, expected {tuple(x.shape)} (as x)")
    return noise


def _noise(noise: Noise, i: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if noise is None:
        return randn_like(x, generator)
    return noise[i].to(dtype=x.dtype, device=x.device)


# ---------------------------------------------------------------------------------------------
# the solvers (k-diffusion style: model, state, grid)
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def sample_resshift(
    denoiser: Denoiser,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    schedule,
    generator: torch.Generator | None = None,
    noise: Noise = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """The official ResShift sampler on the levels ``eta_k = schedule.etas[k-1]``, k = T..1.

    Step k (denoiser at t = k/T): ``x <- (eta_{k-1}/eta_k) x + (alpha_k/eta_k) x0_hat + std_k z_k`` with
    ``std_k^2 = kappa^2 (eta_{k-1}/eta_k) alpha_k`` and no noise at k = 1, where ``eta_0 = 0`` makes the
    mean equal to x0_hat: the output is the last x0 guess.  ``noise[s]`` is used at loop iteration s
    (s = 0 is k = T), as in the official loop; otherwise z_k is drawn from ``generator``.
    """
    etas = np.asarray(schedule.etas, dtype=np.float64)
    T, kappa = len(etas), float(schedule.kappa)
    etas_prev = np.concatenate([[0.0], etas[:-1]])
    ts = uniform_grid(T)
    noise = _check_noise(noise, T, x)
    for s in trange(T, disable=not progress, desc="resshift"):
        k = T - s
        eta, eta_prev = float(etas[k - 1]), float(etas_prev[k - 1])
        x0_hat = _denoise(denoiser, x, float(ts[s]), y)
        mean, variance = posterior_mean_variance(x, x0_hat, eta, eta_prev, kappa)  # q(x_{k-1} | x_k, x0_hat)
        x_next = torch.add(mean, _noise(noise, s, x, generator), alpha=math.sqrt(variance)) if k > 1 else mean
        _report(callback, s, ts, x, x_next, x0_hat)
        x = x_next
    return x


@torch.no_grad()
def sample_euler(
    denoiser: Denoiser,
    x: torch.Tensor,
    y: torch.Tensor,
    ts,
    *,
    schedule,
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Euler on the PF-ODE in t: ``x <- x + (t_{i+1} - t_i) alpha(t_i) dx/d eta (x, x0_hat, eta(t_i))``."""
    ts = check_grid(ts)
    eta, alpha = _levels(schedule, ts)
    for i in trange(len(ts) - 1, disable=not progress, desc="euler"):
        h = float(ts[i + 1] - ts[i])
        x0_hat = _denoise(denoiser, x, float(ts[i]), y)
        x_next = torch.add(x, pf_drift(x, x0_hat, y, float(eta[i]), float(alpha[i])), alpha=h)  # x + h pf_drift
        _report(callback, i, ts, x, x_next, x0_hat)
        x = x_next
    return x


@torch.no_grad()
def sample_heun(
    denoiser: Denoiser,
    x: torch.Tensor,
    y: torch.Tensor,
    ts,
    *,
    schedule,
    euler_step: int | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Heun (explicit trapezoid) on the PF-ODE in t:  ``x' = x + h pf_drift(x, t_i)``,
    ``x <- x + h (pf_drift(x, t_i) + pf_drift(x', t_{i+1}))/2``; the step into t = 0 is a plain Euler
    step (the report's rule: the drift cannot be evaluated at eta = 0).

    End point: the exact PF-ODE to the last grid point, then the report's Euler step into 0.
    ``euler_step = i`` makes step i an Euler step too (one evaluation fewer for one more grid point):
    ``sample`` spends an even nfe that way, on the grid's shortest step (:func:`heun_euler_step`).
    """
    ts = check_grid(ts)
    eta, alpha = _levels(schedule, ts)
    for i in trange(len(ts) - 1, disable=not progress, desc="heun"):
        h = float(ts[i + 1] - ts[i])
        x0_hat = _denoise(denoiser, x, float(ts[i]), y)
        d = pf_drift(x, x0_hat, y, float(eta[i]), float(alpha[i]))
        x_next = torch.add(x, d, alpha=h)  # x' = x + h d (the whole step when it is an Euler step)
        if ts[i + 1] > 0 and i != euler_step:
            x0_hat_2 = _denoise(denoiser, x_next, float(ts[i + 1]), y)
            d_2 = pf_drift(x_next, x0_hat_2, y, float(eta[i + 1]), float(alpha[i + 1]))
            x_next = torch.add(x, d.add_(d_2), alpha=h / 2)  # x + h/2 (d + d')
        _report(callback, i, ts, x, x_next, x0_hat)
        x = x_next
    return x


def heun_euler_step(ts) -> int:
    """The step an even-nfe Heun run takes as an Euler step: the shortest step before the final one
    (the first of equal ones), where Euler's local error is smallest."""
    h = -np.diff(check_grid(ts))[:-1]
    if h.size == 0:
        raise ValueError("an even-nfe Heun run needs at least one step before the final one")
    return int(np.flatnonzero(h <= h.min() * (1 + 1e-9))[0])  # equal up to rounding: the first


@torch.no_grad()
def sample_exp1(
    denoiser: Denoiser,
    x: torch.Tensor,
    y: torch.Tensor,
    ts,
    *,
    schedule,
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """First-order exponential integrator: ``x <- pf_exact_step(x, x0_hat, y, eta_i, eta_{i+1})``, i.e.
    ``x0_hat + eta_b (y - x0_hat) + sqrt(eta_b/eta_a) (x - x0_hat - eta_a (y - x0_hat))``."""
    ts = check_grid(ts)
    eta, _ = _levels(schedule, ts)
    for i in trange(len(ts) - 1, disable=not progress, desc="exp1"):
        x0_hat = _denoise(denoiser, x, float(ts[i]), y)
        x_next = pf_exact_step(x, x0_hat, y, float(eta[i]), float(eta[i + 1]))
        _report(callback, i, ts, x, x_next, x0_hat)
        x = x_next
    return x


EXP_VARIABLES: tuple[str, ...] = ("eta", "sqrt_eta", "log_eta")
EXP2M_VARIABLES = EXP_VARIABLES  # the name earlier versions exported
FINAL_STEPS: tuple[str, ...] = ("hold", "euler_eta")


def _check_variable(variable: str) -> str:
    if variable not in EXP_VARIABLES:
        raise ValueError(f"variable must be one of {EXP_VARIABLES}, got {variable!r}")
    return variable


_GAUSS_LEGENDRE = np.polynomial.legendre.leggauss(32)  # nodes and weights on [-1, 1]


def exp_moments(eta_a: float, eta_b: float, variable: str = "eta", degree: int = 2) -> np.ndarray:
    r"""The moments ``M_k = s_b \int_{s_a}^{s_b} (v(s) - v_a)^k (1 + s^{-2}) ds``, k = 0..degree (s = sqrt(eta)).

    ``v`` is the variable x0_hat is interpolated in: ``eta``, ``sqrt_eta`` (= s) or ``log_eta``.  In s
    the PF-ODE reads ``d(x/s)/ds = y - x0_hat (1 + s^{-2})``, so one step from eta_a to eta_b is exactly

        x_b = (s_b/s_a) x_a + s_b (s_b - s_a) y - s_b \int_{s_a}^{s_b} x0_hat(s) (1 + s^{-2}) ds,

    and when x0_hat is the polynomial ``sum_k c_k (v - v_a)^k`` the integral is ``sum_k c_k M_k``.

    How: with ``s = s_a e^{-tau}`` (tau from 0 to ``h = ln(s_a/s_b)``, the step in log-noise) the
    integral is ``M_k = -\int_0^h (v - v_a)^k (s_a s_b e^{-tau} + e^{tau - h}) dtau``, a smooth integrand
    on a finite interval: 32-point Gauss-Legendre is exact to rounding for any step a sampler takes
    (h < 20).  Into eta_b = 0 the limit is ``M_k = -(v(0) - v_a)^k`` (``M_0 = -1``, ``M_1 = v_a``);
    ``log_eta`` has no limit there.
    """
    _check_variable(variable)
    degree = check_int(degree, "degree", minimum=0)
    s_a, s_b = math.sqrt(eta_a), math.sqrt(eta_b)
    k = np.arange(degree + 1)
    if eta_b == 0:
        if variable == "log_eta":
            raise ValueError("x0_hat interpolated in log(eta) cannot be integrated into eta = 0")
        v0_minus_va = -eta_a if variable == "eta" else -s_a
        return -(v0_minus_va ** k)
    h = math.log(s_a / s_b)
    nodes, weights = _GAUSS_LEGENDRE
    tau, w = h * (nodes + 1) / 2, weights * h / 2
    dv = {"eta": eta_a * np.expm1(-2 * tau), "sqrt_eta": s_a * np.expm1(-tau), "log_eta": -2 * tau}[variable]
    kernel = s_a * s_b * np.exp(-tau) + np.exp(tau - h)
    return -(dv[None, :] ** k[:, None] * kernel[None, :]) @ w


def exp_multistep_weights(
    etas: Sequence[float], eta_b: float, variable: str = "eta", eta_a: float | None = None
) -> np.ndarray:
    r"""Weights ``w_j`` of one exponential step from ``eta_a`` to ``eta_b``:

        x_b = (s_b/s_a) x_a + s_b (s_b - s_a) y - sum_j w_j x0_hat_j,

    where x0_hat_j was evaluated at ``etas[j]`` and x0_hat is taken as the polynomial in ``variable``
    through them (Lagrange basis ``l_j``): ``w_j = sum_k [l_j]_k M_k`` with :func:`exp_moments`.
    ``eta_a`` defaults to ``etas[0]`` (a multistep step: the current point, then older ones).  One
    node gives ``pf_exact_step`` (``w_0 = M_0``), two give :func:`exp2m_step`, three ``exp3m``; a node
    at ``eta_b`` itself gives an implicit (corrector) step.
    """
    _check_variable(variable)
    eta_a = float(etas[0]) if eta_a is None else float(eta_a)
    to_v = {"eta": np.asarray, "sqrt_eta": np.sqrt, "log_eta": np.log}[variable]
    w = to_v(np.asarray(etas, dtype=np.float64)) - to_v(np.float64(eta_a))  # nodes in the variable v - v_a
    if len(set(w.tolist())) != len(w):
        raise ValueError(f"the multistep nodes must be distinct, got etas {list(etas)}")
    moments = exp_moments(eta_a, float(eta_b), variable, degree=len(w) - 1)
    weights = np.empty(len(w))
    for j in range(len(w)):
        others = np.delete(w, j)
        basis = np.polynomial.polynomial.polyfromroots(others) / np.prod(w[j] - others)  # l_j in powers of v - v_a
        weights[j] = float(np.dot(basis, moments))
    return weights


def exp_multistep_step(
    x_a: torch.Tensor,
    x0_hats: Sequence[torch.Tensor],
    y: torch.Tensor,
    etas: Sequence[float],
    eta_b: float,
    variable: str = "eta",
    eta_a: float | None = None,
) -> torch.Tensor:
    r"""One step of the exponential multistep family from ``eta_a`` (default ``etas[0]``) to ``eta_b``:
    the PF-ODE integrated exactly with x0_hat the polynomial in ``variable`` (eta, sqrt(eta) or
    log(eta)) through the evaluations ``x0_hats[j]`` at ``etas[j]`` (newest first for a multistep step;
    a node at ``eta_b`` makes it a corrector; :func:`exp_multistep_weights`).

    The weights sum to ``M_0`` (the Lagrange basis sums to 1), and ``-M_0`` is the weight of x0_hat in
    ``pf_exact_step``, so the step is the exact step with the first evaluation held fixed, corrected by the
    differences to the others (for two nodes at eta_a and eta_prev this is :func:`exp2m_step`):

        x_b = pf_exact_step(x_a, x0_hats[0], y, eta_a, eta_b) - sum_{j >= 1} w_j (x0_hats[j] - x0_hats[0]).
    """
    if len(x0_hats) != len(etas):
        raise ValueError(f"one eta per x0_hat: got {len(x0_hats)} x0_hats and {len(etas)} etas")
    eta_a = float(etas[0]) if eta_a is None else float(eta_a)
    if len(etas) == 1 and float(etas[0]) == eta_a:  # exp1
        return pf_exact_step(x_a, x0_hats[0], y, eta_a, float(eta_b))
    weights = exp_multistep_weights(etas, eta_b, variable, eta_a=eta_a)
    x_b = pf_exact_step(x_a, x0_hats[0], y, eta_a, float(eta_b))
    for j in range(1, len(x0_hats)):
        x_b = torch.sub(x_b, x0_hats[j] - x0_hats[0], alpha=float(weights[j]))  # - w_j (x0_hat_j - x0_hat_0)
    return x_b


def exp2m_weight(eta_a: float, eta_b: float, variable: str = "eta") -> float:
    r"""The exact weight ``W = M_1`` of the slope of x0_hat in one PF-ODE step from eta_a to eta_b
    (:func:`exp_moments`; s = sqrt(eta)):

    * ``variable="eta"`` (x0_hat linear in eta):
      ``W = s_b (s_b^3 - s_a^3)/3 + (1 - eta_a)(eta_b - s_a s_b) + eta_a (1 - s_b/s_a)``, -> ``eta_a`` as eta_b -> 0;
    * ``variable="sqrt_eta"`` (x0_hat linear in s):
      ``W = s_b (s_b - s_a)^2/2 + s_b ln(s_b/s_a) + s_a - s_b``, -> ``s_a`` as eta_b -> 0.
    """
    return float(exp_moments(eta_a, eta_b, variable, degree=1)[1])


def exp2m_step(
    x_a: torch.Tensor,
    x0_a: torch.Tensor,
    x0_prev: torch.Tensor,
    y: torch.Tensor,
    eta_prev: float,
    eta_a: float,
    eta_b: float,
    variable: str = "eta",
) -> torch.Tensor:
    r"""One exp2m step from eta_a to eta_b: exact when x0_hat is linear in ``variable``.

    With ``x0_hat = x0_a + (v - v_a) D``, ``D = (x0_a - x0_prev)/(v_a - v_prev)`` (v = eta or sqrt(eta)):

        x_b = pf_exact_step(x_a, x0_a, y, eta_a, eta_b) - exp2m_weight(eta_a, eta_b, variable) D.

    (The samplers never take this step into eta_b = 0, where it would extrapolate x0_hat linearly to 0:
    see :func:`sample_exp_multistep`.)
    """
    to_v = {"eta": float, "sqrt_eta": math.sqrt, "log_eta": math.log}[_check_variable(variable)]
    v_prev, v_a = to_v(eta_prev), to_v(eta_a)
    slope = (x0_a - x0_prev) / (v_a - v_prev)
    return pf_exact_step(x_a, x0_a, y, eta_a, eta_b) - exp2m_weight(eta_a, eta_b, variable) * slope


@torch.no_grad()
def sample_exp_multistep(
    denoiser: Denoiser,
    x: torch.Tensor,
    y: torch.Tensor,
    ts,
    *,
    schedule,
    order: int = 2,
    variable: str = "eta",
    final_step: str = "hold",
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Exponential multistep integrator of order ``order`` (:func:`exp_multistep_step`): step i
    interpolates x0_hat through the last ``min(order, i + 1)`` evaluations (so the first step is exp1,
    the second exp2m, ...).

    The step into eta = 0 is never a polynomial extrapolation (it would converge, as nfe grows, to
    ``x0_hat - eta_a dx0_hat/d eta``, neither x0_hat nor the ODE's end point, with a first-order
    error): ``final_step="hold"`` (default) holds x0_hat fixed and lands on it, as the official
    sampler's last step does; ``"euler_eta"`` takes :func:`~ctlib.diffusion.pf_final_step`, off the
    exact x(0) by O(eta_a^2) instead of O(eta_a) when the flow is smooth in eta (notebook 04 shows when
    each wins).  End point: the exact PF-ODE to the last grid point, then that step.
    """
    _check_variable(variable)
    order = check_int(order, "order", minimum=1)
    if final_step not in FINAL_STEPS:
        raise ValueError(f"final_step must be one of {FINAL_STEPS}, got {final_step!r}")
    ts = check_grid(ts)
    eta, _ = _levels(schedule, ts)
    history: list[tuple[float, torch.Tensor]] = []  # (eta_j, x0_hat_j), newest first
    name = {1: "exp1", 2: "exp2m", 3: "exp3m"}.get(order, f"exp{order}m")
    name += {"eta": "", "sqrt_eta": "_sqrt", "log_eta": "_log"}[variable]
    pending = None  # x0_hat at the current state, when the start-up corrector already has it
    for i in trange(len(ts) - 1, disable=not progress, desc=name):
        x0_hat = _denoise(denoiser, x, float(ts[i]), y) if pending is None else pending
        pending = None
        history = [(float(eta[i]), x0_hat), *history][:order]
        e_a, e_b = float(eta[i]), float(eta[i + 1])
        if i == 0 and order >= 3 and e_b > 0:
            # start-up corrector: an exp1 prediction of x_1, x0_hat there, then the step again with
            # x0_hat linear between both ends (local error O(h^3) instead of exp1's O(h^2), which
            # would cap the method at order 2).  The evaluation at x_1 is the next step's x0_hat.
            x_pred = pf_exact_step(x, x0_hat, y, e_a, e_b)
            pending = _denoise(denoiser, x_pred, float(ts[1]), y)
            x_next = exp_multistep_step(x, [x0_hat, pending], y, [e_a, e_b], e_b, variable, eta_a=e_a)
        elif e_b == 0 and final_step == "euler_eta":
            x_next = pf_final_step(x, x0_hat, y, e_a)
        elif e_b == 0 or len(history) == 1:  # exp1 (into eta = 0: x0_hat held fixed, which lands on x0_hat)
            x_next = pf_exact_step(x, x0_hat, y, e_a, e_b)
        elif len(history) == 2:
            (_, x0_a), (eta_prev, x0_prev) = history
            x_next = exp2m_step(x, x0_a, x0_prev, y, eta_prev, e_a, e_b, variable)
        else:
            x_next = exp_multistep_step(x, [h[1] for h in history], y, [h[0] for h in history], e_b, variable)
        _report(callback, i, ts, x, x_next, x0_hat)
        x = x_next
    return x


@torch.no_grad()
def sample_exp2m(
    denoiser: Denoiser,
    x: torch.Tensor,
    y: torch.Tensor,
    ts,
    *,
    schedule,
    variable: str = "eta",
    final_step: str = "hold",
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Second-order multistep exponential integrator: :func:`sample_exp_multistep` with ``order=2``
    (x0_hat linear in ``variable`` through the last two evaluations; first step exp1)."""
    return sample_exp_multistep(denoiser, x, y, ts, schedule=schedule, order=2, variable=variable,
                                final_step=final_step, callback=callback, progress=progress)


@torch.no_grad()
def sample_exp3m(
    denoiser: Denoiser,
    x: torch.Tensor,
    y: torch.Tensor,
    ts,
    *,
    schedule,
    variable: str = "eta",
    final_step: str = "hold",
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Third-order multistep exponential integrator (DPM-Solver++(3M) in spirit): x0_hat quadratic in
    ``variable`` through the last three evaluations, integrated exactly (:func:`exp_multistep_step`);
    the first step is an exp1 prediction corrected with the next evaluation, the second exp2m."""
    return sample_exp_multistep(denoiser, x, y, ts, schedule=schedule, order=3, variable=variable,
                                final_step=final_step, callback=callback, progress=progress)


@torch.no_grad()
def sample_euler_maruyama(
    denoiser: Denoiser,
    x: torch.Tensor,
    y: torch.Tensor,
    ts,
    *,
    schedule,
    generator: torch.Generator | None = None,
    noise: Noise = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Euler–Maruyama on the reverse SDE in eta (``d_eta = eta_{i+1} - eta_i < 0``):
    ``x <- x + d_eta reverse_sde_drift_eta(x, x0_hat, y, eta_i) + kappa sqrt(-d_eta) z_i``;
    the step into eta = 0 adds no noise.  ``noise[i]`` (if given) is z_i, else z_i comes from ``generator``.
    """
    ts = check_grid(ts)
    eta, _ = _levels(schedule, ts)
    kappa = float(schedule.kappa)
    noise = _check_noise(noise, len(ts) - 1, x)
    for i in trange(len(ts) - 1, disable=not progress, desc="euler_maruyama"):
        x0_hat = _denoise(denoiser, x, float(ts[i]), y)
        d_eta = float(eta[i + 1] - eta[i])
        x_next = torch.add(x, reverse_sde_drift_eta(x, x0_hat, y, float(eta[i])), alpha=d_eta)
        if eta[i + 1] > 0:  # + kappa sqrt(-d_eta) z_i
            x_next.add_(_noise(noise, i, x, generator), alpha=kappa * math.sqrt(-d_eta))
        _report(callback, i, ts, x, x_next, x0_hat)
        x = x_next
    return x


# ---------------------------------------------------------------------------------------------
# the dispatcher
# ---------------------------------------------------------------------------------------------
def _check_solver(solver: str) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; known solvers: {', '.join(SOLVERS)}")
    return solver


def min_nfe(solver: str, T: int = 15) -> int:
    """The smallest nfe a solver accepts (resshift: exactly T)."""
    return {"resshift": T, "heun": 3}.get(_check_solver(solver), 1)


def _check_nfe(solver: str, nfe: int, T: int) -> int:
    nfe = check_int(nfe, "nfe", minimum=1)
    if solver == "resshift" and nfe != T:
        raise ValueError(f"the resshift sampler evaluates the denoiser once per level: nfe must equal T = {T}, got {nfe}")
    if nfe < min_nfe(solver, T):
        why = {"heun": "one Heun step (2) plus the final Euler step (1)"}
        raise ValueError(f"nfe = {nfe} is too small for solver {solver!r}: it needs nfe >= "
                         f"{min_nfe(solver, T)} ({why[solver]})")
    return nfe


def solver_grid(solver: str, nfe: int, rho: float = 1.0, T: int = 15) -> np.ndarray:
    """The time grid (ending in 0) that ``sample(..., solver, nfe, rho)`` steps along."""
    _check_solver(solver)
    nfe = _check_nfe(solver, nfe, T)
    _check_rho(rho)
    if solver == "resshift":
        return uniform_grid(T)
    if solver == "heun":  # odd: (nfe-1)/2 Heun steps + the final Euler step; even: Euler first, then the same
        return rho_grid((nfe + 1) // 2 if nfe % 2 else nfe // 2 + 1, rho, T)
    return rho_grid(nfe, rho, T)


def _check_schedule(schedule) -> None:
    for attr in ("T", "kappa", "eta", "alpha"):
        if not hasattr(schedule, attr):
            raise TypeError(f"schedule must provide T, kappa, eta(t) and alpha(t); {type(schedule).__name__} "
                            f"has no {attr!r}")


def sample(
    denoiser: Denoiser,
    y: torch.Tensor,
    *,
    schedule,
    solver: str,
    nfe: int,
    rho: float = 1.0,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    progress: bool = False,
    callback: Callback | None = None,
    noise: Noise = None,
    final_step: str | None = None,
) -> torch.Tensor:
    """Draw a sample: start at ``x_T`` (default ``prior_sample(y, eta(1), kappa, generator)``) and run
    ``solver`` (one of :data:`SOLVERS`) with exactly ``nfe`` denoiser calls on the grid
    :func:`solver_grid` (``rho``: see :mod:`ctlib.grids`; the resshift sampler ignores it).

    ``y`` (B, ...) is the conditioning in the state space (upsampled LR image or its latent); the
    sample has y's shape, dtype and device.  ``callback`` receives ``dict(i, t, t_next, x, x_next,
    x0_hat)`` after every step.  ``noise`` (stochastic solvers only) gives the per-step noise
    explicitly: a tensor (n_steps, *y.shape) or a sequence of tensors, entry i used at step i (the
    last entry, for the noiseless final step, may be left out); otherwise noise is drawn from
    ``generator``.  ``progress`` shows a tqdm bar.  ``final_step`` (exponential integrators only:
    ``"hold"``, their default, or ``"euler_eta"``) picks the step into t = 0 (see the module docstring).
    """
    _check_solver(solver)
    _check_schedule(schedule)
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.ndim < 1:
        raise TypeError("y must be a floating-point tensor with the batch first, shape (B, ...)")
    ts = solver_grid(solver, nfe, rho, schedule.T)
    if final_step is not None and (solver not in EXP_MULTISTEP and solver != "exp1" or final_step not in FINAL_STEPS):
        raise ValueError(f"final_step must be None or one of {FINAL_STEPS}, for the exponential integrators "
                         f"(exp1, {', '.join(EXP_MULTISTEP)}) only; got {final_step!r} for {solver!r}")
    if noise is not None and solver not in STOCHASTIC_SOLVERS:
        raise ValueError(f"noise is only used by the stochastic solvers {STOCHASTIC_SOLVERS}, not by {solver!r}")
    if x_T is None:
        x_T = prior_sample(y, float(schedule.eta(1.0)), schedule.kappa, generator=generator)
    elif not isinstance(x_T, torch.Tensor):
        raise TypeError(f"x_T must be a tensor, got {type(x_T).__name__}")
    elif tuple(x_T.shape) != tuple(y.shape):
        raise ValueError(f"x_T and y must have the same shape, got {tuple(x_T.shape)} and {tuple(y.shape)}")
    x = x_T.to(dtype=y.dtype, device=y.device)

    calls = 0

    def counted(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        _check_state(x_t, f"before evaluation {calls + 1} (t = {float(t.reshape(-1)[0]):.6g})", solver)
        calls += 1
        return denoiser(x_t, t, cond)

    common: dict[str, Any] = {"schedule": schedule, "callback": callback, "progress": progress}
    if solver == "resshift":
        out = sample_resshift(counted, x, y, generator=generator, noise=noise, **common)
    elif solver == "euler":
        out = sample_euler(counted, x, y, ts, **common)
    elif solver == "heun":
        out = sample_heun(counted, x, y, ts, euler_step=None if nfe % 2 else heun_euler_step(ts), **common)
    elif solver == "exp1" or solver in EXP_MULTISTEP:
        order, variable = EXP_MULTISTEP.get(solver, (1, "eta"))
        out = sample_exp_multistep(counted, x, y, ts, order=order, variable=variable,
                                   final_step=final_step or "hold", **common)
    else:
        out = sample_euler_maruyama(counted, x, y, ts, generator=generator, noise=noise, **common)
    if calls != nfe:  # pragma: no cover - an internal invariant
        raise RuntimeError(f"solver {solver!r} called the denoiser {calls} times instead of nfe = {nfe}")
    _check_state(out, "at the end", solver)
    return out


def _check_state(x: torch.Tensor, where: str, solver: str) -> None:
    """The sampler's state must stay finite: a denoiser returning huge finite values can overflow it."""
    if not math.isfinite(float(x.sum())) and not bool(torch.isfinite(x).all()):
        raise ValueError(f"solver {solver!r}: the sampler's state became NaN or infinite {where}; the denoiser's "
                         f"outputs are finite but too large for the state's dtype {x.dtype} (check the model)")
