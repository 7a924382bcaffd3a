"""Assignment a3, solvers: the exact (DDIM-like) step (E8), the official posterior step and the
family that joins it to the exact step (E9), and an empirical order-of-convergence study (E10).
References: scipy's ODE solver, Gaussian conditioning, finite differences, a simulation judged in
standard errors, an Euler loop written here and numpy's least squares
(:func:`ctlib.solver_accuracy.empirical_order`)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp

from ..solver_accuracy import empirical_order as reference_order
from ._core import ExerciseFailed, as_numpy, call, compare, exercise, need_tensor

ASSIGNMENT = "a3_solvers"
Z_TOL = 5.0


def _drift_eta(x: np.ndarray, x0_hat: np.ndarray, y: np.ndarray, eta: float) -> np.ndarray:
    """dx/d eta of the probability flow with x0_hat held fixed."""
    return (y - x0_hat) + (x - (1.0 - eta) * x0_hat - eta * y) / (2.0 * eta)


def _ode_solution(x_a: np.ndarray, x0_hat: np.ndarray, y: np.ndarray, eta_a: float, eta_b: float) -> np.ndarray:
    sol = solve_ivp(lambda e, v: _drift_eta(v, x0_hat.ravel(), y.ravel(), e), (eta_a, eta_b), x_a.ravel(),
                    method="DOP853", rtol=1e-12, atol=1e-13)
    return sol.y[:, -1].reshape(x_a.shape)


def _inputs(rng: np.random.Generator, B: int = 3, d: int = 3):
    x0_hat = torch.from_numpy(rng.uniform(-1, 1, (B, d)))
    y = torch.from_numpy(rng.uniform(-1, 1, (B, d)))
    eta_a = float(rng.uniform(0.05, 1.0))
    eta_b = float(eta_a * rng.uniform(0.02, 0.9))
    x_a = x0_hat + eta_a * (y - x0_hat) + 2.0 * math.sqrt(eta_a) * torch.from_numpy(rng.standard_normal((B, d)))
    return x_a, x0_hat, y, eta_a, eta_b


# --------------------------------------------------------------------------------------------- E8
@exercise("E8", "the exact (DDIM-like) step", points=10, minutes=15, assignment=ASSIGNMENT, names=("exact_step",))
def check_exact_step(exact_step, *, rng: np.random.Generator, hidden: bool = False) -> None:
    for _ in range(6 if hidden else 3):
        x_a, x0_hat, y, eta_a, eta_b = _inputs(rng)
        out = need_tensor(call(exact_step, x_a, x0_hat, y, eta_a, eta_b, name="exact_step"), x_a, "exact_step")
        xa, xh, yy = x_a.numpy(), x0_hat.numpy(), y.numpy()
        e = yy - xh
        ref = _ode_solution(xa, xh, yy, eta_a, eta_b)
        compare(out, ref, "exact_step", rtol=1e-8, where=f"from eta_a = {eta_a:.4g} to eta_b = {eta_b:.4g}", diagnoses=[
            (xh + eta_b * e + eta_b / eta_a * (xa - xh - eta_a * e),
             "that is the posterior mean (the stochastic step without its noise), not the flow: solve dx/d eta "
             "with x0_hat fixed; how does the deviation from the mean scale?"),
            (xh + eta_b * e - math.sqrt(eta_b / eta_a) * (xa - xh - eta_a * e), "a sign in front of the deviation"),
            (xh - eta_b * e + math.sqrt(eta_b / eta_a) * (xa - xh + eta_a * e), "the shift's sign: the mean is x0 + eta (y - x0)"),
            (xh + eta_b * e + math.sqrt(eta_a / eta_b) * (xa - xh - eta_a * e), "the ratio is upside down: the deviation shrinks"),
        ], hint="Write x = m(eta) + d with m(eta) = x0_hat + eta (y - x0_hat); the flow gives a simple ODE for d.")
    # landing on eta = 0: the step must return x0_hat itself
    x_a, x0_hat, y, eta_a, _ = _inputs(rng)
    out = call(exact_step, x_a, x0_hat, y, eta_a, 0.0, name="exact_step")
    compare(out, x0_hat.numpy(), "exact_step into eta_b = 0", rtol=1e-12,
            hint="Into eta = 0 the flow lands on x0_hat.")


# --------------------------------------------------------------------------------------------- E9
@exercise("E9", "the official posterior step and its deterministic limit", points=10, minutes=25,
          assignment=ASSIGNMENT, names=("resshift_step",))
def check_resshift_step(resshift_step, *, rng: np.random.Generator, hidden: bool = False) -> None:
    for _ in range(4 if hidden else 2):
        x_a, x0_hat, y, eta_a, eta_b = _inputs(rng)
        kappa = float(rng.uniform(0.5, 3.0))
        xa, xh, yy = x_a.numpy(), x0_hat.numpy(), y.numpy()
        z = torch.from_numpy(rng.standard_normal(x_a.shape))
        zero = torch.zeros_like(z)
        where = f"(eta_a = {eta_a:.4g}, eta_b = {eta_b:.4g}, kappa = {kappa:.3g})"

        def step(xa_t, gamma, zz, where=where, kappa=kappa, x0_hat=x0_hat, y=y, eta_a=eta_a, eta_b=eta_b):
            out = call(resshift_step, xa_t, x0_hat, y, eta_a, eta_b, kappa, gamma, zz, name="resshift_step")
            return as_numpy(need_tensor(out, xa_t, "resshift_step"), "resshift_step")

        # gamma = 1: ResShift's posterior q(x_b | x_a, x0 = x0_hat), by Gaussian conditioning on the chain
        m_a, m_b = xh + eta_a * (yy - xh), xh + eta_b * (yy - xh)
        cov_ab, var_a, var_b = kappa**2 * eta_b, kappa**2 * eta_a, kappa**2 * eta_b
        post_mean = m_b + cov_ab / var_a * (xa - m_a)
        post_std = math.sqrt(var_b - cov_ab**2 / var_a)
        compare(step(x_a, 1.0, zero), post_mean, "the step with gamma = 1 and z = 0", where=where,
                hint="With gamma = 1 and no noise the step is the mean of ResShift's posterior q(x_b | x_a, x0_hat).")
        compare(step(x_a, 1.0, z) - step(x_a, 1.0, zero), post_std * z.numpy(), "the noise of the gamma = 1 step",
                where=where, diagnoses=[(post_std**2 * z.numpy(), "z is scaled by a standard deviation, not a variance"),
                                        (kappa * math.sqrt(eta_a - eta_b) * z.numpy(),
                                         "that is the forward increment's noise; the posterior's is smaller")],
                hint="ResShift's posterior variance is kappa^2 (eta_b/eta_a) (eta_a - eta_b).")
        # gamma = 0: the deterministic exact step, i.e. the flow's solution
        compare(step(x_a, 0.0, z), _ode_solution(xa, xh, yy, eta_a, eta_b), "the step with gamma = 0", rtol=1e-8,
                where=where, hint="With gamma = 0 there is no noise and the step must be the exact flow step (E8).")
        # any gamma: coefficients by finite differences (the step is linear in x_a and z)
        gamma = float(rng.uniform(0.05, 0.95))
        base = step(x_a, gamma, zero)
        c = (step(x_a + 1.0, gamma, zero) - base)
        s = step(x_a, gamma, torch.ones_like(z)) - base
        want_s2 = gamma * kappa**2 * eta_b * (eta_a - eta_b) / eta_a
        compare(s**2, np.full_like(s, want_s2), "the squared noise scale sigma^2", where=f"at gamma = {gamma:.3g} {where}",
                hint="sigma^2 = gamma kappa^2 (eta_b/eta_a)(eta_a - eta_b): gamma interpolates the posterior's variance.")
        compare(c**2 * kappa**2 * eta_a + s**2, np.full_like(c, kappa**2 * eta_b),
                "the variance your step gives x_b when x_a has the marginal's variance kappa^2 eta_a",
                where=f"at gamma = {gamma:.3g} {where}",
                hint="Choose the coefficient of (x_a - mean) so that the marginal at eta_b is kept for every gamma.")
    # a simulation: x_a from the marginal at eta_a, one step with x0_hat = x0, x_b against the marginal at eta_b
    n, kappa = 40_000, float(rng.uniform(0.8, 2.5))
    eta_a = float(rng.uniform(0.3, 1.0))
    eta_b, gamma = eta_a * float(rng.uniform(0.1, 0.8)), float(rng.uniform(0.0, 1.0))
    x0v, yv = 0.25, -0.75
    x_a = torch.from_numpy(x0v + eta_a * (yv - x0v) + kappa * math.sqrt(eta_a) * rng.standard_normal((n, 1)))
    out = call(resshift_step, x_a, torch.full((n, 1), x0v, dtype=torch.float64), torch.full((n, 1), yv, dtype=torch.float64),
               eta_a, eta_b, kappa, gamma, torch.from_numpy(rng.standard_normal((n, 1))), name="resshift_step")
    xb = as_numpy(out, "resshift_step").ravel()
    m, v = x0v + eta_b * (yv - x0v), kappa**2 * eta_b
    z_m, z_v = abs(xb.mean() - m) / math.sqrt(v / n), abs(xb.var(ddof=1) - v) / (v * math.sqrt(2 / (n - 1)))
    if z_m > Z_TOL or z_v > Z_TOL:
        raise ExerciseFailed(f"{n} marginal samples at eta_a = {eta_a:.3g} stepped with gamma = {gamma:.3g} miss the "
                             f"marginal at eta_b = {eta_b:.3g} by {z_m:.1f} (mean) and {z_v:.1f} (variance) standard errors")


# --------------------------------------------------------------------------------------------- E10
class _GaussToy:
    """x0 ~ N(mu, s^2) in 1-D with y fixed: the exact denoiser in closed form."""

    def __init__(self, mu: float, s: float, y: float, kappa: float) -> None:
        self.mu, self.s2, self.y, self.kappa = mu, s * s, y, kappa

    def x0_hat(self, x, eta: float):
        m = (1 - eta) * self.mu + eta * self.y
        v = (1 - eta) ** 2 * self.s2 + self.kappa**2 * eta
        return self.mu + (1 - eta) * self.s2 / v * (x - m)


def _ref_euler(x: np.ndarray, toy: _GaussToy, etas: np.ndarray) -> np.ndarray:
    for ea, eb in zip(etas[:-1], etas[1:]):
        x = x + (eb - ea) * _drift_eta(x, toy.x0_hat(x, ea), toy.y, ea)
    return x


@exercise("E10", "an empirical order-of-convergence study", points=10, minutes=25, assignment=ASSIGNMENT,
          names=("euler_eta", "empirical_order"))
def check_order(euler_eta, empirical_order, *, rng: np.random.Generator, hidden: bool = False) -> None:
    toy = _GaussToy(float(rng.uniform(-0.5, 0.5)), float(rng.uniform(0.2, 0.6)), float(rng.uniform(-0.3, 0.3)),
                    float(rng.uniform(1.0, 2.5)))
    calls = []

    def x0_fn(x, eta):
        calls.append(float(eta))
        return toy.x0_hat(x, float(eta))

    y_t = torch.full((5, 1), toy.y, dtype=torch.float64)
    for _ in range(3 if hidden else 2):
        etas = np.sort(rng.uniform(0.01, 0.98, int(rng.integers(3, 9))))[::-1].copy()
        x = torch.from_numpy(rng.standard_normal((5, 1)))
        calls.clear()
        out = need_tensor(call(euler_eta, x.clone(), x0_fn, y_t, etas.copy(), name="euler_eta"), x, "euler_eta")
        if len(calls) != len(etas) - 1:
            raise ExerciseFailed(f"euler_eta called x0_fn {len(calls)} times for {len(etas)} levels: one call per step")
        if not np.allclose(calls, etas[:-1], rtol=0, atol=1e-15):
            raise ExerciseFailed("Euler evaluates x0_fn at the start of each step, eta_i, in order")
        compare(out, _ref_euler(x.numpy(), toy, etas), "euler_eta", rtol=1e-10, where=f"on {len(etas)} levels",
                hint="One explicit Euler step per interval, on dx/d eta = (y - x0_hat) + (x - (1 - eta) x0_hat - eta y)/(2 eta), "
                     "with d eta = eta_{i+1} - eta_i < 0.")
    # the study: errors against the exact flow (scipy) on levels uniform in sqrt(eta)
    x_start = torch.from_numpy(rng.standard_normal((5, 1)))
    e_hi, e_lo = 0.9, 0.02
    exact = solve_ivp(lambda e, v: _drift_eta(v, toy.x0_hat(v, e), toy.y, e), (e_hi, e_lo), x_start.numpy().ravel(),
                      method="DOP853", rtol=1e-12, atol=1e-13).y[:, -1]
    ns = np.array([8, 16, 32, 64])
    errors = []
    for n in ns:
        etas = np.linspace(math.sqrt(e_hi), math.sqrt(e_lo), n + 1) ** 2
        out = as_numpy(call(euler_eta, x_start.clone(), x0_fn, y_t, etas, name="euler_eta"), "euler_eta").ravel()
        errors.append(float(np.max(np.abs(out - exact))))
    slope = reference_order(ns, errors)
    if not 0.8 < slope < 1.25:
        raise ExerciseFailed(f"your Euler's error falls like n^-{slope:.2f} on this problem; explicit Euler is first order")
    got = call(empirical_order, ns.copy(), np.array(errors), name="empirical_order")
    compare(got, slope, "empirical_order on your Euler errors", rtol=1e-9, diagnoses=[
        (-slope, "the sign: an order p means error ~ C n^-p with p > 0"),
        (-math.log(errors[-1] / errors[-2]) / math.log(2), "use every point (least squares), not the last two"),
    ], hint="Fit a straight line to log(error) against log(n) by least squares.")
    for _ in range(3 if hidden else 1):
        p = float(rng.uniform(0.5, 4.0))
        n_pts = np.unique(rng.integers(4, 400, 6))
        errs = 3.0 * n_pts.astype(float) ** -p * np.exp(0.1 * rng.standard_normal(n_pts.size))
        ref = reference_order(n_pts, errs)
        compare(call(empirical_order, n_pts.copy(), errs.copy(), name="empirical_order"), ref, "empirical_order",
                rtol=1e-9, where="on noisy synthetic errors", diagnoses=[(-ref, "the sign: an order p means error ~ C n^-p")],
                hint="Least-squares slope of log(error) against log(n), every point counted.")
