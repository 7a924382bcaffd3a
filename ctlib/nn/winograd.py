r"""Winograd F(2x2, 3x3) convolution: the fast path's 3x3 convolutions with 4 instead of 9
multiplications per output pixel and channel pair (CPU, float32, oneDNN).

A 3x3, stride-1, padding-1 convolution is computed on 4 x 4 input tiles ``d`` (stride 2, so that
neighbouring tiles overlap by two pixels), each giving a 2 x 2 block of the output (Lavin & Gray,
*Fast Algorithms for Convolutional Neural Networks*, CVPR 2016)::

    Y = A^T [ sum_c (G g_{o,c} G^T) * (B^T d_c B) ] A          (* : element-wise, 4 x 4)

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

so the sum over input channels becomes 16 independent matrix products (one per tile position
``k = 4 r + s``): ``M_k = V_k U_k`` with ``V_k`` the (tiles x C_in) matrix of transformed inputs and
``U_k`` the (C_in x C_out) matrix of transformed kernels ``G g G^T`` (computed once, in float64,
rounded once).  The 16 products run as *one* grouped 1x1 oneDNN convolution on a pre-packed weight;
the input and output transforms (``B^T d B``, ``A^T M A``: additions only) are strided tensor
additions.  The bias rides on product ``k = 5`` (``r = s = 1``), the only one whose output transform
adds it to all four outputs once (``A^T[:, 1] = (1, 1)``).

Multiply-adds per output pixel: ``4 C_in C_out`` instead of ``9 C_in C_out``; the transforms cost
memory passes proportional to ``C_in + C_out``, so it pays for wide layers
(:data:`MIN_CHANNELS`); it is not used for narrower ones.  Rounding: it sums in a different order
from the direct convolution, and the measured difference from a float64 reference is *smaller*
than oneDNN's direct kernels' (``benchmarks/networks.py`` and ``tests/test_nn_fast.py``: v1 UNet
layers 3-6e-6 against 8-14e-6).  Costs memory 16/9 of the weight per layer (the packed ``U``).
"""

from __future__ import annotations

import torch

__all__ = ["MIN_CHANNELS", "B_T", "G", "A_T", "applies", "transformed_weight", "pack", "conv3x3"]

MIN_CHANNELS = 128
"""Winograd is used for a convolution with at least this many input *and* output channels
(measured on the v1 UNet's layers, one and two threads: 1.2-1.6x at 160-1280 channels; below ~128
the transforms cost what the products save)."""

B_T = ((1.0, 0.0, -1.0, 0.0), (0.0, 1.0, 1.0, 0.0), (0.0, -1.0, 1.0, 0.0), (0.0, 1.0, 0.0, -1.0))
G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
A_T = ((1.0, 1.0, 1.0, 0.0), (0.0, 1.0, -1.0, -1.0))
_BIAS_PRODUCT = 5  # k = 4 r + s with r = s = 1
_ONEDNN = bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


def applies(x: torch.Tensor, weight: torch.Tensor, geometry: tuple) -> bool:
    """Whether :func:`conv3x3` computes ``conv2d(x, weight, padding=1)`` here: a 3x3, stride-1,
    padding-1, ungrouped convolution with at least :data:`MIN_CHANNELS` input and output channels,
    of a channels-last CPU float32 map with even sides of at least 8, oneDNN available."""
    padding, stride, dilation, groups = geometry
    if not (_ONEDNN and torch.backends.mkldnn.enabled):
        return False
    if tuple(padding) != (1, 1) or tuple(stride) != (1, 1) or tuple(dilation) != (1, 1) or groups != 1:
        return False
    if weight.shape[2:] != (3, 3) or min(weight.shape[0], weight.shape[1]) < MIN_CHANNELS:
        return False
    if x.dim() != 4 or x.dtype != torch.float32 or weight.dtype != torch.float32 or x.device.type != "cpu":
        return False
    H, W = x.shape[2:]
    return H % 2 == 0 and W % 2 == 0 and H >= 8 and W >= 8 and x.is_contiguous(memory_format=torch.channels_last)


def transformed_weight(weight: torch.Tensor) -> torch.Tensor:
    """``U_k = G g G^T`` for every (output, input) channel pair: ``(16, C_out, C_in)`` with
    ``k = 4 r + s``, computed in float64 and rounded once to ``weight``'s dtype."""
    g = torch.tensor(G, dtype=torch.float64, device=weight.device)
    u = torch.einsum("rk,oikl,sl->rsoi", g, weight.detach().double(), g)
    return u.reshape(16, weight.shape[0], weight.shape[1]).to(weight.dtype)


def pack(weight: torch.Tensor, bias: torch.Tensor | None, x_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The transformed weight as oneDNN's packed weight of a 16-group 1x1 convolution on tile maps
    of an input of shape ``x_shape``, and its bias (``bias`` on product 5, zeros elsewhere)."""
    c_out, c_in = weight.shape[:2]
    B, _, H, W = x_shape
    u = transformed_weight(weight).reshape(16 * c_out, c_in, 1, 1).contiguous()
    packed = torch._C._nn.mkldnn_reorder_conv2d_weight(u.to_mkldnn(), [0, 0], [1, 1], [1, 1], 16,
                                                      [B, 16 * c_in, H // 2, W // 2])
    bias16 = torch.zeros(16, c_out, dtype=weight.dtype, device=weight.device)
    if bias is not None:
        bias16[_BIAS_PRODUCT] = bias.detach()
    return packed, bias16.reshape(-1)


def conv3x3(x: torch.Tensor, packed: torch.Tensor, bias16: torch.Tensor, c_out: int,
            other: torch.Tensor | None = None) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding=1) (+ other)`` by Winograd F(2x2, 3x3), with ``(packed,
    bias16) = pack(weight, bias, x.shape)``; ``x`` channels-last (see :func:`applies`); the output is
    channels-last."""
    B, C, H, W = x.shape
    th, tw = H // 2, W // 2
    padded = x.new_zeros(B, H + 2, W + 2, C)
    padded[:, 1:-1, 1:-1].copy_(x.permute(0, 2, 3, 1))
    # input transform V = B^T d B, rows then columns; V[..., k, :] holds product k's input
    d = [padded[:, i:i + 2 * th:2] for i in range(4)]  # row i of every tile: (B, th, W + 2, C)
    rows = [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]
    V = x.new_empty(B, th, tw, 16, C)
    for r, row in enumerate(rows):
        e = [row[:, :, j:j + 2 * tw:2] for j in range(4)]
        torch.sub(e[0], e[2], out=V[..., 4 * r, :])
        torch.add(e[1], e[2], out=V[..., 4 * r + 1, :])
        torch.sub(e[2], e[1], out=V[..., 4 * r + 2, :])
        torch.sub(e[1], e[3], out=V[..., 4 * r + 3, :])
    # the 16 products M_k = V_k U_k (+ bias on k = 5): one grouped 1x1 convolution
    M = torch.ops.mkldnn._convolution_pointwise(V.view(B, th, tw, 16 * C).permute(0, 3, 1, 2), packed, bias16,
                                                [0, 0], [1, 1], [1, 1], 16, "none", [], "")
    m = M.permute(0, 2, 3, 1).view(B, th, tw, 16, c_out)
    # output transform Y = A^T M A: rows (s_j = M_0j + M_1j + M_2j, t_j = M_1j - M_2j - M_3j), then columns
    s = [m[..., j, :] + m[..., 4 + j, :] + m[..., 8 + j, :] for j in range(4)]
    t = [m[..., 4 + j, :] - m[..., 8 + j, :] - m[..., 12 + j, :] for j in range(4)]
    out = x.new_empty(B, H, W, c_out)
    y = out.view(B, th, 2, tw, 2, c_out)
    for a, z in enumerate((s, t)):
        torch.add(z[0], z[1], out=y[:, :, a, :, 0]).add_(z[2])
        torch.sub(z[1], z[2], out=y[:, :, a, :, 1]).sub_(z[3])
    out = out.permute(0, 3, 1, 2)
    return out if other is None else out.add_(other)
