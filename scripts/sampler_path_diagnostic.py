"""Where a sampler loses PSNR: x0_hat along Euler's path against x0_hat on true marginals.

    python scripts/sampler_path_diagnostic.py CHECKPOINT KEY [--images 8]

On the first ``--images`` bundled test photos (256 x 256, bicubic x4 LR) it records

* the PSNR-Y of x0_hat at every state Euler visits (nfe = 15, rho = 1, the table's seeded x_T);
* the PSNR-Y of x0_hat on true marginal draws ``x_t = x0 + eta(t) (y - x0) + kappa sqrt(eta(t)) eps``
  at t = k/15 for k = 15, 12, 9, 6, 4, 2, 1 (noise seeded by k);

and stores them under ``KEY`` in data/checkpoints/training_choices.json (notebook 05 plots them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from _choices import store_entry

from ctlib.data import load_bundled_test_set
from ctlib.evaluate import seeded_prior
from ctlib.metrics import psnr
from ctlib.nn import denoiser_from_checkpoint
from ctlib.samplers import sample

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("key")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "checkpoints" / "training_choices.json")
    args = ap.parse_args(argv)
    den = denoiser_from_checkpoint(args.checkpoint).eval()
    schedule = den.schedule
    test = load_bundled_test_set().subset(args.images)
    n = len(test.hr)

    def score(x: torch.Tensor) -> float:
        sr = (cond.decode(x).clamp(-1, 1) + 1) / 2
        return round(float(psnr(sr, test.hr, y_channel=True, quantize=True).mean()), 3)

    with torch.no_grad():
        cond = den.condition(test.lr * 2 - 1)
        x0 = test.hr * 2 - 1
        t_marginal, on_marginals = [], []
        for k in (15, 12, 9, 6, 4, 2, 1):
            t = k / schedule.T
            eta = float(schedule.eta(t))
            eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(k))
            x_t = x0 + eta * (cond.y - x0) + schedule.kappa * eta**0.5 * eps
            t_marginal.append(t)
            on_marginals.append(score(cond(x_t, torch.full((n,), t, dtype=torch.float64), cond.y)))
        x_T = seeded_prior(cond, range(n))
        visited: list[tuple[float, float]] = []

        def spy(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            x0_hat = cond(x, t, y)
            visited.append((round(float(t.flatten()[0]), 4), score(x0_hat)))
            return x0_hat

        final = score(sample(spy, cond.y, schedule=schedule, solver="euler", nfe=15, rho=1.0, x_T=x_T))
    entry = {"checkpoint": str(args.checkpoint), "kappa": schedule.kappa, "images": n, "bicubic": score(cond.y),
             "t": [t for t, _ in visited], "x0_hat_on_euler_states": [p for _, p in visited], "euler_final": final,
             "t_marginal": t_marginal, "x0_hat_on_true_marginals": on_marginals,
             "command": f"python scripts/sampler_path_diagnostic.py {args.checkpoint} {args.key}"}
    store_entry(args.out, args.key, entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
