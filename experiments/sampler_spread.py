"""Why a 15-step sample loses PSNR to the one-step prediction: the spread of the samples.

    python experiments/sampler_spread.py CHECKPOINT KEY [--images 26] [--seeds 4] [--solver euler]

For a probability-flow sampler driven by a perfect model, the output is a draw from the posterior
p(x0 | y), independent of the true x0 given y, so

    E || x_sample - x0 ||^2 = || E[x0 | y] - x0 ||^2 + tr Cov(x0 | y),

and on average over images both terms equal the posterior mean's MSE: a faithful sample has twice
the MSE of the posterior mean, 10 log10 2 = 3.01 dB less PSNR. The one-step prediction
x0_hat(x_T, t = 1) estimates that mean (x_T = y + kappa sqrt(eta_T) eps carries no information about
x0 beyond y).  On the first ``--images`` bundled test photos (bicubic x4 LR) this script draws
``--seeds`` samples per image (nfe = 15, rho = 1; seed s is the table's per-image noise
``ctlib.pipeline.image_noise(..., seed=s)``) and measures, in the Y channel (BT.601, float, [0, 1]):

the one-step prediction's MSE, a sample's MSE, the MSE of the average of the K samples, their
spread (per-pixel variance over seeds) and the dispersion spread / mse(x0_hat): 1 for a faithful
sampler whose x0_hat is the posterior mean, above 1 when the model's samples scatter more than the
truth does (``ctlib.solver_accuracy.sample_spread``).  The identity
``mse_sample = mse_mean_of_K + (K - 1)/K spread`` is checked for every image.  Results go under
``KEY`` in data/checkpoints/training_choices.json.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from _choices import STORE, store_entry

from ctlib import pipeline
from ctlib.data import load_bundled_test_set
from ctlib.metrics import rgb_to_y
from ctlib.solver_accuracy import sample_spread


def y_channel(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, H, W) Y in [0, 1], float64."""
    return rgb_to_y(image.double()).squeeze(1)


def psnr_of(mse: np.ndarray) -> float:
    """Mean over images of 10 log10(1 / mse) (Y in [0, 1])."""
    return float(np.mean(10 * np.log10(1.0 / mse)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("key")
    ap.add_argument("--images", type=int, default=26)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--solver", default="euler")
    ap.add_argument("--nfe", type=int, default=15)
    ap.add_argument("--out", type=Path, default=STORE)
    args = ap.parse_args(argv)
    if args.seeds < 2:
        ap.error("--seeds must be at least 2 (the spread needs two samples)")
    if not 1 <= args.images <= 26:
        ap.error(f"--images must be between 1 and 26 (the bundled test photos), got {args.images}")
    model = pipeline.load_model(args.checkpoint)
    test = load_bundled_test_set().subset(args.images)
    n = len(test.hr)
    # the HR through the same float round trip as the outputs (model range and back), as stored
    hr_y = y_channel(pipeline.to_image(pipeline.to_model_range(test.hr)))

    def mse(y: torch.Tensor) -> np.ndarray:
        return ((y - hr_y) ** 2).flatten(1).mean(1).numpy()

    bicubic = mse(y_channel(pipeline.upsample(model, test.lr)))
    x0_hat = y_channel(pipeline.super_resolve(model, test.lr, solver="x0_hat", nfe=1,
                                              noise=pipeline.image_noise(range(n))))
    samples, per_seed = [], []
    for s in range(args.seeds):
        out = pipeline.super_resolve(model, test.lr, solver=args.solver, nfe=args.nfe, rho=1.0,
                                     noise=pipeline.image_noise(range(n), seed=s))
        samples.append(y_channel(out))
        per_seed.append(psnr_of(mse(samples[-1])))
        print(f"seed {s}: PSNR-Y {per_seed[-1]:.3f}", flush=True)
    K = len(samples)
    st = sample_spread(torch.stack(samples), x0_hat, hr_y)
    identity_gap = float(np.max(np.abs(st["mse_sample"] - (st["mse_mean"] + (K - 1) / K * st["spread"]))))
    mse_x0, mse_mean_K, spread = st["mse_x0_hat"], st["mse_mean"], st["spread"]
    mse_first = [mse(torch.stack(samples[:k]).mean(0)) for k in range(1, K + 1)]
    entry = {
        "checkpoint": str(args.checkpoint), "kappa": model.schedule.kappa, "images": n, "seeds": K,
        "solver": args.solver, "nfe": args.nfe, "rho": 1.0,
        "psnr_y": {"bicubic": round(psnr_of(bicubic), 3), "x0_hat_t1": round(psnr_of(mse_x0), 3),
                   "sample": round(float(np.mean(per_seed)), 3), "sample_per_seed": [round(p, 3) for p in per_seed],
                   f"mean_of_{K}_samples": round(psnr_of(mse_mean_K), 3),
                   "mean_of_many_estimate": round(psnr_of(np.maximum(mse_mean_K - spread / K, 1e-12)), 3),
                   "faithful_sampler_prediction": round(psnr_of(mse_x0) - 10 * math.log10(2), 3)},
        "mse_y": {"bicubic": float(bicubic.mean()), "x0_hat_t1": float(mse_x0.mean()),
                  "sample": float(st["mse_sample"].mean()), f"mean_of_{K}_samples": float(mse_mean_K.mean()),
                  "spread": float(spread.mean())},
        "psnr_y_mean_of_first_k": [round(psnr_of(m), 3) for m in mse_first],
        "mse_y_mean_of_first_k": [float(m.mean()) for m in mse_first],
        "dispersion": round(float(st["dispersion"].mean()), 3),
        "identity_max_abs_error": identity_gap,
        "command": f"python experiments/sampler_spread.py {args.checkpoint} {args.key} --images {n} --seeds {K}",
    }
    if identity_gap > 1e-9:
        raise AssertionError(f"mse_sample = mse_mean_of_K + (K-1)/K spread failed by {identity_gap:.3g}")
    store_entry(args.out, args.key, entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
