"""Ship a trained model: export its EMA weights to data/checkpoints/NAME.pt with its loss log and a
quality JSON measured on the bundled test set (26 photos, 256 x 256, bicubic x4 LR).

    python scripts/ship_checkpoint.py runs/baseline baseline_discrete
    python scripts/ship_checkpoint.py runs/continuous continuous_finetune

The JSON holds, against the HR images, PSNR-Y / SSIM-Y (official conventions, ctlib.metrics) of
bicubic upsampling, of the one-step prediction x0_hat(x_T, t = 1), of the official discrete
sampler (resshift, T = 15) and of Euler at nfe = 15 (rho = 1), with the prior noise x_T drawn per
image from a generator seeded by the image index (the same start for every row).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from ctlib.data import load_bundled_test_set
from ctlib.evaluate import seeded_prior
from ctlib.metrics import psnr, ssim
from ctlib.nn import denoiser_from_checkpoint
from ctlib.samplers import sample
from ctlib.train import export_model

ROOT = Path(__file__).resolve().parent.parent


def measure(model_path: Path, batch: int = 13) -> dict:
    den = denoiser_from_checkpoint(model_path).eval()
    test = load_bundled_test_set()
    rows: dict[str, list[torch.Tensor]] = {"bicubic": [], "x0_hat_t1": [], "resshift_T15": [], "euler_nfe15_rho1": []}
    start = time.perf_counter()
    with torch.no_grad():
        for b0 in range(0, len(test.hr), batch):
            lr = test.lr[b0:b0 + batch]
            cond = den.condition(lr * 2 - 1)
            x_T = seeded_prior(cond, range(b0, b0 + len(lr)))  # notebook 06's seeds
            t1 = torch.ones(len(lr), dtype=torch.float64)
            outs = {
                "bicubic": cond.y,
                "x0_hat_t1": cond(x_T, t1, cond.y),
                "resshift_T15": sample(cond, cond.y, schedule=den.schedule, solver="resshift", nfe=den.schedule.T,
                                       x_T=x_T, generator=torch.Generator().manual_seed(b0)),
                "euler_nfe15_rho1": sample(cond, cond.y, schedule=den.schedule, solver="euler", nfe=15, rho=1.0,
                                           x_T=x_T),
            }
            for key, x in outs.items():
                rows[key].append(((cond.decode(x).clamp(-1, 1) + 1) / 2).cpu())
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
    ap.add_argument("--out-dir", type=Path, default=ROOT / "data" / "checkpoints")
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    target = args.out_dir / f"{args.name}.pt"
    export_model(args.run_dir, target)
    shutil.copyfile(args.run_dir / "log.csv", args.out_dir / f"{args.name}.log.csv")
    quality = measure(target)
    quality["checkpoint"] = target.name
    (args.out_dir / f"{args.name}.quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    print(json.dumps(quality, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
