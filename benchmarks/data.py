"""Throughput of the data pipeline: the Real-ESRGAN degradation (and its parts) on a batch.

Measures, as the median of ``--repeats`` timed calls after ``--warmup`` untimed ones, on a batch of
``--batch`` random HR images of ``--size`` x ``--size`` (default 16 x 3 x 256 x 256, float32):

* ``degrade_train``   the full pipeline with the official training preset (``REALESRGAN_TRAIN``),
                      parameters drawn inside the timed call (one generator seed per repeat);
* ``degrade_test``    the same with ResShift's testing preset (``RESSHIFT_TEST``);
* ``jpeg_torch``      one torch JPEG round trip of the batch (quality 50);
* ``jpeg_pillow``     the same through Pillow / libjpeg (CPU only);
* ``imresize_x1/4``   MATLAB bicubic x1/4 of the batch.

Images per second = batch / median time, for each ``--threads`` count. Prints a table and writes JSON to
``benchmarks/results/data.json`` (or ``--out``) with the device, thread count, torch version and the
load average at the start (results depend on the machine and its load).

    python benchmarks/data.py                          # CPU, 1 then 2 threads, 5 repeats
    python benchmarks/data.py --device cuda --repeats 20
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ctlib.data.degradation import degrade, jpeg_compress, jpeg_compress_pillow
from ctlib.data.degradation_params import REALESRGAN_TRAIN, RESSHIFT_TEST
from ctlib.data.imresize import imresize
from ctlib.files import REPO_ROOT, write_json

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "data.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[int], Any], device: torch.device, repeats: int, warmup: int) -> list[float]:
    """Seconds per call of ``fn(i)`` (i = repeat index), after ``warmup`` untimed calls."""
    for i in range(warmup):
        fn(-1 - i)
    _sync(device)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="torch intra-op thread counts to measure, one run each (CPU)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.size % 4:
        ap.error("--size must be a multiple of 4")
    device = torch.device(args.device)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    hr = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)

    def generator(i: int) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(1000 + i)

    cases: dict[str, Callable[[int], Any]] = {
        "degrade_train": lambda i: degrade(hr, generator(i), REALESRGAN_TRAIN),
        "degrade_test": lambda i: degrade(hr, generator(i), RESSHIFT_TEST),
        "jpeg_torch": lambda i: jpeg_compress(hr, 50.0),
        "imresize_x1/4": lambda i: imresize(hr, 0.25),
    }
    if device.type == "cpu":
        cases["jpeg_pillow"] = lambda i: jpeg_compress_pillow(hr, 50.0)
    results: dict[str, dict[str, Any]] = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        key = f"threads_{threads}"
        results[key] = {}
        print(f"batch {args.batch} x 3 x {args.size} x {args.size} on {device}, {threads} thread(s), "
              f"median of {args.repeats}")
        print(f"{'case':<16}{'median ms':>12}{'images/s':>12}")
        for name, fn in cases.items():
            times = time_call(fn, device, args.repeats, args.warmup)
            med = statistics.median(times)
            results[key][name] = {
                "median_ms": 1e3 * med,
                "images_per_s": args.batch / med,
                "times_ms": [1e3 * t for t in times],
            }
            print(f"{name:<16}{1e3 * med:>12.1f}{args.batch / med:>12.1f}")
    report = {
        "benchmark": "data",
        "batch": args.batch,
        "size": args.size,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "results": results,
    }
    write_json(args.out, report, indent=2)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
