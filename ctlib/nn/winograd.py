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
(:data:`MIN_RATIO`); it is not used for narrower ones.  Rounding: it sums in a different order
from the direct convolution, and the measured difference from a float64 reference is *smaller*
than oneDNN's direct kernels' (``benchmarks/networks.py`` and ``tests/test_nn_fast.py``: v1 UNet
layers 3-6e-6 against 8-14e-6).  Costs memory 16/9 of the weight per layer (the packed ``U``).
"""

from __future__ import annotations

import torch

__all__ = ["MIN_RATIO", "MIN_RATIO_DEFAULT_LAYOUT", "MIN_SIDE", "MIN_TILES_PER_THREAD", "MAX_TILES", "B_T", "G",
           "A_T", "enough_tiles", "applies", "transformed_weight", "tile_rows", "pack", "conv3x3",
           "applies_upsampled", "pack_upsampled", "upsampled_conv3x3"]

MIN_RATIO = 80
"""Winograd is used where ``C_in C_out / (C_in + C_out)`` (per pixel: the products' work over the
transforms' memory passes) is at least this: every 3x3 convolution of 160 or more input and output
channels, none of the bundled pixel model's (at most 64 output channels).  Measured on the v1 UNet
(one thread): its convolutions take 470 ms per forward with this rule, 487 ms with a stricter one
(ratio 120 and sides of 16: direct convolutions for the 160-channel layers at 64 x 64 and the 8 x 8
layers), 615 ms without Winograd; timed one layer at a time, cache-warm, those excluded layers
run 0.8-1.2x, the others 1.1-1.6x."""
MIN_RATIO_DEFAULT_LAYOUT = 100
""":data:`MIN_RATIO` for an input in the default (NCHW) memory format: the tiles are read from, and
the output returned in, that layout by two transposed copies, memory passes proportional to
``C_in + C_out`` again.  Measured on the VQ-f4 decoder's layers (one layer at a time, 1 and 2
threads): 512 -> 256 channels at 128 x 128 (ratio 171) 1.17-1.23x over the direct convolution,
256 -> 256 (128) 1.34-1.89x, 256 -> 128 at 256 x 256 (85) 0.93-0.95x."""
MIN_SIDE = 8
"""... on maps of at least this many pixels a side ..."""
MIN_TILES_PER_THREAD = 16
"""... with at least this many 2 x 2 output blocks (tiles) per image and CPU thread
(``torch.get_num_threads()``).  The products read the packed ``U`` (16 floats per channel pair, 16/9
of the direct kernel) once per band, and use each float for one multiply-add per tile: on an 8 x 8
map (16 tiles) that is 16 multiply-adds per weight float read, where the direct convolution makes
64.  On one thread the arithmetic still sets the time, and Winograd wins (640 channels at 8 x 8:
1.37x over direct, timed alone); with more threads sharing the memory bus, reading the weights
does, and the direct kernel is as fast or faster.  Measured on the v1 UNet at two threads (20
interleaved forwards in one process, median): 1.43x over the plain port with this rule, 1.39x
with Winograd on its 8 x 8 layers too; one thread is unaffected (16 tiles suffice).  Also leaving
the 16 x 16 layers (64 tiles) to the direct kernel at two threads made no difference (1.34x both)."""
MAX_TILES = 256
"""The most 2 x 2 output blocks (tiles) one pass transforms and multiplies (a 32 x 32 map, or a
band of 8 tile rows of a 64 x 64 one).  Larger maps and batches go image by image and in bands of
rows, which keeps a pass's transformed tiles (``16 (C_in + C_out)`` floats a tile) within the CPU's
caches: on the VQ-f4 decoder's 256 channels at 128 x 128, 1.5x over the direct convolution in bands
against 0.9-1.0x in one pass; on the v1 UNet (one and two threads) 256 was as fast as or faster than
1024, 128 and 64."""

B_T = ((1.0, 0.0, -1.0, 0.0), (0.0, 1.0, 1.0, 0.0), (0.0, -1.0, 1.0, 0.0), (0.0, 1.0, 0.0, -1.0))
G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
A_T = ((1.0, 1.0, 1.0, 0.0), (0.0, 1.0, -1.0, -1.0))
_BIAS_PRODUCT = 5  # k = 4 r + s with r = s = 1
_ONEDNN = bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


def enough_tiles(tiles: int, threads: int | None = None) -> bool:
    """Whether ``tiles`` 2 x 2 output blocks per image are enough for Winograd on ``threads`` CPU
    threads (default ``torch.get_num_threads()``): :data:`MIN_TILES_PER_THREAD` per thread."""
    return tiles >= MIN_TILES_PER_THREAD * (torch.get_num_threads() if threads is None else threads)


def _wide_cpu_float32(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """The conditions both Winograd paths share: oneDNN available, a 3x3 kernel wide enough
    (:data:`MIN_RATIO` for a channels-last ``x``, :data:`MIN_RATIO_DEFAULT_LAYOUT` for a default-layout
    one: :func:`_zero_padded` reads either into channels-last tiles), a CPU float32 4-D ``x`` with
    sides of at least :data:`MIN_SIDE` (the number of output blocks, :func:`enough_tiles`, is each
    path's to check)."""
    if not (_ONEDNN and torch.backends.mkldnn.enabled) or weight.shape[2:] != (3, 3):
        return False
    c_out, c_in = weight.shape[:2]
    if c_in * c_out < (MIN_RATIO_DEFAULT_LAYOUT if x.is_contiguous() else MIN_RATIO) * (c_in + c_out):
        return False
    if x.dim() != 4 or x.dtype != torch.float32 or weight.dtype != torch.float32 or x.device.type != "cpu":
        return False
    return min(x.shape[2:]) >= MIN_SIDE


def applies(x: torch.Tensor, weight: torch.Tensor, geometry: tuple) -> bool:
    """Whether :func:`conv3x3` computes ``conv2d(x, weight, padding=1)`` here: a 3x3, stride-1,
    padding-1, ungrouped convolution wide enough (:data:`MIN_RATIO`, :data:`MIN_RATIO_DEFAULT_LAYOUT`
    on the default layout) of a CPU float32 map with even sides of at least :data:`MIN_SIDE` and
    enough output blocks for the threads (:func:`enough_tiles`), oneDNN available."""
    padding, stride, dilation, groups = geometry
    if tuple(padding) != (1, 1) or tuple(stride) != (1, 1) or tuple(dilation) != (1, 1) or groups != 1:
        return False
    return (_wide_cpu_float32(x, weight) and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0
            and enough_tiles((x.shape[2] // 2) * (x.shape[3] // 2)))


def transformed_weight(weight: torch.Tensor) -> torch.Tensor:
    """``U_k = G g G^T`` for every (output, input) channel pair: ``(16, C_out, C_in)`` with
    ``k = 4 r + s``, computed in float64 and rounded once to ``weight``'s dtype."""
    g = torch.tensor(G, dtype=torch.float64, device=weight.device)
    u = torch.einsum("rk,oikl,sl->rsoi", g, weight.detach().double(), g)
    return u.reshape(16, weight.shape[0], weight.shape[1]).to(weight.dtype)


def tile_rows(batch: int, height: int, width: int) -> int:
    """How many rows of 2 x 2 output blocks :func:`conv3x3` computes in one pass: all of an image's
    when it has at most :data:`MAX_TILES` blocks, else the largest divisor of ``height / 2`` whose
    band has at most that many (at least one row)."""
    th, tw = height // 2, width // 2
    if th * tw <= MAX_TILES:
        return th
    return max([d for d in range(1, th + 1) if th % d == 0 and d * tw <= MAX_TILES] or [1])


def _zero_padded(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``(B, C, H, W)``, in either memory format, as a ``(B, H + 2, W + 2, C)`` map with a
    border of zeros (padding 1).  A default-layout ``x`` goes image by image through a 2-D
    transposed copy, which PyTorch runs in cache blocks (256 channels at 256 x 256: 32 ms against
    91 for one strided copy, one thread)."""
    B, C, H, W = x.shape
    padded = x.new_zeros(B, H + 2, W + 2, C)
    if x.is_contiguous():
        pixels = x.new_empty(H * W, C)
        for b in range(B):
            pixels.copy_(x[b].view(C, H * W).t())
            padded[b, 1:-1, 1:-1].copy_(pixels.view(H, W, C))
    else:
        padded[:, 1:-1, 1:-1].copy_(x.permute(0, 2, 3, 1))
    return padded


def _like_input(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The channels-last result ``y`` ``(B, C, H, W)`` in ``x``'s memory format: as it is for a
    channels-last ``x``, else copied to the default layout by a 2-D transposed copy per image (as in
    :func:`_zero_padded`: 29 ms against 148 for ``contiguous()`` at 256 channels, 256 x 256)."""
    if not x.is_contiguous():
        return y
    B, C, H, W = y.shape
    out = y.new_empty(B, C, H, W)
    pixels = y.permute(0, 2, 3, 1).reshape(B, H * W, C)  # a view: y is channels-last
    for b in range(B):
        out[b].view(C, H * W).copy_(pixels[b].t())
    return out


def pack(weight: torch.Tensor, bias: torch.Tensor | None, x_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The transformed weight as oneDNN's packed weight of a 16-group 1x1 convolution on the tile
    bands :func:`conv3x3` makes of an input of shape ``x_shape``, and its bias (``bias`` on product
    5, zeros elsewhere)."""
    B, _, H, W = x_shape
    return _packed_products(transformed_weight(weight), bias, _BIAS_PRODUCT, tile_rows(B, H, W) * (W // 2))


def _packed_products(u: torch.Tensor, bias: torch.Tensor | None, bias_product: int,
                     tiles: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The products' weights ``u`` ``(K, C_out, C_in)`` as oneDNN's packed weight of a K-group 1x1
    convolution on a band of ``tiles`` tiles, and its bias (``bias`` on product ``bias_product``,
    zeros elsewhere)."""
    K, c_out, c_in = u.shape
    packed = torch._C._nn.mkldnn_reorder_conv2d_weight(u.reshape(K * c_out, c_in, 1, 1).contiguous().to_mkldnn(),
                                                      [0, 0], [1, 1], [1, 1], K, [1, K * c_in, tiles, 1])
    bias_k = torch.zeros(K, c_out, dtype=u.dtype, device=u.device)
    if bias is not None:
        bias_k[bias_product] = bias.detach()
    return packed, bias_k.reshape(-1)


def conv3x3(x: torch.Tensor, packed: torch.Tensor, bias16: torch.Tensor, c_out: int,
            other: torch.Tensor | None = None) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding=1) (+ other)`` by Winograd F(2x2, 3x3), with ``(packed,
    bias16) = pack(weight, bias, x.shape)``; ``x`` in either memory format (see :func:`applies`:
    copied once into the zero-padded channels-last map the tiles are read from); the output takes
    ``x``'s memory format.  Works image by image, in bands of :func:`tile_rows` rows of output
    blocks, so that the transformed tiles of a band stay in the CPU's caches; the buffers of a band and their
    views are made once per call (on small maps the number of tensor operations, views included,
    sets the time)."""
    B, C, H, W = x.shape
    th, tw = H // 2, W // 2
    n = tile_rows(B, H, W)
    padded = _zero_padded(x)
    out = x.new_empty(B, H, W, c_out)
    blocks = out.view(B, th, 2, tw, 2, c_out).permute(0, 1, 3, 2, 4, 5)  # (B, th, tw, a, b, C_out)
    rows = x.new_empty(4, n, W + 2, C)  # (B^T d) row r, every tile of the band
    V = x.new_empty(n, tw, 4, 4, C)  # B^T d B: V[..., r, s, :] is product k = 4 r + s's input
    z = x.new_empty(n, tw, 2, 4, c_out)  # (A^T M) row a
    row_r = rows.unbind(0)
    col_j = [rows[:, :, j:j + 2 * tw:2].permute(1, 2, 0, 3) for j in range(4)]  # column j of every tile
    v_s, z_a, z_s = V.unbind(3), z.unbind(2), z.unbind(3)
    products_in = V.view(1, n * tw, 1, 16 * C).permute(0, 3, 1, 2)
    for b in range(B):
        for i in range(0, th, n):
            d = padded[b, 2 * i:2 * (i + n) + 2]
            d_i = [d[k:k + 2 * n:2] for k in range(4)]  # row k of every tile: (n, W + 2, C)
            # input transform V = B^T d B, B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
            torch.sub(d_i[0], d_i[2], out=row_r[0])
            torch.add(d_i[1], d_i[2], out=row_r[1])
            torch.sub(d_i[2], d_i[1], out=row_r[2])
            torch.sub(d_i[1], d_i[3], out=row_r[3])
            torch.sub(col_j[0], col_j[2], out=v_s[0])
            torch.add(col_j[1], col_j[2], out=v_s[1])
            torch.sub(col_j[2], col_j[1], out=v_s[2])
            torch.sub(col_j[1], col_j[3], out=v_s[3])
            # the 16 products M_k = V_k U_k (+ bias on k = 5): one grouped 1x1 convolution
            M = torch.ops.mkldnn._convolution_pointwise(products_in, packed, bias16, [0, 0], [1, 1], [1, 1], 16,
                                                        "none", [], "")
            m_r = M.permute(0, 2, 3, 1).view(n, tw, 4, 4, c_out).unbind(2)
            # output transform Y = A^T M A, A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
            torch.add(m_r[0], m_r[1], out=z_a[0]).add_(m_r[2])
            torch.sub(m_r[1], m_r[2], out=z_a[1]).sub_(m_r[3])
            y_b = blocks[b, i:i + n].unbind(3)  # (n, tw, a, C_out) each
            torch.add(z_s[0], z_s[1], out=y_b[0]).add_(z_s[2])
            torch.sub(z_s[1], z_s[2], out=y_b[1]).sub_(z_s[3])
    out = _like_input(out.permute(0, 3, 1, 2), x)
    return out if other is None else out.add_(other)


# ---------------------------------------------------------------------------------------------
# nearest-x2 upsampling, then a 3x3 convolution: 9 products per 2 x 2 output block instead of 16
# ---------------------------------------------------------------------------------------------
_UPSAMPLED = (0, 1, 3)
"""On a nearest-x2 upsampled map the 4 x 4 tile of output block ``(2 p, 2 q)`` repeats its middle
rows: ``d = (x[p-1], x[p], x[p], x[p+1])``, so ``B^T d = (x[p-1] - x[p], 2 x[p], 0, x[p] - x[p+1])``.
Row (and column) 2 vanishes: only the products with ``r, s`` in ``(0, 1, 3)`` are left, and the
factor 2 of row 1 goes into ``U``.  The output transform keeps ``y_0 = M_0 + M_1``, ``y_1 = M_1 -
M_3``."""
_UPSAMPLED_BIAS_PRODUCT = 4  # (r, s) = (1, 1) among the 9


def applies_upsampled(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`upsampled_conv3x3` computes ``conv2d(nearest_x2(x), weight, padding=1)`` here
    (the convolution's geometry is the caller's to check: 3x3, stride 1, padding 1, ungrouped): wide
    enough (:data:`MIN_RATIO`), a CPU float32 ``x`` (either memory format) with sides of at least
    :data:`MIN_SIDE` and enough output blocks (one per pixel of ``x``) for the threads
    (:func:`enough_tiles`), oneDNN available."""
    return _wide_cpu_float32(x, weight) and enough_tiles(x.shape[2] * x.shape[3])


def pack_upsampled(weight: torch.Tensor, bias: torch.Tensor | None,
                   x_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Like :func:`pack` for :func:`upsampled_conv3x3` of an input of shape ``x_shape``: the 9
    products ``U_rs``, ``r, s`` in ``(0, 1, 3)``, times 2 for ``r = 1`` and for ``s = 1`` (exact)."""
    c_out, c_in = weight.shape[:2]
    B, _, H, W = x_shape
    u = transformed_weight(weight).view(4, 4, c_out, c_in)[list(_UPSAMPLED)][:, list(_UPSAMPLED)]
    two = torch.tensor([1.0, 2.0, 1.0], dtype=u.dtype, device=u.device)
    u = u * (two[:, None] * two[None, :])[:, :, None, None]
    return _packed_products(u.reshape(9, c_out, c_in), bias, _UPSAMPLED_BIAS_PRODUCT, tile_rows(B, 2 * H, 2 * W) * W)


def upsampled_conv3x3(x: torch.Tensor, packed: torch.Tensor, bias9: torch.Tensor, c_out: int) -> torch.Tensor:
    """``conv2d(interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)`` by
    Winograd F(2x2, 3x3) on the upsampled map's tiles (:data:`_UPSAMPLED`), without the upsampled
    copy, with ``(packed, bias9) = pack_upsampled(weight, bias, x.shape)``: one 2 x 2 output block
    per input pixel, 9 products (multiplications) per block where the four 2 x 2 phase kernels
    take 16; ``x`` in either memory format, the output in ``x``'s.  Bands as in :func:`conv3x3`."""
    B, C, H, W = x.shape
    n = tile_rows(B, 2 * H, 2 * W)
    padded = _zero_padded(x)
    out = x.new_empty(B, 2 * H, 2 * W, c_out)
    blocks = out.view(B, H, 2, W, 2, c_out).permute(0, 1, 3, 2, 4, 5)  # (B, H, W, a, b, C_out)
    rows = x.new_empty(3, n, W + 2, C)  # rows (x[p-1] - x[p], x[p], x[p] - x[p+1]) of every tile of the band
    V = x.new_empty(n, W, 3, 3, C)  # the same of their columns: product (r, s)'s input, r, s in (0, 1, 3)
    z = x.new_empty(n, W, 2, 3, c_out)  # (y_0, y_1) = (M_0 + M_1, M_1 - M_3) over rows
    row_r = rows.unbind(0)
    col_j = [rows[:, :, j:j + W].permute(1, 2, 0, 3) for j in range(3)]  # (n, W, 3, C)
    v_s, z_a, z_s = V.unbind(3), z.unbind(2), z.unbind(3)
    products_in = V.view(1, n * W, 1, 9 * C).permute(0, 3, 1, 2)
    for b in range(B):
        for i in range(0, H, n):
            p = padded[b, i:i + n + 2]
            torch.sub(p[0:n], p[1:n + 1], out=row_r[0])
            row_r[1].copy_(p[1:n + 1])
            torch.sub(p[1:n + 1], p[2:n + 2], out=row_r[2])
            torch.sub(col_j[0], col_j[1], out=v_s[0])
            v_s[1].copy_(col_j[1])
            torch.sub(col_j[1], col_j[2], out=v_s[2])
            M = torch.ops.mkldnn._convolution_pointwise(products_in, packed, bias9, [0, 0], [1, 1], [1, 1], 9,
                                                        "none", [], "")
            m_r = M.permute(0, 2, 3, 1).view(n, W, 3, 3, c_out).unbind(2)
            torch.add(m_r[0], m_r[1], out=z_a[0])
            torch.sub(m_r[1], m_r[2], out=z_a[1])
            y_b = blocks[b, i:i + n].unbind(3)  # (n, W, a, C_out) each
            torch.add(z_s[0], z_s[1], out=y_b[0])
            torch.sub(z_s[1], z_s[2], out=y_b[1])
    return _like_input(out.permute(0, 3, 1, 2), x)
