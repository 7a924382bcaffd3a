"""The Real-ESRGAN second-order degradation (HR -> LR), batched torch, every draw from a Generator.

This is the synthetic degradation ResShift trains on (Wang et al. 2021, "Real-ESRGAN"; the
numbers are ResShift's ``realsr_swinunet_realesrgan256.yaml``, docs/maths.md §12):

    first order:   blur (one of six Gaussian-family kernels, or a sinc) -> random resize
                   (up / down / keep; area, bilinear or bicubic) -> Gaussian or Poisson noise
                   (colour or gray) -> JPEG
    second order:  (with probability ``second_order_prob``) the same again with its own ranges,
                   the blur itself applied with probability ``second_blur_prob``; the resize
                   targets HR/scale * s
    final:         in a random order (1/2 each), [resize to HR/scale + sinc filter] and JPEG
    output:        clamp to [0, 1] and round to 8 bit: LR of size (H/scale, W/scale)

Like the official code, some choices are made once per **batch** (resize direction, scale and
mode; Gaussian vs Poisson noise; whether the second order and its blur run; the final order)
and the rest once per **image** (blur kernels, noise level, gray-or-colour noise, JPEG quality,
final sinc). Every random number comes from the ``torch.Generator`` passed in:
:func:`sample_degradation` draws all the scalars first (a fixed number of draws per batch, so
the generator's state afterwards does not depend on which branches were taken), then
:func:`apply_degradation` draws the pixel noise. Same seed, same device -> same output.
CPU and CUDA generators produce different streams, so a CUDA run does not reproduce a CPU run.

This module applies the degradation: :func:`filter2d`, :func:`add_gaussian_noise`,
:func:`add_poisson_noise`, the JPEG codec (:func:`jpeg_compress`, :func:`jpeg_compress_pillow`),
:func:`apply_degradation` and :func:`degrade` (draw, then apply). The configuration and its
presets, the blur kernels and the drawing of the parameters live in
:mod:`ctlib.data.degradation_params` (``ctlib.data`` exports both).

JPEG. Default ``jpeg_backend="torch"``: a JPEG codec written in torch (YCbCr, 4:2:0 chroma,
8 x 8 DCT, the standard Annex K tables scaled by the quality factor, rounding), the same
simulation the official pipeline runs (its ``DiffJPEG(differentiable=False)``). It is batched,
runs on the GPU, takes a real-valued quality per image and matches libjpeg's error level (a
test compares it with Pillow). Two documented differences from DiffJPEG: partial 16 x 16
blocks at the border are padded by edge replication (libjpeg's behaviour; DiffJPEG pads with
black), and scaled table entries are clamped to >= 1 (as libjpeg does; DiffJPEG divides by zero
at quality 100). ``jpeg_backend="pillow"`` round-trips every image through Pillow's libjpeg
instead (CPU, quality rounded to an integer) -- real JPEG, for checking.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .degradation_params import (
    REALESRGAN_TRAIN,
    DegradationConfig,
    DegradationParams,
    StageParams,
    get_preset,
    sample_degradation,
)

__all__ = [
    "filter2d",
    "add_gaussian_noise",
    "add_poisson_noise",
    "rgb_to_gray",
    "jpeg_compress",
    "jpeg_compress_pillow",
    "apply_degradation",
    "degrade",
]

_F64 = torch.float64


# --------------------------------------------------------------------------------------------
# operations (batched, device-agnostic)
# --------------------------------------------------------------------------------------------


def filter2d(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Filter each image of (B, C, H, W) with its own (B, k, k) kernel (or one (k, k) kernel).

    Reflect padding (replicate when the image is too small to reflect), as the official filter2D.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be (B, C, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    k = kernels.to(device=x.device, dtype=x.dtype)
    if k.ndim == 2:
        k = k.expand(b, -1, -1)
    if k.ndim != 3 or k.shape[0] != b or k.shape[1] != k.shape[2] or k.shape[1] % 2 == 0:
        raise ValueError(f"kernels must be (B, k, k) with odd k and B = {b}, got {tuple(kernels.shape)}")
    p = k.shape[-1] // 2
    mode = "reflect" if p < h and p < w else "replicate"
    xp = F.pad(x, (p, p, p, p), mode=mode)
    weight = k.repeat_interleave(c, dim=0).unsqueeze(1)  # (B*C, 1, k, k)
    out = F.conv2d(xp.reshape(1, b * c, h + 2 * p, w + 2 * p), weight, groups=b * c)
    return out.reshape(b, c, h, w)


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma 0.2989 R + 0.587 G + 0.114 B (torchvision's rgb_to_grayscale): (B,3,H,W)->(B,1,H,W)."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return 0.2989 * r + 0.587 * g + 0.114 * b


def _randn(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    n = torch.randn(shape, generator=generator, dtype=like.dtype, device=generator.device)
    return n.to(like.device)


def add_gaussian_noise(
    x: torch.Tensor, sigma: torch.Tensor, gray: torch.Tensor, generator: torch.Generator, *, clip: bool = True
) -> torch.Tensor:
    """x + N(0, (sigma/255)^2): ``sigma`` (B,) on the 0..255 scale; ``gray`` (B,) bool: one noise
    plane shared by the three channels. Clamped to [0, 1] when ``clip``."""
    b, c, h, w = x.shape
    s = torch.as_tensor(sigma, dtype=x.dtype).reshape(b, 1, 1, 1).to(x.device) / 255.0
    gmask = torch.as_tensor(gray).reshape(b, 1, 1, 1).to(device=x.device, dtype=x.dtype)
    noise_gray = _randn((b, 1, h, w), generator, x)
    noise_colour = _randn((b, c, h, w), generator, x)
    noise = (noise_colour * (1 - gmask) + noise_gray * gmask) * s
    out = x + noise
    return out.clamp(0, 1) if clip else out


def _poisson_noise(img: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shot noise of an image quantised to 8 bit, with 2^ceil(log2(#levels)) photon levels."""
    codes = torch.clamp(torch.round(img * 255.0), 0, 255)
    q = codes / 255.0
    b = img.shape[0]
    # number of distinct 8-bit levels per image (a histogram instead of torch.unique: same count)
    hist = torch.zeros(b, 256, dtype=torch.int64, device=img.device)
    hist.scatter_add_(1, codes.long().reshape(b, -1), torch.ones_like(codes, dtype=torch.int64).reshape(b, -1))
    levels = (hist > 0).sum(dim=1).clamp_min(1).to(_F64)
    vals = torch.exp2(torch.ceil(torch.log2(levels))).to(img.dtype).reshape(b, 1, 1, 1)
    rates = (q * vals).to(generator.device)
    counts = torch.poisson(rates, generator=generator).to(img.device)
    return counts / vals - q


def add_poisson_noise(
    x: torch.Tensor, scale: torch.Tensor, gray: torch.Tensor, generator: torch.Generator, *, clip: bool = True
) -> torch.Tensor:
    """x + scale * (Poisson shot noise), the official ``random_add_poisson_noise_pt`` model.

    The image is quantised to 8 bit, its number of distinct levels n sets the photon count
    ``vals = 2^ceil(log2 n)``, and the noise is ``Poisson(x8 * vals) / vals - x8`` (variance
    ``x8 / vals``) times ``scale`` (B,). With ``gray`` (B,) the noise is computed on the luma and
    shared by the channels.
    """
    b = x.shape[0]
    gmask = torch.as_tensor(gray).reshape(b, 1, 1, 1).to(device=x.device, dtype=x.dtype)
    noise_gray = _poisson_noise(rgb_to_gray(x), generator).expand_as(x)
    noise_colour = _poisson_noise(x, generator)
    noise = noise_colour * (1 - gmask) + noise_gray * gmask
    s = torch.as_tensor(scale, dtype=x.dtype).reshape(b, 1, 1, 1).to(x.device)
    out = x + noise * s
    return out.clamp(0, 1) if clip else out


# ---------------------------------------------------------------------------------- JPEG

_LUMA_TABLE = [
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
]
_CHROMA_TABLE = [
    [17, 18, 24, 47, 99, 99, 99, 99],
    [18, 21, 26, 66, 99, 99, 99, 99],
    [24, 26, 56, 99, 99, 99, 99, 99],
    [47, 66, 99, 99, 99, 99, 99, 99],
] + [[99] * 8 for _ in range(4)]
_RGB2YCC = [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
_YCC2RGB = [[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]]


def _dct_matrix(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Orthonormal 8-point DCT-II matrix D (rows: frequencies), so X = D x D^T."""
    n = torch.arange(8, dtype=_F64)
    d = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.to(dtype=dtype, device=device)


def _quality_factor(quality: torch.Tensor) -> torch.Tensor:
    """IJG quality -> table multiplier: 50/q for q < 50, 2 - q/50 otherwise."""
    q = quality.to(_F64)
    return torch.where(q < 50, 50.0 / q, 2.0 - q / 50.0)


def _blocks(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) with H, W multiples of 8 -> (B, H/8 * W/8, 64), each row one 8 x 8 block."""
    b, h, w = x.shape
    return x.reshape(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(b, -1, 64)


def _unblocks(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b = x.shape[0]
    return x.reshape(b, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).reshape(b, h, w)


def _code_plane(plane: torch.Tensor, table: torch.Tensor, dct2: torch.Tensor) -> torch.Tensor:
    """Level shift, DCT, quantise (round), dequantise, inverse DCT, for one channel (B, H, W).

    ``dct2`` is the 64 x 64 matrix kron(D, D): a flattened block x maps to D x D^T.
    """
    h, w = plane.shape[-2:]
    blk = _blocks(plane - 128.0)
    coef = blk @ dct2.transpose(0, 1)
    t = table.reshape(-1, 1, 64)
    coef = torch.round(coef / t) * t
    return _unblocks(coef @ dct2, h, w) + 128.0


def jpeg_compress(x: torch.Tensor, quality: torch.Tensor | float) -> torch.Tensor:
    """JPEG round trip in torch (baseline, 4:2:0, IJG tables), one real-valued quality per image.

    Args:
        x: (B, 3, H, W) RGB in [0, 1] (clamped first); any size (edges replicated to 16).
        quality: a number or a (B,) tensor in [1, 100].

    Returns:
        The decoded image, (B, 3, H, W) in [0, 1] (not rounded to 8 bit).
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"x must be (B, 3, H, W), got {tuple(x.shape)}")
    b, _, h, w = x.shape
    q = torch.as_tensor(quality, dtype=_F64).flatten()
    if q.numel() == 1:
        q = q.expand(b)
    if q.numel() != b:
        raise ValueError(f"quality must be a number or have one entry per image ({b}), got {q.numel()}")
    if bool(((q < 1) | (q > 100)).any()):
        raise ValueError(f"quality must lie in [1, 100], got {q.tolist()}")
    dt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    f = _quality_factor(q).to(device=x.device)
    luma_t = (torch.tensor(_LUMA_TABLE, dtype=_F64, device=x.device)[None] * f[:, None, None]).clamp_min(1).to(dt)
    chroma_t = (torch.tensor(_CHROMA_TABLE, dtype=_F64, device=x.device)[None] * f[:, None, None]).clamp_min(1)
    chroma_t = chroma_t.to(dt)
    d = _dct_matrix(_F64, x.device)
    dct = torch.kron(d, d).to(dt)
    ph, pw = (-h) % 16, (-w) % 16
    img = x.to(dt).clamp(0, 1) * 255.0
    if ph or pw:
        img = F.pad(img, (0, pw, 0, ph), mode="replicate")
    m = torch.tensor(_RGB2YCC, dtype=dt, device=x.device)
    hp, wp = img.shape[-2:]
    ycc = (m @ img.reshape(b, 3, -1)).reshape(b, 3, hp, wp)
    y = ycc[:, 0]
    cb = F.avg_pool2d(ycc[:, 1:2], 2)[:, 0] + 128.0
    cr = F.avg_pool2d(ycc[:, 2:3], 2)[:, 0] + 128.0
    y = _code_plane(y, luma_t, dct)
    cb = _code_plane(cb, chroma_t, dct) - 128.0
    cr = _code_plane(cr, chroma_t, dct) - 128.0
    cb = cb.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    cr = cr.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    minv = torch.tensor(_YCC2RGB, dtype=dt, device=x.device)
    rgb = (minv @ torch.stack([y, cb, cr], dim=1).reshape(b, 3, -1)).reshape(b, 3, hp, wp)
    rgb = rgb[:, :, :h, :w].clamp(0, 255) / 255.0
    return rgb.to(x.dtype)


def jpeg_compress_pillow(x: torch.Tensor, quality: torch.Tensor | float) -> torch.Tensor:
    """JPEG round trip through Pillow (libjpeg, 4:2:0, integer quality), image by image on the CPU."""
    import io

    import numpy as np
    from PIL import Image

    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"x must be (B, 3, H, W), got {tuple(x.shape)}")
    b = x.shape[0]
    q = torch.as_tensor(quality, dtype=_F64).flatten()
    if q.numel() == 1:
        q = q.expand(b)
    if q.numel() != b or bool(((q < 1) | (q > 100)).any()):
        raise ValueError(f"quality must be one number or one per image, each in [1, 100], got {q.tolist()}")
    u8 = torch.clamp(torch.round(x.detach().to("cpu", torch.float64) * 255.0), 0, 255).to(torch.uint8)
    outs = []
    for i in range(b):
        buf = io.BytesIO()
        Image.fromarray(u8[i].permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=int(round(float(q[i]))))
        buf.seek(0)
        with Image.open(buf) as im:
            outs.append(torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32).copy()))
    out = torch.stack(outs).permute(0, 3, 1, 2) / 255.0
    return out.to(device=x.device, dtype=x.dtype)


# ---------------------------------------------------------------------------------- pipeline


def _jpeg(x: torch.Tensor, quality: torch.Tensor, backend: str) -> torch.Tensor:
    x = x.clamp(0, 1)
    return jpeg_compress(x, quality) if backend == "torch" else jpeg_compress_pillow(x, quality)


def _noise(x: torch.Tensor, st: StageParams, generator: torch.Generator) -> torch.Tensor:
    if st.noise == "gaussian":
        return add_gaussian_noise(x, st.gaussian_sigma, st.gray_noise, generator)
    return add_poisson_noise(x, st.poisson_scale, st.gray_noise, generator)


def _resize(x: torch.Tensor, mode: str, *, scale: float | None = None, size: tuple[int, int] | None = None):
    if size is not None:
        size = (max(1, int(size[0])), max(1, int(size[1])))
        return F.interpolate(x, size=size, mode=mode)
    return F.interpolate(x, scale_factor=scale, mode=mode)


def _check_hr(hr: torch.Tensor, scale: int) -> None:
    if not isinstance(hr, torch.Tensor):
        raise TypeError(f"hr must be a torch.Tensor, got {type(hr).__name__}")
    if hr.ndim != 4 or hr.shape[1] != 3:
        raise ValueError(f"hr must be a (B, 3, H, W) RGB batch, got shape {tuple(hr.shape)}")
    if not hr.is_floating_point():
        raise TypeError(f"hr must be a floating-point tensor in [0, 1], got dtype {hr.dtype}")
    h, w = hr.shape[-2:]
    if h % scale or w % scale or min(h, w) < 4 * scale:
        raise ValueError(
            f"hr height and width must be multiples of scale={scale} and at least {4 * scale}, got {h}x{w}"
        )


def apply_degradation(hr: torch.Tensor, params: DegradationParams, generator: torch.Generator) -> torch.Tensor:
    """Run the pipeline with drawn ``params`` on ``hr`` (B, 3, H, W) in [0, 1]; returns the LR
    (B, 3, H/scale, W/scale), clamped and rounded to 8-bit levels. Pixel noise comes from
    ``generator``."""
    cfg = params.config
    _check_hr(hr, cfg.scale)
    if hr.shape[0] != params.batch_size:
        raise ValueError(f"params were drawn for batch size {params.batch_size}, hr has {hr.shape[0]}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    h, w = hr.shape[-2:]
    sf = cfg.scale
    backend = cfg.jpeg_backend
    # ---- first order
    st = params.first
    out = filter2d(hr, st.kernels)
    out = _resize(out, st.resize_mode, scale=st.resize_scale)
    out = _noise(out, st, generator)
    out = _jpeg(out, st.jpeg_quality, backend)
    # ---- second order
    if params.second_order:
        st = params.second
        if st.blur:
            out = filter2d(out, st.kernels)
        out = _resize(out, st.resize_mode, size=(int(h / sf * st.resize_scale), int(w / sf * st.resize_scale)))
        out = _noise(out, st, generator)
    # ---- final: [resize to HR/sf + sinc] and JPEG in a random order
    if params.final_order == "resize_sinc_then_jpeg":
        out = _resize(out, params.final_resize_mode, size=(h // sf, w // sf))
        out = filter2d(out, params.final_sinc)
        out = _jpeg(out, params.final_jpeg_quality, backend)
    else:
        out = _jpeg(out, params.final_jpeg_quality, backend)
        out = _resize(out, params.final_resize_mode, size=(h // sf, w // sf))
        out = filter2d(out, params.final_sinc)
    return torch.clamp(torch.round(out * 255.0), 0, 255) / 255.0


def degrade(
    hr: torch.Tensor,
    generator: torch.Generator,
    config: DegradationConfig | str = REALESRGAN_TRAIN,
    *,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, DegradationParams]:
    """HR batch (B, 3, H, W) in [0, 1] -> LR batch (B, 3, H/4, W/4) by the Real-ESRGAN pipeline.

    Args:
        hr: float tensor on any device; H and W multiples of ``config.scale``.
        generator: the source of every random draw (same seed -> same output).
        config: a :class:`DegradationConfig` or a preset name ('realesrgan_train', 'resshift_test').
        return_params: also return the drawn :class:`DegradationParams`.
    """
    cfg = get_preset(config)
    _check_hr(hr, cfg.scale)
    params = sample_degradation(hr.shape[0], generator, cfg)
    lr = apply_degradation(hr, params, generator)
    return (lr, params) if return_params else lr
