"""Upscaling speed (seconds per megapixel of output) and peak memory on the CPU, per tile size.

Each case runs :func:`ctlib.upscale.upscale_tensor` in a **fresh Python process** (so that the peak
resident set size, ``resource.getrusage(...).ru_maxrss``, belongs to that case alone) with the
shipped model (:data:`ctlib.upscale.DEFAULT_CHECKPOINT`, or ``--checkpoint``), the Euler solver,
overlap ``--overlap`` and batch 1, on an LR image cut from a bundled training photo (resized with
Pillow's bicubic filter when the requested size is larger).  Two groups of cases:

* ``speed``   the small image (``--small``, default 128 x 96 LR -> 512 x 384 output) at ``nfe = 15``
              for every tile size (``--tiles``, default 32 64 96 LR pixels);
* ``memory``  the small image and the large one (``--large``, default 500 x 400 -> 2000 x 1600) for
              every tile size at ``--memory-nfe`` evaluations (default 1: the memory of a run does not
              depend on nfe -- one step keeps x, x0_hat and y of one batch of tiles -- while its time
              is nfe times longer; measured with tile 96: working memory 281, 328, 270, 253 MiB at
              nfe 1, 2, 4, 8 -- no trend, and an allocator scatter of about +-40 MiB between runs;
              ``--memory-nfe 15`` measures the full thing, ~10x slower).

Recorded per case: wall and process-CPU seconds of the upscale call, seconds per output megapixel
(wall and CPU; CPU also per evaluation: with one thread the CPU time hardly depends on other load on
the machine, the wall time does), the number of tiles, RSS just before the call (torch, the model, the LR
image), the peak RSS, their difference, and that difference less the output buffer (float32 RGB,
12 bytes per output pixel): the working memory, which should depend on the tile size and not on the
image size.  Prints a table; writes JSON to ``benchmarks/results/upscale.json`` (or ``--out``).

    python benchmarks/upscale.py                               # ~3-5 minutes on 2 cores
    python benchmarks/upscale.py --threads 1 --tiles 64 --checkpoint runs/dev_baseline.pt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ctlib.files import REPO_ROOT, write_json

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "upscale.json"
PHOTO = REPO_ROOT / "data" / "photos" / "train" / "aitzgorri_0.jpg"


def _size(text: str) -> tuple[int, int]:
    """'WxH' -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is WIDTHxHEIGHT, e.g. 500x400, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"sizes must be at least 8x8, got {text!r}")
    return w, h


def lr_image(width: int, height: int):
    """An RGB LR image (3, height, width) in [0, 1]: a bundled photo, resized if needed."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(PHOTO) as im:
        im = im.convert("RGB")
        scale = max(width / im.width, height / im.height, 1.0)
        if scale > 1.0:
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BICUBIC)
        im = im.crop((0, 0, width, height))
        a = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()


def current_rss() -> int:
    """This process's resident set size in bytes (Linux /proc; psutil elsewhere, if installed)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil  # not a dependency of the kit: only needed off Linux

    return psutil.Process().memory_info().rss


def peak_rss() -> int:
    """Peak resident set size of this process in bytes (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One case, in this process: load, measure RSS, upscale, measure peak RSS."""
    import torch

    from ctlib.pipeline import load_model
    from ctlib.upscale import DEFAULT_CHECKPOINT, tile_layout, upscale_tensor

    torch.set_num_threads(args.threads)
    denoiser = load_model(args.checkpoint or DEFAULT_CHECKPOINT)
    w, h = args.size
    lr = lr_image(w, h)
    rss_before = current_rss()
    start, start_cpu = time.perf_counter(), time.process_time()
    out = upscale_tensor(lr, denoiser, solver="euler", nfe=args.nfe, seed=0, tile=args.tile, overlap=args.overlap)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    peak = peak_rss()
    megapixels = out.shape[1] * out.shape[2] / 1e6
    mib = 2**20
    return {
        "lr_size": [w, h],
        "out_size": [int(out.shape[2]), int(out.shape[1])],
        "tile": args.tile,
        "overlap": args.overlap,
        "nfe": args.nfe,
        "tiles": len(tile_layout(h, w, args.tile, args.overlap)),
        "seconds": wall,
        "cpu_seconds": cpu,
        "s_per_mp": wall / megapixels,
        "s_per_mp_per_eval": wall / megapixels / args.nfe,
        "cpu_s_per_mp": cpu / megapixels,
        "rss_before_mib": rss_before / mib,
        "peak_rss_mib": peak / mib,
        "delta_mib": (peak - rss_before) / mib,
        "output_buffer_mib": 12 * out.shape[1] * out.shape[2] / mib,
        "working_mib": (peak - rss_before - 12 * out.shape[1] * out.shape[2]) / mib,
    }


def run_case(args: argparse.Namespace, size: tuple[int, int], tile: int, nfe: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--size", f"{size[0]}x{size[1]}",
           "--tile", str(tile), "--nfe", str(nfe), "--overlap", str(args.overlap), "--threads", str(args.threads)]
    if args.checkpoint:
        cmd += ["--checkpoint", str(args.checkpoint)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"case {size} tile {tile} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'group':<7} {'LR':>8} {'output':>10} {'tile':>4} {'nfe':>3} {'tiles':>5} {'s':>7} {'s/MP':>7} "
            f"{'cpu s/MP':>8} {'/eval':>6} {'RSS0 MiB':>8} {'peak MiB':>8} {'work MiB':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['group']:<7} {'x'.join(map(str, r['lr_size'])):>8} {'x'.join(map(str, r['out_size'])):>10} "
            f"{r['tile']:>4} {r['nfe']:>3} {r['tiles']:>5} {r['seconds']:7.1f} {r['s_per_mp']:7.1f} "
            f"{r['cpu_s_per_mp']:8.1f} {r['cpu_s_per_mp'] / r['nfe']:6.2f} {r['rss_before_mib']:8.0f} "
            f"{r['peak_rss_mib']:8.0f} {r['working_mib']:8.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    ap.add_argument("--checkpoint", type=Path, default=None, help="model (default: the shipped checkpoint)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--tiles", type=int, nargs="+", default=[32, 64, 96], help="tile sides in LR pixels")
    ap.add_argument("--overlap", type=int, default=16, help="tile overlap in LR pixels (default 16)")
    ap.add_argument("--small", type=_size, default=(128, 96), help="small LR size WxH (default 128x96)")
    ap.add_argument("--large", type=_size, default=(500, 400), help="large LR size WxH (default 500x400)")
    ap.add_argument("--nfe", type=int, default=15, help="evaluations in the speed cases (default 15)")
    ap.add_argument("--memory-nfe", type=int, default=1, help="evaluations in the memory cases (default 1)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=_size, help=argparse.SUPPRESS)
    ap.add_argument("--tile", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return None
    overlaps = [t for t in args.tiles if args.overlap >= t]
    if overlaps:
        ap.error(f"--overlap {args.overlap} must be smaller than every tile, not {overlaps}")
    started = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = []
    plan = [("speed", args.small, t, args.nfe) for t in args.tiles]
    plan += [("memory", size, t, args.memory_nfe) for size in (args.small, args.large) for t in args.tiles]
    for group, size, tile, nfe in plan:
        row = {"group": group, **run_case(args, size, tile, nfe)}
        rows.append(row)
        print(f"  {group} {size[0]}x{size[1]} tile {tile} nfe {nfe}: {row['seconds']:.1f} s, "
              f"peak {row['peak_rss_mib']:.0f} MiB", flush=True)
    import torch

    from ctlib.upscale import DEFAULT_CHECKPOINT

    report = {
        "checkpoint": str(args.checkpoint or DEFAULT_CHECKPOINT),
        "solver": "euler",
        "overlap": args.overlap,
        "threads": args.threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load,
        "total_seconds": time.perf_counter() - started,
        "cases": rows,
    }
    print(table(rows))
    write_json(args.out, report, indent=2)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
