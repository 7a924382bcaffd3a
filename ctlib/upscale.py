r"""Upscale your own images x4, any size: ``ctlib.upscale(...)`` and ``python -m ctlib upscale``.

One code path for every image (:func:`upscale_tensor`): the LR image is cut into tiles of
``tile x tile`` LR pixels that overlap by ``overlap`` pixels (an image that fits in one tile is one
tile); each tile is sampled with :func:`ctlib.sample` (the denoiser pads it to the network's size
multiple and crops back), and the x4 tiles are blended into the output with a raised-cosine window.

Blending (``ramp_weights``)
    Along every tile side that has a neighbour the weight rises over the first ``R = sf * overlap``
    output pixels as ``w(d) = sin^2(pi (d + 1/2) / (2 R))``, ``d`` = distance from the tile edge; on
    sides at the image border the weight is 1.  Two tiles overlapping by exactly ``R`` output pixels
    get weights ``sin^2 + cos^2 = 1`` (a partition of unity); elsewhere (the last tile of a row is
    moved back to end on the image border, so it may overlap more) the weighted sum is divided by the
    summed weight.  A tile's 2-D window is the outer product of its row and column weights, so the
    summed weight is the outer product of two 1-D sums and is never stored as an image.

Noise (``coordinate_noise``)
    The prior noise of ``x_T = y + kappa sqrt(eta(1)) eps`` (and, for the stochastic solvers, the
    per-step noise) is a function of the **state pixel's coordinates in the whole image**, not of the
    tile: the state plane is cut into fixed ``NOISE_BLOCK x NOISE_BLOCK`` blocks, and block ``(i, j)``
    of noise stream ``k`` (0 = x_T, k >= 1 = step k - 1) is drawn from a ``torch.Generator`` seeded by
    ``SeedSequence(seed, spawn_key=(k, i, j))``.  So two tiles that overlap see the same noise there,
    the result does not depend on the tile size (for a denoiser with a local receptive field, tiled
    and untiled outputs agree outside the blending bands: ``tests/test_upscale.py``), and a tile only
    ever generates the blocks it covers: noise memory is O(tile), not O(image).

Memory
    Working memory is bounded by ``batch`` tiles (the network's activations, the state, ``y`` and the
    noise of one batch of tiles); the only buffers of the image's size are the LR input and the output
    itself, accumulated in place as float32 RGB (12 bytes per output pixel; the weights are separable
    and kept as two 1-D sums).  Writing an 8-bit PNG adds a uint8 copy (3-4 bytes per output pixel,
    converted in bands); an alpha channel adds a 16-byte-per-pixel RGBA copy while it is attached, and
    16-bit output goes through :func:`ctlib.data.write_png`, which works in float64.
    ``benchmarks/upscale.py`` measures peak RSS for two image sizes.

What files become (:func:`read_for_upscale` / :func:`write_upscaled`)
    grayscale in -> grayscale out (the network runs on the repeated RGB; the output is the mean of its
    channels); an alpha channel is upscaled by bicubic interpolation (the kernel of the network's own
    LR upsampling) and kept; 16-bit (or float) files are written back as 16-bit PNG, others 8-bit.
    Outputs are PNGs named ``<input stem>_x4.png``; an existing file is never overwritten unless asked,
    an input never (its image fails instead), and every output carries the PNG text
    ``Software: ctlib upscale`` (:data:`OUTPUT_MARK`) so that it is never taken as an input again.
"""

from __future__ import annotations

import glob
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from ._checks import check_int
from .data.io import IMAGE_EXTENSIONS, ImageReadError, is_deep_colour_tiff, list_images, read_image, write_png
from .files import REPO_ROOT, atomic_write
from .nn.denoiser import ResShiftDenoiser, upsample_lr
from .pipeline import NoiseSource, load_model, sample_conditioned, to_image, to_model_range
from .profiles import RECORD_DIR, UPSCALE_DEFAULTS
from .samplers import SOLVERS, solver_grid

__all__ = [
    "DEFAULT_CHECKPOINT",
    "DEFAULT_TILE",
    "DEFAULT_OVERLAP",
    "MIN_SIDE",
    "NOISE_BLOCK",
    "TileLayout",
    "tile_starts",
    "tile_layout",
    "ramp_weights",
    "seam_ratio",
    "block_seed",
    "coordinate_noise",
    "upscale_tensor",
    "upscale",
    "ImageForUpscale",
    "read_for_upscale",
    "write_upscaled",
    "output_path",
    "collect_inputs",
    "UpscaleReport",
    "UpscaleInterrupted",
    "OUTPUT_MARK",
    "is_upscale_output",
    "upscale_files",
]

#: The defaults (``ctlib.profiles.UPSCALE_DEFAULTS``): the shipped continuously fine-tuned pixel model,
#: the sampler chosen by measurement on the table of record (:func:`default_sampler_note`), and the
#: tiling in LR pixels.
DEFAULT_CHECKPOINT: Path = REPO_ROOT / UPSCALE_DEFAULTS["checkpoint"]
DEFAULT_SOLVER, DEFAULT_RHO, DEFAULT_NFE = (UPSCALE_DEFAULTS[k] for k in ("solver", "rho", "nfe"))
DEFAULT_TILE, DEFAULT_OVERLAP = UPSCALE_DEFAULTS["tile"], UPSCALE_DEFAULTS["overlap"]
RECORD_TABLE: Path = REPO_ROOT / RECORD_DIR / "table.json"


def default_sampler_note() -> str:
    """Why the default sampler is what it is, with the numbers of the table of record (if present)."""
    text = f"default {DEFAULT_SOLVER}, rho {DEFAULT_RHO:g}, nfe {DEFAULT_NFE}"
    try:
        from .conclusions import cheapest_match

        pick = cheapest_match(json.loads(RECORD_TABLE.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError):
        return text
    return (f"{text}: the cheapest setting within 0.05 dB PSNR-Y and 0.002 SSIM-Y of the best nfe-15 row of the "
            f"table of record ({pick['best_label']}: {pick['best_psnr_y']:.2f} dB / {pick['best_ssim_y']:.4f}; "
            f"{pick['label']}: {pick['psnr_y']:.2f} dB / {pick['ssim_y']:.4f}; notebook 06)")

#: Smallest LR side accepted: below it the padding to the network's multiple would be mostly
#: reflections of a few pixels (and bicubic upsampling has no neighbourhood to work with).
MIN_SIDE = 8
#: Side of the noise blocks in state pixels (see the module docstring).
NOISE_BLOCK = 32

ProgressHook = Callable[[int, int], None]


# ---------------------------------------------------------------------------------------------
# tiles and blending
# ---------------------------------------------------------------------------------------------
def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``[0, length)`` with stride ``tile - overlap``;
    the last tile is moved back to end at ``length`` (all tiles have the same side,
    ``min(tile, length)``).  ``[0]`` when the side fits in one tile."""
    length = check_int(length, "length", minimum=1)
    tile = check_int(tile, "tile", minimum=1)
    overlap = check_int(overlap, "overlap", minimum=0)
    if overlap >= tile:
        raise ValueError(f"overlap must be smaller than tile, got overlap {overlap} >= tile {tile}")
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


@dataclass(frozen=True)
class TileLayout:
    """Where the tiles of an ``height x width`` LR image lie (LR pixels).

    ``rows`` / ``cols``: tile start offsets; every tile is ``tile_h x tile_w``; tile ``k`` is
    ``(rows[k // len(cols)], cols[k % len(cols)])`` (row-major order, the order they are sampled in).
    """

    height: int
    width: int
    tile_h: int
    tile_w: int
    overlap: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    @property
    def tiles(self) -> list[tuple[int, int]]:
        """``(row, col)`` start of every tile, row-major."""
        return [(r, c) for r in self.rows for c in self.cols]


def tile_layout(height: int, width: int, tile: int | None, overlap: int) -> TileLayout:
    """The tiles for an LR image; ``tile=None`` (or a tile at least as large as the image) gives one
    tile covering the whole image."""
    height = check_int(height, "height", minimum=1)
    width = check_int(width, "width", minimum=1)
    overlap = check_int(overlap, "overlap", minimum=0)
    side = max(height, width) if tile is None else check_int(tile, "tile", minimum=1)
    if tile is not None and overlap >= side:
        raise ValueError(f"overlap must be smaller than tile, got overlap {overlap} >= tile {side}")
    rows = tile_starts(height, side, min(overlap, side - 1))
    cols = tile_starts(width, side, min(overlap, side - 1))
    return TileLayout(height, width, min(side, height), min(side, width), overlap, tuple(rows), tuple(cols))


def ramp_weights(length: int, ramp: int, *, start: bool, end: bool) -> torch.Tensor:
    """1-D blending weights (float64) of a tile side of ``length`` output pixels.

    With ``start`` (``end``) the first (last) ``ramp`` pixels rise from the tile edge as
    ``sin^2(pi (d + 1/2) / (2 ramp))``, ``d`` = distance from that edge; the rest is 1.  Two
    ramps facing each other over exactly ``ramp`` pixels sum to 1.
    """
    length = check_int(length, "length", minimum=1)
    ramp = check_int(ramp, "ramp", minimum=0)
    w = torch.ones(length, dtype=torch.float64)
    if ramp == 0:
        return w
    d = torch.arange(min(ramp, length), dtype=torch.float64)
    rise = torch.sin(math.pi * (d + 0.5) / (2 * ramp)) ** 2
    if start:
        w[: len(rise)] *= rise
    if end:
        w[length - len(rise):] *= rise.flip(0)
    return w


def seam_ratio(image: np.ndarray | torch.Tensor, layout: TileLayout, sf: int = 4) -> tuple[float, float]:
    """How visible the tile borders are: for each axis, the mean squared difference between
    neighbouring output rows (columns) across the lines where a tile starts or ends, divided by the
    mean over all neighbouring rows (columns).  About 1 (or less) when no seam shows; a hard seam
    gives much more.  ``image``: the output (HWC numpy or CHW torch, or 2-D); returns
    ``(across rows, across columns)``, NaN for an axis with one tile."""
    a = image.detach().cpu().permute(1, 2, 0).numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    a = a[:, :, None] if a.ndim == 2 else a
    if a.shape[0] != sf * layout.height or a.shape[1] != sf * layout.width:
        raise ValueError(f"image has shape {a.shape[:2]}, expected {(sf * layout.height, sf * layout.width)} "
                         f"(sf x the layout's size)")
    ratios = []
    for axis, starts, side, length in ((0, layout.rows, layout.tile_h, layout.height),
                                       (1, layout.cols, layout.tile_w, layout.width)):
        energy = (np.diff(a.astype(np.float64), axis=axis) ** 2).mean(axis=(1 - axis, 2))
        lines = sorted({sf * s - 1 for s in starts if s > 0} | {sf * (s + side) - 1 for s in starts if s + side < length})
        ratios.append(float(energy[lines].mean() / energy.mean()) if lines else float("nan"))
    return ratios[0], ratios[1]


# ---------------------------------------------------------------------------------------------
# noise as a function of the coordinates
# ---------------------------------------------------------------------------------------------
def block_seed(seed: int, stream: int, block_row: int, block_col: int) -> int:
    """The 63-bit seed of noise block ``(block_row, block_col)`` of stream ``stream`` (0: x_T,
    k >= 1: the noise of sampler step k - 1), derived from ``seed`` with numpy's SeedSequence."""
    seq = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(stream), int(block_row), int(block_col)))
    lo, hi = seq.generate_state(2, dtype=np.uint32)
    return ((int(hi) << 32) | int(lo)) & (2**63 - 1)


def coordinate_noise(
    seed: int,
    stream: int,
    channels: int,
    rows: tuple[int, int],
    cols: tuple[int, int],
    *,
    block: int = NOISE_BLOCK,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise ``(channels, r1 - r0, c1 - c0)`` for the state pixels ``[r0, r1) x [c0, c1)``
    of the whole image: entry ``(c, r, q)`` depends only on ``(seed, stream, c, r, q)`` (and ``block``),
    so any two windows agree where they overlap.  Each ``block x block`` block is drawn from its own
    ``torch.Generator`` (:func:`block_seed`); only the blocks the window touches are drawn."""
    seed = check_int(seed, "seed", minimum=0)
    stream = check_int(stream, "stream", minimum=0)
    channels = check_int(channels, "channels", minimum=1)
    block = check_int(block, "block", minimum=1)
    (r0, r1), (c0, c1) = rows, cols
    for name, (a, b) in (("rows", rows), ("cols", cols)):
        if not (isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)) and 0 <= a < b):
            raise ValueError(f"{name} must be a (start, stop) pair of integers with 0 <= start < stop, got {(a, b)}")
    bi0, bi1 = r0 // block, (r1 - 1) // block + 1
    bj0, bj1 = c0 // block, (c1 - 1) // block + 1
    buf = torch.empty(channels, (bi1 - bi0) * block, (bj1 - bj0) * block, dtype=dtype)
    gen = torch.Generator()
    for bi in range(bi0, bi1):
        for bj in range(bj0, bj1):
            gen.manual_seed(block_seed(seed, stream, bi, bj))
            i, j = (bi - bi0) * block, (bj - bj0) * block
            buf[:, i:i + block, j:j + block] = torch.randn(channels, block, block, generator=gen, dtype=dtype)
    i0, j0 = r0 - bi0 * block, c0 - bj0 * block
    return buf[:, i0:i0 + (r1 - r0), j0:j0 + (c1 - c0)].clone()


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------
def _model_device(denoiser: ResShiftDenoiser) -> torch.device:
    for p in denoiser.parameters():
        return p.device
    return torch.device("cpu")


def _state_scale(denoiser: ResShiftDenoiser) -> int:
    """State pixels per LR pixel (4 in pixel space, 1 in the VQ-f4 latent space)."""
    if denoiser.sf % denoiser.first_stage_factor:
        raise ValueError(f"sf {denoiser.sf} is not a multiple of the first-stage factor {denoiser.first_stage_factor}")
    return denoiser.sf // denoiser.first_stage_factor


# ---------------------------------------------------------------------------------------------
# the core: an LR tensor -> the x4 tensor
# ---------------------------------------------------------------------------------------------
def _seed_from(seed: int, generator: torch.Generator | None) -> int:
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return check_int(seed, "seed", minimum=0)


def _tile_noise(seed: int, stream: int, origins: list[tuple[int, int]], like: torch.Tensor) -> torch.Tensor:
    """Noise of ``stream`` for a batch of state tiles shaped like ``like`` (B, C, Hs, Ws) whose top-left
    state pixels are ``origins`` (whole-image coordinates)."""
    C, Hs, Ws = like.shape[1:]
    windows = [coordinate_noise(seed, stream, C, (r, r + Hs), (c, c + Ws)) for r, c in origins]
    return torch.stack(windows).to(device=like.device, dtype=like.dtype)


def _coordinate_source(seed: int, origins: list[tuple[int, int]]) -> NoiseSource:
    """The pipeline's noise source for a batch of tiles: stream 0 (x_T) and streams 1.. (the steps) of
    :func:`coordinate_noise` at the tiles' whole-image positions ``origins``."""

    def noise(y: torch.Tensor, n_steps: int) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        steps = [_tile_noise(seed, i + 1, origins, y) for i in range(n_steps)]
        return _tile_noise(seed, 0, origins, y), steps or None

    return noise


def upscale_tensor(
    lr: torch.Tensor,
    denoiser: ResShiftDenoiser,
    *,
    solver: str = DEFAULT_SOLVER,
    nfe: int = DEFAULT_NFE,
    rho: float = DEFAULT_RHO,
    seed: int = 0,
    generator: torch.Generator | None = None,
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    batch: int = 1,
    progress: bool = False,
    on_tiles: ProgressHook | None = None,
) -> torch.Tensor:
    """Upscale an RGB LR image ``(3, h, w)`` with values in [0, 1] to ``(3, sf h, sf w)`` in [0, 1]
    (float32, on the CPU), sampled tile by tile (module docstring).

    ``solver`` / ``nfe`` / ``rho``: as :func:`ctlib.sample`.  ``seed`` (or a ``generator``, from
    which the seed is drawn) decides all noise.  ``tile``: tile side in LR pixels (a multiple of the
    denoiser's ``lr_multiple``), ``None`` for the whole image in one piece; ``overlap``: overlap of
    neighbouring tiles in LR pixels.  ``batch``: tiles sampled together.  ``on_tiles(done, total)``
    is called after every batch of tiles; ``progress`` shows a tqdm bar over the tiles.
    """
    if not isinstance(denoiser, ResShiftDenoiser):
        raise TypeError(f"denoiser must be a ResShiftDenoiser (see ctlib.pipeline.load_model), got {type(denoiser).__name__}")
    if not isinstance(lr, torch.Tensor) or lr.ndim != 3 or lr.shape[0] != 3 or not lr.is_floating_point():
        raise ValueError(f"lr must be a float tensor of shape (3, h, w), got {getattr(lr, 'shape', type(lr).__name__)}")
    h, w = int(lr.shape[1]), int(lr.shape[2])
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ValueError(f"the image is {h} x {w} pixels; the smallest image that can be upscaled is "
                         f"{MIN_SIDE} x {MIN_SIDE}")
    if not bool(torch.isfinite(lr).all()):
        raise ValueError("the image contains NaN or infinite values")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    solver_grid(solver, nfe, rho, denoiser.schedule.T)  # validates nfe and rho
    overlap = check_int(overlap, "overlap", minimum=0)
    if tile is not None:
        tile = check_int(tile, "tile", minimum=1)
        if tile % denoiser.lr_multiple:
            raise ValueError(f"tile must be a multiple of {denoiser.lr_multiple} LR pixels for this model, got {tile}")
        if overlap >= tile:
            raise ValueError(f"overlap must be smaller than tile, got overlap {overlap} >= tile {tile}")
    batch = check_int(batch, "batch", minimum=1)
    seed = _seed_from(seed, generator)

    layout = tile_layout(h, w, tile, overlap)
    sf, scale = denoiser.sf, _state_scale(denoiser)
    device = _model_device(denoiser)
    lr = lr.detach().to(device="cpu", dtype=torch.float32)
    out = torch.zeros(3, sf * h, sf * w, dtype=torch.float32)
    ramp = sf * overlap
    th, tw = layout.tile_h * sf, layout.tile_w * sf
    row_w = {r: ramp_weights(th, ramp, start=r > 0, end=r + layout.tile_h < h) for r in layout.rows}
    col_w = {c: ramp_weights(tw, ramp, start=c > 0, end=c + layout.tile_w < w) for c in layout.cols}
    row_sum = torch.zeros(sf * h, dtype=torch.float64)
    col_sum = torch.zeros(sf * w, dtype=torch.float64)
    for r, wr in row_w.items():
        row_sum[sf * r: sf * r + th] += wr
    for c, wc in col_w.items():
        col_sum[sf * c: sf * c + tw] += wc

    tiles = layout.tiles
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tiles), desc="tiles", unit="tile", leave=False)
    was_training = denoiser.training
    denoiser.eval()
    try:
        with torch.no_grad():
            for k in range(0, len(tiles), batch):
                chunk = tiles[k:k + batch]
                lr_tiles = torch.stack([lr[:, r:r + layout.tile_h, c:c + layout.tile_w] for r, c in chunk])
                cond = denoiser.condition(to_model_range(lr_tiles).to(device))
                origins = [(scale * r, scale * c) for r, c in chunk]
                x0 = sample_conditioned(cond, solver=solver, nfe=nfe, rho=rho, noise=_coordinate_source(seed, origins))
                images = to_image(cond.decode(x0)).to("cpu", torch.float32)
                for (r, c), img in zip(chunk, images):
                    weight = (row_w[r][:, None] * col_w[c][None, :]).to(torch.float32)
                    out[:, sf * r: sf * r + th, sf * c: sf * c + tw].add_(img * weight)
                del cond, x0, images
                if bar is not None:
                    bar.update(len(chunk))
                if on_tiles is not None:
                    on_tiles(min(k + batch, len(tiles)), len(tiles))
    finally:
        denoiser.train(was_training)
        if bar is not None:
            bar.close()
    out.div_(row_sum.to(torch.float32)[None, :, None]).div_(col_sum.to(torch.float32)[None, None, :])
    return out.clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# the Python API: numpy / torch / path in, the same kind out
# ---------------------------------------------------------------------------------------------
def _as_float01(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must be float in [0, 1], uint8 or uint16, got dtype {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"{name} must have values in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return np.clip(a, 0.0, 1.0)


def _upscale_channels(
    rgb: torch.Tensor, alpha: torch.Tensor | None, gray: bool, denoiser: ResShiftDenoiser, **kwargs: Any
) -> torch.Tensor:
    """(3, h, w) colour (+ (h, w) alpha) -> (C, sf h, sf w): C = 1 (+1) for gray, 3 (+1) for colour."""
    out = upscale_tensor(rgb, denoiser, **kwargs)
    if gray:
        out = out.mean(dim=0, keepdim=True)
    if alpha is None:
        return out
    up = upsample_lr(alpha[None, None].to(torch.float32), denoiser.sf)[0].clamp_(0.0, 1.0)
    return torch.cat([out, up])


def _split_channels(chw: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """CHW with C in 1..4 -> (RGB, alpha or None, gray?)."""
    C = chw.shape[0]
    if C not in (1, 2, 3, 4):
        raise ValueError(f"{name} must have 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels, got {C}")
    gray = C in (1, 2)
    colour = chw[:1].expand(3, -1, -1) if gray else chw[:3]
    alpha = chw[C - 1] if C in (2, 4) else None
    return colour.contiguous(), alpha, gray


def upscale(
    image: np.ndarray | torch.Tensor | str | os.PathLike,
    denoiser: ResShiftDenoiser | str | os.PathLike | None = None,
    *,
    solver: str = DEFAULT_SOLVER,
    nfe: int = DEFAULT_NFE,
    rho: float = DEFAULT_RHO,
    seed: int = 0,
    generator: torch.Generator | None = None,
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    batch: int = 1,
    progress: bool = False,
) -> np.ndarray | torch.Tensor:
    """Upscale one image x4 (the denoiser's ``sf``); the API that the CLI and notebook 07 share.

    ``image``: a numpy array ``(H, W)`` or ``(H, W, C)``, float in [0, 1] (or uint8 / uint16); a torch
    tensor ``(C, H, W)`` float in [0, 1]; or the path of an image file.  C = 1 gray, 2 gray + alpha,
    3 RGB, 4 RGBA.  Returns the same kind, float32 in [0, 1]: numpy (and files) ``(sf H, sf W[, C])``
    with the input's channels (a file's gray / alpha as stored in it), torch ``(C, sf H, sf W)``.
    Gray comes back gray; alpha is upscaled bicubically.

    ``denoiser``: a :class:`ResShiftDenoiser` (e.g. from :func:`ctlib.pipeline.load_model`), a checkpoint path,
    or None for :data:`DEFAULT_CHECKPOINT`.  The other arguments are those of :func:`upscale_tensor`.
    """
    if denoiser is None or isinstance(denoiser, (str, os.PathLike)):
        denoiser = load_model(denoiser)
    kwargs = dict(solver=solver, nfe=nfe, rho=rho, seed=seed, generator=generator, tile=tile, overlap=overlap,
                  batch=batch, progress=progress)
    if isinstance(image, (str, os.PathLike)):
        loaded = read_for_upscale(image)
        alpha = None if loaded.alpha is None else torch.from_numpy(loaded.alpha)
        out = _upscale_channels(torch.from_numpy(loaded.rgb).permute(2, 0, 1), alpha, loaded.gray, denoiser, **kwargs)
        hwc = out.permute(1, 2, 0).numpy()
        return hwc[:, :, 0] if out.shape[0] == 1 else hwc
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or not image.is_floating_point():
            raise ValueError(f"a tensor image must be float (C, H, W), got {image.dtype} {tuple(image.shape)}")
        chw = torch.from_numpy(_as_float01(image.detach().to("cpu", torch.float32).numpy(), "image"))
        rgb, alpha, gray = _split_channels(chw, "image")
        return _upscale_channels(rgb, alpha, gray, denoiser, **kwargs).to(image.device)
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise ValueError(f"a numpy image must have shape (H, W) or (H, W, C), got {image.shape}")
        a = _as_float01(image, "image")
        chw = torch.from_numpy(np.ascontiguousarray(a[:, :, None] if a.ndim == 2 else a)).permute(2, 0, 1)
        rgb, alpha, gray = _split_channels(chw, "image")
        hwc = _upscale_channels(rgb, alpha, gray, denoiser, **kwargs).permute(1, 2, 0).numpy()
        return hwc[:, :, 0] if image.ndim == 2 else hwc
    raise TypeError(f"image must be a numpy array, a torch tensor or a path, got {type(image).__name__}")


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_HIGH_DEPTH_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


@dataclass
class ImageForUpscale:
    """A file read for upscaling: ``rgb`` float32 HWC in [0, 1], ``alpha`` HW or None, ``gray`` (the
    file stores one colour channel), ``bits`` (16 for 16-bit / float files, else 8)."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    gray: bool
    bits: int


def _probe(path: Path) -> tuple[bool, int]:
    """(gray?, bits) of an image file, from its header."""
    with open(path, "rb") as f:
        head = f.read(29)
    png16 = len(head) == 29 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and head[24] == 16
    try:
        with Image.open(path) as im:
            mode = im.mode
            if is_deep_colour_tiff(im):
                return False, 16
            if mode == "P":
                palette = im.getpalette() or []
                triples = np.asarray(palette[: len(palette) // 3 * 3]).reshape(-1, 3)
                gray = bool(len(triples)) and bool((triples == triples[:, :1]).all())
                return gray, 8
    except Exception as e:  # noqa: BLE001 - read_image gives the real error message
        raise ImageReadError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    if png16:
        return mode in _GRAY_MODES, 16
    return mode in _GRAY_MODES, 16 if mode in _HIGH_DEPTH_MODES else 8


def read_for_upscale(path: str | os.PathLike) -> ImageForUpscale:
    """Read an image file (:func:`ctlib.data.read_image`) and note what it is (gray, alpha, bits)."""
    p = Path(path)
    rgb, alpha = read_image(p, return_alpha=True)  # raises FileNotFoundError / ImageReadError
    gray, bits = _probe(p)
    return ImageForUpscale(rgb=rgb, alpha=alpha, gray=gray, bits=bits)


#: The tEXt entry every output carries: files with it are never taken as inputs (``Software``).
OUTPUT_MARK = ("Software", "ctlib upscale")


def write_upscaled(path: str | os.PathLike, chw: torch.Tensor, *, bits: int = 8) -> Path:
    """Write a ``(C, H, W)`` float image in [0, 1] (C = 1, 2, 3, 4) as a PNG marked as an output of
    this command (:data:`OUTPUT_MARK`), atomically (:func:`ctlib.data.write_png`: a temporary file,
    then a rename); 8-bit is converted to uint8 in bands (no float copy of the image) and saved by
    Pillow, 16-bit goes through :func:`write_png`."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    out = Path(path)
    mark = {OUTPUT_MARK[0]: OUTPUT_MARK[1]}
    C = chw.shape[0]
    if bits == 16:
        hwc = chw.permute(1, 2, 0).numpy()
        if C == 2:  # 16-bit gray + alpha is not supported by write_png: keep the values, as RGBA
            hwc = np.concatenate([np.repeat(hwc[:, :, :1], 3, axis=2), hwc[:, :, 1:]], axis=2)
        return write_png(out, hwc, bits=16, text=mark)
    u8 = np.empty((chw.shape[1], chw.shape[2], C), dtype=np.uint8)
    for r in range(0, chw.shape[1], 256):  # in bands: no float copy of the whole image
        band = chw[:, r:r + 256].clamp(0.0, 1.0).mul_(255.0).round_()
        u8[r:r + 256] = band.to(torch.uint8).permute(1, 2, 0).numpy()
    if C == 2:  # Pillow has no 8-bit LA from arrays of shape (H, W, 2) in all versions: build it
        im = Image.merge("LA", [Image.fromarray(u8[:, :, 0], "L"), Image.fromarray(u8[:, :, 1], "L")])
    else:
        im = Image.fromarray(u8[:, :, 0] if C == 1 else u8, {1: "L", 3: "RGB", 4: "RGBA"}[C])
    info = PngImagePlugin.PngInfo()
    info.add_text(*OUTPUT_MARK)
    return atomic_write(out, lambda f: im.save(f, format="PNG", pnginfo=info))


def is_upscale_output(path: str | os.PathLike) -> bool:
    """True for a PNG written by :func:`write_upscaled` (it carries :data:`OUTPUT_MARK`)."""
    p = Path(path)
    if p.suffix.lower() != ".png":
        return False
    try:
        with Image.open(p) as im:
            return str(im.info.get(OUTPUT_MARK[0], "")).startswith(OUTPUT_MARK[1])
    except Exception:  # noqa: BLE001 - unreadable: not ours; reading it reports the real error
        return False


def output_path(source: str | os.PathLike, out_dir: str | os.PathLike, sf: int = 4) -> Path:
    """``out_dir / "<stem>_x<sf>.png"``."""
    return Path(out_dir) / f"{Path(source).stem}_x{sf}.png"


def _expand(specs: Sequence[str]) -> tuple[list[tuple[Path, bool]], list[tuple[str, str]]]:
    """Expand files, folders (their images, not recursive) and glob patterns, in the given order,
    without duplicates: ``([(file, named explicitly?)], [(spec, reason)])``."""
    files: list[tuple[Path, bool]] = []
    problems: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(p: Path, explicit: bool) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append((p, explicit))

    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = list_images(p)
            if not found:
                problems.append((spec, f"folder has no images ({', '.join(IMAGE_EXTENSIONS[:4])}, ...)"))
            for f in found:
                add(f, False)
        elif p.is_file():
            add(p, True)
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(spec))
            hits = [Path(m) for m in matches if Path(m).is_file() and Path(m).suffix.lower() in IMAGE_EXTENSIONS]
            if not hits:
                problems.append((spec, "pattern matches no image files"))
            for f in hits:
                add(f, False)
        else:
            problems.append((spec, "no such file or folder"))
    return files, problems


def collect_inputs(specs: Sequence[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand files, folders (their images, not recursive) and glob patterns, in the given order,
    without duplicates.  Returns ``(files, problems)`` with ``(spec, reason)`` for specs that match
    nothing."""
    files, problems = _expand(specs)
    return [f for f, _ in files], problems


class UpscaleInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`upscale_files`; ``report`` holds what was finished (complete files only)."""

    def __init__(self, report: UpscaleReport) -> None:
        self.report = report
        super().__init__(f"interrupted after writing {len(report.written)} image(s)")


@dataclass
class UpscaleReport:
    """What :func:`upscale_files` did: ``written`` ``(input, output, seconds, (width, height))`` of each
    output; ``failed`` ``(input, reason)``; ``skipped`` ``(input, reason)``: files found in folders
    or globs that are outputs of an earlier upscale (never taken as inputs); ``not_done``: inputs
    left when interrupted."""

    written: list[tuple[Path, Path, float, tuple[int, int]]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_done

    def summary(self) -> str:
        """A table of per-image timings (seconds, seconds per megapixel of output), and the skipped files."""
        lines = []
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s) that are outputs of an earlier upscale "
                         "(never taken as inputs):")
            lines += [f"  {src}" for src, _ in self.skipped]
        if not self.written:
            return "\n".join([*lines, "no image written"])
        width = max(len(str(o)) for _, o, _, _ in self.written)
        lines.append(f"{'output':<{width}}  {'size':>11}  {'seconds':>8}  {'s/MP':>7}")
        for _src, out, seconds, (w, h) in self.written:
            lines.append(f"{str(out):<{width}}  {f'{w}x{h}':>11}  {seconds:8.2f}  {seconds / (w * h / 1e6):7.1f}")
        total = sum(s for _, _, s, _ in self.written)
        lines.append(f"wrote {len(self.written)} image(s) in {total:.1f} s")
        return "\n".join(lines)

    def failures(self) -> str:
        """The failed inputs, one a line with the reason ('' when none failed)."""
        if not self.failed:
            return ""
        return "\n".join([f"FAILED {len(self.failed)} input(s):"] + [f"  {src}: {why}" for src, why in self.failed])


def upscale_files(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    denoiser: ResShiftDenoiser,
    *,
    overwrite: bool = False,
    progress: bool = True,
    **kwargs: Any,
) -> UpscaleReport:
    """Upscale files, folders and globs into ``out_dir`` as ``<stem>_x4.png``.

    The rules of every command that writes: an existing file is never replaced unless ``overwrite``;
    an input is never an output (an image whose output name is one of the inputs fails, whatever
    ``overwrite`` says); outputs of an earlier upscale (PNGs carrying :data:`OUTPUT_MARK`) found in
    folders or globs are skipped, and named explicitly they fail.  An unreadable or too-small image
    is reported and skipped, the others are written; ``out_dir`` is created only when the first
    image is written.  ``kwargs`` go to :func:`upscale_tensor` (solver, nfe, rho, seed, tile,
    overlap, batch).  Raises NotADirectoryError if ``out_dir`` exists and is not a folder, and
    :class:`UpscaleInterrupted` (a KeyboardInterrupt holding the report) on Ctrl-C: every file
    written by then is complete, no partial file is left."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"the output folder is an existing file: {out}")
    found, problems = _expand([str(s) for s in inputs])
    report = UpscaleReport(failed=list(problems))
    files: list[Path] = []
    for src, explicit in found:
        if is_upscale_output(src):
            if explicit:
                report.failed.append((str(src), "is an output of ctlib upscale; it is not upscaled again "
                                                "(copy it under another name without its 'Software' text to do so)"))
            else:
                report.skipped.append((str(src), "an output of an earlier upscale"))
        else:
            files.append(src)
    reading = {f.resolve(): f for f in files}
    planned: dict[Path, Path] = {}
    todo: list[tuple[Path, Path]] = []
    for src in files:
        dst = output_path(src, out, denoiser.sf)
        if dst.resolve() in reading:
            report.failed.append((str(src), f"its output {dst} is one of the inputs, which are never overwritten; "
                                            "choose another --out"))
        elif dst in planned:
            report.failed.append((str(src), f"its output name {dst.name} is also that of {planned[dst]}; rename one"))
        elif dst.exists() and not overwrite:
            report.failed.append((str(src), f"output exists: {dst} (pass --overwrite to replace it)"))
        else:
            planned[dst] = src
            todo.append((src, dst))
    from tqdm import tqdm

    bar = tqdm(todo, desc="upscale", unit="image", disable=not progress)
    try:
        for src, dst in bar:
            bar.set_postfix_str(src.name)
            start = time.perf_counter()
            try:
                loaded = read_for_upscale(src)
                alpha = None if loaded.alpha is None else torch.from_numpy(loaded.alpha)
                chw = _upscale_channels(torch.from_numpy(loaded.rgb).permute(2, 0, 1), alpha, loaded.gray, denoiser,
                                        progress=progress, **kwargs)
                write_upscaled(dst, chw, bits=loaded.bits)  # creates out_dir with the first image
            except (OSError, ValueError, RuntimeError, MemoryError) as err:
                report.failed.append((str(src), str(err).replace(f"{src}: ", "", 1)))
                continue
            report.written.append((src, dst, time.perf_counter() - start, (int(chw.shape[2]), int(chw.shape[1]))))
    except KeyboardInterrupt:
        finished = {str(src) for src, _, _, _ in report.written} | {src for src, _ in report.failed}
        report.not_done = [str(src) for src, _ in todo if str(src) not in finished]
        raise UpscaleInterrupted(report) from None
    finally:
        bar.close()
    return report
