"""Where a sampler loses PSNR: x0_hat along Euler's path against x0_hat on true marginals.

    python experiments/sampler_path_diagnostic.py CHECKPOINT KEY [--images 8]

On the first ``--images`` bundled test photos (256 x 256, bicubic x4 LR) it records

* the PSNR-Y of x0_hat at every state Euler visits (nfe = 15, rho = 1, the table's per-image x_T,
  ``ctlib.pipeline.image_noise``);
* the PSNR-Y of x0_hat on true marginal draws ``x_t = x0 + eta(t) (y - x0) + kappa sqrt(eta(t)) eps``
  at t = k/15 for k = 15, 12, 9, 6, 4, 2, 1 (noise seeded by k);

and stores them under ``KEY`` in data/checkpoints/training_choices.json (docs/finetune_findings.md §2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from _choices import STORE, store_entry

from ctlib import pipeline
from ctlib.data import load_bundled_test_set
from ctlib.metrics import psnr


class Spy:
    """A conditioned batch ``cond`` that records ``(t, score(x0_hat))`` at every evaluation: what a
    sampler driven through :func:`ctlib.pipeline.sample_conditioned` sees along its path."""

    def __init__(self, cond, score: Callable[[torch.Tensor], float]):
        self.cond, self.score = cond, score
        self.denoiser, self.y = cond.denoiser, cond.y
        self.visited: list[tuple[float, float]] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x0_hat = self.cond(x, t, y)
        self.visited.append((round(float(t.flatten()[0]), 4), self.score(x0_hat)))
        return x0_hat


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("key")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--out", type=Path, default=STORE)
    args = ap.parse_args(argv)
    model = pipeline.load_model(args.checkpoint)
    schedule = model.schedule
    test = load_bundled_test_set().subset(args.images)
    n = len(test.hr)

    def score(x: torch.Tensor) -> float:
        """Mean PSNR-Y of the state (or x0_hat) ``x`` of the conditioned batch, decoded."""
        sr = pipeline.to_image(cond.decode(x))
        return round(float(psnr(sr, test.hr, y_channel=True, quantize=True).mean()), 3)

    with torch.no_grad():
        cond = model.condition(pipeline.to_model_range(test.lr))
        x0 = pipeline.to_model_range(test.hr)
        t_marginal, on_marginals = [], []
        for k in (15, 12, 9, 6, 4, 2, 1):
            t = k / schedule.T
            eta = float(schedule.eta(t))
            eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(k))
            x_t = x0 + eta * (cond.y - x0) + schedule.kappa * eta**0.5 * eps
            t_marginal.append(t)
            on_marginals.append(score(cond(x_t, torch.full((n,), t, dtype=torch.float64), cond.y)))
        spy = Spy(cond, score)
        final = score(pipeline.sample_conditioned(spy, solver="euler", nfe=15, rho=1.0,
                                                  noise=pipeline.image_noise(range(n))))
        visited = spy.visited
    entry = {"checkpoint": str(args.checkpoint), "kappa": schedule.kappa, "images": n, "bicubic": score(cond.y),
             "t": [t for t, _ in visited], "x0_hat_on_euler_states": [p for _, p in visited], "euler_final": final,
             "t_marginal": t_marginal, "x0_hat_on_true_marginals": on_marginals,
             "command": f"python experiments/sampler_path_diagnostic.py {args.checkpoint} {args.key}"}
    store_entry(args.out, args.key, entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
