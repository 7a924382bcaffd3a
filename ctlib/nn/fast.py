r"""The inference fast path: :func:`accelerate` makes a kit network run faster without changing it.

The plain modules (``ctlib.nn.unet``, ``ctlib.nn.swin``, ``ctlib.nn.vq``) are the official port and
stay exactly as they are.  ``accelerate(model)`` gives selected submodules of ``model`` a faster
``forward`` (an instance attribute; the class is untouched) that computes the same function with
fewer memory passes and, where an identity allows it, fewer operations; every parameter, buffer and state-dict key stays as it is, so a checkpoint
saved after accelerating loads in a plain model, and :func:`plain` undoes it.

What the fast forwards do (all of it float32/float64, CPU or CUDA unless said otherwise):

* **pre-packed convolutions** (UNets, CPU float32): every convolution runs through oneDNN
  (``mkldnn::_convolution_pointwise``) with its weight packed once into oneDNN's blocked layout
  for the input size (cached with the module, rebuilt when the weight changes) instead of being
  reordered on every call, which is most of a convolution's time on small maps (8 x 8: 2-4x);
* **Winograd F(2x2, 3x3)** for the wide 3x3 convolutions (:mod:`ctlib.nn.winograd`:
  ``C_in C_out / (C_in + C_out) >= 80``, e.g. 160 in and out, on channels-last activations, ``>= 100``
  on default-layout ones (the VQ-f4 autoencoder's 256- and 512-channel layers), even maps of at
  least 8 x 8 with 16 output blocks per CPU thread, CPU float32, pre-packed):
  4 instead of 9 multiplications per output pixel and channel pair, its 16 products one grouped
  oneDNN call; it rounds closer to a float64 convolution than oneDNN's direct kernels;
* **channels-last activations** inside UNets: the convolutions, GroupNorms and Swin layers read
  and write ``(B, H, W, C)`` memory; 1x1 convolutions are matrix products of that view; the
  output returns in the default layout;
* **nearest-x2 upsampling + 3x3 convolution as one 2x2 convolution** with four phase kernels
  (``Upsample``: 16 instead of 36 multiply-adds per 2 x 2 output block and channel pair, no
  upsampled copy), or, where Winograd applies, as 9 Winograd products per block
  (:func:`ctlib.nn.winograd.upsampled_conv3x3`: on an upsampled tile a quarter of the 16 vanish);
* **fused residuals**: ``conv2(h) + skip`` of a ResBlock, ``fc2(m) + t`` of a Swin MLP as one call;
  the MLP's exact GELU inside its first matrix product (oneDNN post-ops, CPU float32); for batch 1
  ``GroupNorm(h) (1 + scale) + shift`` as one GroupNorm with the scale and shift folded into its
  affine parameters;
* **Swin layers in token layout**: a whole :class:`~ctlib.nn.swin.BasicLayer` runs on a
  ``(B, H, W, C)`` map, so its 1x1 convolutions (patch embedding, MLP) are plain matrix products
  (no im2col), the two GroupNorms read the channels-last view, and the cyclic shift plus window
  partition is one cached row gather (and its inverse one gather, added to the residual stream),
  instead of a roll and a permuted copy each way;
* **cached attention bias**: the relative-position bias plus the shifted-window mask of each
  block, built once per feature size, device and dtype (and rebuilt when the bias table changes);
* **fused element-wise work**: GroupNorm then SiLU in place, residual additions in place, no
  dropout calls;
* optionally ``torch.compile`` of the network's forward (``compile=True``; off by default: it
  compiles the plain forwards, since Inductor cannot lower oneDNN calls on packed weights, and on a
  CPU that costs minutes of compilation and recompilation for no gain over the eager fast path;
  any failure falls back to the eager fast path);
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

from . import winograd
from .swin import BasicLayer, SwinTransformerBlock
from .unet import ResBlock, TimestepEmbedSequential, UNetModelSwin, Upsample
from .vq import AttnBlock, Decoder, Encoder, ResnetBlock
from .vq import _Upsample as _VQUpsample

__all__ = ["accelerate", "plain", "is_accelerated", "cache_bytes", "FAST_DTYPES"]

FAST_DTYPES = (torch.float32, torch.float64)
_FLAG = "_ctlib_fast"
_CACHE = "_ctlib_fast_cache"  # per-module derived tensors (a _Cache)
_PREPACK = "_ctlib_fast_prepack"  # on a Conv2d: run it with a pre-packed oneDNN weight (CPU float32)
_WINOGRAD_ONLY = "winograd"  # ... value of _PREPACK: pre-packed only where Winograd applies
_CL_IN = "_ctlib_fast_channels_last"  # on a Conv2d: run it on channels-last activations
_MARKS = (_FLAG, _CACHE, _PREPACK, _CL_IN, "_ctlib_cuda_autocast")


class _Cache(dict):
    """Per-module derived tensors (packed weights, fused kernels, indices, attention biases), each
    stored with the versions of the parameters it was made from.  Never copied or pickled: a deep
    copy or an unpickled module starts with an empty cache."""

    def __deepcopy__(self, memo: dict) -> _Cache:
        return _Cache()

    def __reduce__(self) -> tuple:
        return (_Cache, ())


def _cache(module: nn.Module) -> _Cache:
    cache = module.__dict__.get(_CACHE)
    if cache is None:
        cache = module.__dict__[_CACHE] = _Cache()
    return cache


def _cached(module: nn.Module, name: str, sources: tuple[torch.Tensor, ...], make: Callable[[], Any],
            extra: tuple = (), replaces: tuple[str, ...] = ()) -> Any:
    """``make()``, cached on ``module`` under ``name`` until one of ``sources`` changes (in place or
    replaced) or ``extra`` differs; the entries named in ``replaces`` (other ways of computing the
    same thing) are dropped, so that the module holds one of them."""
    key = tuple(_version(s) for s in sources) + extra
    cache = _cache(module)
    for other in replaces:
        cache.pop(other, None)
    hit = cache.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    value = make()
    cache[name] = (key, value)
    return value


def _fast_ok(x: torch.Tensor) -> bool:
    """The fast forwards run only without autograd, for float32/float64 inputs, and not while
    ``torch.compile`` traces (Inductor cannot lower oneDNN calls on packed weights: it compiles the
    plain forwards)."""
    return not torch.is_grad_enabled() and x.dtype in FAST_DTYPES and not torch.compiler.is_compiling()


def _group_norm(x: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """``norm(x)``.  On a channels-last CPU map this is PyTorch's channels-last kernel, which takes a
    group's variance as ``E[x^2] - E[x]^2``: it loses digits on groups whose mean is large against
    their spread (mean 3, spread 1, 160 channels at 64 x 64: 6e-5 from a float64 GroupNorm, where
    the default layout's kernel is within 1.4e-6).  The kit's networks stay within the fixture
    tolerances (the bundled model's GroupNorm inputs reach mean^2 / variance = 7.7; fast against
    plain at its output: 8.6e-6).  A two-pass variance here was as accurate as the default kernel
    but 2.3x slower on the bundled model's batches (8 x 64 x 256 x 256: 202 ms against 89)."""
    return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)


def _swish_(x: torch.Tensor) -> torch.Tensor:
    """The VQ code's swish ``x * sigmoid(x)``, in place, as one ``F.silu`` pass (it differs from the
    two-step formula in the last bits)."""
    return F.silu(x, inplace=True)


def _version(t: torch.Tensor) -> tuple:
    """Identity of a tensor's current values: (version counter, storage address)."""
    try:
        return (t._version, t.data_ptr())
    except RuntimeError:  # an inference tensor (model built under inference_mode) has no version
        return (None, t.data_ptr())


# ---------------------------------------------------------------------------------------------
# convolutions: oneDNN with pre-packed weights, channels-last activations, nearest-x2 + conv fused
# ---------------------------------------------------------------------------------------------
_CL = torch.channels_last


_ONEDNN_CONV = bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))
_ONEDNN_LINEAR = bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def _sources(conv: nn.Conv2d) -> tuple[torch.Tensor, ...]:
    return (conv.weight,) if conv.bias is None else (conv.weight, conv.bias)


def _run_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geometry: tuple,
              other: torch.Tensor | None = None, *, cache: nn.Module | None = None, prepack: bool | str | None = None,
              sources: tuple[torch.Tensor, ...] = (), name: str = "packed") -> torch.Tensor:
    """``conv2d(x, weight, bias, stride, padding, dilation, groups) (+ other)``, ``geometry`` =
    (padding, stride, dilation, groups), zero padding.

    ``prepack`` is the convolution's mark from :func:`accelerate`.  ``True``, with ``cache`` (a
    module) and a float32 CPU input: oneDNN runs it with ``weight`` packed once into its blocked
    layout (cached on ``cache``, rebuilt when one of ``sources``, the parameters ``weight`` is made
    of, changes) instead of reordering the weight on every call, and adds ``other`` inside the
    convolution; the output keeps ``x``'s memory format.  Where Winograd applies
    (:func:`ctlib.nn.winograd.applies`) it runs by Winograd on a packed transformed weight instead.
    :data:`_WINOGRAD_ONLY`: only that; the other convolutions run on oneDNN's default kernels
    (``F.conv2d``).  Falsy: ``F.conv2d``."""
    padding, stride, dilation, groups = geometry
    packs = (bool(prepack) and cache is not None and x.dtype == torch.float32 and weight.dtype == torch.float32
             and x.device.type == "cpu" and torch.backends.mkldnn.enabled and _ONEDNN_CONV)
    shape = tuple(x.shape)
    # one packed weight per convolution, for the last input size and way (Winograd or direct: the
    # choice depends on the thread count, see winograd.enough_tiles)
    if packs and winograd.applies(x, weight, geometry):
        packed, bias16 = _cached(cache, name + "_winograd", sources, lambda: winograd.pack(weight, bias, shape),
                                 extra=(shape,), replaces=(name,))
        return winograd.conv3x3(x, packed, bias16, weight.shape[0], other)
    if packs and prepack is True:
        # oneDNN picks the blocked layout for the input size (a layout packed for another size can
        # cost a reorder per call, 70x slower for some 1x1 convolutions): one entry, for the last size
        packed = _cached(cache, name, sources, lambda: torch._C._nn.mkldnn_reorder_conv2d_weight(
            weight.detach().contiguous().to_mkldnn(), list(padding), list(stride), list(dilation), groups,
            list(shape)), extra=(shape,), replaces=(name + "_winograd",))
        channels_last = x.is_contiguous(memory_format=_CL) and not x.is_contiguous()
        if not (channels_last or x.is_contiguous()):
            x = x.contiguous()
        args = (list(padding), list(stride), list(dilation), groups)
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(x, packed, bias, *args, "none", [], "")
        other = other.contiguous(memory_format=_CL if channels_last else torch.contiguous_format)
        return torch.ops.mkldnn._convolution_pointwise.binary(x, other, packed, bias, *args, "add", None, None, [], None)
    out = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    return out if other is None else out.add_(other)


def _conv(x: torch.Tensor, conv: nn.Conv2d, other: torch.Tensor | None = None) -> torch.Tensor:
    """``conv(x) (+ other)``: pre-packed (see :func:`_run_conv`) when ``accelerate`` marked ``conv``
    for it (only where Winograd applies when it marked it :data:`_WINOGRAD_ONLY`), on channels-last
    input when it marked it channels-last (else the output keeps the default layout of a
    default-layout input)."""
    channels_last = bool(conv.__dict__.get(_CL_IN))
    if channels_last and x.shape[1] > 4:
        x = x.contiguous(memory_format=_CL)
    geometry = (conv.padding, conv.stride, conv.dilation, conv.groups)
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        out = nn.Conv2d.forward(conv, x)
        out = out if other is None else out.add_(other)
    elif geometry == ((0, 0), (1, 1), (1, 1), 1) and conv.kernel_size == (1, 1) and x.is_contiguous(memory_format=_CL):
        # a 1x1 convolution of a channels-last map is a matrix product of its (B, H, W, C) view
        other = None if other is None else other.permute(0, 2, 3, 1)
        out = _linear_1x1(x.permute(0, 2, 3, 1), conv, other=other).permute(0, 3, 1, 2)
    else:
        out = _run_conv(x, conv.weight, conv.bias, geometry, other, cache=conv, prepack=conv.__dict__.get(_PREPACK),
                        sources=_sources(conv))
    if not channels_last and x.is_contiguous() and not out.is_contiguous():
        out = out.contiguous()  # oneDNN may answer channels-last
    return out


def _conv2d_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if not _fast_ok(x) or x.dim() != 4:
        return nn.Conv2d.forward(self, x)
    return _conv(x, self)


_ROWS = {0: ((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)), 1: ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0))}
_PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


def _subpixel_weights(owner: nn.Module, conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The 2x2 kernels ``(4 C_out, C_in, 2, 2)`` (phases (a, b) in :data:`_PHASES` order) whose
    convolution of ``x`` (padding 1) gives ``conv(nearest_x2(x))``; cached on ``owner``.

    Output pixel ``(2i + a, 2j + b)`` of the 3x3 convolution of the upsampled map reads, with its
    kernel rows 0, 1, 2, rows ``i - 1, i, i`` of ``x`` (``a = 0``) or ``i, i, i + 1`` (``a = 1``),
    so the kernel rows collapse to two: ``R_a W R_b^T`` with ``R_0 = [[1,0,0],[0,1,1]]``,
    ``R_1 = [[1,1,0],[0,0,1]]`` (likewise for columns; summed in float64, rounded once)."""
    def make() -> tuple[torch.Tensor, torch.Tensor | None]:
        w = conv.weight.detach()
        rows = {a: torch.tensor(r, dtype=torch.float64, device=w.device) for a, r in _ROWS.items()}
        kernels = [torch.einsum("ik,ockl,jl->ocij", rows[a], w.double(), rows[b]) for a, b in _PHASES]
        bias = None if conv.bias is None else conv.bias.detach().repeat(4)
        return torch.cat(kernels).to(w.dtype), bias

    return _cached(owner, "subpixel", _sources(conv), make, (conv.weight.dtype, conv.weight.device),
                   replaces=("upsampled_winograd",))  # one way per convolution (see _upsample_conv)


def _upsample_conv(owner: nn.Module, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(F.interpolate(x, scale_factor=2, mode="nearest"))`` for a 3x3, stride-1, padding-1 conv,
    without an upsampled copy of ``x``: by Winograd where it applies (9 products per 2 x 2 output
    block, :func:`ctlib.nn.winograd.upsampled_conv3x3`), else as one convolution of ``x`` with four
    2x2 kernels (16 instead of 36 multiply-adds per block), then an interleave of the four phases."""
    if conv.__dict__.get(_CL_IN) and x.shape[1] > 4:
        x = x.contiguous(memory_format=_CL)
    prepack = conv.__dict__.get(_PREPACK)
    if prepack and winograd.applies_upsampled(x, conv.weight):
        shape = tuple(x.shape)
        packed, bias9 = _cached(owner, "upsampled_winograd", _sources(conv),
                                lambda: winograd.pack_upsampled(conv.weight, conv.bias, shape), extra=(shape,),
                                replaces=("subpixel", "packed"))  # the phase kernels' weights (below)
        return winograd.upsampled_conv3x3(x, packed, bias9, conv.out_channels)  # in x's layout
    weight, bias = _subpixel_weights(owner, conv)
    phases = _run_conv(x, weight, bias, ((1, 1), (1, 1), (1, 1), 1), cache=owner, prepack=prepack,
                       sources=_sources(conv))
    B, _, H, W = x.shape
    c = conv.out_channels
    if x.is_contiguous(memory_format=_CL) and not x.is_contiguous():  # the output takes x's layout
        out = torch.empty((B, c, 2 * H, 2 * W), dtype=phases.dtype, device=phases.device, memory_format=_CL)
        dst = out.permute(0, 2, 3, 1).view(B, H, 2, W, 2, c)
        src = phases.permute(0, 2, 3, 1)
        for p, (a, b) in enumerate(_PHASES):
            dst[:, :, a, :, b].copy_(src[:, a:a + H, b:b + W, p * c:(p + 1) * c])
    else:
        out = torch.empty((B, c, 2 * H, 2 * W), dtype=phases.dtype, device=phases.device)
        dst = out.view(B, c, H, 2, W, 2)
        for p, (a, b) in enumerate(_PHASES):
            dst[:, :, :, a, :, b].copy_(phases[:, p * c:(p + 1) * c, a:a + H, b:b + W])
    return out


def _subpixel_ok(conv: nn.Conv2d) -> bool:
    return (conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros")


def _upsample_forward(self: Upsample, x: torch.Tensor) -> torch.Tensor:
    if not _fast_ok(x) or not self.use_conv or not _subpixel_ok(self.conv):
        return Upsample.forward(self, x)
    return _upsample_conv(self, self.conv, x)


def _vq_upsample_forward(self: _VQUpsample, x: torch.Tensor) -> torch.Tensor:
    if not _fast_ok(x) or not self.with_conv or not _subpixel_ok(self.conv):
        return _VQUpsample.forward(self, x)
    return _upsample_conv(self, self.conv, x)


# ---------------------------------------------------------------------------------------------
# UNet ResBlock
# ---------------------------------------------------------------------------------------------
def _resblock_hidden(self: ResBlock, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """A ResBlock's activations before its last convolution: ``SiLU(GroupNorm(conv1(...)) ...)``."""
    norm1, _, conv1 = self.in_layers
    h = _conv(F.silu(_group_norm(x, norm1), inplace=True), conv1)
    emb_out = self.emb_layers(emb).type(h.dtype)
    norm2 = self.out_layers[0]
    if self.use_scale_shift_norm:
        scale, shift = emb_out.chunk(2, dim=1)
        if h.shape[0] == 1:  # fold (1 + scale), shift into the GroupNorm's affine: one pass
            gain = 1 + scale[0]
            h = F.group_norm(h, norm2.num_groups, norm2.weight * gain, torch.addcmul(shift[0], norm2.bias, gain),
                             norm2.eps)
        else:
            h = torch.addcmul(shift[:, :, None, None], _group_norm(h, norm2), (1 + scale)[:, :, None, None])
    else:
        h = _group_norm(h.add_(emb_out[:, :, None, None]), norm2)
    return F.silu(h, inplace=True)


def _resblock_forward(self: ResBlock, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    if self.updown or not _fast_ok(x):
        return ResBlock.forward(self, x, emb)
    skip = x if isinstance(self.skip_connection, nn.Identity) else self.skip_connection(x)
    return _conv(_resblock_hidden(self, x, emb), self.out_layers[3], skip)  # conv2(h) + skip in one pass


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


def _indices(block: SwinTransformerBlock, H: int, W: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The block's window gather index for an ``H x W`` map and its inverse (cached per size and
    device)."""
    index = _cache(block).setdefault("index", {})
    key = (H, W, device)
    if key not in index:
        gather = _window_index(H, W, block.window_size, block.shift_size, device)
        index[key] = (gather, torch.argsort(gather))
    return index[key]


def _attn_bias(block: SwinTransformerBlock, H: int, W: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Relative-position bias (+ shifted-window mask): ``(1, heads, N, N)`` unshifted, else
    ``(nW, heads, N, N)``; cached per size, device and dtype, rebuilt when the table changes."""
    biases = _cache(block).setdefault("bias", {})
    key = (H, W, device, dtype)
    version = _version(block.attn.relative_position_bias_table)
    hit = biases.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    bias = block.attn.position_bias().to(dtype)  # (heads, N, N)
    mask = block.mask_for(H, W, device, bias.dtype)
    bias = bias.unsqueeze(0) if mask is None else bias.unsqueeze(0) + mask.unsqueeze(1)
    bias = bias.contiguous()
    biases[key] = (version, bias)
    return bias


def _norm_tokens(t: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """GroupNorm of a ``(B, H, W, C)`` token map (normalised over the channels of each group)."""
    out = _group_norm(t.permute(0, 3, 1, 2), norm).permute(0, 2, 3, 1)
    return out if out.is_contiguous() else out.contiguous()


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, gelu: bool = False,
            other: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, then exact GELU or ``+ other``: on CPU float32 one oneDNN call
    with the GELU / addition fused into the matrix product (no extra pass over the output)."""
    if (x.dtype == torch.float32 and x.device.type == "cpu" and weight.dtype == torch.float32
            and torch.backends.mkldnn.enabled and _ONEDNN_LINEAR):
        if other is None:
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu" if gelu else "none", [],
                                                      "none" if gelu else "")
        if not gelu:
            return torch.ops.mkldnn._linear_pointwise.binary(x, other.contiguous(), weight, bias, "add")
    out = F.linear(x, weight, bias)
    if gelu:
        out = F.gelu(out)
    return out if other is None else out.add_(other)


def _linear_1x1(t: torch.Tensor, conv: nn.Conv2d, *, gelu: bool = False, other: torch.Tensor | None = None) -> torch.Tensor:
    """A 1x1 convolution applied to a ``(..., C)`` token tensor (see :func:`_linear`)."""
    return _linear(t, conv.weight.reshape(conv.out_channels, conv.in_channels), conv.bias, gelu=gelu, other=other)


def _block_tokens(block: SwinTransformerBlock, t: torch.Tensor) -> torch.Tensor:
    """One Swin block on a contiguous ``(B, H, W, C)`` map; returns a new ``(B, H, W, C)`` map
    (``t`` is left as it is)."""
    B, H, W, C = t.shape
    w = block.window_size
    if H % w or W % w:
        raise ValueError(f"Swin block with window {w} needs H and W divisible by {w}, got ({H}, {W})")
    attn = block.attn
    heads, n, n_win = attn.num_heads, w * w, (H // w) * (W // w)
    gather, scatter = _indices(block, H, W, t.device)
    h = _norm_tokens(t, block.norm1).view(B, H * W, C)
    windows = h.index_select(1, gather)  # (B, nW * N, C): roll + window partition in one gather
    qkv = _linear(windows, attn.qkv.weight, attn.qkv.bias)
    qkv = qkv.view(B, n_win, n, 3, heads, C // heads).permute(3, 0, 1, 4, 2, 5)  # (3, B, nW, h, N, d)
    bias = _attn_bias(block, H, W, t.device, t.dtype)  # (1 or nW, heads, N, N)
    if bias.shape[0] == 1 or B == 1:
        q, k, v = (z.reshape(B * n_win, heads, n, C // heads) for z in qkv.unbind(0))
    else:
        q, k, v = (z.reshape(B, n_win * heads, n, C // heads) for z in qkv.unbind(0))
        bias = bias.view(1, n_win * heads, n, n)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=attn.scale)
    out = out.view(B, n_win, heads, n, C // heads).transpose(2, 3).reshape(B, n_win * n, C)
    out = _linear(out, attn.proj.weight, attn.proj.bias)
    # window reverse + roll back as one gather by the inverse index, then the residual (a gather
    # and an addition: 2.5x faster on CPU than one index_add_ scatter, and deterministic on CUDA)
    t = out.index_select(1, scatter).view(B, H, W, C).add_(t)
    m = _linear_1x1(_norm_tokens(t, block.norm2), block.mlp.fc1, gelu=True)
    return _linear_1x1(m, block.mlp.fc2, other=t)


def _tokens_layer(self: BasicLayer) -> bool:
    """Whether the token-layout forward applies: no patch norms, 1x1 patch embedding."""
    return (isinstance(self.patch_embed.norm, nn.Identity) and isinstance(self.patch_unembed.norm, nn.Identity)
            and self.patch_embed.proj.kernel_size == (1, 1) and self.patch_embed.proj.stride == (1, 1))


def _swin_tokens(self: BasicLayer, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The Swin blocks and the un-embedding of a layer, from its embedded ``(B, H, W, E)`` tokens;
    the ``(B, C, H, W)`` output takes ``like``'s memory format."""
    for block in self.blocks:
        t = _block_tokens(block, t)
    out = _linear_1x1(t, self.patch_unembed.proj).permute(0, 3, 1, 2)
    return out.contiguous(memory_format=_CL if like.is_contiguous(memory_format=_CL)
                          and not like.is_contiguous() else torch.contiguous_format)


def _basic_layer_forward(self: BasicLayer, x: torch.Tensor) -> torch.Tensor:
    if not _fast_ok(x) or not _tokens_layer(self):
        return BasicLayer.forward(self, x)
    return _swin_tokens(self, _linear_1x1(x.permute(0, 2, 3, 1), self.patch_embed.proj), x)


def _merge_ok(block: ResBlock, layer: BasicLayer) -> bool:
    """Whether ``layer``'s patch embedding (a 1x1 convolution C -> E, nothing in between) should be
    folded into ``block``'s last convolution and skip connection: when it saves multiply-adds,
    i.e. for C > E (per pixel ``9 C_mid E + C_in E`` instead of ``9 C_mid C + C E (+ C_in C)``)."""
    if block.updown or not isinstance(layer, BasicLayer) or not _tokens_layer(layer):
        return False
    conv2, skip = block.out_layers[3], block.skip_connection
    if not (isinstance(skip, nn.Identity) or (isinstance(skip, nn.Conv2d) and skip.kernel_size == (1, 1))):
        return False
    c_in, c_mid, c, e = block.channels, conv2.in_channels, conv2.out_channels, layer.patch_embed.proj.out_channels
    kernel = conv2.kernel_size[0] * conv2.kernel_size[1]
    return kernel * c_mid * e + c_in * e < kernel * c_mid * c + c * e + (0 if isinstance(skip, nn.Identity) else c_in * c)


def _merged_weights(block: ResBlock, layer: BasicLayer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W_e W_2, W_e W_s, W_e (b_2 + b_s) + b_e)``: the patch embedding ``W_e`` composed with the
    ResBlock's last convolution ``W_2`` and its skip ``W_s`` (identity or 1x1), in float64."""
    conv2, skip, embed = block.out_layers[3], block.skip_connection, layer.patch_embed.proj

    def make() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w_e = embed.weight.detach().double().flatten(1)  # (E, C)
        w2 = torch.einsum("ec,cikl->eikl", w_e, conv2.weight.detach().double())
        bias = w_e @ conv2.bias.detach().double() + embed.bias.detach().double()
        if isinstance(skip, nn.Identity):
            w_s = w_e
        else:
            w_s = w_e @ skip.weight.detach().double().flatten(1)
            bias = bias + w_e @ skip.bias.detach().double()
        dtype = conv2.weight.dtype
        return w2.to(dtype).contiguous(memory_format=_CL), w_s.to(dtype), bias.to(dtype)

    sources = _sources(conv2) + _sources(embed) + (() if isinstance(skip, nn.Identity) else _sources(skip))
    return _cached(layer, "merged", sources, make, (conv2.weight.dtype, conv2.weight.device))


def _resblock_swin(block: ResBlock, layer: BasicLayer, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """``layer(block(x, emb))`` with the patch embedding folded into the block (:func:`_merge_ok`)."""
    conv2 = block.out_layers[3]
    w2, w_s, bias = _merged_weights(block, layer)
    h = _resblock_hidden(block, x, emb)
    channels_last = bool(conv2.__dict__.get(_CL_IN))
    if channels_last:
        x = x.contiguous(memory_format=_CL)
    skip = _linear(x.permute(0, 2, 3, 1), w_s, bias).permute(0, 3, 1, 2)  # (B, E, H, W), channels-last
    geometry = (conv2.padding, conv2.stride, conv2.dilation, conv2.groups)
    sources = _sources(conv2) + _sources(layer.patch_embed.proj)
    t = _run_conv(h, w2, None, geometry, skip, cache=layer, prepack=conv2.__dict__.get(_PREPACK), sources=sources,
                  name="packed_merged")
    return _swin_tokens(layer, t.permute(0, 2, 3, 1).contiguous(), x)


def _sequential_forward(self: TimestepEmbedSequential, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    if not _fast_ok(x):
        return TimestepEmbedSequential.forward(self, x, emb)
    layers = list(self)
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, ResBlock) and i + 1 < len(layers) and _merge_ok(layer, layers[i + 1]):
            x = _resblock_swin(layer, layers[i + 1], x, emb)
            i += 2
            continue
        x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        i += 1
    return x


def _unet_forward(self: UNetModelSwin, x: torch.Tensor, timesteps: torch.Tensor, *, lq: torch.Tensor | None = None,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    autocast = self.__dict__.get("_ctlib_cuda_autocast")
    if autocast is not None and x.is_cuda and not torch.is_autocast_enabled("cuda"):
        with torch.autocast("cuda", dtype=autocast):
            return UNetModelSwin.forward(self, x, timesteps, lq=lq, mask=mask).float().contiguous()
    # the convolutions may run channels-last inside; callers get the default layout
    return UNetModelSwin.forward(self, x, timesteps, lq=lq, mask=mask).contiguous()


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
    h = self.conv_out(_swish_(_group_norm(h, self.norm_out))).contiguous()
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
    return self.conv_out(_swish_(_group_norm(h, self.norm_out))).contiguous()


_FAST_FORWARDS: dict[type, Callable[..., Any]] = {
    nn.Conv2d: _conv2d_forward,
    Upsample: _upsample_forward,
    _VQUpsample: _vq_upsample_forward,
    ResBlock: _resblock_forward,
    TimestepEmbedSequential: _sequential_forward,
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


def cache_bytes(model: nn.Module) -> int:
    """Memory held by the fast path's caches in ``model`` (packed and fused weights, attention
    biases, window indices): they fill at the first call for each input size."""

    def size(value: Any) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, (tuple, list)):
            return sum(size(v) for v in value)
        if isinstance(value, dict):
            return sum(size(v) for v in value.values())
        return 0

    return sum(size(m.__dict__.get(_CACHE, {})) for m in model.modules())


def accelerate(
    model: nn.Module,
    *,
    prepack: bool | None = None,
    channels_last: bool | None = None,
    compile: bool = False,  # noqa: A002 - the torch name
    cuda_autocast: torch.dtype | None = None,
) -> nn.Module:
    """Give ``model`` (a :class:`UNetModelSwin`, a :class:`VQModel`, or any module holding them) the
    inference fast path, in place, and return it.

    Weights, buffers and state-dict keys are unchanged.

    ``prepack``: on the CPU in float32, every convolution runs through oneDNN with its weight packed
    once into oneDNN's blocked layout for the input size (built at the first call, kept with the
    module, rebuilt when the weight or the input size changes) instead of being reordered on every
    call; wide 3x3 convolutions run by Winograd on a packed transformed weight (16/9 of the weight)
    instead, where the map has enough output blocks for the thread count
    (:func:`ctlib.nn.winograd.enough_tiles`; each convolution keeps one packed weight, for its last
    input size and way).  Costs memory about the size of the convolution weights
    (:func:`cache_bytes`: 0.59 GB for the v1 UNet on one thread, 0.44 GB on two, where its 8 x 8
    layers run direct, 0.42 GB if packed without Winograd; 16 MB for the bundled pixel model,
    0.2 GB for the VQ-f4 decoder).
    ``None`` (default): on for UNets; for autoencoders only where Winograd applies (their wide 3x3
    convolutions, on their default-layout activations: :data:`ctlib.nn.winograd.MIN_RATIO_DEFAULT_LAYOUT`),
    the other convolutions on oneDNN's default kernels, because its blocked kernels round
    differently: up to 1.4e-5 on the VQ-f4 decoder's output, 1.1e-5 from the VQ fixture, whose tests
    allow 1e-5.  With Winograd alone the VQ-f4 decoder's output (random weights, values up to 2.9)
    stays within 5.5e-6 of a float64 decoder's (the plain port: 2.6e-6) and 6.2e-6 of the plain
    port's, for 200 MB of transformed weights.  ``False``: nothing packed, no Winograd.
    ``channels_last``: run the convolutions on channels-last activations and store the 4-D weights
    channels-last (same values).  ``None`` (default): on for UNets (inside the network only; the
    output has the default layout), off for autoencoders.
    ``compile``: also ``torch.compile`` the model's ``forward`` (state-dict keys unchanged; if
    compilation fails, the first call warns and the eager fast path is used).  Inductor traces the
    plain forwards (it cannot lower the fast path's oneDNN calls on packed weights).  Off by
    default: on the CPU it does not pay (v1 UNet, one thread: 133 s of compilation, a recompilation
    at the second call included, for 1.12x over the plain port, where the eager fast path gives
    1.22x in the same run).
    ``cuda_autocast``: ``torch.bfloat16`` / ``torch.float16`` runs the UNet under autocast for CUDA
    inputs (not within the fixture tolerances; CPU inputs are never autocast).
    Idempotent; :func:`plain` undoes it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"accelerate needs an nn.Module, got {type(model).__name__}")
    for name, value in (("prepack", prepack), ("channels_last", channels_last)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{name} must be None, True or False, got {value!r}")
    if cuda_autocast not in (None, torch.bfloat16, torch.float16):
        raise ValueError(f"cuda_autocast must be None, torch.bfloat16 or torch.float16, got {cuda_autocast!r}")
    in_unet = {id(m) for unet in model.modules() if isinstance(unet, UNetModelSwin) for m in unet.modules()}
    for module in model.modules():
        fast = _FAST_FORWARDS.get(type(module))
        if fast is not None:
            module.forward = types.MethodType(fast, module)
        if isinstance(module, UNetModelSwin):
            if cuda_autocast is None:
                module.__dict__.pop("_ctlib_cuda_autocast", None)
            else:
                module.__dict__["_ctlib_cuda_autocast"] = cuda_autocast
        if isinstance(module, nn.Conv2d):
            if prepack is None:  # UNets: every convolution; autoencoders: only where Winograd applies
                module.__dict__[_PREPACK] = True if id(module) in in_unet else _WINOGRAD_ONLY
            else:
                module.__dict__[_PREPACK] = prepack
            module.__dict__[_CL_IN] = id(module) in in_unet if channels_last is None else channels_last
            if module.__dict__[_CL_IN]:
                module.weight.data = module.weight.data.contiguous(memory_format=_CL)
    model.__dict__[_FLAG] = True
    if compile:
        _compile_forward(model)
    return model


def plain(model: nn.Module) -> nn.Module:
    """Undo :func:`accelerate` in place: every module runs its class's ``forward`` again, the caches
    go, and weights return to the default (contiguous) layout.  Returns ``model``."""
    for module in model.modules():
        module.__dict__.pop("forward", None)
        for name in _MARKS:
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
