# %% [markdown]
# # 07 · Upscale your own images
#
# **What this notebook shows.** How to use the kit's model on your own pictures, of any size:
# 1. the Python API `ctlib.upscale(image, ...)` on a few bundled test photos (made into LR inputs by
#    MATLAB-style bicubic x1/4), with zoomed crops of the LR input, bicubic upsampling, our result and
#    the original;
# 2. a larger image processed in overlapping tiles, blended with a raised-cosine window: where the
#    tiles lie, and a check that no seam shows;
# 3. what the number of network evaluations (nfe) and the solver change;
# 4. files in, files out: the `python -m ctlib upscale` command (grayscale stays grayscale, alpha is
#    kept, 16-bit stays 16-bit; existing files are never overwritten);
# 5. how to use the official ResShift weights instead (runs only if you have downloaded them).
#
# **Run time** (2 CPU cores, one torch thread; the last cell prints the measurement): profile `cpu` (the stored
# outputs) about 20 s on idle cores and up to 2 min on a busy machine, nearly all of it network evaluations of the
# kit's small pixel model; profile `smoke` about 15 s (one small photo, fewer evaluations). `gpu` and `paper` run the `cpu` settings on CUDA when it is
# available; `paper` uses the official weights (`official_unet`, `official_vq` below).
#
# To upscale your own pictures, list their files in `your_images` in the next cell (any size: large
# images are tiled, and the time grows with the number of pixels: the timings printed in sections 1 and 2 give
# the rate on your machine) -- or use the command
# line, section 4.

# %%
import os
import shutil
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib_inline.backend_inline import set_matplotlib_formats
from PIL import Image

from ctlib.data import bicubic_lr, read_image, to_numpy, to_tensor, write_png
from ctlib.metrics import psnr
from ctlib.nn.denoiser import upsample_lr
from ctlib.pipeline import load_model
from ctlib.profiles import UPSCALE_DEMO
from ctlib.samplers import min_nfe
from ctlib.upscale import seam_ratio, tile_layout, upscale, upscale_files

# %% tags=["parameters"]
profile = "cpu"  # "cpu" (the stored run), "smoke" (seconds), "gpu" / "paper" (CUDA if available)
checkpoint = "../data/checkpoints/continuous_finetune.pt"  # the shipped, continuously fine-tuned model
your_images = []  # your own (low-resolution) files: upscaled as they are at the end of section 1
images = [  # bundled HR photos, made into LR inputs below
    "../data/photos/test/00_astronaut.png",
    "../data/photos/test/05_motorcycle.png",
    "../data/photos/test/07_flower.png",
]
large_image = "../data/photos/train/brushes_0.jpg"  # a 512 x 512 training photo: the tiling demo
results_dir = "../results/notebooks"  # section 4 writes its example files under here
official_unet = "../data/checkpoints/resshift_realsrx4_s15_v1.pth"  # download these to use them
official_vq = "../data/checkpoints/autoencoder_vq_f4.pth"
seed = 0

# %%
if profile not in UPSCALE_DEMO:
    raise ValueError(f"profile must be one of {sorted(UPSCALE_DEMO)}, got {profile!r}")
cfg = UPSCALE_DEMO[profile]  # photo and crop sides, tiling, the nfe values of the study
device = "cuda" if profile in ("gpu", "paper") and torch.cuda.is_available() else "cpu"
if device == "cpu":
    torch.set_num_threads(1)  # on a shared 2-core machine one thread is faster than two fighting for it
set_matplotlib_formats("jpeg")  # figures of photos: JPEG keeps the stored notebook small
t_start = time.perf_counter()

if profile == "paper":
    model = load_model(official_unet, autoencoder=official_vq, device=device)
else:
    model = load_model(checkpoint, device=device)
n_params = sum(p.numel() for p in model.network.parameters())
print(f"profile {profile} on {device}: {model.space}-space model, x{model.sf}, {n_params / 1e6:.2f} M parameters, "
      f"LR padded to multiples of {model.lr_multiple}")
print(f"schedule: T = {model.schedule.T}, kappa = {model.schedule.kappa}, eta(1) = {float(model.schedule.eta(1.0)):.4f}")


# %%
def center_crop(img: np.ndarray, side: int) -> np.ndarray:
    """The central side x side crop of an HWC image."""
    h, w = img.shape[:2]
    top, left = (h - side) // 2, (w - side) // 2
    return img[top: top + side, left: left + side]


def make_lr(hr: np.ndarray) -> np.ndarray:
    """The report's LR: MATLAB bicubic x1/4, clamped, 8-bit levels (HWC in [0, 1])."""
    return to_numpy(bicubic_lr(to_tensor(hr)[None].double()).float())


def bicubic_x4(lr: np.ndarray) -> np.ndarray:
    """Plain bicubic x4 (the upsampling the model is conditioned on)."""
    return to_numpy(upsample_lr(to_tensor(lr)[None], 4).clamp(0, 1))


hrs = [center_crop(read_image(p), cfg["side"]) for p in images[: cfg["photos"]]]
lrs = [make_lr(hr) for hr in hrs]
print("LR inputs:", ", ".join(f"{Path(p).name} {lr.shape[1]}x{lr.shape[0]}" for p, lr in zip(images, lrs)))

# %% [markdown]
# ## 1. The API on a few photos
#
# `ctlib.upscale(image, model, solver="euler", nfe=8, rho=-8, seed=0, tile=64, overlap=16)` (defined in
# `ctlib/upscale.py`, which also holds the helpers imported above; the default sampler is the cheapest
# setting that matches the best nfe-15 row of notebook 06's table) takes a numpy image
# (HWC, float in [0, 1] or uint8/uint16; gray, gray + alpha, RGB or RGBA), a torch tensor (CHW) or a
# file path, and returns the same kind of image, 4x larger. These LR inputs are 64 x 64, smaller than
# one tile, so each is sampled in one piece. The result is a *sample*: the seed decides the details.
#
# What to expect from the kit's small model (its size is printed above; trained briefly on two CPU cores on the
# bundled training photos): it sharpens edges (the collar, the tank's outline) but adds grain and invents
# texture that is not in the original, so pixel by pixel it lands below blurry bicubic upsampling on these
# photos (the PSNR-Y table below; notebook 05 explains why a sample loses PSNR to a smooth guess). For
# good results use the official weights (section 5); everything here works the same with them.

# %% tags=["nbval-ignore-output"]
t0 = time.perf_counter()
ours = [upscale(lr, model, seed=seed) for lr in lrs]
print(f"{len(lrs)} photos upscaled in {time.perf_counter() - t0:.1f} s")

# %%
bicubic = [bicubic_x4(lr) for lr in lrs]
for p, lr, hr, b, o in zip(images, lrs, hrs, bicubic, ours):
    p_bic, p_ours = psnr(b, hr, y_channel=True, border=4), psnr(o, hr, y_channel=True, border=4)
    print(f"{Path(p).name:<20} PSNR-Y bicubic {p_bic:5.1f} dB   ours {p_ours:5.1f} dB   ({p_ours - p_bic:+.1f} dB)")
    assert o.shape == (4 * lr.shape[0], 4 * lr.shape[1], 3) and 0 <= o.min() and o.max() <= 1, \
        "upscale returns an RGB image 4x larger, in [0, 1]"

zoom = cfg["side"] // 4  # side of the zoomed crop, output pixels
fig, axes = plt.subplots(len(hrs), 5, figsize=(15, 3.1 * len(hrs)), squeeze=False)
for row, (lr, hr, b, o) in enumerate(zip(lrs, hrs, bicubic, ours)):
    z0 = cfg["side"] // 2 - zoom // 2
    panels = [("input (LR)", lr, False), ("bicubic x4", b, True), ("ours x4", o, True), ("original", hr, True),
              ("ours, full", o, False)]
    for ax, (title, img, zoomed) in zip(axes[row], panels):
        shown = img[z0: z0 + zoom, z0: z0 + zoom] if zoomed else img
        ax.imshow(np.clip(shown, 0, 1), interpolation="nearest")
        ax.set_title(title + (" (zoom)" if zoomed else ""), fontsize=9)
        ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# Your own pictures (`your_images` in the parameters cell), upscaled as they are:

# %% tags=["nbval-ignore-output"]
for path in your_images:
    t0 = time.perf_counter()
    result = upscale(path, model, seed=seed)
    print(f"{Path(path).name}: {result.shape[1]}x{result.shape[0]} in {time.perf_counter() - t0:.1f} s")
    plt.figure(figsize=(8, 8 * result.shape[0] / result.shape[1]))
    shown = result[:, :, 0] if result.ndim == 3 and result.shape[2] == 2 else result  # gray + alpha: gray
    plt.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
    plt.axis("off")
    plt.show()
if not your_images:
    print("your_images is empty: nothing to do")

# %% [markdown]
# ## 2. A larger image: overlapping tiles
#
# Memory is bounded by the tile size, not by the image: the LR image is cut into `tile x tile` tiles
# (LR pixels) that overlap by `overlap` pixels; each tile is sampled on its own and the 4x tiles are
# added with a weight that rises as $\sin^2$ over the overlap (two facing ramps sum to 1), then
# divided by the summed weight. The starting noise $x_T$ is a function of the pixel's position in the
# whole image (fixed seeded blocks), so neighbouring tiles start from the same noise where they
# overlap. Here the tiles are 48 LR pixels (the default, 64, is the size the model was trained on) so
# that this 80 x 80 LR image has several. The photo is a crop of a *training* photo: this section is
# about tiling, not about quality on unseen images.

# %%
hr_large = center_crop(read_image(large_image), cfg["large"])
lr_large = make_lr(hr_large)
layout = tile_layout(lr_large.shape[0], lr_large.shape[1], cfg["tile"], cfg["overlap"])
print(f"LR {lr_large.shape[1]}x{lr_large.shape[0]} -> {len(layout)} tiles of {layout.tile_h}x{layout.tile_w} "
      f"at rows {list(layout.rows)} and columns {list(layout.cols)}")

# %% tags=["nbval-ignore-output"]
t0 = time.perf_counter()
tiled = upscale(lr_large, model, seed=seed, tile=cfg["tile"], overlap=cfg["overlap"])
t_tiled = time.perf_counter() - t0
t0 = time.perf_counter()
whole = upscale(lr_large, model, seed=seed, tile=None)
print(f"tiled: {t_tiled:.1f} s; whole image at once: {time.perf_counter() - t0:.1f} s")

# %% [markdown]
# The seam check (`seam_ratio`): the mean squared difference between neighbouring output rows
# (columns) across the lines where a tile starts or ends, divided by its mean over all rows (columns).
# Near 1 means the borders look like any other place; hard tile borders give much more (the test
# suite shows ratios of 10 and more with a tile-dependent denoiser and no overlap). Tiled and whole-image results are
# not identical: the network sees different context (and GroupNorm statistics) in a tile. The cell asserts that
# both ratios stay below 1.5.

# %%
rows_ratio, cols_ratio = seam_ratio(tiled, layout)
print(f"seam ratio: across rows {rows_ratio:.2f}, across columns {cols_ratio:.2f}")
assert max(rows_ratio, cols_ratio) < 1.5, f"a seam shows: ratios {rows_ratio:.2f}, {cols_ratio:.2f}"
print(f"tiled vs whole image: mean |difference| {np.abs(tiled - whole).mean():.4f}, "
      f"PSNR between them {psnr(tiled, whole):.1f} dB")
print(f"PSNR-Y vs original: bicubic {psnr(bicubic_x4(lr_large), hr_large, y_channel=True, border=4):.1f} dB, "
      f"tiled {psnr(tiled, hr_large, y_channel=True, border=4):.1f} dB, "
      f"whole {psnr(whole, hr_large, y_channel=True, border=4):.1f} dB")

fig, axes = plt.subplots(1, 3, figsize=(15, 5.2))
axes[0].imshow(tiled)
colours = plt.cm.tab10.colors
for k, (r, c) in enumerate(layout.tiles):
    inset = 1.5 * (k % 2)  # shifted a little so that coinciding edges stay visible
    axes[0].add_patch(plt.Rectangle((4 * c + inset - 0.5, 4 * r + inset - 0.5), 4 * layout.tile_w - 2 * inset,
                                    4 * layout.tile_h - 2 * inset, fill=False, lw=1.5, ec=colours[k % 10]))
axes[0].set_title(f"tiled, {len(layout)} tiles outlined")
# zoom on the band where the first two tiles of a row are blended: output columns [4 c1, 4 (tile))
band = (4 * layout.cols[1], 4 * layout.tile_w) if len(layout.cols) > 1 else (0, tiled.shape[1])
z = 4 * cfg["tile"] // 2
left = max(0, (band[0] + band[1]) // 2 - z // 2)
top = max(0, tiled.shape[0] // 2 - z // 2)
for ax, img, title in ((axes[1], tiled, "tiled (zoom; dashed: blending band)"), (axes[2], whole, "whole image (same place)")):
    ax.imshow(img[top: top + z, left: left + z], interpolation="nearest")
    ax.set_title(title)
for x in band:
    if 0 <= x - left <= z:
        axes[1].axvline(x - left - 0.5, color="w", ls="--", lw=1)
for ax in axes:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Solvers and the number of evaluations
#
# The same LR crop, sampled with the report's Euler steps, the first-order exponential integrator
# `exp1` (the deterministic counterpart of the ResShift sampler), the second-order `exp2m`, and the
# official stochastic `resshift` sampler (which needs nfe = T = 15). Cost is proportional to nfe.
#
# How to read it: `exp1` with one evaluation lands exactly on the network's first guess
# $\hat x_0(x_T)$, its estimate of the *mean* of the plausible images -- smooth, and the best PSNR of all
# the runs (asserted below). One Euler step across the whole trajectory leaves much of the starting noise
# in place. With more evaluations every sampler commits to detail: sharper, and further from the
# original pixel by pixel (lower PSNR) -- the usual perception-distortion trade-off. The deterministic
# solvers give nearly the same image at nfe = 15; the ODE is then solved well enough that the
# remaining differences come from the network.

# %%
hr_study = center_crop(read_image(images[0]), cfg["study"])
lr_study = make_lr(hr_study)
solvers = ("euler", "exp1", "exp2m")
runs = {(s, n): None for s in solvers for n in cfg["nfes"] if n >= min_nfe(s)}
if 15 in cfg["nfes"]:
    runs[("resshift", 15)] = None

# %% tags=["nbval-ignore-output"]
t0 = time.perf_counter()
for solver, nfe in runs:
    runs[(solver, nfe)] = upscale(lr_study, model, solver=solver, nfe=nfe, rho=1.0, seed=seed)
print(f"{len(runs)} runs in {time.perf_counter() - t0:.1f} s")

# %%
print(f"{'solver':<9} {'nfe':>4} {'PSNR-Y':>8}")
psnr_bicubic = psnr(bicubic_x4(lr_study), hr_study, y_channel=True, border=4)
print(f"{'bicubic':<9} {'-':>4} {psnr_bicubic:8.1f}")
psnr_runs = {key: psnr(img, hr_study, y_channel=True, border=4) for key, img in runs.items()}
for (solver, nfe), value in psnr_runs.items():
    print(f"{solver:<9} {nfe:>4} {value:8.1f}")
assert max(psnr_runs, key=psnr_runs.get) == ("exp1", 1), "exp1 at nfe 1 (the one-step x0_hat) should have the best PSNR"

fig, axes = plt.subplots(len(solvers), len(cfg["nfes"]) + 1, figsize=(2.6 * (len(cfg["nfes"]) + 1), 2.7 * len(solvers)),
                         squeeze=False)
for i, solver in enumerate(solvers):
    for j, nfe in enumerate(cfg["nfes"]):
        if (solver, nfe) in runs:
            axes[i, j].imshow(runs[(solver, nfe)], interpolation="nearest")
            axes[i, j].set_title(f"{solver}, nfe {nfe}", fontsize=9)
extra = [("original", hr_study), ("bicubic x4", bicubic_x4(lr_study))]
if ("resshift", 15) in runs:
    extra.append(("resshift, nfe 15", runs[("resshift", 15)]))
for i, (title, img) in enumerate(extra):
    axes[i, -1].imshow(img, interpolation="nearest")
    axes[i, -1].set_title(title, fontsize=9)
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Files in, files out: the command line
#
# ```
# python -m ctlib upscale photo.jpg holiday/ "scans/*.png" --out upscaled/
# python -m ctlib upscale big.png --out upscaled/ --tile 96 --overlap 16 --nfe 15 --solver euler --seed 0
# python -m ctlib upscale photo.jpg --out upscaled/ --checkpoint my_model.pt --device cuda --batch 4
# ```
#
# Inputs are files, folders (their images) and glob patterns; outputs are PNGs named
# `<name>_x4.png` in `--out`. An existing output is never replaced unless `--overwrite` is given.
# A progress bar runs over the images (and the tiles of each); at the end a table gives each image's
# time, and every input that could not be upscaled (unreadable, too small, output exists) is listed.
# The exit status is 0 when every image was written, 1 otherwise. The same runs from Python with
# `upscale_files(...)`, shown here on a grayscale and an RGBA image, and on a file that is not an image at all
# (`broken.png`), put there on purpose: the report below lists it under "FAILED", which is the **expected**
# outcome, and the other two files are still written.

# %%
work = Path(os.path.relpath(Path(results_dir) / "07_upscale_files"))  # relative: no machine paths in the output
shutil.rmtree(work, ignore_errors=True)  # a fresh folder on every run (outputs are never overwritten)
work.mkdir(parents=True)
small = lrs[0][:32, :32]  # a 32 x 32 LR corner
write_png(work / "gray.png", small.mean(axis=2))
write_png(work / "with_alpha.png", np.dstack([small, np.linspace(0, 1, small.shape[1])[None, :].repeat(small.shape[0], 0)]))
(work / "broken.png").write_bytes(b"not really a PNG")
print("input folder:", sorted(p.name for p in work.iterdir()))

# %% tags=["nbval-ignore-output"]
report = upscale_files([work], work / "out", model, progress=False, seed=seed)
print(report.summary())
print(report.failures())
print("(expected: broken.png is not an image, so it is reported and skipped)")

# %%
modes = {}
for p in sorted((work / "out").iterdir()):
    with Image.open(p) as im:
        print(f"{p.name:<22} {im.mode:<5} {im.width}x{im.height}")
        modes[p.name] = im.mode
print("failed, as expected:", [Path(src).name for src, _ in report.failed])
assert modes == {"gray_x4.png": "L", "with_alpha_x4.png": "RGBA"}, f"gray stays gray, alpha is kept: {modes}"
assert [Path(src).name for src, _ in report.failed] == ["broken.png"], "only the broken file should fail"

# %% [markdown]
# ## 5. The official ResShift weights
#
# The official realsr x4 v1 model (118,593,583 parameters, sampling in the VQ-f4 latent space) gives far
# better results than the kit's small CPU model. Download `resshift_realsrx4_s15_v1.pth` and
# `autoencoder_vq_f4.pth` from the ResShift GitHub releases, then
#
# ```
# python -m ctlib upscale photos/ --out upscaled/ --official-unet resshift_realsrx4_s15_v1.pth \
#        --official-vq autoencoder_vq_f4.pth --device cuda
# ```
#
# or, in Python, `load_model(official_unet, autoencoder=official_vq)`. Its LR is padded to multiples
# of 64, so tiles must be multiples of 64 LR pixels. On a CPU it costs about a second per evaluation per
# 64 x 64 tile (plus the autoencoder), i.e. tens of seconds per 256 x 256 output at nfe = 15; on a GPU a small
# fraction of that. The cell below runs only when both files are where the parameters say.

# %% tags=["nbval-ignore-output"]
if Path(official_unet).is_file() and Path(official_vq).is_file():
    official = load_model(official_unet, autoencoder=official_vq, device=device)
    t0 = time.perf_counter()
    official_out = upscale(lrs[0], official, seed=seed)
    print(f"official model: {time.perf_counter() - t0:.1f} s, PSNR-Y "
          f"{psnr(official_out, hrs[0], y_channel=True, border=4):.1f} dB")
    plt.figure(figsize=(4, 4))
    plt.imshow(official_out)
    plt.axis("off")
    plt.show()
else:
    print(f"official weights not found ({official_unet}, {official_vq}): skipped")

# %% tags=["nbval-ignore-output"]
print(f"notebook ran in {time.perf_counter() - t_start:.1f} s")
