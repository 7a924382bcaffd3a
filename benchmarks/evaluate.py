"""What one network evaluation costs in the table's sweep, per image size: the basis of the
evaluation set of each profile (``ctlib.evaluate.EVAL_PROFILES``).

    python benchmarks/evaluate.py [--checkpoint PATH] [--threads 2] [--repeats 3]

Times ``denoiser(x_T, t, y)`` (the bundled pixel model, float32, CPU) on a batch of 13 bundled test
images, centre-cropped to 64, 128 and 256 px, and extrapolates to a whole table: the ``cpu``
profile's rows cost 290 evaluations per image (13 rows at nfe 15, 2 one-step references, the
few-step sweep).  Writes ``benchmarks/results/evaluate.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from ctlib import data, pipeline, profiles
from ctlib.files import REPO_ROOT, write_json

EVALS_PER_IMAGE = 290


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=profiles.DEFAULT_CHECKPOINTS["continuous"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=13)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "evaluate.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    den = pipeline.load_model(args.checkpoint)
    results = []
    for side in (64, 128, 256):
        images = data.bundled_eval_set(args.batch, side if side < 256 else None)
        lr = torch.stack(list(images.lr))
        with torch.no_grad():
            cond = den.condition(pipeline.to_model_range(lr))
            x_T = cond.y + 2.0 * torch.randn(cond.y.shape, generator=torch.Generator().manual_seed(0))
            t = torch.full((len(lr),), 0.5, dtype=torch.float64)
            cond(x_T, t, cond.y)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                cond(x_T, t, cond.y)
                times.append(time.perf_counter() - start)
        per_image = statistics.median(times) / len(lr)
        results.append({"side": side, "batch": len(lr), "median_s": round(statistics.median(times), 4),
                        "per_image_ms": round(1000 * per_image, 2),
                        "table_minutes_26_images": round(EVALS_PER_IMAGE * 26 * per_image / 60, 1)})
        print(f"{side:4d} px: {1000 * per_image:7.1f} ms per image-evaluation -> a 26-image table "
              f"({EVALS_PER_IMAGE} evaluations each) ~ {results[-1]['table_minutes_26_images']} min")
    doc = {"checkpoint": str(args.checkpoint), "threads": args.threads, "torch": torch.__version__,
           "machine": platform.machine(), "cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg(),
           "results": results}
    write_json(args.out, doc, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
