"""MATLAB-compatible bicubic imresize: golden fixture, output sizes, analytic properties."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ctlib.data.imresize import cubic, imresize, imresize_np, output_size, resize_matrix

FIXTURE = Path(__file__).parent / "fixtures" / "resshift_reference" / "imresize.npz"
CASES = [("in_64x48", "a", 0.25), ("in_33x35", "b", 0.25), ("in_33x35", "b", 4.0)]


@pytest.fixture(scope="module")
def golden():
    with np.load(FIXTURE) as d:
        return {k: d[k] for k in d.files}


@pytest.mark.parametrize("inp,tag,scale", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_official_fixture(golden, inp, tag, scale, dtype):
    """Official imresize_np (float32) vs ours: within 2 float32 ulps (README: ~1e-7)."""
    key = f"out_{tag}_x{scale:g}"
    out = imresize_np(golden[inp].astype(dtype), scale)
    ref = golden[key]
    assert out.shape == ref.shape
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref, rtol=0, atol=3e-7)
    # the BasicSR copy of the algorithm agrees as well
    np.testing.assert_allclose(out, golden[f"out_basicsr_{tag}_x{scale:g}"], rtol=0, atol=3e-7)


def test_upscale_is_not_clamped(golden):
    out = imresize_np(golden["in_33x35"], 4.0)
    assert out.min() < 0 and out.max() > 1  # bicubic overshoot is kept, as in the official output


def test_batched_tensor_equals_per_image(golden):
    imgs = np.stack([golden["in_64x48"], golden["in_64x48"][::-1].copy()])
    batch = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    out = imresize(batch, 0.25)
    assert out.shape == (2, 3, 16, 12)
    for i in range(2):
        single = imresize_np(imgs[i].astype(np.float32), 0.25)
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), single, atol=1e-7)
    # (C, H, W) and (H, W) inputs
    assert imresize(batch[0], 0.25).shape == (3, 16, 12)
    assert imresize(batch[0, 0], 0.25).shape == (16, 12)


@pytest.mark.parametrize("h,w", [(256, 256), (64, 48), (128, 300), (4, 8)])
def test_shrink_by_four_gives_exactly_quarter(h, w):
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    assert imresize(x, 0.25).shape[-2:] == (h // 4, w // 4)


@pytest.mark.parametrize("n,expected", [(257, 65), (255, 64), (33, 9), (1, 1), (6, 2), (259, 65)])
def test_shrink_rounds_up_like_matlab(n, expected):
    """Sides not divisible by 4: MATLAB (and the official code) use ceil(n * scale)."""
    assert output_size(n, 0.25) == expected == math.ceil(n / 4)
    x = torch.rand(1, 1, n, 8, generator=torch.Generator().manual_seed(n))
    assert imresize(x, 0.25).shape[-2] == expected


def test_explicit_size_and_identity():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 40, 30, generator=g, dtype=torch.float64)
    assert imresize(x, size=(17, 23)).shape == (2, 3, 17, 23)
    torch.testing.assert_close(imresize(x, 1.0), x, rtol=0, atol=1e-15)


def test_constant_image_stays_constant():
    x = torch.full((1, 3, 37, 41), 0.3, dtype=torch.float64)
    for s in (0.25, 0.5, 1 / 3, 2.0, 4.0):
        torch.testing.assert_close(imresize(x, s), torch.full_like(imresize(x, s), 0.3), rtol=0, atol=1e-14)


@pytest.mark.parametrize("scale", [0.25, 0.5, 2.0, 4.0])
def test_linear_ramp_is_sampled_at_matlab_coordinates(scale):
    """Cubic convolution (a = -0.5) reproduces linear functions, so away from the borders the
    output of a ramp is the ramp evaluated at u_i = i / s + (1 - 1/s) / 2 (1-based)."""
    n = 64
    ramp = torch.arange(n, dtype=torch.float64).expand(1, 1, 8, n)  # value = 0-based column index
    out = imresize(ramp, (1.0, scale))[0, 0, 0]
    i = torch.arange(1, out.numel() + 1, dtype=torch.float64)
    u = i / scale + 0.5 * (1 - 1 / scale) - 1  # 0-based input coordinate
    support = 2 / scale if scale < 1 else 2
    interior = (u - support >= 0) & (u + support <= n - 1)
    assert interior.sum() > 4
    torch.testing.assert_close(out[interior], u[interior], rtol=0, atol=1e-12)


def test_resize_matrix_rows_and_mirror_boundary():
    m = resize_matrix(10, 3, 0.3)
    torch.testing.assert_close(m.sum(1), torch.ones(3, dtype=torch.float64))
    # upscaling: the first output pixel of x2 sits at u = 0.75 (1-based), a quarter pixel
    # outside the first input pixel; MATLAB mirrors index 0 -> 1, -1 -> 2
    up = resize_matrix(5, 10, 2.0)
    d = 0.75 - torch.tensor([-1.0, 0.0, 1.0, 2.0, 3.0])  # distances to indices -1, 0, 1, 2, 3
    w = cubic(d)
    w = w / w.sum()
    expected = torch.tensor([w[2] + w[1], w[3] + w[0], w[4], 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(up[0], expected, rtol=0, atol=1e-15)


def test_cubic_kernel_values():
    x = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5], dtype=torch.float64)
    # Keys (a = -0.5): 1 at 0, 0.5625 at 0.5, 0 at the integers, -0.0625 at 1.5, 0 outside
    torch.testing.assert_close(cubic(x), torch.tensor([1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0], dtype=torch.float64))


def test_bad_arguments():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="exactly one of scale and size"):
        imresize(x)
    with pytest.raises(ValueError, match="exactly one of scale and size"):
        imresize(x, 0.5, size=(4, 4))
    with pytest.raises(ValueError, match="scale"):
        imresize(x, -1.0)
    with pytest.raises(TypeError, match="floating-point"):
        imresize(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 0.5)
    with pytest.raises(TypeError, match="torch.Tensor"):
        imresize(np.zeros((8, 8)), 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        imresize(torch.rand(1, 1, 1, 8, 8), 0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_gpu(golden):
    x = torch.from_numpy(golden["in_64x48"]).permute(2, 0, 1)[None].cuda()
    out = imresize(x, 0.25).cpu()[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, golden["out_a_x0.25"], atol=3e-7)
