"""The ``resshift`` sampler against the golden traces of the official code (fixture README, section 4).

The official toy network is rebuilt by hand: ``toy(x_in, t_idx, lq) = 0.9 x_in + 0.2 NN4(lq) + 0.02 t_idx``
with ``x_in = scale_input(x_t, eta(t), kappa, latent)``, ``t_idx = T t - 1`` and ``lq`` the stored 16x16
LR image; the pixel run clamps x0_hat to [-1, 1].  The stored start and per-step noise are fed in.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctlib.diffusion import prior_sample, scale_input
from ctlib.samplers import sample, sample_resshift
from ctlib.schedule import ResShiftSchedule

from .conftest import load_npz


def _toy_denoiser(schedule: ResShiftSchedule, lq: torch.Tensor, latent: bool, seen: list):
    nn4 = lq.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1)

    def denoiser(x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        eta = schedule.eta(t)
        x_in = scale_input(x_t, eta, schedule.kappa, latent=latent)
        t_idx = torch.round(schedule.T * t - 1)
        seen.append((x_in.clone(), t_idx.clone()))
        out = 0.9 * x_in + 0.2 * nn4 + 0.02 * t_idx.reshape(-1, 1, 1, 1)
        return out.clamp(-1, 1) if not latent else out

    return denoiser


@pytest.fixture(scope="module")
def ref():
    return load_npz("diffusion_v1.npz")


@pytest.mark.parametrize("run", ["latent", "pixel"])
def test_resshift_reproduces_official_trace(ref, run):
    schedule = ResShiftSchedule()
    assert np.allclose(schedule.etas, ref["etas"], rtol=1e-14, atol=0)
    lq = torch.from_numpy(ref["y"]).double()
    z_y = torch.from_numpy(ref["latent_z_y"])
    x_T = torch.from_numpy(ref["latent_x_T"])  # the pixel run starts from the same x_T
    # the stored start is the prior sample built from the stored prior noise
    x_T_ours = prior_sample(z_y, float(schedule.eta(1.0)), schedule.kappa,
                            noise=torch.from_numpy(ref["prior_noise"]).double())
    assert torch.allclose(x_T_ours, x_T, atol=1e-6, rtol=0)

    seen: list = []
    trace: list = []
    out = sample(
        _toy_denoiser(schedule, lq, run == "latent", seen),
        z_y,
        schedule=schedule,
        solver="resshift",
        nfe=15,
        x_T=x_T,
        noise=torch.from_numpy(ref["step_noise"]).double(),
        callback=lambda info: trace.append(info["x_next"]),
    )
    samples = torch.stack(trace).numpy()
    np.testing.assert_allclose(samples, ref[f"{run}_samples"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(out.numpy(), ref[f"{run}_final"], atol=1e-5, rtol=0)
    # what the network saw: the scaled state and the integer index T t - 1 = 14..0
    np.testing.assert_allclose(torch.stack([s[0] for s in seen]).numpy(), ref[f"{run}_model_in"], atol=1e-5)
    assert [int(s[1].item()) for s in seen] == ref["latent_model_t"][:, 0].tolist()
    if run == "pixel":  # the clamped toy output is the last x0 guess, which the sampler returns
        np.testing.assert_allclose(out.numpy(), ref["pixel_pred_xstart"][-1], atol=1e-5)


def test_resshift_float64_matches_exact_trace(ref):
    """Against the float64-coefficient run of the official code: agreement to 1e-10.

    That run also built its start in float64 (``latent_x_T`` used a float32 coefficient and differs
    from it by 8e-8), so the start here is ``prior_sample`` of the stored prior noise.
    """
    schedule = ResShiftSchedule()
    lq = torch.from_numpy(ref["y"]).double()
    z_y = torch.from_numpy(ref["latent_z_y"])
    x_T = prior_sample(z_y, float(schedule.eta(1.0)), schedule.kappa,
                       noise=torch.from_numpy(ref["prior_noise"]).double())
    trace: list = []
    out = sample_resshift(
        _toy_denoiser(schedule, lq, True, []),
        x_T,
        z_y,
        schedule=schedule,
        noise=[torch.from_numpy(n).double() for n in ref["step_noise"][:-1]],  # the last one is unused
        callback=lambda info: trace.append(info["x_next"]),
    )
    np.testing.assert_allclose(torch.stack(trace).numpy(), ref["latentf64_samples"], atol=1e-10, rtol=0)
    np.testing.assert_allclose(out.numpy(), ref["latentf64_final"], atol=1e-10, rtol=0)


def test_resshift_float32_and_generator(ref):
    """float32 runs stay close to the float64 trace; drawn noise is reproducible per generator."""
    schedule = ResShiftSchedule()
    lq = torch.from_numpy(ref["y"]).float()
    den = _toy_denoiser(schedule, lq, True, [])
    z_y = torch.from_numpy(ref["latent_z_y"]).float()
    out32 = sample(den, z_y, schedule=schedule, solver="resshift", nfe=15,
                   x_T=torch.from_numpy(ref["latent_x_T"]).float(),
                   noise=torch.from_numpy(ref["step_noise"]))
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.double().numpy(), ref["latentf64_final"], atol=1e-4)
    a = sample(den, z_y, schedule=schedule, solver="resshift", nfe=15, generator=torch.Generator().manual_seed(3))
    b = sample(den, z_y, schedule=schedule, solver="resshift", nfe=15, generator=torch.Generator().manual_seed(3))
    c = sample(den, z_y, schedule=schedule, solver="resshift", nfe=15, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.allclose(a, c)
