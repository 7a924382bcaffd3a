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
    state and the bicubic-upsampled LR; ``lq_size == image_size`` so the LR feature extractor is
    the identity), model_channels 32, channel_mult [1, 1, 2, 2], ResBlocks per level [0, 1, 1, 1]
    (the full-resolution level has only the input conv, one decoder ResBlock and the output head),
    Swin (embed 64, 4 heads, window 8, MLP ratio 2, textbook mask) at the two coarsest levels (64
    and 32 for a 256 x 256 input); 1,568,235 parameters; sides must be multiples of 64 (the
    wrapper pads the LR to multiples of 16).

    Why this size (``benchmarks/networks.py``, float32, torch 2.14.1, batch 8 at 256 x 256):
    124 GFLOP per forward; 3.5 s of single-thread CPU time (2.6 s with
    ``build_unet(..., channels_last=True)``), i.e. about 1.5-2 s of wall time on two idle
    cores, 5.5 s measured on the shared, loaded 2-core build machine.  The ~0.2 s per batch-8
    forward the issue hoped for is out of reach for any network of this family at 256 x 256:
    the floor is the full-resolution level (at least 32 channels, since GroupNorm uses 32 groups;
    input conv, one ResBlock at 64 -> 32 channels, the upsampling conv feeding it, output conv),
    about 45 GFLOP, plus the half-resolution level.  Measured alternatives: channel_mult
    [1, 2, 2, 2] with one ResBlock everywhere (1.9 M parameters) 267 GFLOP; [1, 1, 1, 2] 100
    GFLOP (less capacity for a 20 % saving).  For the cpu profile's 12 rows x 15 evaluations x 24
    images (540 batch-8 forwards) that is ~15-18 minutes of network time on two idle cores;
    evaluating on 128 x 128 crops (4 x fewer pixels) or on fewer images brings it under 10.
    Reference point: the v1 UNet needs 101 GFLOP (1.2 s single-thread CPU) per 64 x 64 latent.

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
        "channel_mult": [1, 1, 2, 2],
        "num_res_blocks": [0, 1, 1, 1],
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
               dtype: torch.dtype | None = None, channels_last: bool = False) -> UNetModelSwin:
    """``UNetModelSwin(**config)`` (a named config or any constructor dict), optionally moved.

    ``device="meta"`` builds the model without allocating memory (shapes and keys only).
    ``channels_last=True`` stores the convolution weights channels-last, which makes CPU inference
    ~25 % faster (inputs may stay in the default layout; results agree to float32 rounding).
    """
    kwargs = to_plain(config)
    if device is not None and str(device) == "meta":
        with torch.device("meta"):
            return UNetModelSwin(**kwargs)
    model = UNetModelSwin(**kwargs)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def build_vq(config: Mapping[str, Any], *, device: torch.device | str | None = None,
             dtype: torch.dtype | None = None) -> VQModel:
    """``VQModel(**config)`` (e.g. ``V1_VQF4``), optionally moved; ``device="meta"`` allocates nothing."""
    kwargs = to_plain(config)
    if device is not None and str(device) == "meta":
        with torch.device("meta"):
            return VQModel(**kwargs)
    model = VQModel(**kwargs)
    return model.to(device=device, dtype=dtype) if (device is not None or dtype is not None) else model
