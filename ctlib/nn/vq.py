r"""The VQ-f4 autoencoder of ResShift (``VQModelTorch`` in ``ldm/models/autoencoder.py``), ported.

Same constructor arguments (``ddconfig``, ``n_embed``, ``embed_dim``), state-dict names, shapes and
order, and numerics as the official module (the VQ path has no internal casts, so ``.double()``
works).

* :meth:`VQModel.encode`  ``x -> quant_conv(encoder(x))``: the *unquantised* latent (the diffusion
  runs on it; for f4 a 256 x 256 image gives a 3 x 64 x 64 latent);
* :meth:`VQModel.quantize` (a module, called like the official one) ``h -> (z_q, loss, (None, None,
  indices))``: nearest codebook vector by ``|z|^2 + |e|^2 - 2 z.e``; flat indices ordered batch,
  row, column; the straight-through ``z_q = z + (e - z).detach()``; loss ``mse + 0.25 mse`` (the
  legacy form);
* :meth:`VQModel.decode`  ``h -> decoder(post_quant_conv(quantize(h)))``, or without the
  quantisation when ``force_not_quantize=True``.

Encoder/decoder: the LDM convolutional stacks (ResnetBlocks with GroupNorm(32, eps 1e-6) and swish,
a single-head attention block in the middle, stride-2 downsampling after right/bottom zero padding,
nearest x2 upsampling + conv).  ``padding_mode`` and other unknown ``ddconfig`` keys are ignored, as
officially.  Attention uses ``scaled_dot_product_attention`` (same formula: softmax(q k^T / sqrt(c)) v).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VQModel", "VQModelTorch", "Encoder", "Decoder", "VectorQuantizer", "IdentityFirstStage"]


def _normalize(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class _Upsample(nn.Module):
    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, 3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.with_conv else x


class _Downsample(nn.Module):
    """Zero-pad right and bottom by 1, then a stride-2 3x3 conv (or 2x2 average pooling)."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_conv:
            return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))
        return F.avg_pool2d(x, kernel_size=2, stride=2)


class ResnetBlock(nn.Module):
    """GroupNorm, swish, conv, GroupNorm, swish, dropout, conv, plus a (1x1 or 3x3) shortcut."""

    def __init__(
        self, *, in_channels: int, out_channels: int | None = None, conv_shortcut: bool = False, dropout: float
    ) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        self.in_channels, self.out_channels, self.use_conv_shortcut = in_channels, out_channels, conv_shortcut
        self.norm1 = _normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1)
        self.norm2 = _normalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1)
        if in_channels != out_channels:
            if conv_shortcut:
                self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1)
            else:
                self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_swish(self.norm1(x)))
        h = self.conv2(self.dropout(_swish(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.conv_shortcut(x) if self.use_conv_shortcut else self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions: ``x + proj_out(softmax(q k^T / sqrt(c)) v)``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.norm = _normalize(in_channels)
        self.q = nn.Conv2d(in_channels, in_channels, 1)
        self.k = nn.Conv2d(in_channels, in_channels, 1)
        self.v = nn.Conv2d(in_channels, in_channels, 1)
        self.proj_out = nn.Conv2d(in_channels, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        b, c, hh, ww = x.shape
        q, k, v = (conv(h).reshape(b, 1, c, hh * ww).transpose(-1, -2) for conv in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # (b, 1, hw, c), scale 1/sqrt(c)
        return x + self.proj_out(out.transpose(-1, -2).reshape(b, c, hh, ww))


class _Level(nn.Module):
    """Container with the official attribute names ``block``, ``attn`` and ``downsample``/``upsample``."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()


class _Middle(nn.Module):
    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(in_channels=channels, out_channels=channels, dropout=dropout)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(in_channels=channels, out_channels=channels, dropout=dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


def _per_level(num_res_blocks: int | Sequence[int], levels: int) -> list[int]:
    if isinstance(num_res_blocks, int):
        return [num_res_blocks] * levels
    if len(num_res_blocks) != levels:
        raise ValueError(f"num_res_blocks must be an int or have one entry per level ({levels}), got {num_res_blocks}")
    return [int(n) for n in num_res_blocks]


class Encoder(nn.Module):
    """LDM encoder: conv_in, levels of ResnetBlocks (+ attention at ``attn_resolutions``) and
    downsampling, middle block, GroupNorm, swish, conv_out to ``z_channels`` (x2 if ``double_z``)."""

    def __init__(
        self,
        *,
        ch: int,
        out_ch: int,
        ch_mult: Sequence[int] = (1, 2, 4, 8),
        num_res_blocks: int | Sequence[int],
        attn_resolutions: Sequence[int],
        dropout: float = 0.0,
        resamp_with_conv: bool = True,
        in_channels: int,
        resolution: int,
        z_channels: int,
        double_z: bool = True,
        **ignored: Any,
    ) -> None:
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = _per_level(num_res_blocks, self.num_resolutions)
        self.conv_in = nn.Conv2d(in_channels, ch, 3, stride=1, padding=1)
        in_ch_mult = (1, *ch_mult)
        curr_res = resolution
        self.down = nn.ModuleList()
        for i_level in range(self.num_resolutions):
            level = _Level()
            block_in, block_out = ch * in_ch_mult[i_level], ch * ch_mult[i_level]
            for _ in range(self.num_res_blocks[i_level]):
                level.block.append(ResnetBlock(in_channels=block_in, out_channels=block_out, dropout=dropout))
                block_in = block_out
                if curr_res in attn_resolutions:
                    level.attn.append(AttnBlock(block_in))
            if i_level != self.num_resolutions - 1:
                level.downsample = _Downsample(block_in, resamp_with_conv)
                curr_res //= 2
            self.down.append(level)
        self.mid = _Middle(block_in, dropout)
        self.norm_out = _normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i_level, level in enumerate(self.down):
            for i_block, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[i_block](h)
            if i_level != self.num_resolutions - 1:
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(_swish(self.norm_out(h)))


class Decoder(nn.Module):
    """LDM decoder: conv_in from ``z_channels``, middle block, levels of ResnetBlocks and nearest x2
    upsampling (stored in ``up`` indexed by level, built from the lowest resolution), GroupNorm,
    swish, conv_out."""

    def __init__(
        self,
        *,
        ch: int,
        out_ch: int,
        ch_mult: Sequence[int] = (1, 2, 4, 8),
        num_res_blocks: int | Sequence[int],
        attn_resolutions: Sequence[int],
        dropout: float = 0.0,
        resamp_with_conv: bool = True,
        in_channels: int,
        resolution: int,
        z_channels: int,
        give_pre_end: bool = False,
        tanh_out: bool = False,
        **ignored: Any,
    ) -> None:
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = _per_level(num_res_blocks, self.num_resolutions)
        self.give_pre_end, self.tanh_out = give_pre_end, tanh_out
        block_in = ch * ch_mult[-1]
        curr_res = resolution // 2 ** (self.num_resolutions - 1)
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, stride=1, padding=1)
        self.mid = _Middle(block_in, dropout)
        self.up = nn.ModuleList()
        for i_level in reversed(range(self.num_resolutions)):
            level = _Level()
            block_out = ch * ch_mult[i_level]
            for _ in range(self.num_res_blocks[i_level] + 1):
                level.block.append(ResnetBlock(in_channels=block_in, out_channels=block_out, dropout=dropout))
                block_in = block_out
                if curr_res in attn_resolutions:
                    level.attn.append(AttnBlock(block_in))
            if i_level != 0:
                level.upsample = _Upsample(block_in, resamp_with_conv)
                curr_res *= 2
            self.up.insert(0, level)
        self.norm_out = _normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, stride=1, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for i_level in reversed(range(self.num_resolutions)):
            level = self.up[i_level]
            for i_block, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[i_block](h)
            if i_level != 0:
                h = level.upsample(h)
        if self.give_pre_end:
            return h
        h = self.conv_out(_swish(self.norm_out(h)))
        return torch.tanh(h) if self.tanh_out else h


class VectorQuantizer(nn.Module):
    """Nearest-codebook quantiser (the official ``VectorQuantizer2`` with ``legacy=True``, no remap).

    ``forward(z)`` returns ``(z_q, loss, (None, None, indices))`` as the official module does.
    Distances are evaluated in chunks of ``chunk_size`` latent vectors to bound memory.
    """

    chunk_size: int = 16384

    def __init__(self, n_e: int, e_dim: int, beta: float = 0.25) -> None:
        super().__init__()
        self.n_e, self.e_dim, self.beta = n_e, e_dim, beta
        self.embedding = nn.Embedding(n_e, e_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_e, 1.0 / n_e)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Flat int64 indices (batch, row, column order) of the nearest codes of ``z`` (B, e_dim, H, W)."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, self.e_dim)
        codes = self.embedding.weight
        code_sq = torch.sum(codes**2, dim=1)
        out = []
        for part in flat.split(self.chunk_size):
            dist = torch.sum(part**2, dim=1, keepdim=True) + code_sq - 2 * part @ codes.t()
            out.append(torch.argmin(dist, dim=1))
        return torch.cat(out)

    def get_codebook_entry(self, indices: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """Codebook vectors for flat ``indices`` as a (B, e_dim, H, W) tensor; ``shape`` = (B, H, W, e_dim)."""
        return self.embedding(indices).reshape(*shape).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[None, None, torch.Tensor]]:
        if z.ndim != 4 or z.shape[1] != self.e_dim:
            raise ValueError(f"z must have shape (B, {self.e_dim}, H, W), got {tuple(z.shape)}")
        idx = self.indices(z)
        B, _, H, W = z.shape
        z_q = self.get_codebook_entry(idx, (B, H, W, self.e_dim))
        loss = torch.mean((z_q.detach() - z) ** 2) + self.beta * torch.mean((z_q - z.detach()) ** 2)
        z_q = z + (z_q - z).detach()  # straight-through estimator
        return z_q, loss, (None, None, idx)


class VQModel(nn.Module):
    """The official ``VQModelTorch`` (encoder, decoder, quantize, quant_conv, post_quant_conv).

    ``VQModel(ddconfig, n_embed, embed_dim)``; :attr:`config` rebuilds it with ``VQModel(**config)``.
    """

    def __init__(self, ddconfig: dict[str, Any], n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.config = {"ddconfig": copy.deepcopy(dict(ddconfig)), "n_embed": int(n_embed), "embed_dim": int(embed_dim)}
        self.encoder = Encoder(**ddconfig)
        self.decoder = Decoder(**ddconfig)
        self.quantize = VectorQuantizer(n_embed, embed_dim, beta=0.25)
        self.quant_conv = nn.Conv2d(ddconfig["z_channels"], embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)
        self.in_channels = int(ddconfig["in_channels"])
        self.embed_dim = int(embed_dim)

    @property
    def downsample_factor(self) -> int:
        """Image side / latent side (4 for VQ-f4)."""
        return 2 ** (self.encoder.num_resolutions - 1)

    @property
    def dtype(self) -> torch.dtype:
        return self.quant_conv.weight.dtype

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Unquantised latent ``quant_conv(encoder(x))``: (B, embed_dim, H/f, W/f)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        f = self.downsample_factor
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"x's height and width must be multiples of {f}, got {x.shape[2]} x {x.shape[3]}")
        return self.quant_conv(self.encoder(x))

    def decode(self, h: torch.Tensor, force_not_quantize: bool = False) -> torch.Tensor:
        """Image from a latent; quantises ``h`` first unless ``force_not_quantize``."""
        if h.ndim != 4 or h.shape[1] != self.embed_dim:
            raise ValueError(f"h must have shape (B, {self.embed_dim}, h, w), got {tuple(h.shape)}")
        quant = h if force_not_quantize else self.quantize(h)[0]
        return self.decoder(self.post_quant_conv(quant))

    def decode_code(self, indices: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """Decode flat code indices; ``shape`` = (B, h, w, embed_dim)."""
        return self.decode(self.quantize.get_codebook_entry(indices, shape), force_not_quantize=True)

    def forward(self, x: torch.Tensor, force_not_quantize: bool = False) -> torch.Tensor:
        return self.decode(self.encode(x), force_not_quantize)


VQModelTorch = VQModel  # the official class name


class IdentityFirstStage(nn.Module):
    """A first stage whose ``encode`` and ``decode`` return their input (downsample factor 1).

    Useful to run the *latent* conventions of the wrapper (input scaling, no clamp) on pixels, as
    the official fixture ``diffusion_v1.npz`` does.
    """

    downsample_factor = 1

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, x: torch.Tensor, force_not_quantize: bool = False) -> torch.Tensor:
        return x
