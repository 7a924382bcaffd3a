"""Training speed and peak memory of a profile: iterations per second and peak memory of
``ctlib.train.run_training`` (the ``train`` CLI), for the ``cpu`` profile and, where CUDA is
available, the ``gpu`` profile.

    python benchmarks/training.py [--iterations 20] [--warmup 3] [--profiles cpu gpu] [--modes discrete continuous]

Both modes are measured by default: each runs with the profile's recipe for that mode (the ``cpu``
profile's discrete baseline trains 64 x 64 crops of batch 16, its continuous fine-tune whole
256 x 256 photos of batch 2).

On CPU three layouts of the same 2 cores are measured: one process with 2 threads, one process
with 1 thread, and ``torchrun --nproc_per_node 2`` with 1 thread per process (DDP, gloo; each
process trains half of the global batch).  Each measurement runs in its own process(es) (so that
its peak RSS is its own; under torchrun, rank 0's) on the bundled photos,
with the profile's batch, crop and network, validation off, and a run folder in a temporary
directory.  Speed is taken from the run's ``log.csv`` (one row per step), leaving out the first
``--warmup`` steps.  Memory: the process's peak RSS (``ru_maxrss``) and its RSS after importing torch and
ctlib (before the model and data are built), and on CUDA ``torch.cuda.max_memory_allocated``.  Writes
``benchmarks/results/training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from ctlib.files import REPO_ROOT, write_json


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(profile: str, mode: str, iterations: int, warmup: int, threads: int, device: str) -> dict:
    """One measurement (in the current process)."""
    import torch

    from ctlib.train import profile_settings, read_log, run_training

    torch.set_num_threads(threads)
    settings = profile_settings(profile, mode)
    with tempfile.TemporaryDirectory() as tmp:
        rss_import = _rss_mib()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        summary = run_training(profile, mode, Path(tmp) / "run", device=device, progress=False,
                               iterations=iterations, warmup=0, val_every=0, ckpt_every=0, log_every=1)
        if int(os.environ.get("RANK", "0")) != 0:
            return {}  # under torchrun only rank 0 writes the log
        log = read_log(Path(tmp) / "run" / "log.csv")
    secs = log["seconds"]
    timed = secs[-1] - secs[warmup - 1] if warmup > 0 else secs[-1]
    steps = iterations - warmup
    result = {
        "profile": profile, "mode": mode, "device": device, "threads": threads, "batch_size": settings["batch_size"],
        "micro_batch": settings["micro_batch"], "crop_size": settings["crop_size"], "net": settings["net"],
        "iterations_timed": steps, "seconds_timed": round(float(timed), 3),
        "iterations_per_second": round(steps / float(timed), 4),
        "seconds_per_iteration": round(float(timed) / steps, 4),
        "images_per_second": round(steps * settings["batch_size"] / float(timed), 2),
        "total_seconds": round(summary["seconds"], 1),
        "rss_after_import_mib": round(rss_import, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device == "cuda":
        result["cuda_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        result["gpu"] = torch.cuda.get_device_name()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profiles", nargs="+", default=None, help="default: cpu, and gpu when CUDA is available")
    ap.add_argument("--modes", nargs="+", choices=("discrete", "continuous"), default=["discrete", "continuous"])
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of the timing")
    ap.add_argument("--threads", type=int, default=2, help="threads of the GPU measurement's process")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "training.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.iterations <= args.warmup or args.warmup < 0:
        ap.error("--iterations must exceed --warmup (>= 0)")

    if args.child:
        row = child(args.profiles[0], args.modes[0], args.iterations, args.warmup, args.threads, args.device)
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(row))
        return 0

    import torch

    cuda = torch.cuda.is_available()
    profiles = args.profiles or (["cpu", "gpu"] if cuda else ["cpu"])
    results = []
    for profile in profiles:
        device = "cuda" if (profile in ("gpu", "paper") and cuda) else "cpu"
        if profile == "gpu" and not cuda:
            print("gpu: skipped (no CUDA device)")
            continue
        layouts = [("1 process", 1, args.threads)]
        if device == "cpu":
            layouts = [("1 process", 1, 2), ("1 process", 1, 1), ("torchrun", 2, 1)]
        for (layout, nproc, threads), mode in [(lay, m) for m in args.modes for lay in layouts]:
            child_args = [__file__, "--child", "--profiles", profile, "--modes", mode, "--iterations", str(args.iterations),
                          "--warmup", str(args.warmup), "--threads", str(threads), "--device", device]
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            if nproc > 1:
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                       *child_args]
            else:
                cmd = [sys.executable, *child_args]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=env)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{profile} {mode} ({layout}): the measurement failed (exit {proc.returncode})")
            row = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
            row.update(layout=layout, processes=nproc)
            results.append(row)
            extra = f", CUDA peak {row['cuda_peak_allocated_mib']} MiB" if "cuda_peak_allocated_mib" in row else ""
            print(f"{profile:5s} {mode:10s} on {device}, {layout} x {threads} thread(s): {row['iterations_per_second']:.3f} it/s "
                  f"({row['seconds_per_iteration']:.3f} s/it, batch {row['batch_size']}, crop {row['crop_size']}), "
                  f"peak RSS {row['peak_rss_mib']:.0f} MiB per process (after imports {row['rss_after_import_mib']:.0f} "
                  f"MiB){extra}")
    doc = {"torch": torch.__version__, "machine": platform.machine(), "cpu_count": os.cpu_count(),
           "load_average_at_start": os.getloadavg(), "iterations": args.iterations, "warmup": args.warmup,
           "results": results}
    write_json(args.out, doc, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
