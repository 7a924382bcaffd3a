"""Assignment a2, schedules and grids: lambda from a and alpha'_T and the exact eta(t) (E4), the
least-squares fit of alpha(t) (E5), the report's rho grid with negative rho (E6), and counting
function evaluations (E7).  References: scipy's root finder, quadrature and curve_fit, a grid
written in another form, and solver loops that count their own calls."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import quad
from scipy.optimize import brentq, curve_fit

from ..grids import rho_grid
from ..schedule import ResShiftSchedule
from ._core import ExerciseFailed, as_numpy, call, compare, exercise

ASSIGNMENT = "a2_schedules_and_grids"

REPORT_A, REPORT_ALPHA_END = 1.1113, 2.3177576


# --------------------------------------------------------------------------------------------- E4
@exercise("E4", "lambda from a and alpha'(1), and eta(t) of the report's form", points=5, minutes=10,
          assignment=ASSIGNMENT, names=("lam_from", "eta_exp"))
def check_lambda(lam_from, eta_exp, *, rng: np.random.Generator, hidden: bool = False) -> None:
    cases = [(REPORT_A, REPORT_ALPHA_END)] + [
        (float(rng.uniform(0.3, 2.0)), float(rng.uniform(0.2, 6.0))) for _ in range(6 if hidden else 3)
    ]
    for a, alpha_end in cases:
        lam = call(lam_from, a, alpha_end, name="lam_from")
        ref = brentq(lambda v, a=a, e=alpha_end: a * math.expm1(v) - e, 1e-9, 60.0, xtol=1e-15, rtol=1e-15)
        compare(lam, ref, "lam_from", rtol=1e-9, where=f"for a = {a:.5g}, alpha(1) = {alpha_end:.5g}", diagnoses=[
            (math.log10(1 + alpha_end / a), "a base-10 logarithm: the report prints lam = 0.489 = log10(3.0856), its "
                                            "code uses the natural log that exp(lam t) needs (erratum 2)"),
            (math.log(alpha_end / a), "solve a (exp(lam) - 1) = alpha(1): the '- 1' matters"),
            (math.log(alpha_end / a + 1) / 2, "solve alpha(1) = a (exp(lam * 1) - 1) for lam"),
        ], hint="Solve alpha(1) = a (exp(lam) - 1) for lam.")
    for a, lam in [(REPORT_A, math.log1p(REPORT_ALPHA_END / REPORT_A))] + [
        (float(rng.uniform(0.3, 2.0)), float(rng.uniform(0.3, 3.0))) for _ in range(4 if hidden else 2)
    ]:
        t = np.sort(rng.uniform(1e-3, 1.0, 7))
        t[-1] = 1.0
        out = call(eta_exp, t.copy(), a, lam, name="eta_exp")
        ref = np.array([quad(lambda s, a=a, lam=lam: a * math.expm1(lam * s), 0.0, float(ti), epsabs=0, epsrel=1e-13)[0]
                        for ti in t])
        compare(out, ref, "eta_exp", rtol=1e-8, where=f"for a = {a:.4g}, lam = {lam:.4g} at t in [{t[0]:.3g}, 1]",
                diagnoses=[
                    (a * np.expm1(lam * t) / lam, "eta(0) must be 0 and d eta/dt = alpha: the integral of the '- 1' is missing"),
                    (a * np.expm1(lam * t), "that is alpha(t); eta is its integral from 0 to t"),
                    (a * (np.expm1(lam * t) - t), "integrate exp(lam s): a 1/lam is missing"),
                    (a * (np.expm1(lam * t) / lam + t), "the sign of the integral of -1"),
                ], hint="eta(t) is the integral of alpha from 0 to t; check eta(0) = 0 and d eta/dt = alpha(t).")
        # d eta / dt = alpha by central finite differences, in the middle of the interval
        h, tm = 1e-5, np.array([0.3, 0.7])
        dp = as_numpy(call(eta_exp, tm + h, a, lam, name="eta_exp"), "eta_exp")
        dm = as_numpy(call(eta_exp, tm - h, a, lam, name="eta_exp"), "eta_exp")
        fd = (dp - dm) / (2 * h)
        if not np.allclose(fd, a * np.expm1(lam * tm), rtol=1e-5):
            raise ExerciseFailed("the finite-difference derivative of your eta_exp is not alpha(t) = a (exp(lam t) - 1)")


# --------------------------------------------------------------------------------------------- E5
def _model(t: np.ndarray, a: float, lam: float) -> np.ndarray:
    return a * np.expm1(lam * t)


@exercise("E5", "the data and the least-squares fit of alpha(t)", points=10, minutes=20,
          assignment=ASSIGNMENT, names=("report_alpha_data", "fit_alpha"))
def check_fit(report_alpha_data, fit_alpha, *, rng: np.random.Generator, hidden: bool = False) -> None:
    schedules = [ResShiftSchedule(), ResShiftSchedule(T=int(rng.choice([10, 20, 25])), power=float(rng.uniform(0.2, 0.6)),
                                                      etas_end=float(rng.uniform(0.8, 0.99)))]
    for schedule in schedules:
        T = schedule.T
        out = call(report_alpha_data, schedule, name="report_alpha_data")
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise ExerciseFailed("report_alpha_data must return a pair (t, data)")
        t, data = as_numpy(out[0], "t"), as_numpy(out[1], "data")
        k = np.arange(1, T + 1, dtype=np.float64)
        where = f"for T = {T}"
        if t.shape != (T,):
            raise ExerciseFailed(f"t has {t.size} values {where}; the data has one value per official step k = 1..T")
        compare(t, k / T, "t", where=where, diagnoses=[((k - 1) / T, "step k sits at t = k/T (off by one step)")],
                hint="Step k of T sits at t = k/T.")
        etas = np.array([float(v) for v in schedule.etas])
        alphas = np.diff(np.concatenate([[0.0], etas]))
        compare(data, T * alphas, "data", where=where, diagnoses=[
            (alphas, "alpha_k is a jump in eta over a time step 1/T: as a rate in t it is T alpha_k"),
            (etas, "that is eta_k; the fit is of the rate alpha"),
            (T * np.diff(etas, prepend=etas[0]), "alpha_1 = eta_1 - eta_0 with eta_0 = 0"),
        ], hint="alpha_k = eta_k - eta_{k-1} with eta_0 = 0, as a rate in t.")
    # the fit: on synthetic data with known (a, lam), then on the official schedule's data
    trials = [(float(rng.uniform(0.4, 2.0)), float(rng.uniform(0.5, 3.0)), int(rng.choice([10, 15, 20])))
              for _ in range(4 if hidden else 2)]
    official = ResShiftSchedule()
    d_off = 15 * np.diff(np.concatenate([[0.0], np.asarray(official.etas, dtype=np.float64)]))
    datasets = [(np.arange(1, T + 1) / T, _model(np.arange(1, T + 1) / T, a, lam) * (1 + 0.03 * rng.standard_normal(T)))
                for a, lam, T in trials] + [(np.arange(1, 16) / 15, d_off)]
    for t, data in datasets:
        out = call(fit_alpha, t.copy(), data.copy(), name="fit_alpha")
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise ExerciseFailed("fit_alpha must return a pair (a, lam)")
        a_s, lam_s = (float(as_numpy(v, "a, lam").reshape(-1)[0]) for v in out)
        (a_r, lam_r), _ = curve_fit(_model, t, data, p0=(1.0, 1.0), ftol=1e-14, xtol=1e-14, maxfev=20000)
        ssr_r = float(np.sum((_model(t, a_r, lam_r) - data) ** 2))
        ssr_s = float(np.sum((_model(t, a_s, lam_s) - data) ** 2)) if np.isfinite([a_s, lam_s]).all() else np.inf
        if not ssr_s <= ssr_r * (1 + 1e-6) + 1e-14 or abs(a_s - a_r) > 1e-4 * a_r or abs(lam_s - lam_r) > 1e-4 * lam_r:
            raise ExerciseFailed(
                f"on {len(t)} points your (a, lam) leave a sum of squared residuals {ssr_s / max(ssr_r, 1e-300):.4g} "
                "times the least-squares minimum: minimise sum (a (exp(lam t) - 1) - data)^2 over both parameters "
                "(scipy.optimize.least_squares or curve_fit), not a transformed problem")


# --------------------------------------------------------------------------------------------- E6
def _ref_grid(n: int, rho: float, T: int) -> np.ndarray:
    """Uniform in t^(1/rho) from 1 to 1/T, then 0; negative rho mirrors the |rho| grid."""
    if rho < 0:
        return (1.0 - _ref_grid(n, -rho, T))[::-1]
    return np.append(np.linspace(1.0, (1.0 / T) ** (1.0 / rho), n) ** rho, 0.0)


def _literal_negative(n: int, rho: float, T: int) -> np.ndarray:
    out = np.empty(n)
    for i in range(n):
        out[n - 1 - i] = 1.0 - (1.0 + i / (n - 1) * ((1.0 / T) ** (1.0 / rho) - 1.0)) ** rho
    return np.append(out, 0.0)


@exercise("E6", "the report's rho grid, negative rho included", points=10, minutes=20,
          assignment=ASSIGNMENT, names=("report_rho_grid",))
def check_rho_grid(report_rho_grid, *, rng: np.random.Generator, hidden: bool = False) -> None:
    cases = [(15, 1.0, 15), (8, 8.0, 15), (15, -8.0, 15), (5, -4.0, 15), (2, 3.0, 15)]
    for _ in range(6 if hidden else 3):
        cases.append((int(rng.integers(3, 25)), float(rng.choice([-1, 1]) * rng.uniform(1.0, 10.0)),
                      int(rng.choice([10, 15, 20]))))
    for n, rho, T in cases:
        where = f"for n = {n}, rho = {rho:.4g}, T = {T}"
        out = call(report_rho_grid, n, rho, T, name="report_rho_grid")
        if isinstance(out, torch.Tensor):
            raise ExerciseFailed("report_rho_grid must return a numpy array (float64)")
        arr = np.asarray(out)
        if arr.dtype != np.float64:
            raise ExerciseFailed(f"the grid is {arr.dtype} {where}: build it in float64 (eta(t) is steep near "
                                 "t = 1/T, and float32 cannot even hold 1/T)")
        if arr.shape != (n + 1,):
            raise ExerciseFailed(f"the grid has {arr.size} values {where}; it holds the n evaluation times and "
                                 "then the final 0 (off by one?)")
        ref = _ref_grid(n, rho, T)
        diagnoses = []
        if rho < 0:
            diagnoses.append((_literal_negative(n, rho, T),
                              "that is the report's printed formula with the negative rho put in literally: it does "
                              "not start at t = 1. The report's code mirrors the |rho| grid: 1 - reversed(grid)"))
            diagnoses.append((_ref_grid(n, -rho, T), "a negative rho is not the same as |rho|: mirror the grid"))
        compare(arr, ref, "the grid", rtol=1e-12, where=where, diagnoses=diagnoses,
                hint="It starts at 1, ends with 1/T (rho > 0) then 0, and is uniform in t^(1/rho); negative rho "
                     "runs |rho| on the mirrored grid.")


# --------------------------------------------------------------------------------------------- E7
class _Inner:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return 0.5 * x + 0.25 * y + t.reshape(-1, 1)


def _run(den, solver: str, n_steps: int, rho: float, T: int) -> int:
    """A solver's loop on the report's grid (n_steps down to 1/T, then the final step into 0),
    counting its own evaluations; the state update is irrelevant to the count."""
    ts = rho_grid(n_steps + 1, rho, T)
    x, y, count = torch.zeros(2, 1, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64), 0
    for i in range(len(ts) - 1):
        x0_hat = den(x, torch.full((2,), float(ts[i]), dtype=torch.float64), y)
        count += 1
        if solver == "heun" and ts[i + 1] > 0:
            den(x0_hat, torch.full((2,), float(ts[i + 1]), dtype=torch.float64), y)
            count += 1
    return count


@exercise("E7", "counting function evaluations of Euler and Heun", points=10, minutes=20,
          assignment=ASSIGNMENT, names=("CountingDenoiser", "nfe_of", "steps_for_nfe"))
def check_nfe(CountingDenoiser, nfe_of, steps_for_nfe, *, rng: np.random.Generator, hidden: bool = False) -> None:
    inner = _Inner()
    counter = call(CountingDenoiser, inner, name="CountingDenoiser(denoiser)")
    calls = getattr(counter, "calls", None)
    if calls != 0:
        raise ExerciseFailed(f"a new CountingDenoiser must have .calls == 0, it has {calls!r}")
    x, y = torch.randn(2, 1, dtype=torch.float64), torch.randn(2, 1, dtype=torch.float64)
    tt = torch.full((2,), 0.5, dtype=torch.float64)
    out = call(counter, x, tt, y, name="CountingDenoiser.__call__")
    if not isinstance(out, torch.Tensor) or not torch.equal(out, 0.5 * x + 0.25 * y + 0.5):
        raise ExerciseFailed("a CountingDenoiser must return what the denoiser it wraps returns, unchanged")
    if counter.calls != 1 or inner.calls != 1:
        raise ExerciseFailed("after one call, .calls must be 1 (and the wrapped denoiser called once)")
    for solver in ("euler", "heun"):
        for n_steps in [1, 7, 14] + [int(v) for v in rng.integers(2, 30, 4 if hidden else 2)]:
            rho = float(rng.choice([1.0, 8.0, -8.0]))
            counter = call(CountingDenoiser, _Inner(), name="CountingDenoiser(denoiser)")
            truth = _run(counter, solver, n_steps, rho, 15)
            if counter.calls != truth:
                raise ExerciseFailed(f"your counter says {counter.calls} after a {solver} run that made {truth} calls")
            got = call(nfe_of, solver, n_steps, name="nfe_of")
            if got != truth:
                say = {n_steps: "'nfe = number of steps' is the report's shorthand, not what its code evaluates "
                                "(erratum 7): count the final step into t = 0",
                       2 * n_steps: "the final step into t = 0 is an Euler step: it evaluates the denoiser too",
                       2 * n_steps + 2: "the final step into t = 0 is a plain Euler step: one evaluation, not two"}
                raise ExerciseFailed(f"nfe_of({solver!r}, {n_steps}) is wrong: "
                                     + say.get(got, "run your counter on a solver loop and compare"))
    for solver in ("euler", "heun"):
        for nfe in [15, 3] + [int(2 * v + 1) for v in rng.integers(1, 20, 3 if hidden else 2)]:
            steps = call(steps_for_nfe, solver, nfe, name="steps_for_nfe")
            if not isinstance(steps, int | np.integer) or steps < 0:
                raise ExerciseFailed(f"steps_for_nfe({solver!r}, {nfe}) must be a non-negative int, got {steps!r}")
            made = _run(_Inner(), solver, int(steps), 1.0, 15) if steps > 0 else 1
            if made != nfe:
                hint = " (erratum 7: the paper's nfe = 15)" if nfe == 15 else ""
                raise ExerciseFailed(f"steps_for_nfe({solver!r}, {nfe}) gives a run that evaluates the denoiser "
                                     f"{made} times, not {nfe}{hint}")
