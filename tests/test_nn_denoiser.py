"""The network -> denoiser wrapper against the official sampling run (diffusion_v1.npz)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ctlib.diffusion import posterior_mean_variance
from ctlib.nn.checkpoint import save_checkpoint
from ctlib.nn.denoiser import (
    ResShiftDenoiser,
    build_official_denoiser,
    denoiser_from_checkpoint,
    reflect_pad,
    time_to_index,
    upsample_lr,
)
from ctlib.nn.unet import UNetModelSwin
from ctlib.nn.vq import IdentityFirstStage, VQModel
from ctlib.schedule import ResShiftSchedule

from .conftest import FIXTURES, load_npz

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


class ToyNetwork(nn.Module):
    """The fixture's toy: 0.9 x_in + 0.2 NN4(lq) + 0.02 t; records what it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x_in: torch.Tensor, index: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        self.calls.append((x_in.clone(), index.clone(), lq.clone()))
        up = lq.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1)
        return 0.9 * x_in + 0.2 * up + 0.02 * index.to(x_in.dtype).reshape(-1, 1, 1, 1)


def _toy_wrapper(run: str) -> tuple[ResShiftDenoiser, ToyNetwork]:
    toy = ToyNetwork()
    if run == "latent":  # identity first stage: "latent" only means the latent normalisation branch
        wrapper = ResShiftDenoiser(toy, ResShiftSchedule(), autoencoder=IdentityFirstStage())
    else:
        wrapper = ResShiftDenoiser(toy, ResShiftSchedule())
    return wrapper, toy


@pytest.mark.parametrize("run", ["latent", "pixel"])
def test_wrapper_reproduces_official_posterior_steps(run):
    ref = load_npz("diffusion_v1.npz")
    wrapper, toy = _toy_wrapper(run)
    assert wrapper.latent_scaling == (run == "latent") and wrapper.clamp_x0 == (run == "pixel")
    lr = torch.from_numpy(ref["y"]).double()
    cond = wrapper.condition(lr)
    torch.testing.assert_close(cond.y, torch.from_numpy(ref["latent_z_y"]), rtol=0, atol=1e-12)
    assert torch.equal(cond.lq, lr)  # the network sees the raw LR image

    schedule, T = wrapper.schedule, wrapper.schedule.T
    samples = torch.from_numpy(ref[f"{run}_samples"])
    model_in = torch.from_numpy(ref[f"{run}_model_in"])
    x_T = torch.from_numpy(ref["latent_x_T"])
    for s in (0, 1, 7, 13, 14):  # loop iterations; iteration s is the official step k = 14 - s
        k = int(ref["latent_step_t"][s])
        x_t = x_T if s == 0 else samples[s - 1]
        t = torch.tensor([(k + 1) / T], dtype=torch.float64)
        x0_hat = cond(x_t, t, cond.y)
        fed_x, fed_index, _ = toy.calls[-1]
        torch.testing.assert_close(fed_x, model_in[s], rtol=0, atol=1e-6)
        assert float(fed_index) == k == int(ref["latent_model_t"][s, 0])
        if run == "pixel":
            torch.testing.assert_close(x0_hat, torch.from_numpy(ref["pixel_pred_xstart"][s]), rtol=0, atol=1e-6)
        mean, var = posterior_mean_variance(x_t, x0_hat, schedule.eta(float(t)), schedule.eta(k / T), schedule.kappa)
        noise = torch.from_numpy(ref["step_noise"][s]).double()
        nxt = mean + (k != 0) * var**0.5 * noise
        torch.testing.assert_close(nxt, samples[s], rtol=0, atol=1e-5)


def test_pixel_run_clamps_where_the_official_run_clipped():
    ref = load_npz("diffusion_v1.npz")
    wrapper, _ = _toy_wrapper("pixel")
    cond = wrapper.condition(torch.from_numpy(ref["y"]).double())
    x_t = torch.from_numpy(ref["latent_x_T"])
    x0_hat = cond(x_t, torch.ones(1, dtype=torch.float64), cond.y)
    unclamped = ResShiftDenoiser(wrapper.network, wrapper.schedule, clamp_x0=False).condition(cond.lq)(
        x_t, torch.ones(1, dtype=torch.float64)
    )
    assert (unclamped.abs() > 1).any() and x0_hat.abs().max() <= 1
    torch.testing.assert_close(x0_hat, unclamped.clamp(-1, 1), rtol=0, atol=0)


def test_time_mapping():
    t = torch.arange(1, 16, dtype=torch.float32) / 15  # float32 k/T is not exact: the index snaps
    assert torch.equal(time_to_index(t, 15), torch.arange(15, dtype=torch.float64))
    mid = time_to_index(torch.tensor([0.5, 1 / 30]), 15)
    torch.testing.assert_close(mid, torch.tensor([6.5, -0.5], dtype=torch.float64))


def test_reflect_pad_matches_numpy_reflect():
    x = torch.arange(2 * 3 * 5, dtype=torch.float64).reshape(1, 2, 3, 5)
    for ph, pw in [(0, 0), (1, 3), (2, 4), (7, 11)]:
        ref = np.pad(x.numpy(), ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
        assert np.array_equal(reflect_pad(x, ph, pw).numpy(), ref), (ph, pw)


def _small_unet(**overrides) -> UNetModelSwin:
    d = torch.load(FIXTURES / "unet_small.pt", weights_only=True)
    model = UNetModelSwin(**{**{k: v for k, v in d["config"].items() if k != "forward_call"}, **overrides})
    model.load_state_dict(d["state_dict"])
    return model.eval()


def _small_vq() -> VQModel:
    d = torch.load(FIXTURES / "vqgan_small.pt", weights_only=True)
    model = VQModel(**{k: v for k, v in d["config"].items() if k != "calls"})
    model.load_state_dict(d["state_dict"])
    return model.eval()


def test_pixel_wrapper_pads_and_crops_any_size():
    net = _small_unet()  # size_multiple 32, lq_size == image_size
    wrapper = ResShiftDenoiser(net, ResShiftSchedule(), lq="upsampled")
    assert wrapper.lr_multiple == 8  # 8 LR pixels -> 32 state pixels
    gen = torch.Generator().manual_seed(0)
    lr = torch.rand(2, 3, 10, 13, generator=gen) * 2 - 1
    cond = wrapper.condition(lr)
    assert cond.y.shape == (2, 3, 64, 64) and torch.equal(cond.lq, cond.y)
    torch.testing.assert_close(cond.y, upsample_lr(reflect_pad(lr, 6, 3), 4), rtol=0, atol=0)
    x_t = cond.y + 0.5 * torch.randn(cond.y.shape, generator=gen)
    t = torch.tensor([0.4, 1.0])
    with torch.no_grad():
        x0_hat = cond(x_t, t, cond.y)
    assert x0_hat.shape == cond.y.shape and x0_hat.abs().max() <= 1
    # what the network gets: the pixel normalisation and the float index T t - 1
    x_in, index = wrapper.network_input(x_t, t.double())
    eta = wrapper.schedule.eta(t.double())
    torch.testing.assert_close(x_in, x_t / (3 * 2.0 * eta.sqrt() + 1).float().reshape(-1, 1, 1, 1))
    torch.testing.assert_close(index, torch.tensor([5.0, 14.0], dtype=torch.float64))
    with torch.no_grad():
        direct = net(x_in, index, lq=cond.y).clamp(-1, 1)
    torch.testing.assert_close(x0_hat, direct, rtol=0, atol=0)
    assert cond.decode(x0_hat).shape == (2, 3, 40, 52)


def test_latent_wrapper_with_vq_encodes_upsampled_lr_and_decodes():
    net = _small_unet()  # latent and LR have the same size (lq="lr")
    vq = _small_vq()
    wrapper = ResShiftDenoiser(net, ResShiftSchedule(), autoencoder=vq)
    assert (wrapper.latent_scaling, wrapper.clamp_x0, wrapper.lr_multiple) == (True, False, 32)
    lr = torch.rand(1, 3, 20, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    cond = wrapper.condition(lr)
    with torch.no_grad():
        expected_y = vq.encode(upsample_lr(reflect_pad(lr, 12, 0), 4))
    torch.testing.assert_close(cond.y, expected_y, rtol=0, atol=0)
    assert cond.lq.shape == (1, 3, 32, 32) and cond.y.shape == (1, 3, 32, 32)
    x0_hat = cond(cond.y, torch.tensor([0.5]), cond.y)
    assert x0_hat.shape == cond.y.shape and (x0_hat.abs() > 1).any()  # latent path: no clamp
    wrapper.train()
    assert wrapper.network.training and not vq.training  # the autoencoder stays frozen
    wrapper.eval()
    image = cond.decode(x0_hat)
    assert image.shape == (1, 3, 80, 128)
    with torch.no_grad():
        torch.testing.assert_close(image, vq.decode(x0_hat)[..., :80, :128], rtol=0, atol=0)


def test_float64_state_with_float32_network():
    wrapper = ResShiftDenoiser(_small_unet(), ResShiftSchedule(), lq="upsampled")
    cond = wrapper.condition(torch.zeros(1, 3, 8, 8, dtype=torch.float64))
    out = cond(cond.y, torch.tensor([0.2], dtype=torch.float64), cond.y)
    assert out.dtype == torch.float64


def test_bad_inputs_raise_clear_errors():
    wrapper = ResShiftDenoiser(_small_unet(), ResShiftSchedule(), lq="upsampled")
    cond = wrapper.condition(torch.zeros(1, 3, 8, 8))
    x, t = cond.y.clone(), torch.tensor([0.5])
    with pytest.raises(ValueError, match="3 channels"):
        cond(torch.zeros(1, 4, 32, 32), t, cond.y)
    with pytest.raises(ValueError, match="3 channels"):
        wrapper.condition(torch.zeros(1, 1, 8, 8))
    nan_x = x.clone()
    nan_x[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        cond(nan_x, t, cond.y)
    with pytest.raises(ValueError, match="NaN"):
        wrapper.condition(torch.full((1, 3, 8, 8), float("nan")))
    for bad_t in (torch.tensor([0.0]), torch.tensor([1.5]), torch.tensor([float("nan")])):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            cond(x, bad_t, cond.y)
    with pytest.raises(ValueError, match="shape"):
        cond(x, torch.tensor([0.5, 0.5]), cond.y)
    with pytest.raises(TypeError, match="floating-point"):
        cond(x, torch.tensor([1]), cond.y)
    with pytest.raises(ValueError, match="shape of cond.y"):
        cond(torch.zeros(1, 3, 64, 64), t, None)
    # the raw network names the multiple it needs
    with pytest.raises(ValueError, match="multiples of 32"):
        wrapper(torch.zeros(1, 3, 40, 40), t, torch.zeros(1, 3, 40, 40))
    with pytest.raises(ValueError, match="lr_multiple"):
        ResShiftDenoiser(_small_unet(), ResShiftSchedule(), lr_multiple=12)
    with pytest.raises(ValueError, match="lq must be one of"):
        ResShiftDenoiser(_small_unet(), ResShiftSchedule(), lq="hr")


def test_denoiser_from_checkpoint_reproduces_the_wrapper(tmp_path):
    net = _small_unet(mask_style="textbook")
    schedule = ResShiftSchedule()
    wrapper = ResShiftDenoiser(net, schedule, lq="upsampled")
    path = save_checkpoint(tmp_path / "pixel.pt", net, schedule=schedule, denoiser=wrapper.settings())
    rebuilt = denoiser_from_checkpoint(path, fast=False)  # bit for bit: the plain modules (fast: test_nn_fast)
    assert rebuilt.settings() == wrapper.settings() and rebuilt.network.config["mask_style"] == "textbook"
    lr = torch.rand(1, 3, 8, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    a, b = wrapper.condition(lr), rebuilt.condition(lr)
    t = torch.tensor([0.7])
    torch.testing.assert_close(b(b.y, t, b.y), a(a.y, t, a.y), rtol=0, atol=0)


def test_build_official_denoiser_from_weight_files(tmp_path):
    unet = torch.load(FIXTURES / "unet_small.pt", weights_only=True)
    vq = torch.load(FIXTURES / "vqgan_small.pt", weights_only=True)
    torch.save({"module." + k: v for k, v in unet["state_dict"].items()}, tmp_path / "unet.pth")
    torch.save({"state_dict": vq["state_dict"]}, tmp_path / "vq.pth")
    unet_config = {k: v for k, v in unet["config"].items() if k != "forward_call"}
    vq_config = {k: v for k, v in vq["config"].items() if k != "calls"}
    wrapper = build_official_denoiser(tmp_path / "unet.pth", tmp_path / "vq.pth", unet_config=unet_config, vq_config=vq_config)
    assert (wrapper.space, wrapper.latent_scaling, wrapper.clamp_x0, wrapper.lq_mode) == ("latent", True, False, "lr")
    assert wrapper.lr_multiple == 64  # the official sampler's desired_min_size
    with torch.no_grad():
        out = wrapper.network(unet["inputs"]["x"], unet["inputs"]["timesteps"], lq=unet["inputs"]["lq"])
        h = wrapper.autoencoder.encode(vq["inputs"]["x"])
    torch.testing.assert_close(out, unet["output"], rtol=0, atol=1e-5)
    torch.testing.assert_close(h, vq["outputs_float32"]["h"], rtol=0, atol=1e-5)
    assert not any(p.requires_grad for p in wrapper.autoencoder.parameters())


def test_gradients_reach_the_network_only():
    net, vq = _small_unet(), _small_vq()
    wrapper = ResShiftDenoiser(net, ResShiftSchedule(), autoencoder=vq).train()
    cond = wrapper.condition(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1)
    cond(cond.y, torch.tensor([0.3]), cond.y).square().mean().backward()
    assert net.out[2].weight.grad is not None and float(net.out[2].weight.grad.abs().sum()) > 0
    assert all(p.grad is None for p in vq.parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_denoiser_from_checkpoint_names_a_missing_device(tmp_path):
    """Issue 18 item 16: device='cuda' without CUDA reported the good file as corrupt."""
    net = _small_unet()
    path = save_checkpoint(tmp_path / "pixel.pt", net, schedule=ResShiftSchedule())
    with pytest.raises(ValueError, match="no usable CUDA GPU"):
        denoiser_from_checkpoint(path, device="cuda")
    with pytest.raises(ValueError, match="must be 'cpu', 'cuda' or 'cuda:N', got 'gpu0'"):
        denoiser_from_checkpoint(path, device="gpu0")
