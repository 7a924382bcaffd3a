r"""The inference fast path: :func:`accelerate` makes a kit network run faster without changing it.

The plain modules (``ctlib.nn.unet``, ``ctlib.nn.swin``, ``ctlib.nn.vq``) are the official port and
stay exactly as they are.  ``accelerate(model)`` gives selected submodules of ``model`` a faster
``forward`` (an instance attribute; the class is untouched) that computes the same function with
fewer memory passes; every parameter, buffer and state-dict key stays as it is, so a checkpoint
saved after accelerating loads in a plain model, and :func:`plain` undoes it.

What the fast forwards do (all of it float32/float64, CPU or CUDA):

* **Swin layers in token layout**: a whole :class:`~ctlib.nn.swin.BasicLayer` runs on a
  ``(B, H, W, C)`` map, so its 1x1 convolutions (patch embedding, MLP) are plain matrix products
  (``F.linear``, no im2col), the two GroupNorms read the channels-last view, and the cyclic shift
  plus window partition is one cached row gather (and its inverse one scatter), instead of a roll
  and a permuted copy each way;
* **cached attention bias**: the relative-position bias plus the shifted-window mask of each
  block, built once per feature size, device and dtype (and rebuilt when the bias table changes);
* **fused element-wise work**: GroupNorm then SiLU in place, ``shift + h (1 + scale)`` as one
  ``addcmul``, residual additions in place, no dropout calls;
* ``channels_last`` weights for narrow networks (the bundled pixel model; see :func:`accelerate`);
* optionally ``torch.compile`` of the network's forward (``compile=True``; off by default: on a
  CPU it costs minutes of compilation per input shape for little gain, and any failure falls back
  to the eager fast path);
* optionally CUDA autocast (``cuda_autocast=torch.bfloat16`` or ``torch.float16``): the network
  runs in half precision on CUDA inputs and returns float32 (off by default: it is not within the
  golden-fixture tolerances).  CPU inputs are never autocast.

The fast forwards are used only when gradients are off (``torch.no_grad`` / ``torch.inference_mode``,
as every sampler runs) and the input is float32 or float64; otherwise (training, half-precision
models) each module runs its plain ``forward``.  Results agree with the plain path to float
rounding: the kit's tests hold them to the golden-fixture tolerances (1e-5 in float32, 1e-9 in
float64), and ``benchmarks/networks.py`` measures plain against fast side by side.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .swin import BasicLayer, SwinTransformerBlock
from .unet import ResBlock, UNetModelSwin
from .vq import AttnBlock, Decoder, Encoder, ResnetBlock

__all__ = ["accelerate", "plain", "is_accelerated", "FAST_DTYPES", "CHANNELS_LAST_MAX_WIDTH"]

FAST_DTYPES = (torch.float32, torch.float64)
CHANNELS_LAST_MAX_WIDTH = 128
_FLAG = "_ctlib_fast"


def _fast_ok(x: torch.Tensor) -> bool:
    """The fast forwards run only without autograd and for float32/float64 inputs."""
    return not torch.is_grad_enabled() and x.dtype in FAST_DTYPES


def _group_norm(x: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)


def _swish_(x: torch.Tensor) -> torch.Tensor:
    """The VQ code's swish ``x * sigmoid(x)`` with one allocation (the same rounding as the plain
    formula; ``F.silu`` differs from it in the last bit)."""
    return torch.sigmoid(x).mul_(x)


# ---------------------------------------------------------------------------------------------
# UNet ResBlock
# ---------------------------------------------------------------------------------------------
def _resblock_forward(self: ResBlock, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    if self.updown or not _fast_ok(x):
        return ResBlock.forward(self, x, emb)
    norm1, _, conv1 = self.in_layers
    h = conv1(F.silu(_group_norm(x, norm1), inplace=True))
    emb_out = self.emb_layers(emb).type(h.dtype)[:, :, None, None]
    norm2, conv2 = self.out_layers[0], self.out_layers[3]
    h = _group_norm(h, norm2)
    if self.use_scale_shift_norm:
        scale, shift = emb_out.chunk(2, dim=1)
        h = torch.addcmul(shift, h, 1 + scale)
    else:
        h = h + emb_out
    h = conv2(F.silu(h, inplace=True))
    return h.add_(self.skip_connection(x))


# ---------------------------------------------------------------------------------------------
# Swin layers in token layout
# ---------------------------------------------------------------------------------------------
def _window_index(H: int, W: int, w: int, s: int, device: torch.device) -> torch.Tensor:
    """Flat source positions ``(H*W,)``: entry ``j`` of the window-ordered token sequence (windows
    row-major, tokens row-major inside a window) of the map rolled by ``(-s, -s)``."""
    nr, nc = H // w, W // w
    win_r = torch.arange(nr).view(nr, 1, 1, 1)
    win_c = torch.arange(nc).view(1, nc, 1, 1)
    tok_r = torch.arange(w).view(1, 1, w, 1)
    tok_c = torch.arange(w).view(1, 1, 1, w)
    rows = (win_r * w + tok_r + s) % H
    cols = (win_c * w + tok_c + s) % W
    return (rows * W + cols).reshape(-1).to(device)


class _BlockCache:
    """Per-block cache: gather/scatter indices and the attention bias for one feature size."""

    def __init__(self) -> None:
        self.index: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.bias: dict[tuple, torch.Tensor] = {}


def _cache(block: SwinTransformerBlock) -> _BlockCache:
    cache = block.__dict__.get("_ctlib_fast_cache")
    if cache is None:
        cache = block.__dict__["_ctlib_fast_cache"] = _BlockCache()
    return cache


def _indices(block: SwinTransformerBlock, H: int, W: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    cache = _cache(block)
    key = (H, W, device)
    if key not in cache.index:
        gather = _window_index(H, W, block.window_size, block.shift_size, device)
        scatter = torch.empty_like(gather)
        scatter[gather] = torch.arange(gather.numel(), device=device)
        cache.index[key] = (gather, scatter)
    return cache.index[key]


def _attn_bias(block: SwinTransformerBlock, H: int, W: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Relative-position bias (+ shifted-window mask): ``(1, heads, N, N)`` unshifted, else
    ``(nW, heads, N, N)``; cached per size, device and dtype, rebuilt when the table changes."""
    table = block.attn.relative_position_bias_table
    cache = _cache(block)
    key = (H, W, device, dtype)
    try:
        version = (table._version, table.data_ptr())
    except RuntimeError:  # an inference tensor (model built under inference_mode) has no version
        version = (None, table.data_ptr())
    hit = cache.bias.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    bias = block.attn.position_bias().to(dtype)  # (heads, N, N)
    mask = block.mask_for(H, W, device, bias.dtype)
    bias = bias.unsqueeze(0) if mask is None else bias.unsqueeze(0) + mask.unsqueeze(1)
    bias = bias.contiguous()
    cache.bias[key] = (version, bias)
    return bias


def _norm_tokens(t: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """GroupNorm of a ``(B, H, W, C)`` token map (normalised over the channels of each group)."""
    out = _group_norm(t.permute(0, 3, 1, 2), norm).permute(0, 2, 3, 1)
    return out if out.is_contiguous() else out.contiguous()


def _linear_1x1(t: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A 1x1 convolution applied to a ``(..., C)`` token tensor."""
    return F.linear(t, conv.weight.reshape(conv.out_channels, conv.in_channels), conv.bias)


def _block_tokens(block: SwinTransformerBlock, t: torch.Tensor) -> torch.Tensor:
    """One Swin block on a contiguous ``(B, H, W, C)`` map; returns a new ``(B, H, W, C)`` map."""
    B, H, W, C = t.shape
    w = block.window_size
    if H % w or W % w:
        raise ValueError(f"Swin block with window {w} needs H and W divisible by {w}, got ({H}, {W})")
    attn = block.attn
    heads, n, n_win = attn.num_heads, w * w, (H // w) * (W // w)
    gather, scatter = _indices(block, H, W, t.device)
    h = _norm_tokens(t, block.norm1).view(B, H * W, C)
    windows = h.index_select(1, gather)  # (B, nW * N, C): roll + window partition in one gather
    qkv = F.linear(windows, attn.qkv.weight, attn.qkv.bias)
    qkv = qkv.view(B, n_win, n, 3, heads, C // heads).permute(3, 0, 1, 4, 2, 5)  # (3, B, nW, h, N, d)
    bias = _attn_bias(block, H, W, t.device, t.dtype)  # (1 or nW, heads, N, N)
    if bias.shape[0] == 1 or B == 1:
        q, k, v = (z.reshape(B * n_win, heads, n, C // heads) for z in qkv.unbind(0))
    else:
        q, k, v = (z.reshape(B, n_win * heads, n, C // heads) for z in qkv.unbind(0))
        bias = bias.view(1, n_win * heads, n, n)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=attn.scale)
    out = out.view(B, n_win, heads, n, C // heads).transpose(2, 3).reshape(B, n_win * n, C)
    out = F.linear(out, attn.proj.weight, attn.proj.bias)
    t = out.index_select(1, scatter).view(B, H, W, C).add_(t)  # window reverse + roll back
    m = F.gelu(_linear_1x1(_norm_tokens(t, block.norm2), block.mlp.fc1))
    return _linear_1x1(m, block.mlp.fc2).add_(t)


def _basic_layer_forward(self: BasicLayer, x: torch.Tensor) -> torch.Tensor:
    plain_norms = isinstance(self.patch_embed.norm, nn.Identity) and isinstance(self.patch_unembed.norm, nn.Identity)
    if not _fast_ok(x) or not plain_norms or self.patch_embed.proj.kernel_size != (1, 1):
        return BasicLayer.forward(self, x)
    t = _linear_1x1(x.permute(0, 2, 3, 1), self.patch_embed.proj)  # (B, H, W, E)
    for block in self.blocks:
        t = _block_tokens(block, t)
    out = _linear_1x1(t, self.patch_unembed.proj).permute(0, 3, 1, 2)
    return out.contiguous(memory_format=torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
                          and not x.is_contiguous() else torch.contiguous_format)


def _unet_forward(self: UNetModelSwin, x: torch.Tensor, timesteps: torch.Tensor, *, lq: torch.Tensor | None = None,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    autocast = self.__dict__.get("_ctlib_cuda_autocast")
    if autocast is not None and x.is_cuda and not torch.is_autocast_enabled("cuda"):
        with torch.autocast("cuda", dtype=autocast):
            return UNetModelSwin.forward(self, x, timesteps, lq=lq, mask=mask).float()
    return UNetModelSwin.forward(self, x, timesteps, lq=lq, mask=mask)


# ---------------------------------------------------------------------------------------------
# VQ-f4 autoencoder
# ---------------------------------------------------------------------------------------------
def _resnet_forward(self: ResnetBlock, x: torch.Tensor) -> torch.Tensor:
    if not _fast_ok(x):
        return ResnetBlock.forward(self, x)
    h = self.conv1(_swish_(_group_norm(x, self.norm1)))
    h = self.conv2(_swish_(_group_norm(h, self.norm2)))
    if self.in_channels != self.out_channels:
        x = self.conv_shortcut(x) if self.use_conv_shortcut else self.nin_shortcut(x)
    return h.add_(x)


def _attn_forward(self: AttnBlock, x: torch.Tensor) -> torch.Tensor:
    if not _fast_ok(x):
        return AttnBlock.forward(self, x)
    b, c, hh, ww = x.shape
    h = _group_norm(x, self.norm).reshape(b, c, hh * ww).transpose(1, 2)  # (b, hw, c)
    weight = torch.cat([self.q.weight, self.k.weight, self.v.weight]).reshape(3 * c, c)
    bias = torch.cat([self.q.bias, self.k.bias, self.v.bias])
    q, k, v = F.linear(h, weight, bias).unsqueeze(1).chunk(3, dim=-1)  # (b, 1, hw, c) each
    out = F.scaled_dot_product_attention(q, k, v).squeeze(1)  # scale 1/sqrt(c)
    out = _linear_1x1(out, self.proj_out).transpose(1, 2).reshape(b, c, hh, ww)
    return out.add_(x)


def _decoder_forward(self: Decoder, z: torch.Tensor) -> torch.Tensor:
    if not _fast_ok(z) or self.give_pre_end:
        return Decoder.forward(self, z)
    h = self.mid(self.conv_in(z))
    for i_level in reversed(range(self.num_resolutions)):
        level = self.up[i_level]
        for i_block, block in enumerate(level.block):
            h = block(h)
            if len(level.attn) > 0:
                h = level.attn[i_block](h)
        if i_level != 0:
            h = level.upsample(h)
    h = self.conv_out(_swish_(_group_norm(h, self.norm_out)))
    return torch.tanh(h) if self.tanh_out else h


def _encoder_forward(self: Encoder, x: torch.Tensor) -> torch.Tensor:
    if not _fast_ok(x):
        return Encoder.forward(self, x)
    h = self.conv_in(x)
    for i_level, level in enumerate(self.down):
        for i_block, block in enumerate(level.block):
            h = block(h)
            if len(level.attn) > 0:
                h = level.attn[i_block](h)
        if i_level != self.num_resolutions - 1:
            h = level.downsample(h)
    h = self.mid(h)
    return self.conv_out(_swish_(_group_norm(h, self.norm_out)))


_FAST_FORWARDS: dict[type, Callable[..., Any]] = {
    ResBlock: _resblock_forward,
    BasicLayer: _basic_layer_forward,
    UNetModelSwin: _unet_forward,
    ResnetBlock: _resnet_forward,
    AttnBlock: _attn_forward,
    Decoder: _decoder_forward,
    Encoder: _encoder_forward,
}


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
def is_accelerated(model: nn.Module) -> bool:
    """Whether :func:`accelerate` was applied to ``model`` (and not undone by :func:`plain`)."""
    return bool(getattr(model, _FLAG, False))


def _widest_conv_input(model: nn.Module) -> int:
    return max((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), default=0)


def accelerate(
    model: nn.Module,
    *,
    channels_last: bool | None = None,
    compile: bool = False,  # noqa: A002 - the torch name
    cuda_autocast: torch.dtype | None = None,
) -> nn.Module:
    """Give ``model`` (a :class:`UNetModelSwin`, a :class:`VQModel`, or any module holding them) the
    inference fast path, in place, and return it.

    Weights, buffers and state-dict keys are unchanged.

    ``channels_last``: store the 4-D weights channels-last (same values; oneDNN then runs the
    convolutions without layout conversions).  ``None`` (default) decides by width: on for a narrow
    UNet (no convolution with more than ``CHANNELS_LAST_MAX_WIDTH`` = 128 input channels, e.g. the
    bundled pixel model: ~1.4x on the CPU), off for the v1 UNet and for autoencoders, where it
    gains little (1.1x on the VQ-f4 decoder) and oneDNN's channels-last convolutions round about
    5x further from the exact result than its default ones (~1e-5 on wide layers).
    ``compile``: also ``torch.compile`` the model's ``forward`` (state-dict keys unchanged; if
    compilation fails, the first call warns and the eager fast path is used).  Off by default: on
    the CPU it does not pay (v1 UNet, one thread: 190 s of compilation for a 1.13x forward; bundled
    pixel model: minutes of compilation and recompilations, no faster than the eager fast path).
    ``cuda_autocast``: ``torch.bfloat16`` / ``torch.float16`` runs the UNet under autocast for CUDA
    inputs (not within the fixture tolerances; CPU inputs are never autocast).
    Idempotent; :func:`plain` undoes it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"accelerate needs an nn.Module, got {type(model).__name__}")
    if cuda_autocast not in (None, torch.bfloat16, torch.float16):
        raise ValueError(f"cuda_autocast must be None, torch.bfloat16 or torch.float16, got {cuda_autocast!r}")
    for module in model.modules():
        fast = _FAST_FORWARDS.get(type(module))
        if fast is not None:
            module.forward = types.MethodType(fast, module)
        if isinstance(module, UNetModelSwin):
            if cuda_autocast is None:
                module.__dict__.pop("_ctlib_cuda_autocast", None)
            else:
                module.__dict__["_ctlib_cuda_autocast"] = cuda_autocast
    model.__dict__[_FLAG] = True
    if channels_last is None:
        channels_last = isinstance(model, UNetModelSwin) and _widest_conv_input(model) <= CHANNELS_LAST_MAX_WIDTH
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        _compile_forward(model)
    return model


def plain(model: nn.Module) -> nn.Module:
    """Undo :func:`accelerate` in place: every module runs its class's ``forward`` again, the caches
    go, and weights return to the default (contiguous) layout.  Returns ``model``."""
    for module in model.modules():
        module.__dict__.pop("forward", None)
        for name in (_FLAG, "_ctlib_fast_cache", "_ctlib_cuda_autocast"):
            module.__dict__.pop(name, None)
    for p in model.parameters():  # strides, not is_contiguous(): a 1x1 kernel is "contiguous" either way
        if p.ndim == 4 and p.stride() != torch.empty(p.shape, device="meta").stride():
            p.data = p.data.clone(memory_format=torch.contiguous_format)
    return model


def _compile_forward(model: nn.Module) -> None:
    """Replace ``model.forward`` by its ``torch.compile`` version, falling back to the eager
    forward (with a warning) if compiling or running the compiled code fails."""
    import warnings

    eager = model.forward
    try:
        compiled = torch.compile(eager, dynamic=False)
    except Exception as err:  # pragma: no cover - depends on the installation
        warnings.warn(f"torch.compile is unavailable ({err}); using the eager fast path", stacklevel=3)
        return
    state = {"ok": True}

    def forward(*args: Any, **kwargs: Any) -> Any:
        if state["ok"] and not torch.is_grad_enabled():
            try:
                return compiled(*args, **kwargs)
            except Exception as err:  # compilation happens at the first call
                state["ok"] = False
                warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); using the eager fast path",
                              stacklevel=2)
        return eager(*args, **kwargs)

    model.forward = forward
