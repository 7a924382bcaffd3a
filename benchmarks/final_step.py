"""The exponential integrators' step into t = 0 on real images: hold x0_hat, or Euler in eta?

On the exact toy (notebook 04) the Euler step in eta (``final_step="euler_eta"``,
``ctlib.diffusion.pf_final_step``) is second-order consistent and lands 5-30x closer to the exact
x(0) than holding x0_hat (``"hold"``).  This script measures what each does to the table's metrics
with the shipped continuous model: the table's evaluation set (26 bundled photos, centre 128 x 128
crops, MATLAB bicubic LR, cpu profile), the table's seeded x_T per image, PSNR-Y / SSIM-Y the
official way, for exp2m and exp3m (rho 1) at nfe 5 and 15.

Writes ``benchmarks/results/final_step.json`` (or ``--out``) and prints a table; notebook 06 reads the
JSON.  About 2 minutes on 2 idle cores (``--quick``: 4 images, nfe 5).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ctlib import data, pipeline, profiles
from ctlib.files import REPO_ROOT, write_json
from ctlib.metrics import psnr, ssim
from ctlib.nn import checkpoint


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "final_step.json")
    ap.add_argument("--checkpoint", default=str(profiles.DEFAULT_CHECKPOINTS["continuous"]))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = profiles.EVAL_PROFILES["cpu"]
    eval_set = data.bundled_eval_set(4 if args.quick else settings["n_images"], settings["crop"])
    den = pipeline.load_model(args.checkpoint).eval()
    configs = [(s, n, f) for s in ("exp2m", "exp3m") for n in ((5,) if args.quick else (5, 15))
               for f in ("hold", "euler_eta")]
    scores: dict[str, dict[str, list[float]]] = {f"{s}/{f}/nfe{n}": {"psnr_y": [], "ssim_y": []} for s, n, f in configs}
    start = time.perf_counter()
    for batch in eval_set.batches(settings["batch_size"]):
        lr = torch.stack([eval_set.lr[i] for i in batch])
        hr = torch.stack([eval_set.hr[i] for i in batch])
        for solver, nfe, final in configs:
            # the table's x_T of each image (pipeline.image_noise; exp2m / exp3m draw no step noise)
            sr = pipeline.super_resolve(den, lr, solver=solver, nfe=nfe, rho=1.0,
                                        noise=pipeline.image_noise(batch), final_step=final)
            key = f"{solver}/{final}/nfe{nfe}"
            for j in range(len(batch)):
                scores[key]["psnr_y"].append(float(psnr(sr[j], hr[j], y_channel=True, quantize=True)))
                scores[key]["ssim_y"].append(float(ssim(sr[j], hr[j], y_channel=True, quantize=True)))
    rows = [{"solver": s, "nfe": n, "final_step": f, "rho": 1.0,
             "psnr_y": float(np.mean(scores[f"{s}/{f}/nfe{n}"]["psnr_y"])),
             "ssim_y": float(np.mean(scores[f"{s}/{f}/nfe{n}"]["ssim_y"]))} for s, n, f in configs]
    result = {"checkpoint": str(args.checkpoint), "checkpoint_sha256": checkpoint.model_fingerprint(args.checkpoint),
              "eval_set": eval_set.description, "n_images": len(eval_set), "rows": rows,
              "seconds": time.perf_counter() - start, "threads": args.threads, "torch": torch.__version__}
    write_json(args.out, result, indent=1)
    print(f"{'solver':>6} {'nfe':>4} {'final step':>10} {'PSNR-Y':>7} {'SSIM-Y':>7}")
    for r in rows:
        print(f"{r['solver']:>6} {r['nfe']:>4} {r['final_step']:>10} {r['psnr_y']:7.2f} {r['ssim_y']:7.4f}")
    print(f"wrote {args.out} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
