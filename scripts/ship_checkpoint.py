"""Ship a trained model: export its EMA weights to data/checkpoints/NAME.pt with its loss log and a
quality JSON measured on the bundled test set (26 photos, 256 x 256, bicubic x4 LR).

    python scripts/ship_checkpoint.py runs/baseline baseline_discrete
    python scripts/ship_checkpoint.py runs/continuous continuous_finetune

The JSON holds, against the HR images, PSNR-Y / SSIM-Y (official conventions, ctlib.metrics) of
bicubic upsampling, of the one-step prediction x0_hat(x_T, t = 1), of the official discrete
sampler (resshift, T = 15) and of Euler at nfe = 15 (rho = 1), all through ``ctlib.pipeline``, with the
prior noise x_T drawn per image from a generator seeded by the image index (``pipeline.image_noise``,
the same start for every row); the official sampler's step noise comes from one generator per batch
of 13, seeded by the batch's first index (:func:`resshift_noise`).

A tool, not an experiment: it makes the shipped files that ``tests/test_shipped_models.py`` checks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ctlib import pipeline
from ctlib.data import load_bundled_test_set
from ctlib.files import REPO_ROOT, atomic_write
from ctlib.metrics import psnr, ssim
from ctlib.train import export_model


def resshift_noise(indices: Sequence[int], generator: torch.Generator) -> pipeline.NoiseSource:
    """The noise the stored quality JSONs were measured with: x_T's eps per image
    (``pipeline.image_noise(indices)``, as every other row), the official sampler's step noise drawn
    in step order from ``generator`` for the whole batch (``torch.randn`` shaped like the state)."""
    start = pipeline.image_noise(indices)

    def noise(y: torch.Tensor, n_steps: int) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        eps, _ = start(y, 0)
        steps = [torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device) for _ in range(n_steps)]
        return eps, steps or None

    return noise


def sr_rows(model, lr: torch.Tensor, b0: int) -> dict[str, torch.Tensor]:
    """The quality JSON's rows (SR images in [0, 1], on the CPU) of the LR batch ``lr`` of test images
    ``b0, b0 + 1, ...``."""
    indices = range(b0, b0 + len(lr))  # notebook 06's seeds
    outs = {
        "bicubic": pipeline.upsample(model, lr),
        "x0_hat_t1": pipeline.super_resolve(model, lr, solver="x0_hat", nfe=1, noise=pipeline.image_noise(indices)),
        "resshift_T15": pipeline.super_resolve(model, lr, solver="resshift", nfe=model.schedule.T,
                                               noise=resshift_noise(indices, torch.Generator().manual_seed(b0))),
        "euler_nfe15_rho1": pipeline.super_resolve(model, lr, solver="euler", nfe=15, rho=1.0,
                                                   noise=pipeline.image_noise(indices)),
    }
    return {key: sr.cpu() for key, sr in outs.items()}


def measure(model_path: Path, batch: int = 13) -> dict:
    model = pipeline.load_model(model_path)
    test = load_bundled_test_set()
    rows: dict[str, list[torch.Tensor]] = {"bicubic": [], "x0_hat_t1": [], "resshift_T15": [], "euler_nfe15_rho1": []}
    start = time.perf_counter()
    for b0 in range(0, len(test.hr), batch):
        for key, sr in sr_rows(model, test.lr[b0:b0 + batch], b0).items():
            rows[key].append(sr)
    result = {"images": len(test.hr), "lr": "MATLAB bicubic x4 of the 256x256 HR, 8-bit",
              "metric": "PSNR-Y / SSIM-Y (BT.601 Y, 8-bit quantised, no border), mean over images",
              "seconds": round(time.perf_counter() - start, 1)}
    for key, parts in rows.items():
        sr = torch.cat(parts)
        result[key] = {"psnr_y": round(float(psnr(sr, test.hr, y_channel=True, quantize=True).mean()), 3),
                       "ssim_y": round(float(ssim(sr, test.hr, y_channel=True, quantize=True).mean()), 4)}
    for key in ("x0_hat_t1", "resshift_T15", "euler_nfe15_rho1"):
        result[key]["gain_psnr_y_over_bicubic"] = round(result[key]["psnr_y"] - result["bicubic"]["psnr_y"], 3)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("name")
    ap.add_argument("--out-dir", type=Path, default=REPO_ROOT / "data" / "checkpoints")
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    target = args.out_dir / f"{args.name}.pt"
    export_model(args.run_dir, target)
    shutil.copyfile(args.run_dir / "log.csv", args.out_dir / f"{args.name}.log.csv")
    quality = measure(target)
    quality["checkpoint"] = target.name
    text = json.dumps(quality, indent=2) + "\n"
    atomic_write(args.out_dir / f"{args.name}.quality.json", lambda f: f.write(text.encode()))
    print(json.dumps(quality, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
