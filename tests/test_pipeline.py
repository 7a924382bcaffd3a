"""ctlib.pipeline: the one LR -> SR path is the documented composition, seeded per image, and its
loader says what is wrong with a file."""

from __future__ import annotations

import pytest
import torch

from ctlib import pipeline
from ctlib.diffusion import prior_sample
from ctlib.nn import ResShiftDenoiser, save_checkpoint
from ctlib.nn.vq import VQModel
from ctlib.samplers import sample, solver_grid
from ctlib.schedule import ResShiftSchedule
from ctlib.train import build_network


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny pixel model whose output layer is not zero (so every solver moves the state)."""
    torch.manual_seed(0)
    net = build_network("tiny")
    torch.nn.init.normal_(net.out[-1].weight, std=0.05)
    wrapper = ResShiftDenoiser(net, ResShiftSchedule(), lq="upsampled")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, net, schedule=ResShiftSchedule(), denoiser=wrapper.settings())
    return path


@pytest.fixture(scope="module")
def lr():
    return torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("solver,nfe,rho", [("euler", 5, -8.0), ("heun", 5, 4.0), ("exp2m", 4, 1.0),
                                            ("resshift", 15, 1.0), ("euler_maruyama", 4, 1.0)])
def test_super_resolve_is_the_documented_composition(model_path, lr, solver, nfe, rho):
    """condition(2 lr - 1) -> prior_sample(y, eta(1), kappa, eps) -> ctlib.sample -> (clamp(decode, -1, 1) + 1) / 2,
    eps and the step noise drawn per image from image_generator(i, seed): bit for bit."""
    model = pipeline.load_model(model_path)
    indices, seed = [4, 9, 2], 3
    got = pipeline.super_resolve(model, lr, solver=solver, nfe=nfe, rho=rho, noise=pipeline.image_noise(indices, seed))
    s = model.schedule
    with torch.no_grad():
        cond = model.condition(lr * 2 - 1)
        shape = tuple(cond.y.shape[1:])
        n_steps = len(solver_grid(solver, nfe, rho, s.T)) - 2 if solver in ("resshift", "euler_maruyama") else 0
        eps, steps = [], []
        for i in indices:
            g = torch.Generator().manual_seed(i + 1_000_000 * seed)
            eps.append(torch.randn(shape, generator=g))
            steps.append(torch.randn((n_steps, *shape), generator=g))
        x_T = prior_sample(cond.y, float(s.eta(1.0)), s.kappa, noise=torch.stack(eps))
        noise = [torch.stack([st[k] for st in steps]) for k in range(n_steps)] or None
        x = sample(cond, cond.y, schedule=s, solver=solver, nfe=nfe, rho=rho, x_T=x_T, noise=noise)
        want = (cond.decode(x).clamp(-1, 1) + 1) / 2
    assert torch.equal(got, want)
    assert got.shape == (3, 3, 64, 64) and 0 <= float(got.min()) and float(got.max()) <= 1


def test_an_images_result_does_not_depend_on_its_batch(model_path, lr):
    """Image i's noise is its own: the stochastic euler_maruyama row of image 9 alone equals its row
    in a batch (to float rounding: the network batches its convolutions differently), a second run
    repeats it bit for bit, and the global RNG is never used."""
    model = pipeline.load_model(model_path)
    kw = dict(solver="euler_maruyama", nfe=4, rho=1.0)
    batch = pipeline.super_resolve(model, lr, noise=pipeline.image_noise([4, 9, 2]), **kw)
    torch.manual_seed(123)  # the global RNG must not matter
    alone = pipeline.super_resolve(model, lr[1:2], noise=pipeline.image_noise([9]), **kw)
    assert torch.allclose(alone, batch[1:2], atol=1e-5)
    torch.manual_seed(7)
    assert torch.equal(pipeline.super_resolve(model, lr[1:2], noise=pipeline.image_noise([9]), **kw), alone)
    other_seed = pipeline.super_resolve(model, lr[1:2], noise=pipeline.image_noise([9], seed=1), **kw)
    assert float((other_seed - alone).abs().max()) > 1e-2


def test_x0_hat_and_the_trained_levels(model_path, lr):
    model = pipeline.load_model(model_path)
    noise = pipeline.image_noise(range(3))
    one = pipeline.super_resolve(model, lr, solver="x0_hat", nfe=1, noise=noise)
    with torch.no_grad():
        cond = model.condition(lr * 2 - 1)
        x0_hat = cond(pipeline.seeded_prior(cond, range(3)), torch.ones(3, dtype=torch.float64), cond.y)
    assert torch.equal(one, pipeline.to_image(cond.decode(x0_hat)))
    # exp1 on nfe of the trained levels k/T (the few-step baseline) with one level is x0_hat held
    levels = pipeline.super_resolve(model, lr, solver="exp1_levels", nfe=1, noise=noise)
    assert torch.allclose(levels, one, atol=1e-6)
    with pytest.raises(ValueError, match="nfe must be 1"):
        pipeline.super_resolve(model, lr, solver="x0_hat", nfe=2)
    with pytest.raises(ValueError, match="nfe must be <= T"):
        pipeline.super_resolve(model, lr, solver="exp1_levels", nfe=16)
    with pytest.raises(ValueError, match="unknown solver"):
        pipeline.super_resolve(model, lr, solver="rk4", nfe=5)


def test_upsample_is_the_models_bicubic(model_path, lr):
    from ctlib.nn.denoiser import upsample_lr

    model = pipeline.load_model(model_path)
    want = ((upsample_lr(lr * 2 - 1, 4).clamp(-1, 1) + 1) / 2)
    assert torch.equal(pipeline.upsample(model, lr), want)


def test_load_model_names_what_is_wrong(model_path, tmp_path):
    assert isinstance(pipeline.load_model(model_path), ResShiftDenoiser)
    den = pipeline.load_model(model_path, fast=False)
    assert pipeline.load_model(den) is den  # passed through
    with pytest.raises(ValueError, match="only used with a checkpoint path"):
        pipeline.load_model(den, autoencoder="x.pth")
    with pytest.raises(TypeError, match="checkpoint path or a ResShiftDenoiser"):
        pipeline.load_model(3)
    with pytest.raises(FileNotFoundError, match="checkpoint not found: no/such.pt .looked in"):
        pipeline.load_model("no/such.pt")
    with pytest.raises(FileNotFoundError, match="autoencoder weight file not found"):
        pipeline.load_model(model_path, autoencoder=tmp_path / "missing_vq.pth")
    vq = tmp_path / "vq.pt"
    save_checkpoint(vq, VQModel(embed_dim=3, n_embed=8, ddconfig={
        "double_z": False, "z_channels": 3, "resolution": 16, "in_channels": 3, "out_ch": 3, "ch": 32,
        "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}))
    with pytest.raises(ValueError, match="VQModel checkpoint .an autoencoder., not a denoiser network"):
        pipeline.load_model(vq)
    official = tmp_path / "resshift_realsrx4_s15_v1.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, official)
    with pytest.raises(ValueError, match="also give the official autoencoder .autoencoder_vq_f4.pth."):
        pipeline.load_model(official)
    with pytest.raises(ValueError, match="device"):
        pipeline.load_model(model_path, device="tpu")


def test_noise_sources_check_their_batch():
    y = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="one index per image"):
        pipeline.image_noise([0, 1, 2])(y, 0)
    eps, steps = pipeline.batch_noise(torch.Generator().manual_seed(0))(y, 2)
    assert eps.shape == y.shape and len(steps) == 2 and not torch.equal(steps[0], steps[1])
