"""Forward time and size of the kit's networks on the CPU (float32).

Measures, as the median of ``--repeats`` timed calls after one warm-up call under
``torch.inference_mode``:

* ``v1_unet``       the official realsr x4 v1 UNet (``V1_UNET``) at batch 1 on a 3 x 64 x 64 latent
                    (+ the 3 x 64 x 64 LR), i.e. one network evaluation for a 256 x 256 output;
* ``bundled_pixel`` the kit's pixel model (``BUNDLED_PIXEL``) at its evaluation size, batch 8 at
                    256 x 256 (the cpu profile's batches), in the default and in the channels-last
                    memory format;
* ``vq_f4_encode`` / ``vq_f4_decode``  the VQ-f4 autoencoder on one 256 x 256 image (skip with
                    ``--skip-vq``).

Each entry records parameters, GFLOP per call (PyTorch's FLOP counter, counted on the meta device),
the median, the minimum and all wall-clock timings in milliseconds, and the median process CPU time
(``cpu_ms``: summed over threads; with ``--threads 1`` it is nearly independent of other load on
the machine, and the unloaded 2-thread wall time is about ``cpu_ms / 1.8`` for these convolution
-bound networks).  Prints a table and writes JSON to
``benchmarks/results/networks.json`` (or ``--out``).  Weights are random: timing does not depend on
them.  Results depend on the machine and on its load; the JSON records the thread count, the torch
version and the load average at the start.

    python benchmarks/networks.py                 # defaults: 2 threads, 5 repeats
    python benchmarks/networks.py --threads 1 --repeats 3 --skip-vq --out /tmp/n.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from ctlib.nn.configs import BUNDLED_PIXEL, V1_UNET, V1_VQF4, build_unet, build_vq

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "networks.json"


def time_call(fn: Callable[[], Any], repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU seconds of ``repeats`` calls of ``fn`` after one warm-up call."""
    with torch.inference_mode():
        fn()
        wall, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def count_gflop(make: Callable[[], tuple[torch.nn.Module, Callable[..., Any], tuple]]) -> float:
    """GFLOP of one call, counted without computing (module and inputs built on the meta device)."""
    with torch.device("meta"), FlopCounterMode(display=False) as counter, torch.inference_mode():
        _, call, args = make()
        call(*args)
    return counter.get_total_flops() / 1e9


def measure(name: str, make: Callable[[], tuple[torch.nn.Module, Callable[..., Any], tuple]], repeats: int) -> dict:
    """Parameters, GFLOP and timings of ``call(*args)`` for ``(module, call, args) = make()``."""
    gflop = count_gflop(make)
    module, call, args = make()
    times, cpu = time_call(lambda: call(*args), repeats)
    batch = args[0].shape[0]
    return {
        "name": name,
        "parameters": sum(p.numel() for p in module.parameters()),
        "input": list(args[0].shape),
        "gflop": round(gflop, 2),
        "median_ms": round(1000 * statistics.median(times), 1),
        "min_ms": round(1000 * min(times), 1),
        "per_image_ms": round(1000 * statistics.median(times) / batch, 1),
        "all_ms": [round(1000 * t, 1) for t in times],
        "cpu_ms": round(1000 * statistics.median(cpu), 1),
    }


def unet_maker(config: Mapping[str, Any], batch: int, size: int, lq_size: int, channels_last: bool = False):
    """A builder of (model, call, inputs) for a UNet config at ``batch x 3 x size x size``
    (optionally with channels-last weights)."""

    def make() -> tuple[torch.nn.Module, Callable[..., Any], tuple]:
        model = build_unet(config, channels_last=channels_last).eval()
        x = torch.randn(batch, model.in_channels, size, size)
        lq = torch.randn(batch, model.lq_channels, lq_size, lq_size)
        t = torch.full((batch,), 7.0)
        return model, (lambda x, t, lq: model(x, t, lq=lq)), (x, t, lq)

    return make


def vq_maker(what: str, size: int = 256):
    """A builder of (model, call, inputs) for the VQ-f4 encoder or decoder on one size x size image."""

    def make() -> tuple[torch.nn.Module, Callable[..., Any], tuple]:
        model = build_vq(V1_VQF4).eval()
        if what == "encode":
            return model, model.encode, (torch.randn(1, 3, size, size),)
        f = model.downsample_factor
        return model, model.decode, (torch.randn(1, model.embed_dim, size // f, size // f),)

    return make


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per case (median reported)")
    parser.add_argument("--bundled-batch", type=int, default=8)
    parser.add_argument("--bundled-size", type=int, default=256)
    parser.add_argument("--skip-v1", action="store_true", help="skip the 118M-parameter v1 UNet")
    parser.add_argument("--skip-vq", action="store_true", help="skip the VQ-f4 autoencoder")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1:
        parser.error("--threads and --repeats must be >= 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    report: dict[str, Any] = {
        "device": "cpu",
        "dtype": "float32",
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "results": [],
    }
    cases = report["results"]
    if not args.skip_v1:
        cases.append(measure("v1_unet", unet_maker(V1_UNET, 1, 64, 64), args.repeats))
    size = args.bundled_size
    for channels_last in (False, True):
        bundled = unet_maker(BUNDLED_PIXEL, args.bundled_batch, size, size, channels_last)
        name = "bundled_pixel" + ("_channels_last" if channels_last else "")
        cases.append(measure(name, bundled, args.repeats))
    if not args.skip_vq:
        for what in ("encode", "decode"):
            cases.append(measure(f"vq_f4_{what}", vq_maker(what), args.repeats))

    print(f"CPU float32, {args.threads} threads, torch {torch.__version__}, median of {args.repeats}")
    print(f"{'network':28s} {'params':>12s} {'input':>14s} {'GFLOP':>7s} {'median ms':>10s} {'min ms':>9s} {'ms/image':>9s}")
    for c in cases:
        shape = "x".join(str(v) for v in c["input"])
        print(
            f"{c['name']:28s} {c['parameters']:12,d} {shape:>14s} {c['gflop']:7.1f} "
            f"{c['median_ms']:10.1f} {c['min_ms']:9.1f} {c['per_image_ms']:9.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
