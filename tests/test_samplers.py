"""Samplers: exact nfe, evaluation times, exactness where the maths says so, shapes and dtypes,
stochastic solvers, callbacks, progress bars, and clear errors on bad input."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from ctlib.diffusion import (
    pf_drift,
    pf_exact_step,
    pf_final_step,
    posterior_mean_variance,
    prior_sample,
    randn_like,
    reverse_sde_drift_eta,
)
from ctlib.grids import rho_grid
from ctlib.samplers import (
    SOLVERS,
    STOCHASTIC_SOLVERS,
    exp2m_step,
    exp2m_weight,
    exp_multistep_step,
    heun_euler_step,
    sample,
    sample_euler,
    sample_euler_maruyama,
    sample_exp1,
    sample_exp2m,
    sample_exp3m,
    sample_heun,
    sample_resshift,
    solver_grid,
)
from ctlib.schedule import ExpAlphaSchedule, ResShiftSchedule
from ctlib.toy import GaussianMixtureToy

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


SCHED = ResShiftSchedule()
ODE_SOLVERS = ("euler", "heun", "exp1", "exp2m")


class Counting:
    """A denoiser that records every call (times, shapes) and shrinks x towards 0.2 y."""

    def __init__(self):
        self.times: list[np.ndarray] = []

    def __call__(self, x_t, t, y):
        assert t.shape == (x_t.shape[0],) and t.dtype == x_t.dtype
        assert bool((t > 0).all()) and bool((t <= 1).all())
        self.times.append(t.detach().cpu().double().numpy())
        return 0.5 * x_t / (1 + t.reshape([-1] + [1] * (x_t.ndim - 1))) + 0.2 * y


def _y(shape=(3, 4), dtype=torch.float64, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("solver", [s for s in SOLVERS if s != "resshift"])
@pytest.mark.parametrize("nfe", [3, 4, 5, 8, 15, 16, 30])
@pytest.mark.parametrize("rho", [1.0, 7.0, -4.0])
def test_exact_nfe(solver, nfe, rho):
    den = Counting()
    out = sample(den, _y(), schedule=SCHED, solver=solver, nfe=nfe, rho=rho, generator=torch.Generator().manual_seed(1))
    assert len(den.times) == nfe
    assert out.shape == (3, 4) and bool(torch.isfinite(out).all())


def test_exact_nfe_resshift():
    den = Counting()
    sample(den, _y(), schedule=SCHED, solver="resshift", nfe=15, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose([t[0] for t in den.times], np.arange(15, 0, -1) / 15, rtol=1e-15)


def test_euler_evaluates_at_k_over_T():
    """Euler, rho = 1, nfe = 15 evaluates at t = 15/15, 14/15, ..., 1/15 (the report's code)."""
    den = Counting()
    sample(den, _y(), schedule=SCHED, solver="euler", nfe=15, rho=1.0, generator=torch.Generator().manual_seed(0))
    times = np.array([t[0] for t in den.times])
    np.testing.assert_allclose(times * 15, np.arange(15, 0, -1), rtol=0, atol=1e-12)


def test_heun_nfe15_is_seven_heun_steps_plus_final_euler():
    den = Counting()
    sample(den, _y(), schedule=SCHED, solver="heun", nfe=15, rho=1.0, generator=torch.Generator().manual_seed(0))
    times = np.array([t[0] for t in den.times])
    g = rho_grid(8, 1.0, 15)  # 8 points from 1 to 1/15, then 0
    expected = [g[0]] + [v for i in range(1, 8) for v in (g[i], g[i])]  # t_i, t_{i+1} per Heun step; final at 1/T
    np.testing.assert_allclose(times, expected, rtol=1e-14)
    np.testing.assert_allclose(solver_grid("heun", 15), g)
    # an even nfe: one more grid point, its shortest step taken by Euler (rho 1: all equal, the first)
    den = Counting()
    sample(den, _y(), schedule=SCHED, solver="heun", nfe=16, rho=1.0, generator=torch.Generator().manual_seed(0))
    g = rho_grid(9, 1.0, 15)
    expected = [g[0]] + [v for i in range(1, 8) for v in (g[i], g[i + 1])] + [g[8]]
    np.testing.assert_allclose([t[0] for t in den.times], expected, rtol=1e-14)
    # rho 8: the shortest step is the last one into 1/T
    den = Counting()
    sample(den, _y(), schedule=SCHED, solver="heun", nfe=16, rho=8.0, generator=torch.Generator().manual_seed(0))
    g = rho_grid(9, 8.0, 15)
    assert heun_euler_step(g) == 7
    expected = [v for i in range(7) for v in (g[i], g[i + 1])] + [g[7], g[8]]
    np.testing.assert_allclose([t[0] for t in den.times], expected, rtol=1e-14)


class Replay:
    """A denoiser that returns prescribed tensors, one per call (independent of x)."""

    def __init__(self, outputs):
        self.outputs = list(outputs)

    def __call__(self, x_t, t, y):
        return self.outputs.pop(0).clone()


@pytest.mark.parametrize("schedule", [SCHED, ExpAlphaSchedule.report()])
def test_steps_match_the_diffusion_formulas(schedule):
    """Each solver's update equals the ctlib.diffusion formulas written as in docs/maths.md (to rounding:
    ``x + h d`` here, one fused rounding in the solvers; test_every_update_is_its_named_formula checks the bits)."""
    g = torch.Generator().manual_seed(0)
    x, y, c1, c2, c3, z = (torch.randn(2, 3, 4, generator=g, dtype=torch.float64) for _ in range(6))
    ta, tb, tc = 0.8, 0.45, 0.2
    ea, eb, ec = (float(schedule.eta(t)) for t in (ta, tb, tc))
    aa, ab = float(schedule.alpha(ta)), float(schedule.alpha(tb))
    h = tb - ta
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)  # noqa: E731

    close(sample_euler(Replay([c1]), x, y, [ta, tb], schedule=schedule), x + h * pf_drift(x, c1, y, ea, aa))
    x_pred = x + h * pf_drift(x, c1, y, ea, aa)
    heun = x + h / 2 * (pf_drift(x, c1, y, ea, aa) + pf_drift(x_pred, c2, y, eb, ab))
    close(sample_heun(Replay([c1, c2]), x, y, [ta, tb], schedule=schedule), heun)
    close(sample_heun(Replay([c1]), x, y, [ta, 0.0], schedule=schedule), x - ta * pf_drift(x, c1, y, ea, aa))
    close(sample_exp1(Replay([c1]), x, y, [ta, tb], schedule=schedule), pf_exact_step(x, c1, y, ea, eb))
    for variable in ("eta", "sqrt_eta"):
        x1 = pf_exact_step(x, c1, y, ea, eb)
        expected = exp2m_step(x1, c2, c1, y, ea, eb, ec, variable)
        close(sample_exp2m(Replay([c1, c2]), x, y, [ta, tb, tc], schedule=schedule, variable=variable), expected)
        # into 0: x0_hat held fixed (default), or the second-order consistent Euler step in eta
        close(sample_exp2m(Replay([c1, c2]), x, y, [ta, tb, 0.0], schedule=schedule, variable=variable), c2)
        close(sample_exp2m(Replay([c1, c2]), x, y, [ta, tb, 0.0], schedule=schedule, variable=variable,
                           final_step="euler_eta"), pf_final_step(x1, c2, y, eb))
    # exp3m: exp1 prediction, x0_hat there (c2), corrector (x0_hat linear between both ends), then exp2m
    x1 = exp2m_step(x, c1, c2, y, eb, ea, eb, "eta")  # line through (ea, c1), (eb, c2), from ea to eb
    log = []
    out = sample_exp3m(Replay([c1, c2, c3]), x, y, [ta, tb, tc, 0.0], schedule=schedule, final_step="euler_eta",
                       callback=lambda d: log.append(d))
    close(log[0]["x_next"], x1)
    close(log[1]["x_next"], exp2m_step(x1, c2, c1, y, ea, eb, ec, "eta"))
    close(out, pf_final_step(log[1]["x_next"], c3, y, ec))
    em = x + (eb - ea) * reverse_sde_drift_eta(x, c1, y, ea) + schedule.kappa * math.sqrt(ea - eb) * z
    close(sample_euler_maruyama(Replay([c1]), x, y, [ta, tb], schedule=schedule, noise=[z]), em)
    # resshift, first step (k = T): posterior mean and variance
    first = []
    sample_resshift(Replay([c1] * schedule.T), x, y, schedule=schedule, noise=z.expand(schedule.T, *z.shape),
                    callback=lambda d: first.append(d["x_next"]))
    etas = schedule.etas
    mean, var = posterior_mean_variance(x, c1, float(etas[-1]), float(etas[-2]), schedule.kappa)
    close(first[0], mean + math.sqrt(var) * z)


class Recording:
    """A smooth denoiser that records every call: (x_t, x0_hat) in call order."""

    def __init__(self):
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, x_t, t, y):
        out = torch.tanh(0.7 * x_t + 0.2 * y) * (1 + 0.3 * t.reshape([-1] + [1] * (x_t.ndim - 1)))
        self.calls.append((x_t.clone(), out.clone()))
        return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("solver", "final_step"), [(s, None) for s in SOLVERS]
                         + [(s, "euler_eta") for s in ("exp1", "exp2m", "exp2m_sqrt", "exp3m")])
def test_every_update_is_its_named_formula(solver, final_step, dtype):
    """Bit for bit, every step of every solver is the formula of docs/maths.md §6-§9 it is named after:
    ``x + h pf_drift`` (Euler, Heun's predictor and the step into 0), ``x + h/2 (d + d')`` (Heun),
    ``pf_exact_step`` (exp1, the multistep solvers' first step and the step into 0 holding x0_hat),
    ``exp2m_step`` (their second step), ``exp_multistep_step`` (exp3m's start-up corrector and later
    steps), ``pf_final_step`` (``final_step="euler_eta"``), ``posterior_mean_variance`` (resshift) and
    ``reverse_sde_drift_eta`` (Euler-Maruyama).  ``x + c t`` is written ``torch.add(x, t, alpha=c)`` as
    in the solvers (one rounding); a solver that re-derived its coefficients would differ in the last bits.
    """
    y = _y((2, 3, 5), dtype=dtype)
    nfe = SCHED.T if solver == "resshift" else 8  # heun: an even nfe, so one Euler step inside the grid too
    ts = solver_grid(solver, nfe, 4.0, SCHED.T)
    eta = np.asarray(SCHED.eta(ts), dtype=np.float64)
    alpha = np.asarray(SCHED.alpha(ts), dtype=np.float64)
    z = [randn_like(y, torch.Generator().manual_seed(10 + i)) for i in range(len(ts) - 1)]
    den, steps = Recording(), []
    sample(den, y, schedule=SCHED, solver=solver, nfe=nfe, rho=4.0, final_step=final_step, callback=steps.append,
           noise=z if solver in STOCHASTIC_SOLVERS else None, generator=torch.Generator().manual_seed(0))
    calls = iter(den.calls)
    x0s: list[torch.Tensor] = []  # x0_hat at the grid points, newest last
    variable = "sqrt_eta" if solver == "exp2m_sqrt" else "eta"
    kappa, euler_step = SCHED.kappa, heun_euler_step(ts)
    assert len(steps) == len(ts) - 1
    for i, st in enumerate(steps):
        x, x0_hat = st["x"], st["x0_hat"]
        if solver != "exp3m" or i != 1:  # (exp3m's start-up corrector made the evaluation at x_1 already)
            x_called, x0_called = next(calls)
            assert torch.equal(x_called, x) and torch.equal(x0_called, x0_hat)
        x0s.append(x0_hat)
        e_a, e_b, h = float(eta[i]), float(eta[i + 1]), float(ts[i + 1] - ts[i])
        if solver == "resshift":
            k = SCHED.T - i
            mean, var = posterior_mean_variance(x, x0_hat, float(SCHED.etas[k - 1]),
                                                float(SCHED.etas[k - 2]) if k > 1 else 0.0, kappa)
            expected = torch.add(mean, z[i], alpha=math.sqrt(var)) if k > 1 else mean
        elif solver == "euler_maruyama":
            expected = torch.add(x, reverse_sde_drift_eta(x, x0_hat, y, e_a), alpha=e_b - e_a)
            if e_b > 0:
                expected.add_(z[i], alpha=kappa * math.sqrt(e_a - e_b))
        elif solver in ("euler", "heun"):
            d = pf_drift(x, x0_hat, y, e_a, float(alpha[i]))
            expected = torch.add(x, d, alpha=h)  # x + h pf_drift
            if solver == "heun" and e_b > 0 and i != euler_step:
                x_pred, x0_pred = next(calls)
                assert torch.equal(x_pred, expected)  # the predictor
                d_2 = pf_drift(x_pred, x0_pred, y, e_b, float(alpha[i + 1]))
                expected = torch.add(x, d + d_2, alpha=h / 2)  # x + h/2 (d + d')
        elif e_b == 0 and final_step == "euler_eta":
            expected = pf_final_step(x, x0_hat, y, e_a)
        elif solver == "exp3m" and i == 0:
            x_pred, x0_pred = next(calls)
            assert torch.equal(x_pred, pf_exact_step(x, x0_hat, y, e_a, e_b))  # the exp1 prediction
            expected = exp_multistep_step(x, [x0_hat, x0_pred], y, [e_a, e_b], e_b, "eta", eta_a=e_a)
        elif e_b == 0 or i == 0 or solver == "exp1":
            expected = pf_exact_step(x, x0_hat, y, e_a, e_b)
        elif i == 1 or solver != "exp3m":
            expected = exp2m_step(x, x0_hat, x0s[-2], y, float(eta[i - 1]), e_a, e_b, variable)
        else:
            nodes = range(3)  # the last three evaluations, newest first
            expected = exp_multistep_step(x, [x0s[-1 - j] for j in nodes], y, [float(eta[i - j]) for j in nodes],
                                          e_b, "eta")
        assert torch.equal(st["x_next"], expected), f"step {i} of {solver} is not its named formula"
    assert next(calls, None) is None


def _constant_denoiser(c):
    return lambda x_t, t, y: c.expand_as(x_t).clone()


def _exact_constant_x0(x_T, c, y, eta_a, eta_b):
    """PF-ODE with x0_hat = c: x(eta) = c + eta (y - c) + sqrt(eta/eta_a) (x_a - c - eta_a (y - c))."""
    return c + eta_b * (y - c) + math.sqrt(eta_b / eta_a) * (x_T - c - eta_a * (y - c))


@pytest.mark.parametrize("schedule", [SCHED, ExpAlphaSchedule.report()])
@pytest.mark.parametrize("rho", [1.0, 8.0, -8.0])
def test_exponential_integrators_exact_for_constant_x0(schedule, rho):
    y, c = _y((4, 3)), _y((1, 3), seed=5)
    x_T = prior_sample(y, float(schedule.eta(1.0)), schedule.kappa, generator=torch.Generator().manual_seed(2))
    den = _constant_denoiser(c)
    ts = rho_grid(6, rho, schedule.T)
    eta_T, eta_end = float(schedule.eta(1.0)), float(schedule.eta(float(ts[-2])))
    exact_end = _exact_constant_x0(x_T, c, y, eta_T, eta_end)
    runs = [partial(sample_exp1), partial(sample_exp2m, variable="eta"), partial(sample_exp2m, variable="sqrt_eta"),
            partial(sample_exp3m), partial(sample_exp3m, variable="sqrt_eta")]
    for fn in runs:
        torch.testing.assert_close(fn(den, x_T, y, ts[:-1], schedule=schedule), exact_end, rtol=1e-12, atol=1e-12)
        # into 0, holding x0_hat: the exact limit c
        torch.testing.assert_close(fn(den, x_T, y, ts, schedule=schedule), c.expand_as(y), rtol=1e-12, atol=1e-12)
    # the Euler step in eta keeps half the residual instead (for a point mass the flow is sqrt(eta)-shaped,
    # not smooth, so its O(eta^2) argument does not apply)
    half = (exact_end + (1 + eta_end) * c - eta_end * y) / 2
    for fn in runs[1:]:
        torch.testing.assert_close(fn(den, x_T, y, ts, schedule=schedule, final_step="euler_eta"), half,
                                   rtol=1e-12, atol=1e-12)
    # the closed form really is the ODE's solution (scipy), and Euler is not exact on it
    rhs = lambda e, x: ((y - c) + (torch.from_numpy(x).reshape(y.shape) - (1 - e) * c - e * y) / (2 * e)).numpy().ravel()  # noqa: E731
    ref = solve_ivp(rhs, (eta_T, eta_end), x_T.numpy().ravel(), rtol=1e-12, atol=1e-12, method="DOP853").y[:, -1]
    np.testing.assert_allclose(exact_end.numpy().ravel(), ref, rtol=1e-8, atol=1e-9)
    euler = sample(den, y, schedule=schedule, solver="euler", nfe=6, rho=rho, x_T=x_T)
    assert float((euler - c).abs().max()) > 1e-4


def test_euler_noise_left_at_nfe15_rho1_depends_on_the_schedule():
    """Euler at nfe = 15, rho = 1 with a perfect denoiser for a point-mass posterior (x0_hat = c, y = c).

    The exact flow carries the start's noise n = x_T - c to zero (x = c + sqrt(eta/eta_T) n; exp1 lands
    on c exactly).  Euler's factor per step is 1 - h alpha/(2 eta) instead of sqrt(eta_b/eta_a).  On the
    official schedule, whose eta rises as u ** 0.3 right after t = 1/T, the step 2/T -> 1/T keeps 0.47 of
    the noise instead of 0.17 and the final (secant) step keeps half of what is left: 2.7% of the start's
    noise reaches the output (0.054 in [-1, 1] pixel units at kappa = 2, as much as a 31 dB PSNR).  The
    fitted exp-alpha schedule (eta ~ t^2 near 0: factors within 5% of exact, final step onto c) leaves
    under 0.1%.  This is why the shipped continuous model is fine-tuned on the fitted schedule.
    """
    from ctlib.schedule import fit_exp_alpha

    c = _y((1, 4096), seed=3)
    den = _constant_denoiser(c)
    left = {}
    for name, schedule in (("official", SCHED), ("fit", fit_exp_alpha(SCHED, target="eta").schedule),
                           ("report", ExpAlphaSchedule.report())):
        x_T = prior_sample(c, float(schedule.eta(1.0)), schedule.kappa, generator=torch.Generator().manual_seed(4))
        n = x_T - c
        for solver in ("euler", "exp1"):
            out = sample(den, c, schedule=schedule, solver=solver, nfe=15, rho=1.0, x_T=x_T)
            left[name, solver] = float((out - c).pow(2).mean().sqrt() / n.pow(2).mean().sqrt())
        # Euler's factors, step by step, against the exact ones (independent of the sampler's code)
        ts = np.arange(15, 0, -1) / 15
        eta, alpha = schedule.eta(ts), schedule.alpha(ts)
        euler_factor = 1 - alpha / (15 * 2 * eta)
        exact_factor = np.sqrt(np.append(eta[1:], 0.0) / eta)
        assert left[name, "euler"] == pytest.approx(abs(np.prod(euler_factor)), rel=1e-9)
        assert left[name, "exp1"] < 1e-12
        if name == "official":
            assert euler_factor[-2] == pytest.approx(0.47, abs=0.01) and exact_factor[-2] == pytest.approx(0.171, abs=1e-3)
            assert euler_factor[-1] == pytest.approx(0.5)
        else:
            np.testing.assert_allclose(euler_factor[:-1], exact_factor[:-1], rtol=0.05)
            assert abs(euler_factor[-1]) < 0.02
    assert 0.025 < left["official", "euler"] < 0.03
    assert left["fit", "euler"] < 1e-3 and left["report", "euler"] < 1e-3


@pytest.mark.parametrize("variable", ["eta", "sqrt_eta"])
@pytest.mark.parametrize("eta_prev, eta_a, eta_b", [(0.5, 0.3, 0.1), (0.98, 0.6, 0.59), (0.05, 0.02, 0.0004),
                                                    (0.2, 0.05, 0.0), (0.9, 0.4, 0.0)])
def test_exp2m_step_exact_for_x0_linear_in_its_variable(eta_prev, eta_a, eta_b, variable):
    """One exp2m step against scipy on dx/ds = s (y - x0) + (x - x0)/s with x0 = a + b v, v = eta or sqrt(eta)."""
    g = torch.Generator().manual_seed(3)
    a, b, y, x_a = (torch.randn(5, dtype=torch.float64, generator=g) for _ in range(4))
    v = (lambda eta: eta) if variable == "eta" else math.sqrt
    x0 = lambda eta: a + b * v(eta)  # noqa: E731
    out = exp2m_step(x_a[None], x0(eta_a)[None], x0(eta_prev)[None], y[None], eta_prev, eta_a, eta_b, variable)[0]

    def rhs(s, x):
        x = torch.from_numpy(x)
        return (s * (y - x0(s * s)) + (x - x0(s * s)) / s).numpy()

    s_end = math.sqrt(eta_b) if eta_b > 0 else 1e-9
    ref = solve_ivp(rhs, (math.sqrt(eta_a), s_end), x_a.numpy(), rtol=1e-12, atol=1e-13, method="DOP853").y[:, -1]
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-7, atol=1e-7)
    if eta_b == 0:  # the limit: x0 extrapolated linearly (in v) to eta = 0
        torch.testing.assert_close(out, a, rtol=1e-12, atol=1e-12)
        assert exp2m_weight(eta_a, 0.0, variable) == pytest.approx(v(eta_a))
    assert exp2m_weight(eta_a, eta_a, variable) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="variable"):
        exp2m_weight(eta_a, eta_b, "lambda")


def test_exp2m_exact_after_its_first_step():
    """With x0_hat = a + b eta(t) (any x), every exp2m step after the first (exp1) is exact."""
    sched = ResShiftSchedule()
    y, a, b = _y((2, 3), seed=1), _y((1, 3), seed=2), _y((1, 3), seed=3)
    den = lambda x_t, t, y_: (a + b * sched.eta(t).reshape(-1, 1)).expand_as(x_t).clone()  # noqa: E731
    ts = rho_grid(7, 4.0)
    x_T = prior_sample(y, float(sched.eta(1.0)), sched.kappa, generator=torch.Generator().manual_seed(0))
    states = []
    out = sample_exp2m(den, x_T, y, ts[:-1], schedule=sched, callback=lambda d: states.append(d["x_next"]))
    eta = sched.eta(ts)
    x1 = states[0]

    def rhs(s, x):
        x0 = (a + b * s * s)[0]
        xx = torch.from_numpy(x).reshape(y.shape)
        return (s * (y - x0) + (xx - x0) / s).numpy().ravel()

    ref = solve_ivp(rhs, (math.sqrt(eta[1]), math.sqrt(eta[-2])), x1.numpy().ravel(), rtol=1e-12, atol=1e-13,
                    method="DOP853").y[:, -1]
    np.testing.assert_allclose(out.numpy().ravel(), ref, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 1, 3, 4)])
@pytest.mark.parametrize("solver", SOLVERS)
def test_any_shape_and_dtype(shape, solver):
    """Any (B, ...) shape; float32 keeps float32 and agrees with float64 (same start and noise)."""
    nfe = 15 if solver == "resshift" else 6
    y = _y(shape)
    x_T = prior_sample(y, float(SCHED.eta(1.0)), SCHED.kappa, generator=torch.Generator().manual_seed(7))
    noise = torch.randn((nfe, *shape), generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    outs = {}
    for dtype in (torch.float32, torch.float64):
        outs[dtype] = sample(Counting(), y.to(dtype), schedule=SCHED, solver=solver, nfe=nfe, rho=4.0,
                             x_T=x_T.to(dtype), noise=noise.to(dtype) if solver in ("resshift", "euler_maruyama") else None)
        assert outs[dtype].shape == shape and outs[dtype].dtype == dtype
    torch.testing.assert_close(outs[torch.float32].double(), outs[torch.float64], rtol=1e-5, atol=1e-5)


def test_default_start_and_generator():
    y = _y()
    a = sample(Counting(), y, schedule=SCHED, solver="euler", nfe=4, generator=torch.Generator().manual_seed(11))
    b = sample(Counting(), y, schedule=SCHED, solver="euler", nfe=4,
               x_T=prior_sample(y, float(SCHED.eta(1.0)), SCHED.kappa, generator=torch.Generator().manual_seed(11)))
    c = sample(Counting(), y, schedule=SCHED, solver="euler", nfe=4, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_euler_maruyama_noise_explicit_or_drawn():
    y = _y()
    x_T = prior_sample(y, float(SCHED.eta(1.0)), SCHED.kappa, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(5)
    drawn = sample(Counting(), y, schedule=SCHED, solver="euler_maruyama", nfe=6, x_T=x_T, generator=g)
    g = torch.Generator().manual_seed(5)
    noise = [randn_like(y, g) for _ in range(5)]  # one per step but the last (noiseless) one
    explicit = sample(Counting(), y, schedule=SCHED, solver="euler_maruyama", nfe=6, x_T=x_T, noise=noise)
    torch.testing.assert_close(drawn, explicit, rtol=0, atol=0)
    # the step into eta = 0 lands exactly on the last x0 guess
    last = []
    sample_euler_maruyama(Counting(), x_T, y, rho_grid(6), schedule=SCHED, noise=noise,
                          callback=lambda d: last.append((d["x_next"], d["x0_hat"])))
    torch.testing.assert_close(last[-1][0], last[-1][1], rtol=1e-12, atol=1e-12)


def test_euler_maruyama_samples_a_gaussian():
    """x0 ~ N(m, s0^2): the reverse SDE started from the true marginal at t = 1 ends at N(m, s0^2).
    With 100 Euler–Maruyama steps the std is 2% high (the O(h) bias; 0.5-0.9% with 200 steps) and
    the sampling error of n = 10^4 draws is 0.7%; 3 steps are far off."""
    m, s0, n = 0.4, 0.3, 10_000
    toy = GaussianMixtureToy([[m]], s0, [1.0], [-0.2], SCHED)
    g = torch.Generator().manual_seed(0)
    x_1 = toy.sample_xt(n, 1.0, g)
    out = sample(toy.denoiser, toy.y_batch(n), schedule=SCHED, solver="euler_maruyama", nfe=100, rho=1.0,
                 x_T=x_1, generator=g)[:, 0]
    assert abs(float(out.mean()) - m) < 0.015
    assert abs(float(out.std()) / s0 - 1) < 0.045
    few = sample(toy.denoiser, toy.y_batch(n), schedule=SCHED, solver="euler_maruyama", nfe=3, x_T=x_1, generator=g)
    assert abs(float(few[:, 0].std()) / s0 - 1) > 0.5


def test_callback_reports_every_step():
    steps = []
    out = sample(Counting(), _y(), schedule=SCHED, solver="exp2m", nfe=5, rho=4.0,
                 generator=torch.Generator().manual_seed(0), callback=steps.append)
    ts = solver_grid("exp2m", 5, 4.0)
    assert [s["i"] for s in steps] == list(range(5))
    np.testing.assert_allclose([s["t"] for s in steps], ts[:-1])
    np.testing.assert_allclose([s["t_next"] for s in steps], ts[1:])
    for prev, nxt in zip(steps, steps[1:]):
        assert torch.equal(prev["x_next"], nxt["x"])
    assert torch.equal(steps[-1]["x_next"], out)


def test_progress_bar(capsys):
    sample(Counting(), _y(), schedule=SCHED, solver="heun", nfe=5, generator=torch.Generator().manual_seed(0))
    assert "heun" not in capsys.readouterr().err
    sample(Counting(), _y(), schedule=SCHED, solver="heun", nfe=5, progress=True,
           generator=torch.Generator().manual_seed(0))
    assert "heun" in capsys.readouterr().err


def test_bad_input():
    y = _y()
    kw = {"schedule": SCHED, "generator": torch.Generator().manual_seed(0)}
    with pytest.raises(ValueError, match="unknown solver 'rk4'.*resshift, euler, heun, exp1, exp2m, exp2m_sqrt, exp3m, euler_maruyama"):
        sample(Counting(), y, solver="rk4", nfe=5, **kw)
    with pytest.raises(ValueError, match="rho"):
        sample(Counting(), y, solver="euler", nfe=5, rho=0, **kw)
    with pytest.raises(ValueError, match="nfe must be an integer >= 1"):
        sample(Counting(), y, solver="euler", nfe=0, **kw)
    with pytest.raises(ValueError, match="nfe must be an integer"):
        sample(Counting(), y, solver="euler", nfe=2.5, **kw)
    with pytest.raises(ValueError, match="too small for solver 'heun'"):
        sample(Counting(), y, solver="heun", nfe=2, **kw)
    with pytest.raises(ValueError, match="too small for solver 'heun'"):
        sample(Counting(), y, solver="heun", nfe=1, **kw)
    with pytest.raises(ValueError, match="variable must be one of"):
        sample_exp2m(Counting(), y, y, rho_grid(4), schedule=SCHED, variable="lambda")
    with pytest.raises(ValueError, match="final_step must be None or one of"):
        sample(Counting(), y, solver="euler", nfe=5, final_step="hold", **kw)
    with pytest.raises(ValueError, match="final_step must be None or one of"):
        sample(Counting(), y, solver="exp3m", nfe=5, final_step="extrapolate", **kw)
    with pytest.raises(ValueError, match="must equal T = 15"):
        sample(Counting(), y, solver="resshift", nfe=10, **kw)
    with pytest.raises(ValueError, match="x_T and y must have the same shape"):
        sample(Counting(), y, solver="euler", nfe=5, x_T=torch.zeros(3, 5, dtype=torch.float64), **kw)
    with pytest.raises(TypeError, match="y must be a floating-point tensor"):
        sample(Counting(), np.zeros((3, 4)), solver="euler", nfe=5, **kw)
    with pytest.raises(TypeError, match="schedule must provide"):
        sample(Counting(), y, schedule=object(), solver="euler", nfe=5)
    with pytest.raises(ValueError, match="noise is only used by the stochastic solvers"):
        sample(Counting(), y, solver="exp1", nfe=5, noise=torch.zeros(5, 3, 4), **kw)
    with pytest.raises(ValueError, match="one tensor per step"):
        sample(Counting(), y, solver="euler_maruyama", nfe=5, noise=torch.zeros(2, 3, 4), **kw)
    with pytest.raises(ValueError, match=r"noise\[0\] has shape"):
        sample(Counting(), y, solver="euler_maruyama", nfe=5, noise=torch.zeros(5, 3, 5), **kw)
    with pytest.raises(ValueError, match=r"returned shape \(3, 1\) for x_t of shape \(3, 4\)"):
        sample(lambda x, t, c: x[:, :1], y, solver="euler", nfe=5, **kw)
    with pytest.raises(ValueError, match="NaN or infinite"):
        sample(lambda x, t, c: x * float("nan"), y, solver="exp2m", nfe=5, **kw)
    with pytest.raises(TypeError, match="must return a tensor"):
        sample(lambda x, t, c: x.numpy(), y, solver="euler", nfe=5, **kw)


@pytest.mark.parametrize("solver", SOLVERS)
def test_huge_finite_denoiser_output_never_gives_a_silent_nan_sample(solver):
    """x0_hat finite but near float32's largest value (alternating in sign from call to call): the sample
    is finite or the sampler raises a clear error.  For exp2m/exp3m the slope D = (x0_a - x0_prev)/(v_a -
    v_prev) of docs/maths.md §9 overflows, so they must raise; with x0_hat constant at 3e38 the exact flow
    lands on it, and they must land there too (no overflow on the way)."""
    y = _y((2, 3), dtype=torch.float32)
    calls = []

    def huge(x_t, t, y):
        calls.append(1)
        return torch.full_like(x_t, 3e38 * (-1) ** len(calls))

    try:
        out = sample(huge, y, schedule=SCHED, solver=solver, nfe=15, generator=torch.Generator().manual_seed(0))
    except ValueError as err:
        assert "state became NaN or infinite" in str(err)
    else:
        assert bool(torch.isfinite(out).all())
    if solver in ("exp2m", "exp3m"):
        calls.clear()
        with pytest.raises(ValueError, match="state became NaN or infinite"):
            sample(huge, y, schedule=SCHED, solver=solver, nfe=15, generator=torch.Generator().manual_seed(0))
        out = sample(lambda x_t, t, y: torch.full_like(x_t, 3e38), y, schedule=SCHED, solver=solver, nfe=15)
        assert torch.equal(out, torch.full_like(y, 3e38))


def test_sampler_arithmetic_does_not_depend_on_the_thread_count():
    """With an elementwise denoiser on a tensor large enough for torch to split across threads, every
    solver gives the same bytes with 1 and 2 threads (the network's own float32 convolutions do not:
    see README, 'What is reproducible')."""
    y = _y((4, 3, 97, 131), dtype=torch.float32)
    den = lambda x_t, t, y: torch.tanh(0.7 * x_t + 0.2 * y)  # noqa: E731
    threads = torch.get_num_threads()
    outs = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            for solver in ("euler", "heun", "exp2m", "exp3m", "euler_maruyama"):
                outs[solver, n] = sample(den, y, schedule=SCHED, solver=solver, nfe=15,
                                         generator=torch.Generator().manual_seed(1))
    finally:
        torch.set_num_threads(threads)
    for solver in ("euler", "heun", "exp2m", "exp3m", "euler_maruyama"):
        assert torch.equal(outs[solver, 1], outs[solver, 2]), solver
