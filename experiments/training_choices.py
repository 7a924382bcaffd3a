"""Measure the choices behind the shipped pixel models: the training degradation, kappa and the scale augmentation.

    python experiments/training_choices.py [--iterations 400] [--only NAME ...] [--redo]

For each setting (bicubic vs Real-ESRGAN training LR at kappa = 0.5; kappa = 0.25, 0.5, 1 and 2
with bicubic LR; the scale augmentation ``min_scale`` = 0.5 and 0.25 at kappa = 2, see
``ctlib.data.PairSource``) a discrete model is trained from scratch with the ``cpu`` profile's recipe,
shortened to ``--iterations`` with a cosine decay (lr 5e-4, warm-up 50, seed 1; one thread each,
so two settings can run side by side with ``--only``), then scored on the bundled test set (26
photos, 256 x 256, bicubic x4 LR, PSNR-Y with the official conventions): bicubic upsampling, the
one-step prediction x0_hat(x_T, t = 1) and Euler at nfe = 15 (rho = 1), with the table's per-image
prior noise (``ctlib.pipeline.image_noise``).  Each run takes about 6 minutes of training and
4 of scoring on one core.  Results are merged into the JSON (a setting already there is kept
unless ``--redo``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _choices import STORE, sr_rows

from ctlib import pipeline
from ctlib.data import load_bundled_test_set
from ctlib.files import write_json
from ctlib.metrics import psnr
from ctlib.train import read_log, run_training

SETTINGS = {  # name: (training degradation, kappa, min_scale of the scale augmentation)
    "bicubic_k0.5": ("bicubic", 0.5, 1.0),
    "realesrgan_k0.5": ("realesrgan", 0.5, 1.0),
    "bicubic_k0.25": ("bicubic", 0.25, 1.0),
    "bicubic_k1": ("bicubic", 1.0, 1.0),
    "bicubic_k2": ("bicubic", 2.0, 1.0),
    "bicubic_k2_scale0.5": ("bicubic", 2.0, 0.5),
    "bicubic_k2_scale0.25": ("bicubic", 2.0, 0.25),
}


def score(model_path: Path, batch: int = 13) -> dict[str, float]:
    """Mean PSNR-Y over the bundled test set of bicubic, x0_hat(t = 1) and Euler nfe 15 rho 1."""
    model = pipeline.load_model(model_path)
    test = load_bundled_test_set()
    rows: dict[str, list[np.ndarray]] = {"bicubic": [], "x0_hat_t1": [], "euler_nfe15_rho1": []}
    for b0 in range(0, len(test.hr), batch):
        lr, hr = test.lr[b0:b0 + batch], test.hr[b0:b0 + batch]
        noise = partial(pipeline.image_noise, range(b0, b0 + len(lr)))  # the table's x_T of each image
        for key, sr in sr_rows(model, lr, noise, rows).items():
            rows[key].append(np.asarray(psnr(sr, hr, y_channel=True, quantize=True)))
    return {key: round(float(np.concatenate(v).mean()), 3) for key, v in rows.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", choices=sorted(SETTINGS), help="run only these settings")
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--redo", action="store_true", help="recompute settings already in the JSON")
    ap.add_argument("--out", type=Path, default=STORE)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    doc = json.loads(args.out.read_text()) if args.out.exists() else {}
    doc.setdefault("protocol", {
        "training": f"discrete, from scratch, cpu profile recipe shortened to {args.iterations} iterations "
                    "(batch 16, 64x64 crops, lr 5e-4, warm-up 50, cosine decay, EMA 0.995, seed 1)",
        "test": "26 bundled photos, 256x256, MATLAB bicubic x4 LR; PSNR-Y (official conventions), mean over images",
        "command": "python experiments/training_choices.py",
    })
    results = doc.setdefault("results", {})
    for name in args.only or list(SETTINGS):
        if name in results and not args.redo:
            print(f"{name}: kept {results[name]}")
            continue
        degradation, kappa, min_scale = SETTINGS[name]
        with tempfile.TemporaryDirectory() as tmp:
            run_training("cpu", "discrete", Path(tmp) / "run", iterations=args.iterations, lr=5e-4, warmup=50,
                         lr_decay="cosine", val_every=0, kappa=kappa, degradation=degradation, min_scale=min_scale,
                         seed=1, progress=False)
            row = score(Path(tmp) / "run" / "model.pt")
            train_seconds = float(read_log(Path(tmp) / "run" / "log.csv")["seconds"][-1])
        row.update(degradation=degradation, kappa=kappa, min_scale=min_scale, iterations=args.iterations,
                   train_seconds=round(train_seconds))
        print(f"{name}: {row}", flush=True)
        doc = json.loads(args.out.read_text()) if args.out.exists() else doc  # merge with parallel runs
        doc.setdefault("results", {})[name] = row
        write_json(args.out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
