"""Schedules against the official golden arrays, analytic integrals and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ctlib.schedule import (
    ExpAlphaSchedule,
    ResShiftSchedule,
    fit_exp_alpha,
    schedule_from_dict,
)

from .conftest import load_npz

OFFICIAL_ETAS = [0.0004, 0.013728, 0.031083, 0.054582, 0.085015, 0.123208, 0.170038, 0.226441,
                 0.293408, 0.371990, 0.463295, 0.568494, 0.688818, 0.825566, 0.9801]


@pytest.fixture(scope="module")
def golden():
    return load_npz("diffusion_v1.npz")


def test_etas_match_official_arrays(golden):
    s = ResShiftSchedule()
    np.testing.assert_allclose(s.etas, golden["etas"], rtol=1e-6, atol=0)
    np.testing.assert_allclose(s.sqrt_etas, golden["sqrt_etas"], rtol=1e-6, atol=0)
    np.testing.assert_allclose(s.etas_prev, golden["etas_prev"], rtol=1e-6, atol=1e-300)
    np.testing.assert_allclose(s.alphas, golden["alpha"], rtol=1e-6)
    # the rounded values printed in docs/maths.md §2
    np.testing.assert_allclose(s.etas, OFFICIAL_ETAS, atol=6e-7)


def test_v3_schedule_matches_official(golden):
    s = ResShiftSchedule(T=4, kappa=2.0, min_noise_level=0.2, etas_end=0.99, power=0.3)
    np.testing.assert_allclose(s.etas, golden["v3_etas"], rtol=1e-6)
    for key, value in s.posterior_coefficients().items():
        np.testing.assert_allclose(value, golden["v3_" + key], rtol=1e-6, atol=1e-300)


def test_posterior_coefficients_match_official(golden):
    coefs = ResShiftSchedule().posterior_coefficients()
    for key in ("posterior_mean_coef1", "posterior_mean_coef2", "posterior_variance",
                "posterior_variance_clipped", "posterior_log_variance_clipped"):
        np.testing.assert_allclose(coefs[key], golden[key], rtol=1e-6, atol=1e-300, err_msg=key)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_continuous_eta_passes_through_every_official_eta(dtype):
    s = ResShiftSchedule()
    k = np.arange(1, 16)
    np.testing.assert_allclose(s.eta(k / 15), s.etas, rtol=1e-12)
    for kk in k:  # python floats
        assert math.isclose(s.eta(kk / 15), s.etas[kk - 1], rel_tol=1e-12)
    t = torch.arange(1, 16, dtype=dtype) / 15
    out = s.eta(t)
    assert isinstance(out, torch.Tensor) and out.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(out.double().numpy(), s.etas, rtol=tol)


def test_continuous_eta_is_monotone_continuous_and_zero_at_zero():
    s = ResShiftSchedule()
    t = np.linspace(0.0, 1.0, 200_001)
    eta = s.eta(t)
    assert eta[0] == 0.0
    assert np.all(np.diff(eta) >= 0)
    # continuity: the largest jump on a grid of 5e-6 is small (eta is Hoelder-0.3 near t = 1/T)
    assert np.abs(np.diff(eta)).max() < 2e-4
    # the linear piece on [0, 1/T]
    np.testing.assert_allclose(s.eta(np.array([0.25, 0.5, 0.75]) / 15), s.etas[0] * np.array([0.25, 0.5, 0.75]))
    assert s.eta_T == pytest.approx(0.9801, rel=1e-12)


@pytest.mark.parametrize("schedule", [ResShiftSchedule(), ExpAlphaSchedule.report(), ExpAlphaSchedule(0.8, 1.4)])
def test_alpha_is_derivative_of_eta(schedule):
    t = np.linspace(1.5 / 15, 0.999, 300)  # away from the kink at 1/T
    h = 1e-6
    fd = (schedule.eta(t + h) - schedule.eta(t - h)) / (2 * h)
    np.testing.assert_allclose(schedule.alpha(t), fd, rtol=1e-6)


def test_exp_alpha_eta_is_exact_integral():
    from scipy.integrate import quad

    s = ExpAlphaSchedule(a=0.9, lam=1.3)
    for t in (1e-6, 1e-3, 0.1, 0.5, 1.0):
        integral, _ = quad(lambda u: float(s.alpha(u)), 0.0, t, epsabs=1e-15, epsrel=1e-13)
        assert s.eta(t) == pytest.approx(integral, rel=1e-9, abs=1e-18)


def test_report_preset_numbers():
    r = ExpAlphaSchedule.report()
    assert r.lam == pytest.approx(1.1268, abs=1e-4)
    assert r.eta(1.0) == pytest.approx(0.94572, abs=1e-4)
    assert r.eta(1 / 15) == pytest.approx(0.0028536, abs=1e-4)
    assert r.alpha(1.0) == pytest.approx(2.3177576, rel=1e-9)
    # erratum 2: the printed 0.489 is log10 of the base e^lam
    assert math.log10(math.exp(r.lam)) == pytest.approx(0.489, abs=5e-4)


def test_kinds_in_kinds_out():
    s = ExpAlphaSchedule.report()
    assert isinstance(s.eta(0.5), float)
    a32 = s.eta(np.array([0.5], dtype=np.float32))
    assert a32.dtype == np.float32
    t64 = s.alpha(torch.tensor([0.25, 0.5], dtype=torch.float64))
    assert t64.dtype == torch.float64 and t64.shape == (2,)
    assert s.eta(torch.tensor(0.5)).ndim == 0


def test_fit_free_alpha_matches_reference_numbers():
    fit = fit_exp_alpha(ResShiftSchedule(), target="alpha")
    assert fit.success
    # docs/maths.md §3: a plain least-squares fit of T alpha_t at s = t/T gives a ~ 0.79, lam ~ 1.37
    assert fit.a == pytest.approx(0.79, abs=0.01)
    assert fit.lam == pytest.approx(1.37, abs=0.01)
    # scipy's answer is a true minimum: perturbing either parameter increases the cost
    base = np.sum(fit.residuals**2)
    for da, dl in ((1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)):
        s = ExpAlphaSchedule(fit.a + da, fit.lam + dl)
        assert np.sum((s.alpha(fit.t) - fit.data) ** 2) > base


def test_fit_constrained_honours_alpha_T():
    sched = ResShiftSchedule()
    for target in ("alpha", "eta"):
        fit = fit_exp_alpha(sched, target=target, constrained=True)
        assert fit.schedule.alpha(1.0) == pytest.approx(15 * sched.alphas[-1], rel=1e-9)
        np.testing.assert_allclose(fit.residuals, (fit.schedule.eta(fit.t) if target == "eta"
                                                   else fit.schedule.alpha(fit.t)) - fit.data)


def test_fit_eta_target_preserves_marginals_better():
    sched = ResShiftSchedule()
    fit_eta = fit_exp_alpha(sched, target="eta")
    fit_alpha = fit_exp_alpha(sched, target="alpha")
    err_eta = np.abs(fit_eta.schedule.eta(fit_eta.t) - sched.etas).max()
    err_alpha = np.abs(fit_alpha.schedule.eta(fit_alpha.t) - sched.etas).max()
    assert err_eta < err_alpha


def test_round_trip_dict():
    for s in (ResShiftSchedule(T=4, min_noise_level=0.2), ExpAlphaSchedule.report()):
        s2 = schedule_from_dict(s.to_dict())
        t = np.linspace(0, 1, 11)
        np.testing.assert_array_equal(s.eta(t), s2.eta(t))
    with pytest.raises(ValueError, match="kind"):
        schedule_from_dict({"kind": "cosine"})


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ResShiftSchedule().eta(1.5), r"^t must lie in \[0, 1\]"),
        (lambda: ResShiftSchedule().alpha(-0.1), r"^t must lie in \[0, 1\]"),
        (lambda: ExpAlphaSchedule.report().eta(torch.tensor([0.5, float("nan")])), "^t must be finite"),
        (lambda: ResShiftSchedule(kappa=-1.0), "^kappa"),
        (lambda: ResShiftSchedule(kappa=0.0), "^kappa"),
        (lambda: ResShiftSchedule(T=1), "^T must be an integer >= 2"),
        (lambda: ResShiftSchedule(T=2.5), "^T must be an integer"),
        (lambda: ExpAlphaSchedule(a=-1, lam=1), "^a "),
        (lambda: ExpAlphaSchedule(a=1, lam=0), "^lam "),
        (lambda: ResShiftSchedule(etas_end=0.01), "^etas_end"),
        (lambda: fit_exp_alpha(ResShiftSchedule(), target="sigma"), "^target"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
