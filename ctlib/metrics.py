"""Full-reference image-quality metrics for super-resolution, with every convention written down.

What is here
------------
* :func:`psnr`, :func:`ssim` -- PSNR and SSIM on the Y channel or on RGB, with an optional border
  crop. They reproduce the official ResShift ``calculate_psnr`` / ``calculate_ssim``
  (``utils/util_image.py``) to 1e-10 on the golden data in
  ``tests/fixtures/resshift_reference/metrics.npz``.
* :func:`trainer_batch_psnr`, :func:`trainer_batch_psnr_sum`, :func:`trainer_batch_ssim_sum` --
  the official ``batch_PSNR`` / ``batch_SSIM`` as the trainer's validation calls them. They return
  a **sum over the batch**, and the Y path rounds differently (see below).
* :func:`lpips_distance` -- LPIPS through the ``lpips`` package (AlexNet by default, VGG as an
  option). The torchvision backbone weights are never downloaded: when the file is missing the
  result says "unavailable (needs FILE in DIR)" and holds NaNs, never an invented number.
* :func:`haarpsi`, :func:`ms_ssim` -- HaarPSI and MS-SSIM through ``piq`` (no weights needed).
* :func:`report_metrics` -- the report's own conventions: ``piq.psnr`` on RGB, ``piq.SSIMLoss``
  (which is 1 - SSIM; the report's "SSIM" column is this loss, erratum 3) and piq's VGG LPIPS
  (erratum 4).
* :func:`compute_all` -- per-image PSNR-Y, SSIM-Y, PSNR-RGB, SSIM-RGB, HaarPSI, MS-SSIM and LPIPS
  for a batch, as a dict of :class:`MetricResult`.

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

LPIPS
-----
Inputs are RGB; the network sees values in [-1, 1]. :func:`lpips_distance` accepts [0, 1]
images (the default, converted explicitly with ``2 x - 1``), [-1, 1] images
(``value_range=(-1, 1)``) or uint8 images. The ``lpips`` package's own linear-layer weights
(v0.1) ship inside the pip package. The backbone (torchvision ImageNet weights) does not; it is
looked for, in this order, at

1. the ``backbone_path`` argument,
2. the environment variable ``CTLIB_LPIPS_BACKBONE_ALEX`` / ``CTLIB_LPIPS_BACKBONE_VGG``,
3. the environment variable ``CTLIB_LPIPS_BACKBONE`` (one path, used for whichever net is asked
   for; a file of the other architecture makes LPIPS unavailable with a message saying so),
4. torchvision's own file in ``torch.hub.get_dir()/checkpoints``
   (``$TORCH_HOME/hub/checkpoints``): ``alexnet-owt-7be5be79.pth`` or ``vgg16-397923af.pth``.

A file may hold a full torchvision state dict or only its ``features.*`` entries. The model is
built once per (net, weights file, device) and cached. Nothing is ever downloaded.

piq metrics
-----------
They run in float32 (as piq is normally used; its MS-SSIM is about 8x slower in float64).
HaarPSI (3 scales, needs sides >= 16 px) and MS-SSIM (11 x 11 Gaussian window, sigma 1.5, the
paper's five scale weights, needs sides >= 161 px; ``scales=k`` uses the first k weights,
renormalised, and needs sides >= 10 * 2^(k-1) + 1) run offline. Images too small for them give
a NaN result with the reason. piq's LPIPS wants ``lpips_weights.pt`` (from piq's release page)
and ``vgg16-397923af.pth``, both in ``torch.hub.get_dir()/checkpoints``; it is built here from
local files only (``CTLIB_PIQ_LPIPS_WEIGHTS`` may point at the first file).
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
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
    "lpips_backbone_filename",
    "lpips_backbone_location",
    "lpips_available",
    "lpips_model",
    "lpips_distance",
    "clear_lpips_cache",
    "haarpsi",
    "ms_ssim",
    "ms_ssim_min_side",
    "piq_lpips_available",
    "piq_lpips_distance",
    "report_metrics",
    "compute_all",
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
#: MS-SSIM scale weights of Wang, Simoncelli and Bovik (2003), piq's defaults.
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: piq's HaarPSI with 3 scales needs both sides >= 2 ** (3 + 1).
HAARPSI_MIN_SIDE: int = 16
#: Smallest side for which the LPIPS backbones give a feature map at every tapped layer.
LPIPS_MIN_SIDE: dict[str, int] = {"alex": 31, "vgg": 16}
#: torchvision's file names for the ImageNet weights of the LPIPS backbones.
LPIPS_BACKBONE_FILES: dict[str, str] = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
_TV_ARCH: dict[str, str] = {"alex": "alexnet", "vgg": "vgg16"}
#: File name piq's LPIPS downloads its linear-layer weights to (torch hub checkpoints folder).
PIQ_LPIPS_WEIGHTS_FILE: str = "lpips_weights.pt"
_PIQ_LPIPS_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)
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


# --------------------------------------------------------------------------------------------
# LPIPS (lpips package), with local backbone weights only
# --------------------------------------------------------------------------------------------


class _WeightsError(Exception):
    """A weights file is missing or unusable; carries the (file, folder) that would fix it."""

    def __init__(self, reason: str, needs: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.needs = tuple(needs)


def _check_net(net: str) -> str:
    if net not in LPIPS_BACKBONE_FILES:
        raise ValueError(f"net must be one of {sorted(LPIPS_BACKBONE_FILES)}, got {net!r}")
    return net


def lpips_backbone_filename(net: str = "alex") -> str:
    """torchvision's file name for the ImageNet weights of the LPIPS backbone ``net``."""
    return LPIPS_BACKBONE_FILES[_check_net(net)]


def _hub_checkpoints_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def lpips_backbone_location(net: str = "alex", backbone_path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Where the backbone weights of ``net`` are looked for, and which rule chose that place.

    Order: ``backbone_path``; ``$CTLIB_LPIPS_BACKBONE_ALEX`` / ``_VGG``; ``$CTLIB_LPIPS_BACKBONE``;
    ``torch.hub.get_dir()/checkpoints/<torchvision file name>``. The file need not exist.
    """
    _check_net(net)
    if backbone_path is not None:
        return Path(backbone_path).expanduser(), "the backbone_path argument"
    for var in (f"CTLIB_LPIPS_BACKBONE_{net.upper()}", "CTLIB_LPIPS_BACKBONE"):
        value = os.environ.get(var, "").strip()
        if value:
            return Path(value).expanduser(), f"${var}"
    return _hub_checkpoints_dir() / LPIPS_BACKBONE_FILES[net], "the torch hub checkpoints folder"


def _find_backbone(net: str, backbone_path: str | os.PathLike | None) -> Path:
    path, source = lpips_backbone_location(net, backbone_path)
    if path.is_file():
        return path
    arch = _TV_ARCH[net]
    if source == "the torch hub checkpoints folder":
        reason = (
            f"LPIPS ({net}) needs torchvision's ImageNet {arch} weights {path.name} in {path.parent} "
            "(torch.hub.get_dir()/checkpoints; TORCH_HOME moves it), or a path to that file in "
            f"$CTLIB_LPIPS_BACKBONE_{net.upper()} or $CTLIB_LPIPS_BACKBONE; it is never downloaded automatically"
        )
    else:
        reason = f"LPIPS ({net}): {source} points to {path}, which is not a file"
    raise _WeightsError(reason, [(path.name, str(path.parent))])


def _load_features_state(path: Path, net: str) -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of a torchvision checkpoint, keys without the prefix."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable file: report, never crash
        raise _WeightsError(f"LPIPS ({net}): cannot read {path}: {exc}") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise _WeightsError(f"LPIPS ({net}): {path} does not hold a state dict")
    features = {}
    for key, value in state.items():
        k = str(key)
        for prefix in ("module.", "_orig_mod."):
            k = k[len(prefix):] if k.startswith(prefix) else k
        if k.startswith("features.") and isinstance(value, torch.Tensor):
            features[k[len("features."):]] = value
    if not features:
        raise _WeightsError(
            f"LPIPS ({net}): {path} holds no 'features.*' tensors (expected torchvision {_TV_ARCH[net]} weights)"
        )
    return features


def _load_backbone_into(model: torch.nn.Module, features: Mapping[str, torch.Tensor], net: str, origin: str) -> None:
    """Copy torchvision ``features.<i>`` tensors into the lpips slices (module ``<i>`` of a slice)."""
    with torch.no_grad():
        for slice_module in model.net.children():
            for index, module in slice_module.named_children():
                for pname, param in module.named_parameters(recurse=False):
                    src = features.get(f"{index}.{pname}")
                    if src is None or tuple(src.shape) != tuple(param.shape):
                        got = "missing" if src is None else f"shape {tuple(src.shape)}"
                        raise _WeightsError(
                            f"LPIPS ({net}): {origin} does not hold torchvision {_TV_ARCH[net]} weights "
                            f"(features.{index}.{pname}: expected shape {tuple(param.shape)}, {got})"
                        )
                    param.copy_(src.to(param.dtype))


def _new_lpips_module(net: str) -> torch.nn.Module:
    """lpips.LPIPS with the package's v0.1 linear layers and a not-yet-loaded backbone."""
    import lpips as lpips_pkg

    # pnet_rand=True builds the torchvision backbone with weights=None (no download); its
    # default init draws from the global RNG, which fork_rng restores afterwards.
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        model = lpips_pkg.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False)
    return model.eval().requires_grad_(False)


def _randomise_backbone(model: torch.nn.Module, seed: int) -> None:
    """He-normal conv weights, zero biases, drawn from ``torch.Generator().manual_seed(seed)``."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.net.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                std = math.sqrt(2.0 / fan_in)
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
                if module.bias is not None:
                    module.bias.zero_()


_LPIPS_CACHE: dict[tuple[str, str, str], torch.nn.Module] = {}


def clear_lpips_cache() -> None:
    """Forget every cached LPIPS model (lpips and piq)."""
    _LPIPS_CACHE.clear()


def _cached(key_net: str, key_source: str, device: torch.device, build: Any) -> torch.nn.Module:
    cpu_key = (key_net, key_source, "cpu")
    if cpu_key not in _LPIPS_CACHE:
        _LPIPS_CACHE[cpu_key] = build()
    key = (key_net, key_source, str(device))
    if key not in _LPIPS_CACHE:
        _LPIPS_CACHE[key] = copy.deepcopy(_LPIPS_CACHE[cpu_key]).to(device)
    return _LPIPS_CACHE[key]


def _resolve_device(device: str | torch.device | None, like: Any) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(like, torch.Tensor):
        return like.device
    return torch.device("cpu")


def lpips_model(
    net: str = "alex",
    *,
    backbone_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    random_backbone_seed: int | None = None,
) -> torch.nn.Module:
    """The cached ``lpips.LPIPS`` model for ``net`` ('alex' or 'vgg'), in eval mode.

    Args:
        net: backbone, ``"alex"`` (default, the SR field's usual choice) or ``"vgg"`` (what the
            official ResShift trainer validates with).
        backbone_path: local torchvision weights file (see the module docstring for the search
            order when None).
        device: where the model lives (default CPU).
        random_backbone_seed: build a backbone with random He-normal weights from this seed
            instead of loading a file. For testing the plumbing only: the values mean nothing.

    Raises:
        RuntimeError: the backbone weights are missing or unusable; the message names the file
            and folder needed. (:func:`lpips_distance` turns this into an unavailable result.)
    """
    try:
        return _lpips_model(net, backbone_path, _resolve_device(device, None), random_backbone_seed)
    except _WeightsError as exc:
        raise RuntimeError(exc.reason) from None


def _lpips_model(
    net: str, backbone_path: Any, device: torch.device, random_backbone_seed: int | None
) -> torch.nn.Module:
    _check_net(net)
    if random_backbone_seed is not None:
        seed = check_int(random_backbone_seed, "random_backbone_seed", minimum=0)

        def build_random() -> torch.nn.Module:
            model = _new_lpips_module(net)
            _randomise_backbone(model, seed)
            return model

        return _cached(f"lpips-{net}", f"random:{seed}", device, build_random)

    path = _find_backbone(net, backbone_path)
    source = str(path.resolve())

    def build() -> torch.nn.Module:
        features = _load_features_state(path, net)
        model = _new_lpips_module(net)
        _load_backbone_into(model, features, net, str(path))
        return model

    return _cached(f"lpips-{net}", source, device, build)


def lpips_available(net: str = "alex", *, backbone_path: str | os.PathLike | None = None) -> tuple[bool, str]:
    """Whether LPIPS with ``net`` can run here, and why not.

    Loads (and caches) the CPU model when the weights file exists, so a file of the wrong
    architecture is reported too. Never downloads anything.

    Returns:
        ``(True, description)`` or ``(False, reason)``; the reason names the file and folder.
    """
    try:
        _lpips_model(net, backbone_path, torch.device("cpu"), None)
    except _WeightsError as exc:
        return False, exc.reason
    path, _ = lpips_backbone_location(net, backbone_path)
    return True, f"LPIPS ({net}) v0.1 with backbone weights {path}"


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


def lpips_distance(
    sr: np.ndarray | torch.Tensor,
    hr: np.ndarray | torch.Tensor,
    *,
    net: str = "alex",
    value_range: tuple[float, float] = (0.0, 1.0),
    batch_size: int = 16,
    device: str | torch.device | None = None,
    backbone_path: str | os.PathLike | None = None,
    random_backbone_seed: int | None = None,
) -> MetricResult:
    """Per-image LPIPS (``lpips`` package, v0.1, learned linear layers) of RGB images.

    Args:
        sr, hr: RGB images or batches (numpy channels-last or torch channels-first), float in
            ``value_range`` or uint8. They are converted explicitly to [-1, 1] for the network.
        net: ``"alex"`` (default) or ``"vgg"``.
        value_range: ``(0, 1)`` (default) or ``(-1, 1)``; ignored for uint8 input.
        batch_size: images per forward pass.
        device: where to run (default: the device of ``sr`` if it is a tensor, else CPU).
        backbone_path: local torchvision backbone weights (see the module docstring).
        random_backbone_seed: use a random backbone (plumbing tests only; see :func:`lpips_model`).

    Returns:
        A :class:`MetricResult` with values ``(N,)`` (lower is better); when the backbone weights
        are missing it is unavailable, with NaN values and a reason naming the file and folder.
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    x, y = _unit_float_pair(sr, hr, value_range, need_rgb=True, what="LPIPS")
    name = f"LPIPS ({_check_net(net)})"
    n, _, h, w = x.shape
    if min(h, w) < LPIPS_MIN_SIDE[net]:
        return _unavailable(
            name, n, False, f"LPIPS ({net}) needs sides >= {LPIPS_MIN_SIDE[net]} px, got {h}x{w}"
        )
    dev = _resolve_device(device, sr)
    try:
        model = _lpips_model(net, backbone_path, dev, random_backbone_seed)
    except _WeightsError as exc:
        return _unavailable(name, n, False, exc.reason, exc.needs)
    values = _batched(lambda a, b: model(a * 2.0 - 1.0, b * 2.0 - 1.0), x, y, batch_size, dev)
    note = None
    if random_backbone_seed is not None:
        name = f"LPIPS ({net}, random backbone)"
        note = "random backbone weights: checks the plumbing only, the values mean nothing"
    return MetricResult(name=name, values=values, higher_is_better=False, note=note)


def _batched(fn: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            a = x[i : i + batch_size].to(device=device, dtype=torch.float32)
            b = y[i : i + batch_size].to(device=device, dtype=torch.float32)
            out.append(fn(a, b).reshape(-1).to(device="cpu", dtype=torch.float64))
    return torch.cat(out).numpy()


# --------------------------------------------------------------------------------------------
# piq metrics
# --------------------------------------------------------------------------------------------


def haarpsi(sr: np.ndarray | torch.Tensor, hr: np.ndarray | torch.Tensor) -> MetricResult:
    """Per-image HaarPSI (``piq.haarpsi``, 3 scales, subsampling on; higher is better).

    RGB images are scored on the luma/chroma (YIQ) of piq's implementation. Images with a side
    below 16 px give an unavailable (NaN) result with the reason.
    """
    import piq

    x, y = _unit_float_pair(sr, hr, (0.0, 1.0), need_rgb=False, what="HaarPSI")
    name = "HaarPSI (piq)"
    h, w = x.shape[-2:]
    if min(h, w) < HAARPSI_MIN_SIDE:
        return _unavailable(name, x.shape[0], True, f"HaarPSI needs sides >= {HAARPSI_MIN_SIDE} px, got {h}x{w}")
    values = piq.haarpsi(x, y, data_range=1.0, reduction="none")
    return MetricResult(name=name, values=values.reshape(-1).numpy().astype(np.float64), higher_is_better=True)


def ms_ssim_min_side(scales: int = 5) -> int:
    """Smallest side MS-SSIM with an 11 x 11 window can use with ``scales`` scales."""
    return (SSIM_WINDOW - 1) * 2 ** (scales - 1) + 1


def ms_ssim(sr: np.ndarray | torch.Tensor, hr: np.ndarray | torch.Tensor, *, scales: int = 5) -> MetricResult:
    """Per-image MS-SSIM (``piq.multi_scale_ssim``; 11 x 11 Gaussian window, sigma 1.5).

    Args:
        sr, hr: images or batches in [0, 1] (or uint8).
        scales: number of scales. 5 (default) uses the paper's weights
            (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) and needs sides >= 161 px; fewer scales use
            the first weights, renormalised to sum 1 (a reduced MS-SSIM, labelled as such), and
            need sides >= 10 * 2^(scales-1) + 1.

    Returns:
        A :class:`MetricResult`; unavailable (NaN, with the reason) when the images are too small.
    """
    import piq

    scales = check_int(scales, "scales", minimum=1)
    if scales > len(MS_SSIM_WEIGHTS):
        raise ValueError(f"scales must be at most {len(MS_SSIM_WEIGHTS)}, got {scales}")
    x, y = _unit_float_pair(sr, hr, (0.0, 1.0), need_rgb=False, what="MS-SSIM")
    name = "MS-SSIM (piq)" if scales == len(MS_SSIM_WEIGHTS) else f"MS-SSIM (piq, {scales} scales)"
    h, w = x.shape[-2:]
    need = ms_ssim_min_side(scales)
    if min(h, w) < need:
        return _unavailable(
            name,
            x.shape[0],
            True,
            f"MS-SSIM with {scales} scales needs sides >= {need} px, got {h}x{w} "
            "(pass fewer scales for a reduced MS-SSIM)",
        )
    weights = None
    if scales != len(MS_SSIM_WEIGHTS):
        weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype)
    values = piq.multi_scale_ssim(
        x, y, kernel_size=SSIM_WINDOW, kernel_sigma=SSIM_SIGMA, data_range=1.0, reduction="none",
        scale_weights=weights,
    )
    return MetricResult(name=name, values=values.reshape(-1).numpy().astype(np.float64), higher_is_better=True)


def _piq_lpips_weights_location(weights_path: str | os.PathLike | None) -> tuple[Path, str]:
    if weights_path is not None:
        return Path(weights_path).expanduser(), "the weights_path argument"
    value = os.environ.get("CTLIB_PIQ_LPIPS_WEIGHTS", "").strip()
    if value:
        return Path(value).expanduser(), "$CTLIB_PIQ_LPIPS_WEIGHTS"
    return _hub_checkpoints_dir() / PIQ_LPIPS_WEIGHTS_FILE, "the torch hub checkpoints folder"


def _piq_lin_weights(obj: Any, origin: str) -> list[torch.Tensor]:
    """piq's per-layer LPIPS weights as five (1, C, 1, 1) tensors."""
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if not isinstance(obj, (list, tuple)) or len(obj) != len(_PIQ_LPIPS_CHANNELS):
        raise _WeightsError(f"piq LPIPS: {origin} does not hold the expected 5 per-layer weight tensors")
    out = []
    for w, c in zip(obj, _PIQ_LPIPS_CHANNELS):
        if not isinstance(w, torch.Tensor) or w.numel() != c:
            raise _WeightsError(
                f"piq LPIPS: {origin} does not hold the expected per-layer weights (channels {_PIQ_LPIPS_CHANNELS})"
            )
        out.append(w.detach().reshape(1, c, 1, 1).to(torch.float32))
    return out


def _build_piq_lpips(features: Mapping[str, torch.Tensor], lin_weights: list[torch.Tensor], origin: str) -> torch.nn.Module:
    """piq's LPIPS (VGG16, ImageNet mean/std, unit-normalised features, MSE) from given tensors."""
    import torchvision
    from piq import ContentLoss
    from piq.perceptual import IMAGENET_MEAN, IMAGENET_STD, VGG16_LAYERS

    with torch.random.fork_rng(devices=[]):
        try:  # the feature stack alone; skips initialising the 120M-parameter classifier
            from torchvision.models.vgg import cfgs, make_layers

            vgg_features = make_layers(cfgs["D"])
        except ImportError:  # pragma: no cover - older/newer torchvision layouts
            vgg_features = torchvision.models.vgg16(weights=None).features
    with torch.no_grad():
        for index, module in vgg_features.named_children():
            for pname, param in module.named_parameters(recurse=False):
                src = features.get(f"{index}.{pname}")
                if src is None or tuple(src.shape) != tuple(param.shape):
                    raise _WeightsError(f"piq LPIPS: {origin} does not hold torchvision vgg16 weights")
                param.copy_(src.to(param.dtype))
    layers = ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    model = ContentLoss(
        feature_extractor=vgg_features,
        layers=[VGG16_LAYERS[name] for name in layers],
        weights=lin_weights,
        distance="mse",
        reduction="none",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        normalize_features=True,
    )
    return model.eval().requires_grad_(False)


def _piq_lpips_model(
    weights_path: Any, backbone_path: Any, device: torch.device
) -> torch.nn.Module:
    wpath, wsource = _piq_lpips_weights_location(weights_path)
    missing: list[tuple[str, str]] = []
    reasons: list[str] = []
    if not wpath.is_file():
        missing.append((wpath.name, str(wpath.parent)))
        reasons.append(
            f"piq's LPIPS weights {wpath.name} in {wpath.parent}"
            if wsource == "the torch hub checkpoints folder"
            else f"{wsource} points to {wpath}, which is not a file"
        )
    bpath, bsource = lpips_backbone_location("vgg", backbone_path)
    if not bpath.is_file():
        missing.append((bpath.name, str(bpath.parent)))
        reasons.append(
            f"torchvision's ImageNet vgg16 weights {bpath.name} in {bpath.parent}"
            if bsource == "the torch hub checkpoints folder"
            else f"{bsource} points to {bpath}, which is not a file"
        )
    if missing:
        raise _WeightsError(
            "LPIPS-VGG (piq) needs " + "; and ".join(reasons) + " (torch.hub.get_dir()/checkpoints; "
            "$CTLIB_PIQ_LPIPS_WEIGHTS and $CTLIB_LPIPS_BACKBONE_VGG may point elsewhere); "
            "nothing is downloaded automatically",
            missing,
        )

    def build() -> torch.nn.Module:
        try:
            lin = torch.load(wpath, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise _WeightsError(f"piq LPIPS: cannot read {wpath}: {exc}") from None
        lin_weights = _piq_lin_weights(lin, str(wpath))
        features = _load_features_state(bpath, "vgg")
        return _build_piq_lpips(features, lin_weights, str(bpath))

    return _cached("piq-lpips", f"{wpath.resolve()}|{bpath.resolve()}", device, build)


def piq_lpips_available(
    *, weights_path: str | os.PathLike | None = None, backbone_path: str | os.PathLike | None = None
) -> tuple[bool, str]:
    """Whether piq's VGG LPIPS (the report's LPIPS, erratum 4) can run from local files."""
    try:
        _piq_lpips_model(weights_path, backbone_path, torch.device("cpu"))
    except _WeightsError as exc:
        return False, exc.reason
    return True, "LPIPS-VGG (piq) from local weight files"


def piq_lpips_distance(
    sr: np.ndarray | torch.Tensor,
    hr: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    weights_path: str | os.PathLike | None = None,
    backbone_path: str | os.PathLike | None = None,
) -> MetricResult:
    """Per-image LPIPS as ``piq.LPIPS()`` computes it (VGG16; inputs in [0, 1]), local files only.

    piq normalises by the ImageNet mean/std, which equals the ``lpips`` package's scaling layer
    applied to [-1, 1] inputs, and weights unit-normalised feature differences per layer, so
    with the same linear weights it is the ``lpips`` package's VGG LPIPS. Its files:
    ``lpips_weights.pt`` (``weights_path`` / ``$CTLIB_PIQ_LPIPS_WEIGHTS`` / torch hub
    checkpoints) and the VGG16 backbone (found as for :func:`lpips_distance` with net 'vgg').
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    x, y = _unit_float_pair(sr, hr, (0.0, 1.0), need_rgb=True, what="LPIPS")
    name = "LPIPS-VGG (piq)"
    n, _, h, w = x.shape
    if min(h, w) < LPIPS_MIN_SIDE["vgg"]:
        return _unavailable(name, n, False, f"VGG LPIPS needs sides >= {LPIPS_MIN_SIDE['vgg']} px, got {h}x{w}")
    dev = _resolve_device(device, sr)
    try:
        model = _piq_lpips_model(weights_path, backbone_path, dev)
    except _WeightsError as exc:
        return _unavailable(name, n, False, exc.reason, exc.needs)
    values = _batched(model, x, y, batch_size, dev)
    return MetricResult(name=name, values=values, higher_is_better=False)


def report_metrics(
    sr: np.ndarray | torch.Tensor,
    hr: np.ndarray | torch.Tensor,
    *,
    lpips: bool = True,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    weights_path: str | os.PathLike | None = None,
    backbone_path: str | os.PathLike | None = None,
) -> dict[str, MetricResult]:
    """The report's Table 1 metrics, computed the way its code computes them (errata 3 and 4).

    * ``"psnr_rgb_piq"`` -- "PSNR-RGB (piq)": ``piq.psnr`` on RGB in [0, 1] (``10 log10(1 /
      (MSE + 1e-8))``; identical images give 80 dB, not inf).
    * ``"ssim_loss_piq"`` -- "SSIMLoss = 1 - SSIM (piq)": ``piq.SSIMLoss`` with its defaults
      (11 x 11 Gaussian window, sigma 1.5, average-pool downsampling by round(min(H, W) / 256)).
      **The report's "SSIM" column is this loss**, so lower is better and its "higher SSIM" is
      a lower SSIM (erratum 3).
    * ``"lpips_vgg_piq"`` -- "LPIPS-VGG (piq)": see :func:`piq_lpips_distance`; unavailable
      (with the files it needs) when its weights are not on this machine.

    None of these is comparable with the ResShift paper's Y-channel figures (erratum 4).
    """
    import piq

    x, y = _unit_float_pair(sr, hr, (0.0, 1.0), need_rgb=True, what="report_metrics")
    out = {
        "psnr_rgb_piq": MetricResult(
            name="PSNR-RGB (piq)",
            values=piq.psnr(x, y, data_range=1.0, reduction="none").numpy().astype(np.float64),
            higher_is_better=True,
        ),
        "ssim_loss_piq": MetricResult(
            name="SSIMLoss = 1 - SSIM (piq)",
            values=piq.SSIMLoss(data_range=1.0, reduction="none")(x, y).reshape(-1).numpy().astype(np.float64),
            higher_is_better=False,
            note="the report's 'SSIM' column is this loss (erratum 3)",
        ),
    }
    if lpips:
        out["lpips_vgg_piq"] = piq_lpips_distance(
            x, y, batch_size=batch_size, device=device if device is not None else _resolve_device(None, sr),
            weights_path=weights_path, backbone_path=backbone_path,
        )
    return out


# --------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------


def compute_all(
    sr: np.ndarray | torch.Tensor,
    hr: np.ndarray | torch.Tensor,
    *,
    border: int = 0,
    quantize: bool = False,
    lpips_net: str | None = "alex",
    lpips_backbone_path: str | os.PathLike | None = None,
    ms_ssim_scales: int = 5,
    batch_size: int = 16,
    device: str | torch.device | None = None,
) -> dict[str, MetricResult]:
    """Per-image full-reference metrics of an RGB batch (torch ``(N, 3, H, W)`` in [0, 1]).

    Keys and labels:
    ``psnr_y`` "PSNR-Y", ``ssim_y`` "SSIM-Y", ``psnr_rgb`` "PSNR-RGB", ``ssim_rgb`` "SSIM-RGB"
    (:func:`psnr` / :func:`ssim` with ``border``), ``haarpsi`` "HaarPSI (piq)", ``ms_ssim``
    "MS-SSIM (piq)" (:func:`ms_ssim` with ``ms_ssim_scales``; NaN with the reason for images under
    161 px), ``lpips`` "LPIPS (alex)" (:func:`lpips_distance`; unavailable with the file it needs
    when the backbone weights are absent; left out when ``lpips_net`` is None).

    Args:
        sr, hr: RGB images or batches (torch channels-first or numpy channels-last), float in
            [0, 1] or uint8; same shape.
        border: pixels cropped from every edge for PSNR and SSIM (not for the piq/LPIPS metrics).
        quantize: round float images to uint8 values first, for every metric.
        lpips_net: ``"alex"``, ``"vgg"`` or None.
        lpips_backbone_path: local torchvision backbone weights for LPIPS.
        ms_ssim_scales: MS-SSIM scales (5 = the standard MS-SSIM).
        batch_size, device: for LPIPS.

    Returns:
        dict of :class:`MetricResult`, each with values of shape ``(N,)``.
    """
    a, b = _to_pair(sr, hr, quantize=quantize)
    if a.channels != 3:
        raise ValueError(
            "compute_all needs RGB images (3 channels); got grayscale (1 channel) -- use psnr/ssim "
            "directly for grayscale images"
        )
    border = check_int(border, "border", minimum=0)
    n = a.data.shape[0]
    # Canonical images as uint8 or float [0, 1] batches, so every metric sees the same pixels.
    if a.is_uint8:
        sr_c, hr_c = a.data.astype(np.uint8), b.data.astype(np.uint8)
    else:
        sr_c, hr_c = a.data / PEAK, b.data / PEAK

    results: dict[str, MetricResult] = {}
    for key, label, y_channel in (("y", "Y", True), ("rgb", "RGB", False)):
        results[f"psnr_{key}"] = MetricResult(
            name=f"PSNR-{label}",
            values=np.atleast_1d(psnr(sr_c, hr_c, y_channel=y_channel, border=border)),
            higher_is_better=True,
        )
        try:
            ssim_values = np.atleast_1d(ssim(sr_c, hr_c, y_channel=y_channel, border=border))
            results[f"ssim_{key}"] = MetricResult(name=f"SSIM-{label}", values=ssim_values, higher_is_better=True)
        except ValueError as exc:
            results[f"ssim_{key}"] = _unavailable(f"SSIM-{label}", n, True, str(exc))
    results["haarpsi"] = haarpsi(sr_c, hr_c)
    results["ms_ssim"] = ms_ssim(sr_c, hr_c, scales=ms_ssim_scales)
    if lpips_net is not None:
        results["lpips"] = lpips_distance(
            sr_c, hr_c, net=lpips_net, batch_size=batch_size,
            device=device if device is not None else _resolve_device(None, sr),
            backbone_path=lpips_backbone_path,
        )
    return results
