"""The diffusion maths against the official golden data, Gaussian algebra, scipy and simulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from ctlib.diffusion import (
    forward_chain,
    pf_drift,
    pf_drift_eta,
    pf_exact_step,
    posterior_mean_variance,
    prior_sample,
    q_sample,
    reverse_sde_drift_eta,
    scale_input,
    score_from_x0,
    x0_from_score,
)
from ctlib.schedule import ExpAlphaSchedule, ResShiftSchedule

from .conftest import load_npz


@pytest.fixture(scope="module")
def golden():
    return load_npz("diffusion_v1.npz")


def t64(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def test_q_sample_with_stored_noise_matches_official(golden):
    etas = ResShiftSchedule().etas
    x0, y, noise = t64(golden["x0"]), t64(golden["latent_z_y"]), t64(golden["q_noise"])
    for j, k in enumerate(golden["q_t"]):
        out = q_sample(x0, y, float(etas[k]), 2.0, noise=noise)
        np.testing.assert_allclose(out.numpy(), golden["q_sample_f64exact"][j], rtol=0, atol=1e-10)
        np.testing.assert_allclose(out.numpy(), golden["q_sample"][j], rtol=0, atol=1e-5)
    # the training-loss call of the official code noises x0 at step index 3 the same way
    z_t = q_sample(x0, y, torch.tensor([etas[3]]), 2.0, noise=noise)
    np.testing.assert_allclose(z_t.numpy(), golden["tl_z_t"], atol=1e-5)


def test_scale_input_matches_network_inputs(golden):
    """model_in[s] is the scaled state entering loop iteration s (t = 14 - s)."""
    etas = ResShiftSchedule().etas
    for run, latent in (("latent", True), ("pixel", False)):
        states = [golden[f"{run}_x_T"] if run == "latent" else golden["latent_x_T"]]
        states += list(golden[f"{run}_samples"][:-1])
        for s, t_idx in enumerate(golden["latent_step_t"]):
            x_in = scale_input(t64(states[s]), float(etas[t_idx]), 2.0, latent=latent)
            np.testing.assert_allclose(x_in.numpy(), golden[f"{run}_model_in"][s], atol=1e-5)
    tl_in = scale_input(t64(golden["tl_z_t"]), torch.tensor([etas[3]]), 2.0, latent=True)
    np.testing.assert_allclose(tl_in.numpy(), golden["tl_model_in"], atol=1e-5)


def test_posterior_step_matches_official_latent_trace(golden):
    """One float64 posterior step from the stored state reproduces latentf64_samples to 1e-10."""
    sched = ResShiftSchedule()
    etas, prev = sched.etas, sched.etas_prev
    std = np.exp(0.5 * sched.posterior_coefficients()["posterior_log_variance_clipped"])
    # the float64 run starts from its own float64 prior sample, not from the float32-coefficient latent_x_T
    x_t = prior_sample(t64(golden["latent_z_y"]), float(etas[-1]), 2.0, noise=t64(golden["prior_noise"]))
    np.testing.assert_allclose(x_t.numpy(), golden["latent_x_T"], atol=1e-6)
    for s, k in enumerate(golden["latent_step_t"]):
        x_in = scale_input(x_t, float(etas[k]), 2.0, latent=True)
        lq = t64(golden["y"]).repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
        x0_hat = 0.9 * x_in + 0.2 * lq + 0.02 * float(k)  # the fixture's toy network
        mean, _ = posterior_mean_variance(x_t, x0_hat, float(etas[k]), float(prev[k]), 2.0)
        x_t = mean + (k != 0) * float(std[k]) * t64(golden["step_noise"][s])
        np.testing.assert_allclose(x_t.numpy(), golden["latentf64_samples"][s], atol=1e-10, rtol=0)


def test_posterior_equals_gaussian_conditioning():
    """q(x_{k-1} | x_k, x0) from the joint Gaussian of (x_{k-1}, x_k) given x0 (independent algebra)."""
    kappa, eta_prev, eta_t = 2.0, 0.3, 0.45
    alpha = eta_t - eta_prev
    x0, y, x_t = 0.2, -0.7, 0.55
    e0 = y - x0
    m_prev, m_t = x0 + eta_prev * e0, x0 + eta_t * e0
    v_prev = kappa**2 * eta_prev
    v_t = v_prev + kappa**2 * alpha
    cov = v_prev  # Cov(x_{k-1}, x_k) = Var(x_{k-1})
    mean_ref = m_prev + cov / v_t * (x_t - m_t)
    var_ref = v_prev - cov**2 / v_t
    mean, var = posterior_mean_variance(torch.tensor([[x_t]], dtype=torch.float64),
                                        torch.tensor([[x0]], dtype=torch.float64), eta_t, eta_prev, kappa)
    assert float(mean) == pytest.approx(mean_ref, rel=1e-12)
    assert float(var) == pytest.approx(var_ref, rel=1e-12)


def test_forward_chain_marginal_by_simulation():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    sched = ResShiftSchedule()
    x0 = torch.full((n,), 0.3, dtype=torch.float64)
    y = torch.full((n,), -0.5, dtype=torch.float64)
    states = forward_chain(x0, y, sched.etas, sched.kappa, generator=g, return_all=True)
    for k in (1, 5, 15):
        eta = sched.etas[k - 1]
        mean, var = 0.3 + eta * (-0.8), 4 * eta
        xs = states[k]
        assert abs(float(xs.mean()) - mean) < 5 * np.sqrt(var / n)
        assert abs(float(xs.var()) - var) < 5 * var * np.sqrt(2 / n)


def test_prior_and_q_sample_are_seeded():
    y = torch.zeros(2, 3, 8, 8)
    a = prior_sample(y, 0.98, 2.0, generator=torch.Generator().manual_seed(5))
    b = prior_sample(y, 0.98, 2.0, generator=torch.Generator().manual_seed(5))
    c = prior_sample(y, 0.98, 2.0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.std()) == pytest.approx(2 * 0.98**0.5, rel=0.1)


def test_score_x0_round_trip_is_exact():
    g = torch.Generator().manual_seed(1)
    x, x0, y = (torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64) for _ in range(3))
    eta = torch.tensor([0.01, 0.2, 0.5, 0.97], dtype=torch.float64)
    score = score_from_x0(x, x0, y, eta, 2.0)
    back = x0_from_score(x, score, y, eta, 2.0)
    assert torch.allclose(back, x0, rtol=0, atol=1e-12)
    # the score of the Gaussian marginal N(x0 + eta e0, kappa^2 eta) is -(x - mean)/var
    ref = -(x - (x0 + eta.view(-1, 1, 1, 1) * (y - x0))) / (4 * eta.view(-1, 1, 1, 1))
    assert torch.allclose(score, ref, rtol=1e-13, atol=0)


def test_drift_is_report_equation_1_with_correct_score():
    """dx/dt = alpha e0 - kappa^2 alpha score / 2 with e0 -> y - x0_hat and the kappa^2 eta score."""
    g = torch.Generator().manual_seed(2)
    x, x0_hat, y = (torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    sched = ExpAlphaSchedule.report()
    t = torch.tensor([0.2, 0.6, 1.0], dtype=torch.float64)
    eta, alpha = sched.eta(t), sched.alpha(t)
    a = alpha.view(-1, 1, 1, 1)
    eq1 = a * (y - x0_hat) - 0.5 * sched.kappa**2 * a * score_from_x0(x, x0_hat, y, eta, sched.kappa)
    assert torch.allclose(pf_drift(x, x0_hat, y, eta, alpha), eq1, rtol=1e-13, atol=1e-14)
    # the reverse SDE drift per unit eta is f - g^2 score with f = y - x0_hat, g^2 = kappa^2
    sde = (y - x0_hat) - sched.kappa**2 * score_from_x0(x, x0_hat, y, eta, sched.kappa)
    assert torch.allclose(reverse_sde_drift_eta(x, x0_hat, y, eta), sde, rtol=1e-13, atol=1e-13)


def test_exact_step_solves_the_ode_for_fixed_x0_hat():
    rng = np.random.default_rng(3)
    x_a, x0_hat, y = (rng.standard_normal(6) for _ in range(3))
    eta_a, eta_b = 0.9, 0.05

    def rhs(eta, x):
        return pf_drift_eta(torch.from_numpy(x)[None], torch.from_numpy(x0_hat)[None],
                            torch.from_numpy(y)[None], float(eta))[0].numpy()

    ref = solve_ivp(rhs, (eta_a, eta_b), x_a, rtol=1e-12, atol=1e-12).y[:, -1]
    out = pf_exact_step(*(torch.from_numpy(v)[None] for v in (x_a, x0_hat, y)), eta_a, eta_b)[0]
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-9, atol=1e-10)
    # into eta = 0 the exact step lands on x0_hat
    end = pf_exact_step(*(torch.from_numpy(v)[None] for v in (x_a, x0_hat, y)), eta_a, 0.0)[0]
    np.testing.assert_allclose(end.numpy(), x0_hat, atol=1e-15)


def test_bad_input_names_the_argument():
    x = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="x0 and y must have the same shape"):
        q_sample(x, torch.zeros(2, 3, 4, 5), 0.5, 2.0)
    with pytest.raises(ValueError, match="^kappa"):
        q_sample(x, x, 0.5, -2.0)
    with pytest.raises(ValueError, match="^eta must be a float or a tensor of shape"):
        q_sample(x, x, torch.tensor([0.1, 0.2, 0.3]), 2.0)
    with pytest.raises(ValueError, match="^eta "):
        q_sample(x, x, -0.1, 2.0)
    with pytest.raises(ValueError, match="^eta_t"):
        posterior_mean_variance(x, x, 0.0, 0.0, 2.0)
    with pytest.raises(ValueError, match="^eta must be < 1"):
        x0_from_score(x, x, x, 1.0, 2.0)
    with pytest.raises(ValueError, match="noise and x0"):
        q_sample(x, x, 0.5, 2.0, noise=torch.zeros(1))
