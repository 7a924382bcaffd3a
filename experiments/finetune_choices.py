"""Why the shipped continuous fine-tune uses 256 x 256 crops, kappa = 2 and the fitted schedule: two measurements.

    python experiments/finetune_choices.py tiles CHECKPOINT KEY [--images 8]
    python experiments/finetune_choices.py sweep [--runs-dir runs/finetune_sweep] [--images 8] [--only NAME ...]

``tiles``: the crop-size diagnostic.  The first ``--images`` bundled test photos are cut into
tiles of 64, 128 and 256 pixels (the network is convolutional, so it runs on any multiple of 64)
and each tile is upscaled from its own bicubic x4 LR: bicubic, the one-step prediction
x0_hat(x_T, t = 1) and Euler at nfe = 15 (rho = 1), the prior noise of all tiles drawn from one
generator seeded 0 (``ctlib.pipeline.batch_noise``).  A model trained on 64 x 64 crops predicts x0_hat equally well at every size, but its
Euler samples get worse as the tile grows past the training size: the sampler's states at sizes
it never saw are off its training distribution.  Stored under ``KEY``.

``sweep``: 300-iteration continuous fine-tunes of the shipped discrete baseline, two one-thread
``torchrun`` processes each (about 3 min for 64 x 64 crops of batch 16, 6 min for 256 x 256 crops
of batch 2, lr 3e-4, warm-up 20, cosine decay, seed 2), varying the crop size at kappa = 2 (the
pixel budget per iteration of 64 x 64 x 16 = 256 x 256 x 1; 256 uses batch 2), kappa at
256 x 256 crops, the scale augmentation (``--min-scale 0.5``, ``ctlib.data.PairSource``) and the
schedule the model is fine-tuned on (``--schedule``: the official one, the scipy fit of eta(t), the
report's preset; ``ctlib.train.make_schedule``).  ``--only NAME ...`` reruns some rows and keeps the
others.  A run folder already holding ``model.pt`` is scored, not retrained.  Scores on the first
``--images`` test photos at their full 256 x 256 size (the table's per-image prior noise,
``ctlib.pipeline.image_noise``): bicubic,
x0_hat(x_T, 1), Euler and exp1 at nfe = 15, rho = 1 (exp1 solves each step exactly with x0_hat held
fixed: Euler's shortfall against it is step error, not the model).  Stored under ``finetune_sweep``.

PSNR-Y is the official convention (BT.601 Y, 8-bit quantised, no border; ``ctlib.metrics.psnr``),
mean over images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _choices import STORE, sr_rows, store_entry

from ctlib import pipeline
from ctlib.data import load_bundled_test_set
from ctlib.data.datasets import bicubic_lr
from ctlib.files import REPO_ROOT
from ctlib.metrics import psnr
from ctlib.profiles import SHIPPED_CHECKPOINTS
from ctlib.train import make_schedule

BASELINE = REPO_ROOT / SHIPPED_CHECKPOINTS["baseline"]
#: name -> (crop size, batch size, kappa, min_scale of the scale augmentation, schedule) of the 300-iteration
#: fine-tunes (schedule: ``ctlib.train.make_schedule``; the rows before the ``*_fit`` / ``*_report`` ones were
#: fine-tuned on the official schedule)
SWEEP = {
    "crop64_k2": (64, 16, 2.0, 1.0, "resshift"),
    "crop128_k2": (128, 4, 2.0, 1.0, "resshift"),
    "crop256_k2": (256, 2, 2.0, 1.0, "resshift"),
    "crop256_k1": (256, 2, 1.0, 1.0, "resshift"),
    "crop256_k0.5": (256, 2, 0.5, 1.0, "resshift"),
    "crop256_k0.25": (256, 2, 0.25, 1.0, "resshift"),
    "crop256_k0.125": (256, 2, 0.125, 1.0, "resshift"),
    "crop256_k2_scale0.5": (256, 2, 2.0, 0.5, "resshift"),
    "crop256_k2_fit": (256, 2, 2.0, 1.0, "fit"),
    "crop256_k0.25_fit": (256, 2, 0.25, 1.0, "fit"),
    "crop256_k2_report": (256, 2, 2.0, 1.0, "report"),
}
ITERATIONS = 300


def score(model, hr: torch.Tensor, lr: torch.Tensor, seed: int | None = None,
          with_exp1: bool = False) -> dict[str, np.ndarray]:
    """Per-image PSNR-Y of bicubic, x0_hat(x_T, 1) and Euler nfe 15 rho 1 (and, ``with_exp1``, of the
    exact-step exp1 solver on the same grid: what Euler would give without its step error) on the pairs
    (hr, lr) with ``model``; x_T from one generator seeded ``seed`` for the batch when given
    (``pipeline.batch_noise``), else the table's per-image noise (``pipeline.image_noise``)."""
    names = ["bicubic", "x0_hat_t1", "euler_nfe15_rho1"] + (["exp1_nfe15_rho1"] if with_exp1 else [])
    if seed is None:
        noise = partial(pipeline.image_noise, range(len(lr)))
    else:
        def noise() -> pipeline.NoiseSource:
            return pipeline.batch_noise(torch.Generator().manual_seed(seed))
    return {key: np.asarray(psnr(sr, hr, y_channel=True, quantize=True))
            for key, sr in sr_rows(model, lr, noise, names).items()}


def tiles(checkpoint: Path, images: int) -> dict:
    hr_full = load_bundled_test_set(limit=images).hr
    model = pipeline.load_model(checkpoint)
    rows = {}
    for size in (64, 128, 256):
        k = 256 // size
        tiles_hr = hr_full.unfold(2, size, size).unfold(3, size, size).permute(0, 2, 3, 1, 4, 5)
        tiles_hr = tiles_hr.reshape(-1, 3, size, size).contiguous()
        lr = bicubic_lr(tiles_hr.double()).float()
        per_tile = score(model, tiles_hr, lr, seed=0)
        # an image's PSNR from the mean of its tiles' MSE (10^(-PSNR/10) is the MSE on [0, 1])
        row = {}
        for key, p in per_tile.items():
            mse = (10.0 ** (-p / 10)).reshape(images, k * k).mean(1)
            row[key] = round(float(np.mean(10 * np.log10(1 / mse))), 3)
        rows[str(size)] = row
        print(f"tiles of {size}: {row}", flush=True)
    return {"checkpoint": str(checkpoint), "images": images, "psnr_y_by_tile_size": rows,
            "command": f"python experiments/finetune_choices.py tiles {checkpoint} KEY --images {images}"}


def sweep(runs_dir: Path, images: int, only: list[str] | None, kept: dict | None = None) -> dict:
    """The sweep's entry; with ``only``, the other rows come from ``kept`` (the stored entry) when it
    was scored on as many images."""
    test = load_bundled_test_set(limit=images)
    rows = dict(kept["results"]) if only and kept and kept.get("images") == images else {}
    for name in only or list(SWEEP):
        crop, batch, kappa, min_scale, schedule = SWEEP[name]
        out = runs_dir / name
        command = ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "ctlib", "train", "--profile", "cpu",
                   "--mode", "continuous", "--init", str(BASELINE), "--out", str(out), "--crop-size", str(crop),
                   "--batch-size", str(batch), "--micro-batch", str(batch), "--kappa", str(kappa),
                   "--iterations", str(ITERATIONS), "--lr", "3e-4", "--warmup", "20", "--lr-decay", "cosine",
                   "--seed", "2", "--val-every", "0", "--ckpt-every", "100", "--no-progress",
                   "--min-scale", str(min_scale), "--schedule", schedule]
        if not (out / "model.pt").exists():
            subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        train = json.loads((out / "train_config.json").read_text())["train"]
        # runs made before --schedule existed stored no schedule: they used the official one
        stored = train["extra"].get("schedule") or make_schedule("resshift", kappa).to_dict()
        got_recipe = (train["extra"]["crop_size"], train["batch_size"], train["extra"]["kappa"],
                      train["extra"].get("min_scale", 1.0), stored, train["iterations"])
        want = (crop, batch, kappa, min_scale, make_schedule(schedule, kappa).to_dict(), ITERATIONS)
        if got_recipe != want:
            raise SystemExit(f"{out} holds another run (crop, batch, kappa, min_scale, schedule, iterations = "
                             f"{got_recipe}, expected {want}): move it away or pick another --runs-dir")
        got = score(pipeline.load_model(out / "model.pt"), test.hr, test.lr, with_exp1=True)
        rows[name] = {"crop_size": crop, "batch_size": batch, "kappa": kappa, "min_scale": min_scale,
                      "schedule": schedule, "iterations": ITERATIONS,
                      **{k: round(float(v.mean()), 3) for k, v in got.items()}}
        print(f"{name}: {rows[name]}", flush=True)
    return {"init": str(BASELINE.relative_to(REPO_ROOT)), "images": images, "results": rows,
            "recipe": "continuous fine-tune, 300 iterations, lr 3e-4, warm-up 20, cosine decay, EMA 0.995, seed 2, "
                      "2 one-thread torchrun processes",
            "command": f"python experiments/finetune_choices.py sweep --runs-dir RUNS --images {images}"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    tp = sub.add_parser("tiles")
    tp.add_argument("checkpoint", type=Path)
    tp.add_argument("key")
    sp = sub.add_parser("sweep")
    sp.add_argument("--runs-dir", type=Path, default=REPO_ROOT / "runs" / "finetune_sweep")
    sp.add_argument("--only", nargs="+", choices=list(SWEEP))
    for p in (tp, sp):
        p.add_argument("--images", type=int, default=8)
        p.add_argument("--out", type=Path, default=STORE)
    args = ap.parse_args(argv)
    if not 1 <= args.images <= 26:
        ap.error(f"--images must be between 1 and 26 (the bundled test photos), got {args.images}")
    if args.what == "tiles":
        if not args.checkpoint.is_file():
            ap.error(f"checkpoint not found: {args.checkpoint}")
        store_entry(args.out, args.key, tiles(args.checkpoint, args.images))
    else:
        kept = json.loads(args.out.read_text()).get("finetune_sweep") if args.out.exists() else None
        store_entry(args.out, "finetune_sweep", sweep(args.runs_dir, args.images, args.only, kept))
    return 0


if __name__ == "__main__":
    sys.exit(main())
