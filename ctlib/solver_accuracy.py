r"""How close each deterministic solver gets to the exact probability-flow solution, on the exact toy.

One idea: score ``sample(...)`` against ``GaussianMixtureToy.exact_ode`` (the exact x(0) of the
PF-ODE, scipy) at a fixed budget of network evaluations, and read the result against the kit's
few-step goals: the best solver and rho at nfe = 5, 10, 15 should be within 0.5x, 0.1x and 0.03x of
the error of Euler on the uniform grid (rho = 1) at nfe = 15, measured in the same run.

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
           "log_eta_grid", "log_eta_probe"]

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
