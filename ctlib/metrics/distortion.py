"""Distortion metrics: PSNR and SSIM (Y channel or RGB) as the official ResShift code computes them.

:func:`psnr` and :func:`ssim` reproduce the official ``calculate_psnr`` / ``calculate_ssim``
(``utils/util_image.py``) to 1e-10 on the golden data in
``tests/fixtures/resshift_reference/metrics.npz``; :func:`rgb_to_y` is MATLAB's BT.601 luma;
:func:`trainer_batch_psnr`, :func:`trainer_batch_psnr_sum` and :func:`trainer_batch_ssim_sum`
are the official ``batch_PSNR`` / ``batch_SSIM`` as the trainer's validation calls them (a **sum
over the batch**, with a different Y rounding). The input handling here (containers, value
ranges, ``quantize``) and :class:`MetricResult` are shared by every metric of
:mod:`ctlib.metrics`.

Image containers and value ranges
---------------------------------
* numpy arrays are channels-last: ``(H, W)``, ``(H, W, C)`` (one image) or ``(N, H, W, C)``
  (a batch). torch tensors are channels-first: ``(C, H, W)`` (one image) or ``(N, C, H, W)``
  (a batch); a 2-D tensor is one grayscale ``(H, W)`` image. ``C`` is 3 (RGB order) or 1
  (grayscale). A single image gives a ``float``; a batch gives a float64 array of shape ``(N,)``.
* ``uint8`` images hold values in [0, 255]. Floating images must hold values in [0, 1]
  (a tolerance of 1e-6 is clamped away); anything outside raises ``ValueError`` -- this catches a
  [0, 255] image passed as float, and a [-1, 1] network output passed without ``x * 0.5 + 0.5``.
  Both images of a pair must be of the same kind (both uint8 or both float).
* Float images are scaled by 255 and used as they are (no rounding). ``quantize=True`` rounds
  them to uint8 first (``round(255 x)``), as happens when SR results are saved as PNG before
  they are scored; from then on they follow the uint8 conventions.

Y channel (ITU-R BT.601, as MATLAB's ``rgb2ycbcr``)
----------------------------------------------------
``Y = (65.481 R + 128.553 G + 24.966 B) / 255 + 16`` on [0, 255] values, so Y lies in [16, 235].
For uint8 input, Y is rounded (half to even) to an integer, exactly as the official
``rgb2ycbcr`` rounds it back to uint8; PSNR/SSIM are then computed on those integers. For float
input, Y is not rounded. (The official float path returns Y / 255 and then scores it with a
peak of 255, which is inconsistent; this module does not reproduce that.)

PSNR
----
``PSNR = 20 log10(255 / sqrt(MSE))`` in dB, on float64 values in [0, 255], after cropping
``border`` pixels from every edge; the MSE is the mean over all pixels and channels of one
image. Identical images give ``inf`` (as the official code). RGB PSNR is the PSNR of the
3-channel image (one MSE over the channels), not a mean of per-channel PSNRs.

SSIM
----
Wang et al. (2004) with the settings the SR field uses: an 11 x 11 Gaussian window with
sigma 1.5 (normalised to sum 1, the same as OpenCV's ``getGaussianKernel(11, 1.5)``), constants
``C1 = (0.01 * 255)^2`` and ``C2 = (0.03 * 255)^2``, population (not sample) statistics, and a
'valid' filter: after the border crop, 5 pixels are dropped from each side of the SSIM map, as
the official ``calculate_ssim`` does after OpenCV's ``filter2D``. The image must therefore be at
least 11 x 11 after the border crop. RGB SSIM is the mean of the three per-channel SSIMs.

The trainer's ``batch_PSNR`` (validation)
-----------------------------------------
It takes float NCHW tensors in [0, 1] (the trainer passes ``SR * 0.5 + 0.5`` and
``GT * 0.5 + 0.5``, border 0, Y channel on in the v1 yaml) and returns the **sum** of the
per-image PSNRs, not the mean. Its Y path differs from ``calculate_psnr``'s: Y is computed in the
tensor's dtype (float32) from the float RGB, divided by 255, clamped to [0, 1], and then
rounded by scikit-image's ``img_as_ubyte`` (``rint(255 * y)``), instead of being computed in
float64 from uint8 RGB and rounded. The two can differ in the 5th significant digit (34.49952
against 34.49946 dB on the golden pair 0). :func:`trainer_batch_psnr` reproduces it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ctlib._checks import check_int

__all__ = [
    "MetricResult",
    "rgb_to_y",
    "psnr",
    "ssim",
    "trainer_batch_psnr",
    "trainer_batch_psnr_sum",
    "trainer_batch_ssim_sum",
]

# --------------------------------------------------------------------------------------------
# Constants (documented in the module docstring)
# --------------------------------------------------------------------------------------------

#: MATLAB ``rgb2ycbcr`` luma weights (ITU-R BT.601) for R, G, B on [0, 255] values; divide by 255.
Y_WEIGHTS: tuple[float, float, float] = (65.481, 128.553, 24.966)
#: Offset added to the weighted sum: Y lies in [16, 235].
Y_OFFSET: float = 16.0
#: Peak value of the [0, 255] scale on which PSNR and SSIM are computed.
PEAK: float = 255.0
SSIM_WINDOW: int = 11
SSIM_SIGMA: float = 1.5
SSIM_K1: float = 0.01
SSIM_K2: float = 0.03
_RANGE_TOL: float = 1e-6


# --------------------------------------------------------------------------------------------
# Result type
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricResult:
    """Per-image values of one metric, or the reason it could not be computed.

    Attributes:
        name: label for tables, e.g. ``"PSNR-Y"`` or ``"SSIMLoss = 1 - SSIM (piq)"``.
        values: float64 array of shape ``(N,)``, one value per image (all NaN when unavailable).
        higher_is_better: direction of the metric.
        reason: ``None`` when the values are real; otherwise why they are missing.
        needs: ``(file, folder)`` pairs whose presence would make the metric available.
        note: extra information, e.g. that a random backbone was used.
    """

    name: str
    values: np.ndarray
    higher_is_better: bool
    reason: str | None = None
    needs: tuple[tuple[str, str], ...] = ()
    note: str | None = None

    @property
    def available(self) -> bool:
        return self.reason is None

    def mean(self) -> float:
        """Mean over the images; NaN when unavailable (``inf`` if a PSNR is infinite)."""
        if not self.available or self.values.size == 0:
            return math.nan
        return float(np.mean(self.values))

    def format(self, spec: str = ".4f") -> str:
        """The mean formatted with ``spec``, or ``"unavailable (needs FILE in DIR)"``."""
        if self.available:
            return format(self.mean(), spec)
        if self.needs:
            by_dir: dict[str, list[str]] = {}
            for file, folder in self.needs:
                by_dir.setdefault(folder, []).append(file)
            parts = [f"{' and '.join(files)} in {folder}" for folder, files in by_dir.items()]
            return f"unavailable (needs {'; '.join(parts)})"
        return f"unavailable ({self.reason})"

    def __str__(self) -> str:
        return f"{self.name}: {self.format()}"


def _unavailable(
    name: str, n: int, higher_is_better: bool, reason: str, needs: Sequence[tuple[str, str]] = ()
) -> MetricResult:
    return MetricResult(
        name=name,
        values=np.full(n, np.nan),
        higher_is_better=higher_is_better,
        reason=reason,
        needs=tuple(needs),
    )


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Images:
    """Images in canonical form: float64 ``(N, H, W, C)`` on the [0, 255] scale."""

    data: np.ndarray
    is_uint8: bool  # integer-valued (uint8 input, or quantised float input)
    single: bool  # the caller passed one image, not a batch

    @property
    def channels(self) -> int:
        return int(self.data.shape[-1])


def _range_hint(lo: float, hi: float) -> str:
    if hi > 1.5:
        return (
            " -- it looks like a [0, 255] image: pass it as uint8, or divide it by 255"
        )
    if lo < -_RANGE_TOL:
        return " -- a [-1, 1] image must be mapped with x * 0.5 + 0.5 (or clamped) first"
    return " -- clamp it to [0, 1] first"


def _to_images(img: Any, name: str, *, quantize: bool = False) -> _Images:
    """Validate one image or batch and bring it to the canonical float64 NHWC [0, 255] form."""
    if isinstance(img, torch.Tensor):
        t = img.detach()
        if t.dim() == 2:
            t, single = t[None, None], True
        elif t.dim() == 3:
            t, single = t[None], True
        elif t.dim() == 4:
            single = False
        else:
            raise ValueError(
                f"{name} must be a torch tensor of shape (C, H, W) or (N, C, H, W), "
                f"got shape {tuple(img.shape)}"
            )
        if t.dtype == torch.uint8:
            is_uint8 = True
        elif t.is_floating_point():
            is_uint8 = False
        else:
            raise TypeError(f"{name} must be a uint8 or floating tensor, got dtype {t.dtype}")
        if t.shape[1] not in (1, 3):
            raise ValueError(
                f"{name} must have 1 (grayscale) or 3 (RGB) channels on axis 1 (torch tensors are "
                f"channels-first, (N, C, H, W)); got shape {tuple(img.shape)}"
            )
        data = t.to(device="cpu", dtype=torch.float64).permute(0, 2, 3, 1).contiguous().numpy()
    elif isinstance(img, np.ndarray):
        a = img
        if a.ndim == 2:
            a, single = a[None, :, :, None], True
        elif a.ndim == 3:
            a, single = a[None], True
        elif a.ndim == 4:
            single = False
        else:
            raise ValueError(
                f"{name} must be a numpy array of shape (H, W), (H, W, C) or (N, H, W, C), "
                f"got shape {img.shape}"
            )
        if a.dtype == np.uint8:
            is_uint8 = True
        elif np.issubdtype(a.dtype, np.floating):
            is_uint8 = False
        else:
            raise TypeError(f"{name} must be a uint8 or floating array, got dtype {a.dtype}")
        if a.shape[-1] not in (1, 3):
            raise ValueError(
                f"{name} must have 1 (grayscale) or 3 (RGB) channels on its last axis (numpy "
                f"arrays are channels-last, (H, W, C)); got shape {img.shape} -- transpose a CHW "
                "array to HWC, or pass a torch tensor"
            )
        data = np.asarray(a, dtype=np.float64)
    else:
        raise TypeError(
            f"{name} must be a numpy array (HWC / NHWC) or a torch tensor (CHW / NCHW), "
            f"got {type(img).__name__}"
        )

    if data.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(img.shape)})")
    if not is_uint8:
        if not np.isfinite(data).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        lo, hi = float(data.min()), float(data.max())
        if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL:
            raise ValueError(
                f"{name} is a float image, so its values must lie in [0, 1]; got values in "
                f"[{lo:.6g}, {hi:.6g}]{_range_hint(lo, hi)}"
            )
        data = np.clip(data, 0.0, 1.0) * PEAK
        if quantize:
            data = np.round(data)
            is_uint8 = True
    return _Images(data=data, is_uint8=is_uint8, single=single)


def _to_pair(sr: Any, hr: Any, *, quantize: bool = False) -> tuple[_Images, _Images]:
    a = _to_images(sr, "sr", quantize=quantize)
    b = _to_images(hr, "hr", quantize=quantize)
    if a.is_uint8 != b.is_uint8:
        kind = {True: "uint8", False: "float"}
        raise TypeError(
            f"sr and hr must both be uint8 or both be float in [0, 1]; got sr {kind[a.is_uint8]} "
            f"and hr {kind[b.is_uint8]} (convert one of them, or pass quantize=True)"
        )
    if a.channels != b.channels:
        desc = {1: "1 channel (grayscale)", 3: "3 channels (RGB)"}
        raise ValueError(f"sr has {desc[a.channels]} but hr has {desc[b.channels]}")
    if a.data.shape != b.data.shape:
        raise ValueError(
            "sr and hr must have the same shape, got (N, H, W, C) = "
            f"{a.data.shape} and {b.data.shape}"
        )
    return a, b


def _y_of(images: _Images) -> np.ndarray:
    """MATLAB rgb2ycbcr luma of canonical images, shape (N, H, W, 1), on the [0, 255] scale."""
    if images.channels != 3:
        raise ValueError("the Y channel needs RGB images (3 channels); got a grayscale image")
    y = np.dot(images.data, np.array(Y_WEIGHTS, dtype=np.float64) / PEAK) + Y_OFFSET
    if images.is_uint8:
        y = np.round(y)  # the official rgb2ycbcr rounds back to uint8 for uint8 input
    return y[..., None]


def _crop(x: np.ndarray, border: int) -> np.ndarray:
    if border == 0:
        return x
    return x[:, border:-border, border:-border, :]


def _prepared(
    sr: Any, hr: Any, *, y_channel: bool, border: int, quantize: bool
) -> tuple[np.ndarray, np.ndarray, bool]:
    border = check_int(border, "border", minimum=0)
    a, b = _to_pair(sr, hr, quantize=quantize)
    h, w = a.data.shape[1:3]
    if 2 * border >= min(h, w):
        raise ValueError(f"border={border} crops away the whole {h}x{w} image")
    x, y = (_y_of(a), _y_of(b)) if y_channel else (a.data, b.data)
    return _crop(x, border), _crop(y, border), a.single


def _output(values: np.ndarray, single: bool) -> float | np.ndarray:
    return float(values[0]) if single else values


def _unit_float_pair(
    sr: Any, hr: Any, value_range: tuple[float, float], *, need_rgb: bool, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated float32 NCHW tensors in [0, 1] (on the CPU) for the piq and LPIPS metrics."""
    if tuple(value_range) not in ((0.0, 1.0), (-1.0, 1.0)):
        raise ValueError(f"value_range must be (0, 1) or (-1, 1), got {value_range!r}")

    def to_unit(x: Any, name: str) -> Any:
        if tuple(value_range) != (-1.0, 1.0) or _is_uint8(x) or not isinstance(x, (torch.Tensor, np.ndarray)):
            return x
        numel = x.numel() if isinstance(x, torch.Tensor) else x.size
        lo, hi = (float(x.min()), float(x.max())) if numel else (0.0, 0.0)
        if lo < -1.0 - _RANGE_TOL or hi > 1.0 + _RANGE_TOL:
            raise ValueError(
                f"{name} must lie in [-1, 1] (value_range=(-1, 1)); got values in [{lo:.6g}, {hi:.6g}]"
            )
        return x * 0.5 + 0.5

    a, b = _to_pair(to_unit(sr, "sr"), to_unit(hr, "hr"))
    if need_rgb and a.channels != 3:
        raise ValueError(f"{what} needs RGB images (3 channels); got grayscale (1 channel)")
    # float32, as piq and lpips are normally run (piq's MS-SSIM is ~8x slower in float64).
    to_t = lambda im: torch.from_numpy(im.data / PEAK).permute(0, 3, 1, 2).to(torch.float32).contiguous()  # noqa: E731
    return to_t(a), to_t(b)


def _is_uint8(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        return x.dtype == torch.uint8
    return isinstance(x, np.ndarray) and x.dtype == np.uint8


# --------------------------------------------------------------------------------------------
# Y channel, PSNR, SSIM
# --------------------------------------------------------------------------------------------


def rgb_to_y(img: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Luma of an RGB image or batch as MATLAB's ``rgb2ycbcr`` (ITU-R BT.601).

    ``Y = (65.481 R + 128.553 G + 24.966 B) / 255 + 16`` on [0, 255] values.

    Args:
        img: uint8 in [0, 255] or float in [0, 1]; numpy ``(H, W, 3)`` / ``(N, H, W, 3)`` or
            torch ``(3, H, W)`` / ``(N, 3, H, W)``.

    Returns:
        uint8 input: uint8 Y rounded to integers in [16, 235] (as the official code).
        Float input: unrounded float64 Y / 255, in [16/255, 235/255].
        numpy gives ``(H, W)`` / ``(N, H, W)``; torch gives ``(1, H, W)`` / ``(N, 1, H, W)``
        on the input's device.
    """
    images = _to_images(img, "img")
    y = _y_of(images)[..., 0]  # (N, H, W)
    out = y.astype(np.uint8) if images.is_uint8 else y / PEAK
    if isinstance(img, torch.Tensor):
        t = torch.from_numpy(out)[:, None]
        t = t[0] if images.single else t
        return t.to(img.device)
    return out[0] if images.single else out


def psnr(
    sr: np.ndarray | torch.Tensor,
    hr: np.ndarray | torch.Tensor,
    *,
    y_channel: bool = False,
    border: int = 0,
    quantize: bool = False,
) -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB, ``20 log10(255 / sqrt(MSE))``, as the official code.

    Args:
        sr, hr: images or batches (see the module docstring: numpy channels-last, torch
            channels-first; uint8 or float in [0, 1]; same shape and kind).
        y_channel: score the MATLAB-style Y channel (rounded to integers for uint8 input)
            instead of RGB.
        border: pixels cropped from every edge before scoring.
        quantize: round float images to uint8 values first.

    Returns:
        ``float`` for one image, float64 array ``(N,)`` for a batch; ``inf`` where identical.
    """
    x, y, single = _prepared(sr, hr, y_channel=y_channel, border=border, quantize=quantize)
    mse = np.mean((x - y) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        values = 20.0 * np.log10(PEAK / np.sqrt(mse))
    return _output(values, single)


def _gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian; the 2-D SSIM window is its outer product with itself."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(r**2) / (2.0 * sigma**2))
    return g / g.sum()


def _ssim_per_channel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean SSIM of every image and channel of (N, H, W, C) [0, 255] arrays: shape (N, C)."""
    g = _gaussian_window_1d()
    half = SSIM_WINDOW // 2

    def local_mean(z: np.ndarray) -> np.ndarray:
        # Separable Gaussian filter, then keep only the 'valid' part: the cropped values never
        # touch the padding, so the boundary mode is irrelevant.
        z = ndimage.correlate1d(z, g, axis=1, mode="reflect")
        z = ndimage.correlate1d(z, g, axis=2, mode="reflect")
        return z[:, half:-half, half:-half, :]

    c1 = (SSIM_K1 * PEAK) ** 2
    c2 = (SSIM_K2 * PEAK) ** 2
    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov_xy = local_mean(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim_map.mean(axis=(1, 2))


def _check_ssim_size(x: np.ndarray, border: int) -> None:
    h, w = x.shape[1:3]
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} after the border crop; "
            f"got {h}x{w} (border={border})"
        )


def ssim(
    sr: np.ndarray | torch.Tensor,
    hr: np.ndarray | torch.Tensor,
    *,
    y_channel: bool = False,
    border: int = 0,
    quantize: bool = False,
) -> float | np.ndarray:
    """Structural similarity as the official ``calculate_ssim`` (and MATLAB's ``ssim_index``).

    11 x 11 Gaussian window, sigma 1.5, ``C1 = (0.01*255)^2``, ``C2 = (0.03*255)^2``, a 'valid'
    filter (5 px dropped from each side of the map after the border crop), mean over the map;
    RGB SSIM is the mean of the three per-channel SSIMs.

    Args:
        sr, hr: images or batches (see :func:`psnr`).
        y_channel: score the MATLAB-style Y channel (rounded for uint8 input) instead of RGB.
        border: pixels cropped from every edge first.
        quantize: round float images to uint8 values first.

    Returns:
        ``float`` for one image, float64 array ``(N,)`` for a batch.
    """
    x, y, single = _prepared(sr, hr, y_channel=y_channel, border=border, quantize=quantize)
    _check_ssim_size(x, border)
    values = _ssim_per_channel(x, y).mean(axis=1)
    return _output(values, single)


# --------------------------------------------------------------------------------------------
# The official trainer's batch_PSNR / batch_SSIM
# --------------------------------------------------------------------------------------------


def _trainer_uint8(batch: torch.Tensor, name: str, *, y_channel: bool) -> np.ndarray:
    """What ``batch_PSNR`` scores: (N, H, W, C) uint8, from a float NCHW batch in [0, 1]."""
    if not isinstance(batch, torch.Tensor) or batch.dim() != 4 or not batch.is_floating_point():
        raise TypeError(f"{name} must be a float torch tensor of shape (N, C, H, W)")
    if batch.shape[1] != 3:
        raise ValueError(f"{name} must be RGB (3 channels on axis 1), got shape {tuple(batch.shape)}")
    t = batch.detach().cpu()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = float(t.min()), float(t.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} must lie in [0, 1] (the trainer passes x * 0.5 + 0.5 of clamped images); "
            f"got values in [{lo:.6g}, {hi:.6g}]"
        )
    if y_channel:
        # rgb2ycbcrTorch: Y in the tensor's own dtype, scaled to [0, 1] and clamped.
        hwc = t.permute(0, 2, 3, 1) * PEAK
        weights = torch.tensor(Y_WEIGHTS, dtype=t.dtype).view(3, 1) / PEAK
        y = (torch.matmul(hwc, weights) + Y_OFFSET) / PEAK
        arr = y.clamp(0.0, 1.0).numpy()  # (N, H, W, 1)
    else:
        arr = t.permute(0, 2, 3, 1).numpy()
    # skimage.img_as_ubyte for floats: rint(255 x) computed in the input's float dtype, clipped.
    scaled = np.multiply(arr, 255, dtype=arr.dtype)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def trainer_batch_psnr(
    sr: torch.Tensor, hr: torch.Tensor, *, y_channel: bool = True, border: int = 0
) -> np.ndarray:
    """Per-image PSNRs exactly as the official ``batch_PSNR`` computes them before summing.

    Args:
        sr, hr: float tensors ``(N, 3, H, W)`` in [0, 1] (the trainer passes ``x * 0.5 + 0.5``).
        y_channel: the trainer's ``val_y_channel`` (True in the v1 yaml). The Y is computed in
            the tensor dtype, clamped to [0, 1] and rounded by ``img_as_ubyte``, which differs
            slightly from :func:`psnr`'s uint8 path (see the module docstring).
        border: pixels cropped from every edge (the trainer uses 0).

    Returns:
        float64 array ``(N,)``. The official function returns their **sum**:
        :func:`trainer_batch_psnr_sum`.
    """
    if isinstance(sr, torch.Tensor) and isinstance(hr, torch.Tensor) and sr.shape != hr.shape:
        raise ValueError(f"sr and hr must have the same shape, got {tuple(sr.shape)} and {tuple(hr.shape)}")
    a = _trainer_uint8(sr, "sr", y_channel=y_channel)
    b = _trainer_uint8(hr, "hr", y_channel=y_channel)
    return np.asarray(psnr(a, b, border=border), dtype=np.float64)


def trainer_batch_psnr_sum(
    sr: torch.Tensor, hr: torch.Tensor, *, y_channel: bool = True, border: int = 0
) -> float:
    """The official ``batch_PSNR`` return value: the **sum** (not the mean) over the batch.

    The trainer divides the accumulated sum by the number of validation images itself.
    """
    return float(np.sum(trainer_batch_psnr(sr, hr, y_channel=y_channel, border=border)))


def trainer_batch_ssim_sum(
    sr: torch.Tensor, hr: torch.Tensor, *, y_channel: bool = True, border: int = 0
) -> float:
    """The official ``batch_SSIM`` return value (sum over the batch); the trainer never calls it."""
    if isinstance(sr, torch.Tensor) and isinstance(hr, torch.Tensor) and sr.shape != hr.shape:
        raise ValueError(f"sr and hr must have the same shape, got {tuple(sr.shape)} and {tuple(hr.shape)}")
    a = _trainer_uint8(sr, "sr", y_channel=y_channel)
    b = _trainer_uint8(hr, "hr", y_channel=y_channel)
    return float(np.sum(ssim(a, b, border=border)))
