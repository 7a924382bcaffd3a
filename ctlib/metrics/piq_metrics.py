"""piq's metrics: HaarPSI, MS-SSIM, piq's VGG LPIPS, and the report's own conventions.

:func:`haarpsi` and :func:`ms_ssim` run through ``piq`` (no weights needed);
:func:`piq_lpips_distance` is ``piq.LPIPS()`` built from local files only; :func:`report_metrics`
computes the report's Table 1 metrics the way its code does: ``piq.psnr`` on RGB, ``piq.SSIMLoss``
(which is 1 - SSIM; the report's "SSIM" column is this loss, erratum 3) and piq's VGG LPIPS
(erratum 4).

Conventions and files
---------------------
They run in float32 (as piq is normally used; its MS-SSIM is about 8x slower in float64).
HaarPSI (3 scales, needs sides >= 16 px) and MS-SSIM (11 x 11 Gaussian window, sigma 1.5, the
paper's five scale weights, needs sides >= 161 px; ``scales=k`` uses the first k weights,
renormalised, and needs sides >= 10 * 2^(k-1) + 1) run offline. Images too small for them give
a NaN result with the reason. piq's LPIPS wants ``lpips_weights.pt`` (from piq's release page)
and ``vgg16-397923af.pth``, both in ``torch.hub.get_dir()/checkpoints``; it is built here from
local files only (``CTLIB_PIQ_LPIPS_WEIGHTS`` may point at the first file).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctlib._checks import check_int

from .distortion import SSIM_SIGMA, SSIM_WINDOW, MetricResult, _unavailable, _unit_float_pair
from .lpips_metric import (
    LPIPS_MIN_SIDE,
    _batched,
    _cached,
    _hub_checkpoints_dir,
    _load_features_state,
    _resolve_device,
    _WeightsError,
    lpips_backbone_location,
)

__all__ = [
    "haarpsi",
    "ms_ssim",
    "ms_ssim_min_side",
    "piq_lpips_available",
    "piq_lpips_distance",
    "report_metrics",
]

# --------------------------------------------------------------------------------------------
# Constants (documented in the module docstring)
# --------------------------------------------------------------------------------------------

#: MS-SSIM scale weights of Wang, Simoncelli and Bovik (2003), piq's defaults.
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: piq's HaarPSI with 3 scales needs both sides >= 2 ** (3 + 1).
HAARPSI_MIN_SIDE: int = 16
#: File name piq's LPIPS downloads its linear-layer weights to (torch hub checkpoints folder).
PIQ_LPIPS_WEIGHTS_FILE: str = "lpips_weights.pt"
_PIQ_LPIPS_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)


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
    bpath, bsource = lpips_backbone_location("vgg", backbone_path)
    missing: list[tuple[str, str]] = []
    reasons: list[str] = []
    for path, source, what in ((wpath, wsource, "piq's LPIPS weights"),
                               (bpath, bsource, "torchvision's ImageNet vgg16 weights")):
        if not path.is_file():
            missing.append((path.name, str(path.parent)))
            reasons.append(
                f"{what} {path.name} in {path.parent}"
                if source == "the torch hub checkpoints folder"
                else f"{source} points to {path}, which is not a file"
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
