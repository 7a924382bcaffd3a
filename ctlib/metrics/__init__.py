"""Full-reference image-quality metrics for super-resolution, with every convention written down.

The package is a map of four parts; every name below is importable from ``ctlib.metrics``.

* :mod:`ctlib.metrics.distortion` -- the conventions every metric shares (numpy channels-last,
  torch channels-first; uint8 in [0, 255] or float in [0, 1]; ``quantize``), :class:`MetricResult`,
  and the distortion metrics: :func:`rgb_to_y` (BT.601 Y, as MATLAB), :func:`psnr`, :func:`ssim`
  (Y channel or RGB, border crop; the official ``calculate_psnr`` / ``calculate_ssim`` to 1e-10),
  and :func:`trainer_batch_psnr`, :func:`trainer_batch_psnr_sum`, :func:`trainer_batch_ssim_sum`
  (the official trainer's ``batch_PSNR`` / ``batch_SSIM``: a **sum over the batch**, another Y
  rounding).
* :mod:`ctlib.metrics.lpips_metric` -- :func:`lpips_distance`, LPIPS through the ``lpips`` package
  (AlexNet by default, VGG as an option), and where its torchvision backbone weights are looked for
  (:func:`lpips_backbone_location`, :func:`lpips_available`), the model (:func:`lpips_model`) and
  its cache. Nothing is downloaded: a missing file gives "unavailable (needs FILE in DIR)" and NaNs.
* :mod:`ctlib.metrics.piq_metrics` -- :func:`haarpsi`, :func:`ms_ssim` through ``piq`` (no weights
  needed), :func:`piq_lpips_distance` (piq's VGG LPIPS from local files), and
  :func:`report_metrics`, the report's own conventions: ``piq.psnr`` on RGB, ``piq.SSIMLoss``
  (1 - SSIM; the report's "SSIM" column is this loss, erratum 3) and piq's VGG LPIPS (erratum 4).
* here: :func:`compute_all` -- per-image PSNR-Y, SSIM-Y, PSNR-RGB, SSIM-RGB, HaarPSI, MS-SSIM and
  LPIPS for a batch, as a dict of :class:`MetricResult`.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ctlib._checks import check_int

from .distortion import (
    PEAK,
    SSIM_K1,  # noqa: F401 (re-exported constant)
    SSIM_K2,  # noqa: F401 (re-exported constant)
    SSIM_SIGMA,  # noqa: F401 (re-exported constant)
    SSIM_WINDOW,  # noqa: F401 (re-exported constant)
    Y_OFFSET,  # noqa: F401 (re-exported constant)
    Y_WEIGHTS,  # noqa: F401 (re-exported constant)
    MetricResult,
    _to_pair,
    _unavailable,
    psnr,
    rgb_to_y,
    ssim,
    trainer_batch_psnr,
    trainer_batch_psnr_sum,
    trainer_batch_ssim_sum,
)
from .lpips_metric import (
    LPIPS_BACKBONE_FILES,  # noqa: F401 (re-exported constant)
    LPIPS_MIN_SIDE,  # noqa: F401 (re-exported constant)
    _resolve_device,
    clear_lpips_cache,
    lpips_available,
    lpips_backbone_filename,
    lpips_backbone_location,
    lpips_distance,
    lpips_model,
)
from .piq_metrics import (
    HAARPSI_MIN_SIDE,  # noqa: F401 (re-exported constant)
    MS_SSIM_WEIGHTS,  # noqa: F401 (re-exported constant)
    PIQ_LPIPS_WEIGHTS_FILE,  # noqa: F401 (re-exported constant)
    haarpsi,
    ms_ssim,
    ms_ssim_min_side,
    piq_lpips_available,
    piq_lpips_distance,
    report_metrics,
)

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
