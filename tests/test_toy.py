"""The exactly solvable toy: posterior mean, densities, sampling and the exact PF-ODE solution,
each against an independent reference (quadrature, dense-matrix Gaussian algebra, closed forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from ctlib.schedule import ExpAlphaSchedule, ResShiftSchedule
from ctlib.toy import GaussianMixtureToy

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


KAPPA = 2.0


def _toy_1d(schedule=None) -> GaussianMixtureToy:
    return GaussianMixtureToy([[-0.8], [0.6]], [0.25, 0.4], [0.35, 0.65], [0.3], schedule or ResShiftSchedule())


@pytest.mark.parametrize("eta", [0.0004, 0.05, 0.4, 0.9801])
def test_posterior_mean_matches_quadrature_1d(eta):
    """E[x0 | x_t] = int x0 p(x0) q(x_t|x0) dx0 / int p(x0) q(x_t|x0) dx0, by scipy.quad."""
    toy = _toy_1d()
    mu, sd, w, y = [-0.8, 0.6], [0.25, 0.4], [0.35, 0.65], 0.3

    def joint(x0, x):
        prior = sum(wk * stats.norm.pdf(x0, mk, sk) for wk, mk, sk in zip(w, mu, sd))
        return prior * stats.norm.pdf(x, (1 - eta) * x0 + eta * y, KAPPA * math.sqrt(eta))

    xs = np.array([-1.5, -0.4, 0.1, 0.9, 2.0])
    expected = []
    for x in xs:
        num = integrate.quad(lambda a, x=x: a * joint(a, x), -6, 6, points=[-0.8, 0.6], limit=400, epsabs=1e-14)[0]
        den = integrate.quad(lambda a, x=x: joint(a, x), -6, 6, points=[-0.8, 0.6], limit=400, epsabs=1e-14)[0]
        expected.append(num / den)
    got = toy.posterior_mean(torch.tensor(xs[:, None]), eta)[:, 0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)


def test_posterior_mean_matches_dense_gaussian_algebra():
    """d = 3: responsibilities from scipy's multivariate normal and the conditional mean
    Sigma_{x0 x} Sigma_x^{-1} (x - m) written with full matrices, per component."""
    rng = np.random.default_rng(1)
    d, K = 3, 4
    means, stds, w, y = rng.normal(size=(K, d)), [0.2, 0.3, 0.5, 0.7], [0.1, 0.2, 0.3, 0.4], rng.normal(size=d)
    toy = GaussianMixtureToy(means, stds, w, y, ResShiftSchedule())
    x = rng.normal(size=(6, d)) * 1.5
    eta = np.array([0.001, 0.01, 0.1, 0.3, 0.7, 0.95])
    got = toy.posterior_mean(torch.tensor(x), torch.tensor(eta)).numpy()
    for b in range(6):
        e, I = eta[b], np.eye(d)
        logr, cm = [], []
        for k in range(K):
            S0 = stds[k] ** 2 * I
            m_x = (1 - e) * means[k] + e * y
            S_x = (1 - e) ** 2 * S0 + KAPPA**2 * e * I
            logr.append(np.log(w[k]) + stats.multivariate_normal.logpdf(x[b], m_x, S_x))
            cm.append(means[k] + (1 - e) * S0 @ np.linalg.solve(S_x, x[b] - m_x))
        r = np.exp(np.array(logr) - np.logaddexp.reduce(logr))
        np.testing.assert_allclose(got[b], (r[:, None] * np.array(cm)).sum(0), rtol=1e-10, atol=1e-12)


def test_denoiser_contract_per_item_times():
    toy = GaussianMixtureToy.demo()
    x = toy.prior_sample(4, torch.Generator().manual_seed(0))
    t = torch.tensor([1.0, 0.5, 0.2, 1 / 15])
    out = toy.denoiser(x, t, toy.y_batch(4))
    assert out.shape == x.shape and out.dtype == torch.float64
    for b in range(4):
        single = toy.posterior_mean(x[b : b + 1], float(toy.schedule.eta(float(t[b]))))
        torch.testing.assert_close(out[b : b + 1], single, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="same shape"):
        toy.denoiser(x, t, toy.y_batch(3))


def test_high_dimension_is_cheap():
    toy = GaussianMixtureToy.demo(d=3000)
    x = toy.prior_sample(8, torch.Generator().manual_seed(0))
    out = toy.denoiser(x, torch.full((8,), 0.3), toy.y_batch(8))
    assert out.shape == (8, 3000) and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("schedule", [ResShiftSchedule(), ExpAlphaSchedule.report()])
def test_exact_ode_matches_gaussian_closed_form(schedule):
    """K = 1: the PF-ODE moves every point along x(eta) = (1-eta) m + eta y + std(eta) z with a fixed z,
    std(eta)^2 = (1-eta)^2 sigma0^2 + kappa^2 eta (it transports N(m_eta, std^2) quantile by quantile).
    d = 1000 checks that the solver copes with large states."""
    d, sigma0 = 1000, 0.3
    rng = np.random.default_rng(2)
    m, y = rng.normal(size=d), rng.normal(size=d) * 0.2
    toy = GaussianMixtureToy(m[None], sigma0, [1.0], y, schedule)
    x_T = toy.prior_sample(2, torch.Generator().manual_seed(3))
    t_eval = np.array([1.0, 0.7, 0.3, 0.1, 1 / 15, 0.01, 0.0])
    states = toy.exact_ode(x_T, t_eval=t_eval).numpy()
    eta = schedule.eta(t_eval)
    std = np.sqrt((1 - eta) ** 2 * sigma0**2 + KAPPA**2 * eta)
    z = (x_T.numpy() - (1 - eta[0]) * m - eta[0] * y) / std[0]
    expected = (1 - eta)[:, None, None] * m + eta[:, None, None] * y + std[:, None, None] * z
    np.testing.assert_allclose(states, expected, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(toy.exact_ode(x_T).numpy(), m + sigma0 * z, rtol=1e-8, atol=1e-8)


def test_exact_ode_transports_the_marginal_to_x0():
    """Starting from the true marginal at t = 1, the exact flow ends with the law of x0 (W1 at the
    finite-sample level of n = 3000, far below that of the start)."""
    toy = GaussianMixtureToy.demo()
    g = torch.Generator().manual_seed(5)
    x_1 = toy.sample_xt(3000, 1.0, g)
    x_0 = toy.exact_ode(x_1)
    w_end, w_start = toy.wasserstein1(x_0), toy.wasserstein1(x_1)
    w_ref = toy.wasserstein1(toy.sample_x0(3000, g))  # what n = 3000 exact samples reach
    assert w_start > 0.5
    assert w_end < 3 * w_ref + 0.01


def test_sampling_and_densities():
    toy = _toy_1d()
    g = torch.Generator().manual_seed(0)
    x0 = toy.sample_x0(200_000, g)[:, 0].numpy()
    mean = 0.35 * -0.8 + 0.65 * 0.6
    var = 0.35 * (0.25**2 + 0.8**2) + 0.65 * (0.4**2 + 0.6**2) - mean**2
    assert abs(x0.mean() - mean) < 5 * math.sqrt(var / x0.size)
    assert abs(x0.var() / var - 1) < 0.02
    grid = np.linspace(-6, 6, 6001)
    dens = toy.x0_density(grid)
    assert abs(np.trapezoid(dens, grid) - 1) < 1e-8
    assert abs(np.trapezoid(grid * dens, grid) - mean) < 1e-8
    # x_t: histogram of draws against the exact density (counts within 5 standard errors)
    eta = float(toy.schedule.eta(0.4))
    xt = toy.sample_xt(200_000, 0.4, g)[:, 0].numpy()
    edges = np.linspace(-3, 3, 31)
    counts, _ = np.histogram(xt, edges)
    p = np.array([integrate.quad(lambda a: toy.xt_density(a, eta), lo, hi)[0] for lo, hi in zip(edges[:-1], edges[1:])])
    expected = p * xt.size
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected) + 5)
    # the prior the samplers start from
    prior = toy.prior_sample(200_000, g)[:, 0].numpy()
    assert abs(prior.mean() - 0.3) < 0.02 and abs(prior.std() - KAPPA * math.sqrt(toy.schedule.eta(1.0))) < 0.02


def test_joint_density_integrates_and_marginalises():
    toy = GaussianMixtureToy.demo()
    g = np.linspace(-14, 14, 1121)
    X, Y = np.meshgrid(g, g, indexing="ij")
    h = g[1] - g[0]
    for eta in (0.0, 0.05, 0.9):
        p = toy.density(np.stack([X, Y], -1), eta)
        assert abs(p.sum() * h * h - 1) < 1e-6
        np.testing.assert_allclose(p.sum(1) * h, toy.xt_density(g, eta, dim=0), atol=1e-8)
    with pytest.raises(ValueError, match="last axis"):
        toy.density(np.zeros((4, 3)))


def test_wasserstein1_matches_scipy():
    toy = GaussianMixtureToy.demo()
    g = torch.Generator().manual_seed(9)
    s = toy.sample_x0(2000, g) + 0.1  # a shifted sample: W1 about 0.1 per coordinate
    big = toy.sample_x0(400_000, g).numpy()
    ref = np.mean([stats.wasserstein_distance(s[:, j].numpy(), big[:, j]) for j in range(2)])
    assert abs(toy.wasserstein1(s) - ref) < 0.01
    assert 0.07 < toy.wasserstein1(s) < 0.13


def test_bad_input():
    sched = ResShiftSchedule()
    with pytest.raises(ValueError, match="means"):
        GaussianMixtureToy([1.0, 2.0], 0.3, [1.0], [0.0], sched)
    with pytest.raises(ValueError, match="stds"):
        GaussianMixtureToy([[1.0]], -0.3, [1.0], [0.0], sched)
    with pytest.raises(ValueError, match="weights"):
        GaussianMixtureToy([[1.0]], 0.3, [1.0, 2.0], [0.0], sched)
    with pytest.raises(ValueError, match="y must"):
        GaussianMixtureToy([[1.0]], 0.3, [1.0], [0.0, 1.0], sched)
    with pytest.raises(TypeError, match="schedule"):
        GaussianMixtureToy([[1.0]], 0.3, [1.0], [0.0], object())
    toy = GaussianMixtureToy.demo()
    x = toy.prior_sample(2)
    with pytest.raises(ValueError, match="rtol"):
        toy.exact_ode(x, rtol=1e-6)
    with pytest.raises(ValueError, match="t_end"):
        toy.exact_ode(x, t_end=1.0)
    with pytest.raises(ValueError, match="t_eval"):
        toy.exact_ode(x, t_eval=[0.2, 0.5])
    with pytest.raises(ValueError, match="x_T"):
        toy.exact_ode(x[:, :1])
    with pytest.raises(ValueError, match="eta"):
        toy.posterior_mean(x, 0.0)
