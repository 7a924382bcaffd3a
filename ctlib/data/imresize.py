"""MATLAB-compatible bicubic ``imresize`` in torch (batched, any device).

This is the resize the super-resolution field calls "bicubic": MATLAB's ``imresize(x, scale)``
with its default cubic kernel (Keys, a = -0.5), antialiasing when shrinking, and symmetric
(mirror) boundary handling. ResShift ships the same algorithm as ``imresize_np``; the golden
pairs in ``tests/fixtures/resshift_reference/imresize.npz`` come from it.

How it works. Each axis is resized by a sparse linear map: output pixel ``i`` (1-based) sits at
input coordinate ``u_i = i / s + (1 - 1/s) / 2``; its weights are the cubic kernel evaluated at
``u_i - j`` for the nearby input pixels ``j`` (when shrinking with antialiasing the kernel is
stretched by ``1/s``: ``s * cubic(s * d)``), normalised to sum to one; input indices that fall
outside the image are mirrored back (``0 -> 1``, ``-1 -> 2``, ..., as MATLAB's ``symmetric``
padding). We build that map as a dense ``(out, in)`` matrix per axis (float64 weights) and apply
it as ``W_h @ x @ W_w^T`` -- the H axis first, then W, as the official code does.

Output size. ``ceil(in * scale)`` per axis, exactly as MATLAB and the official Python code:
shrinking by 4 maps 256 -> 64 (HR/4 exactly when a side is divisible by 4) and 257 -> 65,
33 -> 9 (the fixture's ``out_b_x0.25``). The product is computed in float64, so a scale that is
not a power of two can land a hair above an integer (``300 * (1/3)``); pass ``size=`` when you
need an exact output size.

Precision. The official function computes in float32 whatever the input dtype; this one
computes in the input's dtype (float32 stays float32; float64 input gives the exact float64
result, which agrees with the official float32 output to ~1e-7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["cubic", "resize_matrix", "imresize", "imresize_np", "output_size"]


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), support [-2, 2]."""
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def output_size(in_length: int, scale: float) -> int:
    """MATLAB's output length for one axis: ``ceil(in_length * scale)``."""
    return int(math.ceil(in_length * scale))


def resize_matrix(
    in_length: int,
    out_length: int,
    scale: float,
    *,
    antialiasing: bool = True,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``(out_length, in_length)`` matrix that resizes one axis the MATLAB way.

    Rows sum to one. Built in float64 and cast to ``dtype`` at the end.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(f"lengths must be >= 1, got in_length={in_length}, out_length={out_length}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    kernel_width = 4.0
    shrink_aa = antialiasing and scale < 1
    if shrink_aa:
        kernel_width = kernel_width / scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # input coordinate (1-based) of each output pixel
    left = torch.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # (out, taps), 1-based
    dist = u[:, None] - idx
    weights = scale * cubic(dist * scale) if shrink_aa else cubic(dist)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # MATLAB 'symmetric' boundary: mirror indices into [1, in_length] (period 2*in_length).
    period = 2 * in_length
    j = torch.remainder(idx.long() - 1, period)  # 0-based in [0, 2n)
    j = torch.where(j < in_length, j, period - 1 - j)
    mat = torch.zeros(out_length, in_length, dtype=torch.float64)
    mat.scatter_add_(1, j, weights)
    return mat.to(dtype=dtype, device=device)


def _check_scale_size(
    h: int, w: int, scale: float | Sequence[float] | None, size: Sequence[int] | None
) -> tuple[int, int, float, float]:
    if (scale is None) == (size is None):
        raise ValueError("pass exactly one of scale and size")
    if size is not None:
        if len(size) != 2:
            raise ValueError(f"size must be (height, width), got {size!r}")
        out_h, out_w = (int(s) for s in size)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"size must be positive, got {size!r}")
        return out_h, out_w, out_h / h, out_w / w
    if isinstance(scale, (int, float)):
        sh = sw = float(scale)
    else:
        if len(scale) != 2:  # type: ignore[arg-type]
            raise ValueError(f"scale must be a number or (scale_h, scale_w), got {scale!r}")
        sh, sw = (float(s) for s in scale)  # type: ignore[union-attr]
    for name, s in (("scale", sh), ("scale", sw)):
        if not (s > 0 and math.isfinite(s)):
            raise ValueError(f"{name} must be a finite number > 0, got {scale!r}")
    return output_size(h, sh), output_size(w, sw), sh, sw


def imresize(
    x: torch.Tensor,
    scale: float | Sequence[float] | None = None,
    *,
    size: Sequence[int] | None = None,
    antialiasing: bool = True,
) -> torch.Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` for tensors of shape (B, C, H, W), (C, H, W) or (H, W).

    Args:
        x: floating-point tensor (any device); values are not clamped (bicubic overshoots).
        scale: a factor (``0.25`` shrinks by 4) or ``(scale_h, scale_w)``; output side
            ``ceil(side * scale)``.
        size: ``(out_h, out_w)`` instead of ``scale``; the per-axis scale is then out/in.
        antialiasing: widen the kernel when shrinking (MATLAB's default, True).

    Returns:
        The resized tensor, same rank, dtype and device as ``x``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__} (use imresize_np for numpy)")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"x must have shape (B, C, H, W), (C, H, W) or (H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2], x.shape[-1]
    if h < 1 or w < 1:
        raise ValueError(f"x must have a non-empty image, got shape {tuple(x.shape)}")
    out_h, out_w, sh, sw = _check_scale_size(h, w, scale, size)
    wh = resize_matrix(h, out_h, sh, antialiasing=antialiasing, dtype=x.dtype, device=x.device)
    ww = resize_matrix(w, out_w, sw, antialiasing=antialiasing, dtype=x.dtype, device=x.device)
    out = torch.matmul(wh, x)  # H axis first
    return torch.matmul(out, ww.transpose(0, 1))


def imresize_np(
    img: np.ndarray,
    scale: float | Sequence[float] | None = None,
    *,
    size: Sequence[int] | None = None,
    antialiasing: bool = True,
) -> np.ndarray:
    """:func:`imresize` for a numpy image of shape (H, W) or (H, W, C) (the official layout).

    Integer images are converted to float (values unchanged); the result keeps float32 for
    float32 and integer inputs and float64 for float64 inputs.
    """
    a = np.asarray(img)
    if a.ndim not in (2, 3):
        raise ValueError(f"img must have shape (H, W) or (H, W, C), got {a.shape}")
    dtype = np.float64 if a.dtype == np.float64 else np.float32
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))
    t = t.permute(2, 0, 1) if a.ndim == 3 else t
    out = imresize(t, scale, size=size, antialiasing=antialiasing)
    out = out.permute(1, 2, 0) if a.ndim == 3 else out
    return out.numpy()
