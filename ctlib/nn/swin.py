r"""Swin-transformer layers of the official ResShift UNet (``models/swin_transformer.py``), ported.

A :class:`BasicLayer` maps a feature map ``(B, C, H, W)`` to a map of the same shape:

    1x1 conv C -> embed_dim  ->  depth x SwinTransformerBlock  ->  1x1 conv embed_dim -> C

(no residual around the whole layer).  A :class:`SwinTransformerBlock` is

    x = x + attn(roll(GroupNorm(x)))          # window attention, cyclic shift for odd blocks
    x = x + fc2(GELU(fc1(GroupNorm(x))))      # 1x1 convs, exact (erf) GELU

with 32-group GroupNorms (not LayerNorm) and multi-head attention inside non-overlapping
``window x window`` windows, plus a learned relative-position bias ``((2w-1)^2, heads)``.

Each block fixes its window and shift when it is built, from the feature size it would see for an
input of ``image_size``: if that size is at most ``window_size``, the window shrinks to that size
and the shift becomes 0.  At run time every ``H`` and ``W`` must be a multiple of the window.

The shifted-window mask (fixture README, quirks Q1 and Q2)
----------------------------------------------------------
Textbook Swin labels the 3 x 3 regions a cyclic shift creates and masks attention between tokens
of different regions.  The official code writes its region labels into a ``[1, 1, H, W]`` buffer
but indexes it as ``[1, H, W, 1]`` and then flattens the window labels column-major while tokens are
row-major.  Net effect: the label of token ``(r, c)`` of window ``(wr, wc)`` is the *row* region of
image row ``wr * w + c``; only windows in the last row of windows are masked, and inside them the
tokens with ``c < w - shift`` are separated from the others.  Official weights were trained with
that mask, so ``mask_style="official"`` (the default) reproduces it; ``mask_style="textbook"`` gives
the Swin paper's mask for new models.

The official blocks store an ``attn_mask`` buffer (for the construction size) that is never used:
the forward pass recomputes the mask on every call (a list never equals a tuple, Q2).  Here the
buffer exists with the official values, so state dicts keep the official keys, shapes and order, but
the forward pass ignores it and takes the mask from a cache filled once per (H, W, device, dtype).

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` with the relative
position bias plus the mask as an additive ``attn_mask`` (set ``WindowAttention.use_sdpa = False``
for the explicit softmax formula; both agree to rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MASK_STYLES",
    "GroupNorm32",
    "normalization",
    "window_labels",
    "shifted_window_mask",
    "relative_position_index",
    "WindowAttention",
    "SwinTransformerBlock",
    "BasicLayer",
]

MASK_STYLES = ("official", "textbook")
_MASKED = -100.0  # the official additive value for masked pairs (not -inf)


class GroupNorm32(nn.GroupNorm):
    """The official ``GroupNorm32`` (eps 1e-5), except that float32/float64 inputs keep their dtype.

    The official module casts every input to float32 (quirk Q3); that is the same for float32
    inputs.  Half-precision inputs are still normalised in float32 and cast back, as officially.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.float16, torch.bfloat16):
            return super().forward(x.float()).type(x.dtype)
        return super().forward(x)


def normalization(channels: int) -> GroupNorm32:
    """The official normalisation layer: 32-group GroupNorm (channels must be a multiple of 32)."""
    if channels % 32:
        raise ValueError(f"channels must be a multiple of 32 for GroupNorm(32, channels), got {channels}")
    return GroupNorm32(32, channels)


# ---------------------------------------------------------------------------------------------
# masks and relative positions
# ---------------------------------------------------------------------------------------------
def _region(index: torch.Tensor, size: int, window: int, shift: int) -> torch.Tensor:
    """Region of a row (or column) index after a cyclic shift: 0 below ``size - window``, 1 below
    ``size - shift``, 2 for the last ``shift`` rows (the ones the roll wrapped around)."""
    return (index >= size - window).long() + (index >= size - shift).long()


def window_labels(H: int, W: int, window: int, shift: int, style: str = "official") -> torch.Tensor:
    """Region labels ``(num_windows, window*window)`` of the tokens of each window.

    Windows are ordered row-major over the ``(H/window, W/window)`` grid and tokens row-major inside
    a window, as the attention sees them.  ``style="textbook"``: label = 3 * row region + column
    region of the token's image position.  ``style="official"``: the row region of image row
    ``window_row * window + column_in_window`` (quirk Q1, see the module docstring).
    """
    if style not in MASK_STYLES:
        raise ValueError(f"mask style must be one of {MASK_STYLES}, got {style!r}")
    if H % window or W % window:
        raise ValueError(f"H and W must be multiples of the window {window}, got ({H}, {W})")
    n_rows, n_cols = H // window, W // window
    win_row = torch.arange(n_rows).repeat_interleave(n_cols)  # (nW,)
    win_col = torch.arange(n_cols).repeat(n_rows)
    tok_row = torch.arange(window).repeat_interleave(window)  # (N,)
    tok_col = torch.arange(window).repeat(window)
    if style == "official":
        image_row = win_row[:, None] * window + tok_col[None, :]
        return _region(image_row, H, window, shift)
    image_row = win_row[:, None] * window + tok_row[None, :]
    image_col = win_col[:, None] * window + tok_col[None, :]
    return 3 * _region(image_row, H, window, shift) + _region(image_col, W, window, shift)


def shifted_window_mask(
    H: int, W: int, window: int, shift: int, style: str = "official", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Additive attention mask ``(num_windows, N, N)``: -100 between tokens of different regions,
    0 elsewhere (all zeros when ``shift == 0``)."""
    labels = window_labels(H, W, window, shift, style) if shift > 0 else torch.zeros(
        (H // window) * (W // window), window * window, dtype=torch.long
    )
    differ = labels[:, None, :] != labels[:, :, None]
    return torch.zeros(differ.shape, dtype=dtype).masked_fill(differ, _MASKED)


def relative_position_index(window: int) -> torch.Tensor:
    """Index ``(N, N)`` into the ``(2w-1)^2`` relative-position table for tokens of one window:
    ``(dr + w - 1) (2w - 1) + (dc + w - 1)`` with ``(dr, dc)`` the row/column offset of the pair."""
    rows = torch.arange(window).repeat_interleave(window)
    cols = torch.arange(window).repeat(window)
    d_row = rows[:, None] - rows[None, :] + window - 1
    d_col = cols[:, None] - cols[None, :] + window - 1
    return d_row * (2 * window - 1) + d_col


# ---------------------------------------------------------------------------------------------
# modules
# ---------------------------------------------------------------------------------------------
class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a relative-position bias (official names).

    Input and output: tokens ``(B, num_windows, N, dim)`` with ``N = window^2``; ``attn_bias``
    already contains the relative-position bias (see :meth:`position_bias`) and the mask.
    """

    use_sdpa: bool = True

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim, self.window_size, self.num_heads = dim, (window_size, window_size), num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> torch.Tensor:
        """The relative-position bias ``(heads, N, N)``."""
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.reshape(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, tokens: torch.Tensor, attn_bias: torch.Tensor) -> torch.Tensor:
        """``tokens`` (B, num_windows, N, dim); ``attn_bias`` (heads, N, N) shared by all windows or
        (num_windows, heads, N, N) per window (bias + mask).  Returns (B, num_windows, N, dim)."""
        B, n_win, n, c = tokens.shape
        heads = self.num_heads
        qkv = self.qkv(tokens).reshape(B, n_win, n, 3, heads, c // heads).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv.unbind(0)  # (B, nW, heads, N, head_dim)
        attn_bias = attn_bias.to(q.dtype)
        # Fold windows into 4-D (batch, heads) so that the bias broadcasts without a copy (4-D
        # inputs also take the fused CPU kernel): a shared bias varies over heads only, a
        # per-window bias over (window, head) pairs.
        if attn_bias.ndim == 3:
            shape, bias4 = (B * n_win, heads, n, -1), attn_bias.unsqueeze(0)
        else:
            shape, bias4 = (B, n_win * heads, n, -1), attn_bias.reshape(1, n_win * heads, n, n)
        q, k, v = q.reshape(shape), k.reshape(shape), v.reshape(shape)
        drop = self.attn_drop.p if self.training else 0.0
        if self.use_sdpa:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias4, dropout_p=drop, scale=self.scale)
        else:
            weights = torch.softmax((q * self.scale) @ k.transpose(-2, -1) + bias4, dim=-1)
            out = self.attn_drop(weights) @ v
        out = out.reshape(B, n_win, heads, n, -1).transpose(2, 3).reshape(B, n_win, n, c)
        return self.proj_drop(self.proj(out))


class Mlp(nn.Module):
    """Two 1x1 convolutions with exact GELU between them (the official Swin MLP on feature maps)."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(in_features, hidden_features, kernel_size=1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_features, in_features, kernel_size=1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SwinTransformerBlock(nn.Module):
    """One (shifted-)window attention block on ``(B, C, H, W)`` maps (official names and buffers).

    ``input_resolution`` is the construction-time feature size; it decides the window (shrunk to
    the feature size if that is not larger than ``window_size``) and whether the block shifts.
    ``mask_style``: ``"official"`` (quirk Q1, needed for official weights) or ``"textbook"``.
    """

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int] | list[int],
        num_heads: int,
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        mask_style: str = "official",
    ) -> None:
        super().__init__()
        if mask_style not in MASK_STYLES:
            raise ValueError(f"mask_style must be one of {MASK_STYLES}, got {mask_style!r}")
        self.dim, self.num_heads, self.mlp_ratio = dim, num_heads, mlp_ratio
        self.input_resolution = tuple(input_resolution)
        self.window_size, self.shift_size = window_size, shift_size
        if min(self.input_resolution) <= self.window_size:
            self.shift_size, self.window_size = 0, min(self.input_resolution)
        if not 0 <= self.shift_size < self.window_size:
            raise ValueError(f"shift_size must lie in [0, window_size), got {shift_size}")
        self.mask_style = mask_style

        self.norm1 = normalization(dim)
        self.attn = WindowAttention(dim, self.window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.norm2 = normalization(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        # Stored for state-dict compatibility only; forward() never reads it (quirk Q2).
        mask = None
        if self.shift_size > 0:
            mask = shifted_window_mask(*self.input_resolution, self.window_size, self.shift_size, mask_style)
        self.register_buffer("attn_mask", mask)
        self._mask_cache: dict[tuple, torch.Tensor | None] = {}

    def mask_for(self, H: int, W: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
        """The additive mask ``(num_windows, N, N)`` for an ``H x W`` map (None when unshifted);
        computed once per size, device and dtype."""
        if self.shift_size == 0:
            return None
        key = (H, W, device, dtype)
        if key not in self._mask_cache:
            mask = shifted_window_mask(H, W, self.window_size, self.shift_size, self.mask_style, dtype)
            self._mask_cache[key] = mask.to(device)
        return self._mask_cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        w, s = self.window_size, self.shift_size
        if H % w or W % w:
            raise ValueError(f"Swin block with window {w} needs H and W divisible by {w}, got ({H}, {W})")
        h = self.norm1(x)
        if s:
            h = torch.roll(h, shifts=(-s, -s), dims=(2, 3))
        nr, nc = H // w, W // w
        tokens = h.reshape(B, C, nr, w, nc, w).permute(0, 2, 4, 3, 5, 1).reshape(B, nr * nc, w * w, C)
        bias = self.attn.position_bias()  # (heads, N, N)
        mask = self.mask_for(H, W, x.device, bias.dtype)
        attn_bias = bias if mask is None else bias.unsqueeze(0) + mask.unsqueeze(1)  # (nW, heads, N, N)
        out = self.attn(tokens, attn_bias)  # (B, nW, N, C)
        h = out.reshape(B, nr, nc, w, w, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, H, W)
        if s:
            h = torch.roll(h, shifts=(s, s), dims=(2, 3))
        x = x + h
        return x + self.mlp(self.norm2(x))

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, input_resolution={self.input_resolution}, num_heads={self.num_heads}, "
            f"window_size={self.window_size}, shift_size={self.shift_size}, mask_style={self.mask_style!r}"
        )


class PatchEmbed(nn.Module):
    """Conv ``in_chans -> embed_dim`` with kernel = stride = patch size (+ optional GroupNorm)."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int = 1, patch_norm: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = normalization(embed_dim) if patch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class PatchUnEmbed(nn.Module):
    """1x1 conv ``embed_dim -> out_chans`` (+ optional GroupNorm)."""

    def __init__(self, out_chans: int, embed_dim: int, patch_norm: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(embed_dim, out_chans, kernel_size=1)
        self.norm = normalization(out_chans) if patch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class BasicLayer(nn.Module):
    """The official Swin ``BasicLayer``: embed, ``depth`` blocks (odd ones shifted by window/2), unembed.

    ``img_size`` is the construction-time feature size of this level (decides windows and shifts).
    """

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        num_heads: int,
        window_size: int,
        depth: int = 2,
        img_size: int = 224,
        patch_size: int = 1,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        patch_norm: bool = False,
        mask_style: str = "official",
    ) -> None:
        super().__init__()
        self.embed_dim, self.depth = embed_dim, depth
        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size, patch_norm)
        self.input_resolution = (img_size // patch_size, img_size // patch_size)
        self.patch_unembed = PatchUnEmbed(in_chans, embed_dim, patch_norm)
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                dim=embed_dim,
                input_resolution=self.input_resolution,
                num_heads=num_heads,
                window_size=window_size,
                shift_size=0 if i % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop,
                attn_drop=attn_drop,
                mask_style=mask_style,
            )
            for i in range(depth)
        )

    @property
    def window_size(self) -> int:
        """The window every block of this layer uses (H and W must be multiples of it)."""
        return self.blocks[0].window_size if len(self.blocks) else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for block in self.blocks:
            x = block(x)
        return self.patch_unembed(x)
