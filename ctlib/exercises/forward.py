"""Assignment a1, the forward process: the chain's marginal (E1), the score from x0_hat (E2) and the
probability-flow drift (E3).  References: closed forms written here, torch autograd of a Gaussian
log-density, a simulation of the chain judged in standard errors, and scipy's ODE solver."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp

from ..schedule import ExpAlphaSchedule, ResShiftSchedule
from ._core import ExerciseFailed, as_numpy, call, compare, exercise, need_tensor

ASSIGNMENT = "a1_forward_process"
Z_TOL = 5.0  # a simulated statistic passes within this many standard errors


def _schedules(rng: np.random.Generator) -> list:
    return [
        ResShiftSchedule(),
        ResShiftSchedule(kappa=float(rng.uniform(0.5, 3.0))),
        ExpAlphaSchedule(a=float(rng.uniform(0.5, 1.5)), lam=float(rng.uniform(0.6, 2.5)),
                         kappa=float(rng.uniform(0.8, 2.5))),
    ]


def _times(rng: np.random.Generator, T: int, n: int) -> list[float]:
    ks = rng.choice(np.arange(2, T + 1), size=2, replace=False)
    return [float(k) / T for k in ks] + [float(v) for v in rng.uniform(1.5 / T, 1.0, n)]


def _pair(rng: np.random.Generator, B: int = 3, d: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    x0 = torch.from_numpy(rng.uniform(-1, 1, (B, d)))
    y = torch.from_numpy(rng.uniform(-1, 1, (B, d)))
    return x0, y


def _gaussian_score(x: torch.Tensor, mean: torch.Tensor, var: float) -> torch.Tensor:
    """d/dx log N(x; mean, var I) by autograd (not by the closed form)."""
    x = x.detach().clone().requires_grad_(True)
    logp = torch.distributions.Normal(mean, math.sqrt(var)).log_prob(x).sum()
    (grad,) = torch.autograd.grad(logp, x)
    return grad


# --------------------------------------------------------------------------------------------- E1
@exercise("E1", "the forward marginal's mean and variance", points=5, minutes=15,
          assignment=ASSIGNMENT, names=("marginal",))
def check_marginal(marginal, *, rng: np.random.Generator, hidden: bool = False) -> None:
    for schedule in _schedules(rng):
        kappa = schedule.kappa
        for t in _times(rng, schedule.T, 3 if hidden else 2):
            x0, y = _pair(rng)
            out = call(marginal, x0, y, t, schedule, name="marginal")
            if not isinstance(out, tuple | list) or len(out) != 2:
                raise ExerciseFailed("marginal must return a pair (mean, var)")
            mean, var = out
            need_tensor(mean, x0, "marginal's mean")
            eta, alpha = float(schedule.eta(t)), float(schedule.alpha(t))
            where = f"at t = {t:.4g} ({type(schedule).__name__}, kappa = {kappa:.3g})"
            e0 = (y - x0).numpy()
            compare(mean, x0.numpy() + eta * e0, "the mean", where=where, diagnoses=[
                (x0.numpy() - eta * e0, "the shift goes the wrong way: at t = 1 the mean must be near y"),
                (y.numpy() - eta * e0, "the mean must start at x0 when eta = 0 and move towards y"),
                (x0.numpy() + alpha * e0, "the mean follows the accumulated shift eta(t), not its rate alpha(t)"),
            ], hint="The mean moves x0 towards y by the accumulated shift.")
            v = as_numpy(var, "the variance")
            if v.size != 1:
                v = v.reshape(-1)
                if not np.allclose(v, v[0], rtol=1e-12):
                    raise ExerciseFailed("the variance is the same for every entry (isotropic): return one number")
                v = v[:1]
            compare(float(v.reshape(-1)[0]), kappa**2 * eta, "the variance", where=where, diagnoses=[
                (kappa**2 * alpha, "it uses alpha(t), the rate of the shift; the variance accumulates like the "
                                   "shift itself (the report prints kappa^2 alpha: erratum 1, section 1 of the lesson)"),
                (kappa * eta, "kappa is the standard deviation's scale: how does it enter a variance?"),
                (kappa * math.sqrt(eta), "that is a standard deviation, not a variance"),
                (kappa**2 * math.sqrt(eta), "check how the noise's variance grows with the number of steps"),
                (kappa**2 * eta**2, "independent increments add their variances, each proportional to its alpha_k"),
            ], hint="Sum the variances of the independent noise increments.")
    # the same answer against a simulation of the chain on a fine grid (exact in law), in standard errors
    schedule = _schedules(rng)[1 if hidden else 0]
    t = float(rng.uniform(0.3, 1.0))
    n = 40_000
    x0, y = torch.full((1, 1), 0.3, dtype=torch.float64), torch.full((1, 1), -0.6, dtype=torch.float64)
    levels = np.asarray(schedule.eta(np.linspace(0.0, t, 65)), dtype=np.float64)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    x = torch.full((n,), 0.3, dtype=torch.float64)
    for d_eta in np.diff(levels):
        x = x + d_eta * (-0.9) + schedule.kappa * math.sqrt(d_eta) * torch.randn(n, generator=gen, dtype=torch.float64)
    m_emp, v_emp = float(x.mean()), float(x.var())
    mean, var = call(marginal, x0, y, t, schedule, name="marginal")
    m_s, v_s = float(as_numpy(mean, "the mean").reshape(-1)[0]), float(as_numpy(var, "the variance").reshape(-1)[0])
    z_m = abs(m_s - m_emp) / math.sqrt(v_emp / n)
    z_v = abs(v_s - v_emp) / (v_emp * math.sqrt(2.0 / (n - 1)))
    if z_m > Z_TOL or z_v > Z_TOL:
        raise ExerciseFailed(f"a simulation of the chain ({n} samples, t = {t:.3g}) disagrees with your mean by "
                             f"{z_m:.1f} and with your variance by {z_v:.1f} standard errors (allowed {Z_TOL})")


def _states(rng: np.random.Generator, hidden: bool):
    """Cases for E2/E3: ``(schedule, t, eta, alpha, x0_hat, y, x)``, x drawn from q(x_t | x0_hat, y)."""
    for schedule in _schedules(rng):
        for t in _times(rng, schedule.T, 3 if hidden else 1):
            x0_hat, y = _pair(rng)
            eta, alpha = float(schedule.eta(t)), float(schedule.alpha(t))
            noise = torch.from_numpy(rng.standard_normal(x0_hat.shape))
            yield schedule, t, eta, alpha, x0_hat, y, x0_hat + eta * (y - x0_hat) + schedule.kappa * math.sqrt(eta) * noise


# --------------------------------------------------------------------------------------------- E2
@exercise("E2", "the score from x0_hat", points=5, minutes=10, assignment=ASSIGNMENT, names=("score",))
def check_score(score, *, rng: np.random.Generator, hidden: bool = False) -> None:
    for schedule, t, eta, alpha, x0_hat, y, x in _states(rng, hidden):
        kappa = schedule.kappa
        out = need_tensor(call(score, x, x0_hat, y, t, schedule, name="score"), x, "score")
        ref = _gaussian_score(x, x0_hat + eta * (y - x0_hat), kappa**2 * eta).numpy()
        r = (x - (1 - eta) * x0_hat - eta * y).numpy()
        where = f"at t = {t:.4g} ({type(schedule).__name__}, kappa = {kappa:.3g})"
        compare(out, ref, "the score", where=where, diagnoses=[
            (-r / (kappa**2 * alpha), "its denominator uses alpha(t); the marginal's variance is kappa^2 eta "
                                      "(the report's kappa^2 alpha is erratum 1)"),
            (r / (kappa**2 * eta), "wrong sign: the score points towards the mean, where the density rises"),
            (-(x - x0_hat - eta * y).numpy() / (kappa**2 * eta),
             "the mean of q(x_t | x0_hat, y) is not x0_hat + eta y: expand x0_hat + eta (y - x0_hat)"),
            (-r / (kappa * eta), "kappa enters the variance squared"),
            (-r / (kappa**2 * math.sqrt(eta)), "divide by the variance, not by the standard deviation"),
        ], hint="The score is the gradient of the log-density of q(x_t | x0 = x0_hat, y) in x.")


# --------------------------------------------------------------------------------------------- E3
@exercise("E3", "the probability-flow drift", points=5, minutes=15, assignment=ASSIGNMENT, names=("pf_drift",))
def check_pf_drift(pf_drift, *, rng: np.random.Generator, hidden: bool = False) -> None:
    for schedule, t, eta, alpha, x0_hat, y, x in _states(rng, hidden):
        kappa = schedule.kappa
        out = need_tensor(call(pf_drift, x, x0_hat, y, t, schedule, name="pf_drift"), x, "pf_drift")
        sc = _gaussian_score(x, x0_hat + eta * (y - x0_hat), kappa**2 * eta).numpy()
        f, g2 = alpha * (y - x0_hat).numpy(), kappa**2 * alpha  # forward SDE: dx = f dt + g dw
        ref = f - 0.5 * g2 * sc
        r = (x - (1 - eta) * x0_hat - eta * y).numpy()
        where = f"at t = {t:.4g} ({type(schedule).__name__}, kappa = {kappa:.3g})"
        compare(out, ref, "the drift", where=where, diagnoses=[
            (f - g2 * sc, "that is the reverse SDE's drift: the probability flow takes half of g^2 times the score"),
            (ref / alpha, "that is dx/d eta; the exercise asks for dx/dt (chain rule: d eta/dt = alpha)"),
            (-alpha * (y - x0_hat).numpy() - 0.5 * g2 * sc, "the sign of the shift term: the forward drift is alpha e0"),
            (f + 0.5 * g2 * sc, "the sign in front of the score term"),
            (f + 0.5 * r, "the score's denominator is kappa^2 eta, not kappa^2 alpha (erratum 1)"),
            (alpha * ((y - x0_hat).numpy() + (x - x0_hat - eta * y).numpy() / (2 * eta)),
             "the score's residual is x - (1 - eta) x0_hat - eta y: a (1 - eta) is missing"),
            (f - 0.5 * sc, "the score term is multiplied by g^2 = kappa^2 alpha"),
        ], hint="Use the forward SDE dx = alpha e0 dt + kappa sqrt(alpha) dw with e0 -> y - x0_hat, "
                "and the score of E2.")
    # the flow must carry the marginal: a point mass x0 (x0_hat = x0 exactly) pushed from t = 1 to t_end
    schedule = ExpAlphaSchedule(a=float(rng.uniform(0.7, 1.3)), lam=float(rng.uniform(0.8, 2.0)),
                                kappa=float(rng.uniform(1.0, 2.5)))
    n, t_end = 4000, float(rng.uniform(0.2, 0.6))
    x0v, yv = 0.4, -0.5
    eta1 = float(schedule.eta(1.0))
    z = rng.standard_normal(n)
    start = x0v + eta1 * (yv - x0v) + schedule.kappa * math.sqrt(eta1) * z
    x0_t, y_t = torch.full((n, 1), x0v, dtype=torch.float64), torch.full((n, 1), yv, dtype=torch.float64)

    def rhs(t: float, state: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(state.reshape(n, 1).copy())
        return as_numpy(call(pf_drift, xt, x0_t, y_t, float(t), schedule, name="pf_drift"), "pf_drift").ravel()

    sol = solve_ivp(rhs, (1.0, t_end), start, method="RK45", rtol=1e-8, atol=1e-10)
    if not sol.success:
        raise ExerciseFailed(f"integrating your drift from t = 1 to t = {t_end:.3g} failed: {sol.message}")
    end = sol.y[:, -1]
    eta_e = float(schedule.eta(t_end))
    m, v = x0v + eta_e * (yv - x0v), schedule.kappa**2 * eta_e
    z_m = abs(end.mean() - m) / math.sqrt(v / n)
    z_v = abs(end.var(ddof=1) - v) / (v * math.sqrt(2.0 / (n - 1)))
    if z_m > Z_TOL or z_v > Z_TOL:
        raise ExerciseFailed(f"{n} samples of the t = 1 marginal carried by your flow to t = {t_end:.3g} miss that "
                             f"time's marginal by {z_m:.1f} (mean) and {z_v:.1f} (variance) standard errors")
