r"""The official ResShift Swin-UNet (``UNetModelSwin`` in ``models/unet.py``), ported.

Same constructor arguments, state-dict names, shapes and order, and numerics as the official class:
on the golden fixture the float32 output agrees to 4e-6 with fused attention (bit for bit with
``WindowAttention.use_sdpa = False``), and ``model.double()`` matches the official float64 run to
1e-14.  The network predicts ``x0`` from

* ``x``          the (normalised) state, ``(B, in_channels, H, W)``;
* ``timesteps``  ``(B,)`` official step indices ``0 .. T-1`` (0 = least noise); floats are allowed
  and give the same sinusoidal embedding the official code computes from ``timesteps.float()``;
* ``lq``         the low-resolution condition, concatenated on the channel axis (after the optional
  ``feature_extractor`` when ``lq_size != image_size``).

Architecture (ADM-style UNet): ``time_embed`` (sinusoidal, cos first -> Linear -> SiLU -> Linear);
``input_blocks`` with ``num_res_blocks[level]`` ResBlocks per level (scale-shift conditioning on the
time embedding), a Swin :class:`~ctlib.nn.swin.BasicLayer` after the first ResBlock of every level
whose construction-time size is in ``attention_resolutions`` (absolute sizes, starting at
``image_size`` and halving per level), a stride-2 conv between levels; ``middle_block`` ResBlock,
Swin layer, ResBlock; mirrored ``output_blocks`` with skip concatenations and nearest x2 upsampling;
``out`` = GroupNorm, SiLU, 3x3 conv.

Differences from the official class, none of which changes a float32 result:

* dtype follows the parameters: ``model.double()`` runs in float64 with the three dtype-only changes
  of the fixture's ``output_float64`` (GroupNorm keeps the dtype, float64 time embedding, ``dtype``
  attribute float64).  Half precision: use ``torch.autocast`` (``use_fp16=True`` is refused).
* ``mask_style="textbook"`` is offered for new models (default ``"official"``, quirk Q1); masks are
  cached per input size and the stored ``attn_mask`` buffers are ignored (quirk Q2).
* inputs are validated: channel counts, and ``H``, ``W`` multiples of :attr:`size_multiple`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .swin import MASK_STYLES, BasicLayer, normalization

__all__ = ["UNetModelSwin", "timestep_embedding", "ResBlock", "Downsample", "Upsample"]


def timestep_embedding(
    timesteps: torch.Tensor, dim: int, max_period: float = 10000.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t f_i) | sin(t f_i)]`` with ``f_i = exp(-ln(max_period) i / half)``,
    ``i = 0 .. half-1`` (cos first, as the official ``models/basic_ops.py``); computed in ``dtype``.
    ``timesteps`` may be fractional."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=dtype, device=timesteps.device) / half)
    args = timesteps.to(dtype)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedSequential(nn.Sequential):
    """Sequential container that passes the time embedding to the ResBlocks it holds."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class Upsample(nn.Module):
    """Nearest x2 upsampling, then an optional 3x3 conv."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None) -> None:
        super().__init__()
        self.channels, self.out_channels, self.use_conv = channels, out_channels or channels, use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, self.out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """Stride-2 3x3 conv (padding 1), or 2x2 average pooling without ``use_conv``."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None) -> None:
        super().__init__()
        self.channels, self.out_channels, self.use_conv = channels, out_channels or channels, use_conv
        if use_conv:
            self.op: nn.Module = nn.Conv2d(channels, self.out_channels, 3, stride=2, padding=1)
        else:
            if self.out_channels != channels:
                raise ValueError("average-pool downsampling cannot change the channel count")
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ResBlock(nn.Module):
    """Residual block conditioned on the time embedding (official names ``in_layers``, ``emb_layers``,
    ``out_layers``, ``skip_connection``).  With ``use_scale_shift_norm`` the embedding projection is
    split into (scale, shift) and the block computes ``GroupNorm(h) (1 + scale) + shift``."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_conv: bool = False,
        use_scale_shift_norm: bool = False,
        up: bool = False,
        down: bool = False,
    ) -> None:
        super().__init__()
        self.channels, self.out_channels = channels, out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        out_ch = self.out_channels
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(), nn.Conv2d(channels, out_ch, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd: nn.Module = Upsample(channels, False)
            self.x_upd: nn.Module = Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_ch if use_scale_shift_norm else out_ch))
        self.out_layers = nn.Sequential(
            normalization(out_ch), nn.SiLU(), nn.Dropout(p=dropout), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        )
        if out_ch == channels:
            self.skip_connection: nn.Module = nn.Identity()
        elif use_conv:
            self.skip_connection = nn.Conv2d(channels, out_ch, 3, padding=1)
        else:
            self.skip_connection = nn.Conv2d(channels, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.updown:
            h = self.h_upd(self.in_layers[:-1](x))
            x = self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class UNetModelSwin(nn.Module):
    """The official ResShift ``UNetModelSwin`` (see the module docstring).

    Constructor arguments are the official ones (``num_res_blocks`` an int or one per level;
    ``attention_resolutions`` absolute construction-time feature sizes), plus ``mask_style``
    (``"official"`` or ``"textbook"``).  :attr:`config` holds the arguments; ``UNetModelSwin(**config)``
    rebuilds the model.
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int | Sequence[int],
        attention_resolutions: Sequence[int],
        dropout: float = 0,
        channel_mult: Sequence[int] = (1, 2, 4, 8),
        conv_resample: bool = True,
        dims: int = 2,
        use_fp16: bool = False,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        swin_depth: int = 2,
        swin_embed_dim: int = 96,
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        patch_norm: bool = False,
        cond_lq: bool = True,
        cond_mask: bool = False,
        lq_size: int = 256,
        mask_style: str = "official",
    ) -> None:
        super().__init__()
        channel_mult = [int(m) for m in channel_mult]
        if isinstance(num_res_blocks, int):
            num_res_blocks = [num_res_blocks] * len(channel_mult)
        num_res_blocks = [int(n) for n in num_res_blocks]
        if len(num_res_blocks) != len(channel_mult):
            raise ValueError(
                f"num_res_blocks must be an int or have one entry per level ({len(channel_mult)}), "
                f"got {num_res_blocks}"
            )
        if dims != 2:
            raise ValueError(f"only dims=2 is supported, got {dims}")
        if use_fp16:
            raise ValueError("use_fp16=True is not supported; run the float32 model under torch.autocast")
        if mask_style not in MASK_STYLES:
            raise ValueError(f"mask_style must be one of {MASK_STYLES}, got {mask_style!r}")
        if num_head_channels == -1:
            swin_heads = num_heads
        else:
            if num_head_channels <= 0 or swin_embed_dim % num_head_channels:
                raise ValueError(
                    f"swin_embed_dim ({swin_embed_dim}) must be a multiple of num_head_channels ({num_head_channels})"
                )
            swin_heads = swin_embed_dim // num_head_channels
        if cond_lq and lq_size != image_size and (lq_size % image_size or (lq_size // image_size) & (lq_size // image_size - 1)):
            raise ValueError(f"lq_size ({lq_size}) must equal image_size ({image_size}) times a power of 2")

        self.config: dict[str, Any] = {
            "image_size": image_size,
            "in_channels": in_channels,
            "model_channels": model_channels,
            "out_channels": out_channels,
            "num_res_blocks": list(num_res_blocks),
            "attention_resolutions": [int(a) for a in attention_resolutions],
            "dropout": dropout,
            "channel_mult": list(channel_mult),
            "conv_resample": conv_resample,
            "dims": dims,
            "use_fp16": use_fp16,
            "num_heads": num_heads,
            "num_head_channels": num_head_channels,
            "use_scale_shift_norm": use_scale_shift_norm,
            "resblock_updown": resblock_updown,
            "swin_depth": swin_depth,
            "swin_embed_dim": swin_embed_dim,
            "window_size": window_size,
            "mlp_ratio": mlp_ratio,
            "patch_norm": patch_norm,
            "cond_lq": cond_lq,
            "cond_mask": cond_mask,
            "lq_size": lq_size,
            "mask_style": mask_style,
        }
        self.image_size, self.in_channels, self.out_channels = image_size, in_channels, out_channels
        self.model_channels, self.channel_mult, self.num_res_blocks = model_channels, channel_mult, num_res_blocks
        self.attention_resolutions = list(attention_resolutions)
        self.cond_lq, self.cond_mask, self.lq_size = cond_lq, cond_mask, lq_size
        self.lq_channels = 4 if cond_mask else 3

        def swin(ch: int, ds: int) -> BasicLayer:
            return BasicLayer(
                in_chans=ch,
                embed_dim=swin_embed_dim,
                num_heads=swin_heads,
                window_size=window_size,
                depth=swin_depth,
                img_size=ds,
                patch_size=1,
                mlp_ratio=mlp_ratio,
                qkv_bias=True,
                qk_scale=None,
                drop=dropout,
                attn_drop=0.0,
                patch_norm=patch_norm,
                mask_style=mask_style,
            )

        def resblock(ch: int, out_ch: int | None = None, **kw: bool) -> ResBlock:
            return ResBlock(ch, time_embed_dim, dropout, out_ch, use_scale_shift_norm=use_scale_shift_norm, **kw)

        time_embed_dim = model_channels * 4
        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, time_embed_dim)
        )

        # LR feature extractor: identity when lq_size == image_size, else conv + stride-2 stages
        if cond_lq and lq_size == image_size:
            self.feature_extractor: nn.Module = nn.Identity()
            base_chn = self.lq_channels
        else:
            stages: list[nn.Module] = []
            feature_chn, base_chn = self.lq_channels, 16
            for _ in range(int(math.log2(lq_size / image_size))):
                stages += [nn.Conv2d(feature_chn, base_chn, 3, 1, 1), nn.SiLU(), Downsample(base_chn, True, base_chn * 2)]
                base_chn *= 2
                feature_chn = base_chn
            self.feature_extractor = nn.Sequential(*stages)

        ch = input_ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(in_channels + base_chn, ch, 3, padding=1))])
        input_block_chans, ds = [ch], image_size
        # (level, construction size) of every Swin layer, for size_multiple
        self._swin_levels: list[tuple[int, BasicLayer]] = []
        for level, mult in enumerate(channel_mult):
            for j in range(num_res_blocks[level]):
                layers: list[nn.Module] = [resblock(ch, int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in self.attention_resolutions and j == 0:
                    layers.append(swin(ch, ds))
                    self._swin_levels.append((level, layers[-1]))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                input_block_chans.append(ch)
            if level != len(channel_mult) - 1:
                down = resblock(ch, ch, down=True) if resblock_updown else Downsample(ch, conv_resample, ch)
                self.input_blocks.append(TimestepEmbedSequential(down))
                input_block_chans.append(ch)
                ds //= 2

        middle_swin = swin(ch, ds)
        self._swin_levels.append((len(channel_mult) - 1, middle_swin))
        self.middle_block = TimestepEmbedSequential(resblock(ch), middle_swin, resblock(ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks[level] + 1):
                ich = input_block_chans.pop()
                layers = [resblock(ch + ich, int(model_channels * mult))]
                ch = int(model_channels * mult)
                if ds in self.attention_resolutions and i == 0:
                    layers.append(swin(ch, ds))
                    self._swin_levels.append((level, layers[-1]))
                if level and i == num_res_blocks[level]:
                    up = resblock(ch, ch, up=True) if resblock_updown else Upsample(ch, conv_resample, ch)
                    layers.append(up)
                    ds *= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(normalization(ch), nn.SiLU(), nn.Conv2d(input_ch, out_channels, 3, padding=1))

    # -- properties -------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype (the official attribute): that of the parameters."""
        return self.time_embed[0].weight.dtype

    @property
    def size_multiple(self) -> int:
        """``H`` and ``W`` of ``x`` must be multiples of this: every Swin level's window times its
        downsampling factor, and ``2^(levels-1)`` (64 for the v1 model, 32 for a 3-level window-8 model)."""
        multiple = 2 ** (len(self.channel_mult) - 1)
        for level, layer in self._swin_levels:
            multiple = math.lcm(multiple, layer.window_size * 2**level)
        return multiple

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- forward ----------------------------------------------------------------------------
    def check_inputs(self, x: torch.Tensor, timesteps: torch.Tensor, lq: torch.Tensor | None) -> None:
        """Raise ValueError/TypeError with a clear message when the inputs cannot go through the net."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            raise ValueError(f"x must be a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
        B, C, H, W = x.shape
        if C != self.in_channels:
            raise ValueError(f"x must have {self.in_channels} channels, got {C} (shape {tuple(x.shape)})")
        m = self.size_multiple
        if H % m or W % m:
            raise ValueError(
                f"x's height and width must be multiples of {m} for this network (Swin windows x "
                f"downsampling), got {H} x {W}; pad the input (e.g. reflect, bottom/right) first"
            )
        if not isinstance(timesteps, torch.Tensor) or timesteps.shape not in ((B,), ()):
            raise ValueError(f"timesteps must be a tensor of shape ({B},), got {getattr(timesteps, 'shape', timesteps)}")
        if self.cond_lq:
            if lq is None:
                raise ValueError("this network is conditioned on the LR image: pass lq=...")
            ratio = self.lq_size // self.image_size
            expected = (B, self.lq_channels, H * ratio, W * ratio)
            if lq.ndim != 4 or tuple(lq.shape) != expected:
                raise ValueError(f"lq must have shape {expected} for x of shape {tuple(x.shape)}, got {tuple(lq.shape)}")
        elif lq is not None:
            raise ValueError("this network was built with cond_lq=False; do not pass lq")

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        *,
        lq: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x0`` prediction ``(B, out_channels, H, W)`` (the official call convention ``model(x, t, lq=lq)``).

        ``lq`` and ``mask`` are keyword-only: a network is not a denoiser (``denoiser(x_t, t, y)`` takes
        continuous time and the state-space conditioning), and calling it like one must fail, not
        silently condition on y.  :class:`~ctlib.nn.denoiser.ResShiftDenoiser` makes the denoiser."""
        if self.cond_mask and lq is not None:
            if mask is None:
                raise ValueError("this network was built with cond_mask=True: pass mask=...")
            lq = torch.cat([lq, mask], dim=1)
        elif mask is not None:
            raise ValueError("mask is only used by networks built with cond_mask=True")
        self.check_inputs(x, timesteps, lq)
        dtype = self.dtype
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(x.shape[0])
        emb_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels, dtype=emb_dtype).to(dtype))
        h = x.to(dtype)
        if lq is not None:
            h = torch.cat([h, self.feature_extractor(lq.to(dtype))], dim=1)
        skips = []
        for module in self.input_blocks:
            h = module(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for module in self.output_blocks:
            h = module(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)
