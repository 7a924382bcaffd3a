r"""Named network configurations and builders.

``V1_UNET``
    The official realsr x4 v1 ``UNetModelSwin`` (``configs/realsr_swinunet_realesrgan256.yaml``):
    latent 3 + LR 3 input channels, model_channels 160, channel_mult [1,2,2,4], 2 ResBlocks per
    level, Swin (embed 192, 6 heads, window 8) at every level, 118,593,583 parameters.  Its inputs
    must have sides that are multiples of 64.
``V1_VQF4``
    The official VQ-f4 autoencoder: 8192 codes of dimension 3, ch 128, ch_mult [1,2,4], 2 ResBlocks
    per level, no attention except the middle blocks; 55,322,782 parameters.
``BUNDLED_PIXEL``
    The kit's small pixel-space model for the bundled (``cpu``) profile: 3 + 3 input channels (the
    state and the bicubic-upsampled LR, ``lq_size == image_size`` so the LR feature extractor is
    the identity), model_channels 32, channel_mult [1,2,2,2], one ResBlock per level, Swin
    (embed 64, 4 heads, window 8, textbook mask, MLP ratio 2) only at the two coarsest levels
    (64 and 32 for 256 x 256 inputs); 1,143,107 parameters, sides multiples of 64.

    Measured (``benchmarks/networks.py``, float32, 2 CPU threads of a shared 2-core machine,
    torch 2.14.1): one forward at batch 8, 256 x 256 takes about 0.9 s (median; 0.11 s per
    image), so the cpu profile's 12 sampler rows x 15 evaluations x 24 images need about
    3 minutes of network time.  The ~0.2 s per batch-8 forward the issue hoped for is not
    reachable by any UNet of this family: the full-resolution level alone (input conv, one
    ResBlock, two decoder ResBlocks, output conv at 32 channels on 8 x 256 x 256 pixels) costs
    about 40 GFLOP, ~0.5 s at the ~80 GFLOP/s two cores sustain.  Larger choices measured on the
    same machine: model_channels 64 (4.5 M parameters) ~2.5 s; Swin also at 128 x 128 ~1.4 s.

All configs are read-only mappings; :func:`build_unet` / :func:`build_vq` accept them or any
dict of constructor arguments (e.g. a model's ``.config``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from .unet import UNetModelSwin
from .vq import VQModel

__all__ = ["V1_UNET", "V1_VQF4", "BUNDLED_PIXEL", "build_unet", "build_vq", "to_plain"]


def _frozen(d: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType({k: _frozen(v) if isinstance(v, dict) else (tuple(v) if isinstance(v, list) else v)
                             for k, v in d.items()})


def to_plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """A plain, JSON-friendly copy (dicts and lists) of a config mapping."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, Mapping):
            out[k] = to_plain(v)
        elif isinstance(v, (list, tuple)):
            out[k] = list(v)
        else:
            out[k] = v
    return out


V1_UNET: Mapping[str, Any] = _frozen(
    {
        "image_size": 64,
        "in_channels": 3,
        "model_channels": 160,
        "out_channels": 3,
        "attention_resolutions": [64, 32, 16, 8],
        "dropout": 0,
        "channel_mult": [1, 2, 2, 4],
        "num_res_blocks": [2, 2, 2, 2],
        "conv_resample": True,
        "dims": 2,
        "use_fp16": False,
        "num_head_channels": 32,
        "use_scale_shift_norm": True,
        "resblock_updown": False,
        "swin_depth": 2,
        "swin_embed_dim": 192,
        "window_size": 8,
        "mlp_ratio": 4,
        "cond_lq": True,
        "lq_size": 64,
        "mask_style": "official",
    }
)

V1_VQF4: Mapping[str, Any] = _frozen(
    {
        "embed_dim": 3,
        "n_embed": 8192,
        "ddconfig": {
            "double_z": False,
            "z_channels": 3,
            "resolution": 256,
            "in_channels": 3,
            "out_ch": 3,
            "ch": 128,
            "ch_mult": [1, 2, 4],
            "num_res_blocks": 2,
            "attn_resolutions": [],
            "dropout": 0.0,
            "padding_mode": "zeros",
        },
    }
)

BUNDLED_PIXEL: Mapping[str, Any] = _frozen(
    {
        "image_size": 256,
        "in_channels": 3,
        "model_channels": 32,
        "out_channels": 3,
        "attention_resolutions": [64, 32],
        "dropout": 0,
        "channel_mult": [1, 2, 2, 2],
        "num_res_blocks": [1, 1, 1, 1],
        "conv_resample": True,
        "dims": 2,
        "use_fp16": False,
        "num_head_channels": 16,
        "use_scale_shift_norm": True,
        "resblock_updown": False,
        "swin_depth": 2,
        "swin_embed_dim": 64,
        "window_size": 8,
        "mlp_ratio": 2,
        "cond_lq": True,
        "lq_size": 256,
        "mask_style": "textbook",
    }
)


def build_unet(config: Mapping[str, Any], *, device: torch.device | str | None = None,
               dtype: torch.dtype | None = None) -> UNetModelSwin:
    """``UNetModelSwin(**config)`` (a named config or any constructor dict), optionally moved.

    ``device="meta"`` builds the model without allocating memory (shapes and keys only).
    """
    kwargs = to_plain(config)
    if device is not None and str(device) == "meta":
        with torch.device("meta"):
            return UNetModelSwin(**kwargs)
    model = UNetModelSwin(**kwargs)
    return model.to(device=device, dtype=dtype) if (device is not None or dtype is not None) else model


def build_vq(config: Mapping[str, Any], *, device: torch.device | str | None = None,
             dtype: torch.dtype | None = None) -> VQModel:
    """``VQModel(**config)`` (e.g. ``V1_VQF4``), optionally moved; ``device="meta"`` allocates nothing."""
    kwargs = to_plain(config)
    if device is not None and str(device) == "meta":
        with torch.device("meta"):
            return VQModel(**kwargs)
    model = VQModel(**kwargs)
    return model.to(device=device, dtype=dtype) if (device is not None or dtype is not None) else model
