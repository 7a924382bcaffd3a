"""Real-ESRGAN degradation: kernels against analytic formulas (scipy), sampled ranges over many
seeds, noise levels by measurement, JPEG against libjpeg (Pillow), sizes and seeding."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy import ndimage, special, stats

from ctlib.data.degradation import (
    add_gaussian_noise,
    add_poisson_noise,
    apply_degradation,
    degrade,
    filter2d,
    jpeg_compress,
    jpeg_compress_pillow,
)
from ctlib.data.degradation_params import (
    KERNEL_TYPES,
    REALESRGAN_TRAIN,
    RESIZE_MODES,
    RESSHIFT_TEST,
    DegradationConfig,
    gaussian_kernel,
    generalized_gaussian_kernel,
    get_preset,
    plateau_kernel,
    pulse_kernel,
    sample_degradation,
    sinc_kernel,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------- kernels


def _grid(size: int):
    ax = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)  # x along columns, y along rows
    return xx, yy


@pytest.mark.parametrize("size,sx,sy,theta", [(21, 2.0, 0.7, 0.6), (15, 1.3, 2.9, -2.2), (7, 0.4, 0.9, 3.0)])
def test_anisotropic_gaussian_matches_scipy(size, sx, sy, theta):
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cov = rot @ np.diag([sx**2, sy**2]) @ rot.T
    xx, yy = _grid(size)
    pdf = stats.multivariate_normal(mean=[0, 0], cov=cov).pdf(np.stack([xx, yy], -1))
    np.testing.assert_allclose(gaussian_kernel(size, sx, sy, theta).numpy(), pdf / pdf.sum(), rtol=1e-10, atol=1e-15)


def test_generalized_and_plateau_formulas():
    size, sx, sy, theta = 13, 1.7, 0.9, 0.4
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([sx**2, sy**2]) @ rot.T)
    xx, yy = _grid(size)
    xy = np.stack([xx, yy], -1)
    q = np.einsum("...i,ij,...j->...", xy, inv, xy)
    for beta in (0.5, 1.0, 2.5):
        g = np.exp(-0.5 * q**beta)
        np.testing.assert_allclose(generalized_gaussian_kernel(size, sx, sy, theta, beta).numpy(), g / g.sum(), rtol=1e-10)
        p = 1 / (q**beta + 1)
        np.testing.assert_allclose(plateau_kernel(size, sx, sy, theta, beta).numpy(), p / p.sum(), rtol=1e-10)
    # beta = 1 generalized Gaussian is the Gaussian
    torch.testing.assert_close(generalized_gaussian_kernel(size, sx, sy, theta, 1.0), gaussian_kernel(size, sx, sy, theta))


@pytest.mark.parametrize("size,omega", [(21, math.pi / 5), (7, math.pi / 3), (13, 2.5), (3, math.pi)])
def test_sinc_kernel_matches_bessel_formula(size, omega):
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = omega * special.j1(omega * r) / (2 * np.pi * r)
    k[r == 0] = omega**2 / (4 * np.pi)
    np.testing.assert_allclose(sinc_kernel(size, omega).numpy(), k / k.sum(), rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("preset", ["train", "test"])
def test_every_kernel_sums_to_one_and_isotropic_ones_are_symmetric(preset):
    cfg = get_preset(preset)
    seen = Counter()
    for seed in range(40):
        p = sample_degradation(4, _gen(seed), cfg)
        for st in (p.first, p.second):
            torch.testing.assert_close(st.kernels.sum((-2, -1)), torch.ones(4, dtype=torch.float64))
            for k, kd in zip(st.kernels, st.kernel_draws):
                seen[kd.kind] += 1
                if kd.kind != "sinc":  # only the sinc has negative lobes
                    assert (k >= 0).all()
                # every kernel is centrally symmetric
                torch.testing.assert_close(k, k.flip(0).flip(1))
                if kd.kind in ("iso", "generalized_iso", "plateau_iso", "sinc"):
                    torch.testing.assert_close(k, k.T)
                    torch.testing.assert_close(k, k.flip(0))
        torch.testing.assert_close(p.final_sinc.sum((-2, -1)), torch.ones(4, dtype=torch.float64))
    assert seen["iso"] > 0 and seen["aniso"] > 0


def test_filter2d_matches_scipy_mirror_correlation():
    g = _gen(3)
    x = torch.rand(2, 3, 20, 23, generator=g, dtype=torch.float64)
    k = torch.rand(2, 7, 7, generator=g, dtype=torch.float64)
    out = filter2d(x, k)
    for b in range(2):
        for c in range(3):
            ref = ndimage.correlate(x[b, c].numpy(), k[b].numpy(), mode="mirror")
            np.testing.assert_allclose(out[b, c].numpy(), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(filter2d(x, pulse_kernel(15)), x)


# ------------------------------------------------------------------------- sampled values


def _check_stage(st, cfg: DegradationConfig, second: bool, b: int) -> None:
    sfx = "2" if second else ""
    full = cfg.blur_kernel_size2 if second else cfg.blur_kernel_size
    sizes = set(range(3, full, 2))
    lo_s, hi_s = getattr(cfg, "blur_sigma" + sfx)
    assert st.kernels.shape == (b, full, full)
    for kd in st.kernel_draws:
        assert kd.size in sizes
        if kd.kind == "sinc":
            lo = math.pi / 3 if kd.size < 13 else math.pi / 5
            assert lo <= kd.omega_c <= math.pi
            continue
        assert kd.kind in KERNEL_TYPES
        assert lo_s <= kd.sigma_x <= hi_s and lo_s <= kd.sigma_y <= hi_s
        assert -math.pi <= kd.theta <= math.pi
        if kd.kind.startswith(("generalized", "plateau")):
            blo, bhi = getattr(cfg, ("betag_range" if kd.kind.startswith("gen") else "betap_range") + sfx)
            assert min(blo, 1.0) <= kd.beta <= max(bhi, 1.0)
    lo_r, hi_r = getattr(cfg, "resize_range" + sfx)
    assert st.resize in ("up", "down", "keep") and st.resize_mode in RESIZE_MODES
    if st.resize == "up":
        assert 1.0 <= st.resize_scale <= hi_r
    elif st.resize == "down":
        assert lo_r <= st.resize_scale <= 1.0
    else:
        assert st.resize_scale == 1.0
    for name, values in (("noise_range", st.gaussian_sigma), ("poisson_scale_range", st.poisson_scale),
                         ("jpeg_range", st.jpeg_quality)):
        lo, hi = getattr(cfg, name + sfx)
        assert values.shape == (b,) and bool(((values >= lo) & (values <= hi)).all()), (name, values)


@pytest.mark.parametrize("preset", ["train", "test"])
def test_sampled_parameters_stay_in_configured_ranges(preset):
    cfg = get_preset(preset)
    kinds, second, gray, gauss, resize = Counter(), 0, 0, 0, Counter()
    n_seeds, b = 400, 3
    for seed in range(n_seeds):
        p = sample_degradation(b, _gen(seed), cfg)
        _check_stage(p.first, cfg, False, b)
        _check_stage(p.second, cfg, True, b)
        lo, hi = cfg.jpeg_range2
        assert bool(((p.final_jpeg_quality >= lo) & (p.final_jpeg_quality <= hi)).all())
        for fd in p.final_sinc_draws:
            assert fd.kind == "pulse" or (fd.size in range(3, cfg.blur_kernel_size2, 2)
                                          and math.pi / 3 <= fd.omega_c <= math.pi)
        assert p.final_order in ("resize_sinc_then_jpeg", "jpeg_then_resize_sinc")
        kinds.update(kd.kind for kd in p.first.kernel_draws)
        second += p.second_order
        gray += int(p.first.gray_noise.sum())
        gauss += p.first.noise == "gaussian"
        resize[p.first.resize] += 1
    # the frequencies follow the configured probabilities (fixed seeds: deterministic)
    n_k = n_seeds * b
    sinc = kinds.pop("sinc", 0)
    assert stats.binomtest(sinc, n_k, cfg.sinc_prob).pvalue > 1e-3
    probs = dict(zip(cfg.kernel_list, cfg.kernel_prob))
    observed = [kinds.get(k, 0) for k in KERNEL_TYPES if probs[k] > 0]
    expected = np.array([probs[k] for k in KERNEL_TYPES if probs[k] > 0]) * sum(kinds.values())
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    assert all(kinds.get(k, 0) == 0 for k in KERNEL_TYPES if probs[k] == 0)
    assert stats.binomtest(gray, n_k, cfg.gray_noise_prob).pvalue > 1e-3
    assert stats.binomtest(gauss, n_seeds, cfg.gaussian_noise_prob).pvalue > 1e-3
    if cfg.second_order_prob in (0.0, 1.0):
        assert second == n_seeds * cfg.second_order_prob
    else:
        assert stats.binomtest(second, n_seeds, cfg.second_order_prob).pvalue > 1e-3
    exp_r = np.array(cfg.resize_prob) * n_seeds
    assert stats.chisquare([resize["up"], resize["down"], resize["keep"]], exp_r).pvalue > 1e-3


# ---------------------------------------------------------------------------------- noise


def test_gaussian_noise_std_matches_drawn_sigma():
    x = torch.full((3, 3, 192, 192), 0.5, dtype=torch.float64)
    sigma = torch.tensor([3.0, 12.5, 25.0])
    gray = torch.tensor([False, True, False])
    out = add_gaussian_noise(x, sigma, gray, _gen(0))
    noise = (out - x) * 255.0
    measured = noise.flatten(1).std(dim=1)
    torch.testing.assert_close(measured, sigma.double(), rtol=0.02, atol=0)
    # gray noise: one plane shared by the channels; colour noise: independent channels
    torch.testing.assert_close(noise[1, 0], noise[1, 2])
    r = np.corrcoef(noise[0, 0].flatten().numpy(), noise[0, 1].flatten().numpy())[0, 1]
    assert abs(r) < 0.03


def test_poisson_noise_variance_matches_the_model():
    """All 256 levels present -> 256 photon levels: var(noise) = scale^2 * x / 256."""
    g = _gen(1)
    codes = torch.arange(256, dtype=torch.float64).repeat(3 * 64 * 8)[: 3 * 128 * 128].reshape(1, 3, 128, 128)
    codes = codes[..., torch.randperm(128, generator=g)]
    x = (codes / 255.0).expand(2, -1, -1, -1).contiguous()
    scale = torch.tensor([0.5, 2.0])
    out = add_poisson_noise(x, scale, torch.tensor([False, False]), _gen(2), clip=False)
    for i in range(2):
        noise = (out[i] - x[i]).flatten()
        v = x[i].flatten()
        band = (v > 0.2) & (v < 0.6)
        expected_var = float(scale[i]) ** 2 * float(v[band].mean()) / 256.0
        assert float(noise[band].var()) == pytest.approx(expected_var, rel=0.04)
    gray_out = add_poisson_noise(x, scale, torch.tensor([True, True]), _gen(3), clip=False)
    torch.testing.assert_close(gray_out[0, 0] - x[0, 0], gray_out[0, 1] - x[0, 1])


# ----------------------------------------------------------------------------------- JPEG


@pytest.fixture(scope="module")
def photos():
    from ctlib.data.bundled import bundled_paths
    from ctlib.data.io import read_image_tensor

    paths = bundled_paths("test")[:4]
    return torch.stack([read_image_tensor(p)[:, 64:192, 64:192] for p in paths])  # 128 x 128 crops


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize("q", [30, 60, 90])
def test_torch_jpeg_error_level_matches_libjpeg(photos, q):
    ours, pil = jpeg_compress(photos, q), jpeg_compress_pillow(photos, q)
    assert abs(_psnr(ours, photos) - _psnr(pil, photos)) < 1.5
    assert _psnr(ours, pil) > 33  # the two codecs give nearly the same image


def test_torch_jpeg_quality_order_and_per_image_quality(photos):
    psnrs = [_psnr(jpeg_compress(photos, q), photos) for q in (20, 50, 80, 95)]
    assert all(a < b for a, b in zip(psnrs, psnrs[1:]))
    q = torch.tensor([30.0, 50.0, 70.0, 90.0])
    batch = jpeg_compress(photos, q)
    for i in range(4):
        torch.testing.assert_close(batch[i : i + 1], jpeg_compress(photos[i : i + 1], float(q[i])))
    odd = jpeg_compress(photos[:, :, :50, :37], 75)  # sizes not multiples of 16
    assert odd.shape == (4, 3, 50, 37)
    with pytest.raises(ValueError, match="quality"):
        jpeg_compress(photos, 0)


# ------------------------------------------------------------------------------- pipeline


@pytest.mark.parametrize("preset", ["train", "test"])
@pytest.mark.parametrize("h,w", [(64, 64), (96, 128)])
def test_output_is_hr_over_four_on_8bit_levels(preset, h, w):
    hr = torch.rand(2, 3, h, w, generator=_gen(h + w))
    lr = degrade(hr, _gen(5), preset)
    assert lr.shape == (2, 3, h // 4, w // 4)
    assert lr.dtype == hr.dtype
    assert float(lr.min()) >= 0 and float(lr.max()) <= 1
    torch.testing.assert_close(lr * 255, torch.round(lr * 255), rtol=0, atol=1e-4)


def test_same_seed_same_output_different_seed_different_output(photos):
    hr = photos[:2].contiguous()
    a = degrade(hr, _gen(11))
    b = degrade(hr, _gen(11))
    c = degrade(hr, _gen(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # params + apply with the same generator state reproduce degrade()
    g = _gen(11)
    p = sample_degradation(2, g, REALESRGAN_TRAIN)
    assert torch.equal(apply_degradation(hr, p, g), a)


def test_pillow_backend_and_float64():
    hr = torch.rand(1, 3, 64, 64, generator=_gen(0), dtype=torch.float64)
    lr = degrade(hr, _gen(1), REALESRGAN_TRAIN.replace(jpeg_backend="pillow"))
    assert lr.shape == (1, 3, 16, 16) and lr.dtype == torch.float64


def test_bad_inputs_and_configs():
    with pytest.raises(ValueError, match="multiples of scale"):
        degrade(torch.rand(1, 3, 66, 64), _gen(0))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        degrade(torch.rand(3, 64, 64), _gen(0))
    with pytest.raises(TypeError, match="generator"):
        degrade(torch.rand(1, 3, 64, 64), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kernel_prob"):
        DegradationConfig(kernel_prob=(0.5, 0.5, 0.5, 0, 0, 0))
    with pytest.raises(ValueError, match="noise_range"):
        DegradationConfig(noise_range=(30.0, 1.0))
    with pytest.raises(ValueError, match="preset"):
        get_preset("nope")
    assert DegradationConfig.from_dict(RESSHIFT_TEST.to_dict()) == RESSHIFT_TEST


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_gpu_with_a_cuda_generator():
    hr = torch.rand(4, 3, 128, 128, device="cuda")
    g1 = torch.Generator(device="cuda").manual_seed(0)
    g2 = torch.Generator(device="cuda").manual_seed(0)
    a, b = degrade(hr, g1), degrade(hr, g2)
    assert a.is_cuda and a.shape == (4, 3, 32, 32) and torch.equal(a, b)
