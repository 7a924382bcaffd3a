r"""How close each deterministic solver gets to the exact probability-flow solution, on the exact toy.

One idea: score ``sample(...)`` against ``GaussianMixtureToy.exact_ode`` (the exact x(0) of the
PF-ODE, scipy) at a fixed budget of network evaluations, and read the result against the kit's
few-step goals: the best solver and rho at nfe = 5, 10, 15 should be within 0.5x, 0.1x and 0.03x of
the error of Euler on the uniform grid (rho = 1) at nfe = 15, measured in the same run.
On real images, where no exact solution is known, :func:`sample_spread` splits the error of K
samples per image into the error of their mean and their spread.

A *variant* is a solver name, optionally with the exponential integrators' final step:
``"exp3m"`` (x0_hat held in the step into 0, the default) or ``"exp3m/euler_eta"``
(:func:`ctlib.diffusion.pf_final_step`).  ``benchmarks/solvers_toy.py`` and notebook 04 call
:func:`error_rows` and :func:`goal_table`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from .samplers import EXP_MULTISTEP, min_nfe, sample, sample_exp_multistep

__all__ = ["GOALS", "ODE_SOLVERS", "REFERENCE", "variants", "run_variant", "error_rows", "goal_table",
           "log_eta_grid", "log_eta_probe", "sample_spread", "empirical_order"]

#: nfe -> the largest allowed error relative to the reference (Euler, rho = 1, nfe = 15)
GOALS: dict[int, float] = {5: 0.5, 10: 0.1, 15: 0.03}
#: the deterministic solvers (their end points: :mod:`ctlib.samplers`)
ODE_SOLVERS: tuple[str, ...] = ("euler", "heun", "exp1", "exp2m", "exp2m_sqrt", "exp3m")
#: the reference every goal is measured against: (variant, rho, nfe)
REFERENCE: tuple[str, float, int] = ("euler", 1.0, 15)


def variants(solvers: Iterable[str] = ODE_SOLVERS, final_steps: bool = True) -> list[str]:
    """The solvers, plus ``solver/euler_eta`` for the exponential multistep ones when ``final_steps``."""
    out = []
    for s in solvers:
        out.append(s)
        if final_steps and s in EXP_MULTISTEP:
            out.append(f"{s}/euler_eta")
    return out


def run_variant(toy, variant: str, nfe: int, rho: float, x_T: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``sample`` on the toy's exact denoiser from ``x_T`` with the variant's solver and final step."""
    solver, _, final = variant.partition("/")
    kw = {"final_step": final} if final else {}
    return sample(toy.denoiser, y, schedule=toy.schedule, solver=solver, nfe=nfe, rho=rho, x_T=x_T, **kw)


def error_rows(
    toy,
    variant_names: Sequence[str],
    rhos: Sequence[float],
    nfes: Sequence[int],
    *,
    n: int = 32,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Relative error ``||x - x_exact(0)|| / ||x_exact(0)||`` over ``n`` starts from the samplers' prior,
    for every variant x rho x nfe the solver accepts (the reference row is always included)."""
    x_T = toy.prior_sample(n, torch.Generator().manual_seed(seed))
    y = toy.y_batch(n)
    exact = toy.exact_ode(x_T)
    T = toy.schedule.T
    configs = [(v, float(r), int(k)) for v in variant_names for r in rhos for k in nfes]
    if REFERENCE not in configs:
        configs.append(REFERENCE)
    rows = []
    for variant, rho, nfe in configs:
        if nfe < min_nfe(variant.partition("/")[0], T):
            continue
        out = run_variant(toy, variant, nfe, rho, x_T, y)
        rows.append({"variant": variant, "rho": rho, "nfe": nfe, "rel_err": float((out - exact).norm() / exact.norm())})
    return rows


def goal_table(rows: Sequence[dict[str, Any]], goals: dict[int, float] = GOALS) -> list[dict[str, Any]]:
    """Per goal nfe: the best variant and rho, its error relative to the reference, and whether the goal
    is met (``ratio <= goal``).  ``rows`` as :func:`error_rows` returns them."""
    ref = next((r["rel_err"] for r in rows if (r["variant"], r["rho"], r["nfe"]) == REFERENCE), None)
    if ref is None:
        raise ValueError(f"rows must include the reference {REFERENCE}")
    out = []
    for nfe, goal in sorted(goals.items()):
        at = [r for r in rows if r["nfe"] == nfe]
        if not at:
            continue
        best = min(at, key=lambda r: r["rel_err"])
        ratio = best["rel_err"] / ref
        out.append({"nfe": nfe, "goal": goal, "best": best["variant"], "rho": best["rho"], "rel_err": best["rel_err"],
                    "reference_err": ref, "ratio": ratio, "met": bool(ratio <= goal)})
    return out


def log_eta_grid(schedule, n: int) -> np.ndarray:
    """A grid that is *not* one of the report's: ``n`` points from t = 1 to t = 1/T equally spaced in
    log eta (the log-noise spacing of DPM-Solver), then 0.  Each t solves ``eta(t) = level`` (scipy)."""
    from scipy.optimize import brentq

    T = schedule.T
    levels = np.exp(np.linspace(np.log(float(schedule.eta(1.0))), np.log(float(schedule.eta(1.0 / T))), n))
    inner = [brentq(lambda t, e=e: float(schedule.eta(t)) - e, 1.0 / T, 1.0, xtol=1e-14) for e in levels[1:-1]]
    return np.array([1.0, *inner, 1.0 / T, 0.0])


def log_eta_probe(toy, nfes: Sequence[int], *, n: int = 32, seed: int = 0) -> list[dict[str, Any]]:
    """What the grid costs: exp3m with x0_hat quadratic in log eta and the Euler-in-eta final step on
    :func:`log_eta_grid`, as ratios to the reference (Euler, rho 1, nfe 15) on the same starts."""
    x_T = toy.prior_sample(n, torch.Generator().manual_seed(seed))
    y = toy.y_batch(n)
    exact = toy.exact_ode(x_T)
    variant, rho, nfe_ref = REFERENCE
    ref = float((run_variant(toy, variant, nfe_ref, rho, x_T, y) - exact).norm() / exact.norm())
    rows = []
    for nfe in nfes:
        out = sample_exp_multistep(toy.denoiser, x_T, y, log_eta_grid(toy.schedule, nfe), schedule=toy.schedule,
                                   order=3, variable="log_eta", final_step="euler_eta")
        err = float((out - exact).norm() / exact.norm())
        rows.append({"nfe": int(nfe), "rel_err": err, "ratio": err / ref})
    return rows


def sample_spread(samples: torch.Tensor, x0_hat: torch.Tensor, truth: torch.Tensor) -> dict[str, np.ndarray]:
    r"""Split the error of K samples per image into the error of their mean and their spread.

    ``samples`` (K, B, ...) are K sampler outputs for each of B images, ``x0_hat`` (B, ...) the
    one-step prediction and ``truth`` (B, ...) the ground truth, all on one scale (e.g. Y in [0, 1]).
    Per image (float64 arrays of shape (B,), means over pixels):

    * ``mse_sample``: mean over the K samples of ``mean((x_k - x0)^2)``;
    * ``mse_mean``: ``mean((xbar - x0)^2)`` of the sample average ``xbar``;
    * ``spread``: the per-pixel variance over the K samples (unbiased), averaged over pixels;
    * ``mse_x0_hat``: ``mean((x0_hat - x0)^2)``;
    * ``dispersion``: ``spread / mse_x0_hat``.

    Exactly ``mse_sample = mse_mean + (K - 1)/K spread``.  For a faithful sampler (outputs drawn
    from p(x0 | y), independent of the true x0 given y) and x0_hat the posterior mean
    ``E[x0 | y]``, both ``spread`` and ``mse_x0_hat`` estimate ``tr Cov(x0 | y)`` per pixel:
    the dispersion is 1 on average and a sample has twice the MSE of x0_hat (3.01 dB less PSNR).
    """
    if samples.dim() < 2 or samples.shape[0] < 2:
        raise ValueError(f"samples must have shape (K, B, ...) with K >= 2, got {tuple(samples.shape)}")
    if tuple(samples.shape[1:]) != tuple(truth.shape) or tuple(x0_hat.shape) != tuple(truth.shape):
        raise ValueError(f"shapes differ: samples {tuple(samples.shape)}, x0_hat {tuple(x0_hat.shape)}, "
                         f"truth {tuple(truth.shape)} (samples must be (K, *truth.shape))")
    samples, x0_hat, truth = samples.double(), x0_hat.double(), truth.double()

    def per_image(z: torch.Tensor) -> np.ndarray:
        return z.flatten(1).mean(1).cpu().numpy()

    mse_x0_hat = per_image((x0_hat - truth) ** 2)
    spread = per_image(samples.var(0, unbiased=True))
    return {
        "mse_sample": per_image(((samples - truth) ** 2).mean(0)),
        "mse_mean": per_image((samples.mean(0) - truth) ** 2),
        "spread": spread,
        "mse_x0_hat": mse_x0_hat,
        "dispersion": spread / mse_x0_hat,
    }


def empirical_order(nfe: Sequence[float] | np.ndarray, errors: Sequence[float] | np.ndarray) -> float:
    r"""The empirical order of convergence: minus the least-squares slope of ``log(errors)`` against
    ``log(nfe)``, every point counted.

    Sign convention: an error that falls like ``C nfe^-p`` has order ``p > 0`` (the fitted slope is
    ``-p``), so first-order Euler gives about 1.  For an error that *grows* with its abscissa, e.g.
    ``C eta^p`` against a step size ``eta``, the slope ``p`` is ``-empirical_order(eta, errors)``.
    Exactly ``-np.polyfit(np.log(nfe), np.log(errors), 1)[0]``; errors must be positive.
    """
    return float(-np.polyfit(np.log(nfe), np.log(errors), 1)[0])
