"""Plain port against the inference fast path (``ctlib.nn.fast.accelerate``): CPU forward times, float32.

Cases (each built once; the fast model is ``accelerate(copy.deepcopy(plain))`` with its default
settings, i.e. what ``denoiser_from_checkpoint`` / ``build_official_denoiser`` load: UNets with
pre-packed oneDNN convolutions and channels-last activations, autoencoders in the default layout
with only their wide 3x3 convolutions packed, for Winograd):

* ``v1_unet``        the official realsr x4 v1 UNet (``V1_UNET``) at batch 1 on a 3 x 64 x 64 latent
                     (+ the 3 x 64 x 64 LR): one network evaluation for a 256 x 256 output;
* ``bundled_pixel``  the shipped pixel model (``data/checkpoints/continuous_finetune.pt``, or a
                     random ``BUNDLED_PIXEL`` with ``--checkpoint none``) at batch 8, 256 x 256
                     (the cpu profile's batches);
* ``vq_f4_decode``   the VQ-f4 decoder (``VQModel.decode``, quantisation included) of one
                     3 x 64 x 64 latent to a 256 x 256 image.

For every thread count in ``--threads`` (default ``1 2``) both variants are warmed up once, then
timed ``--repeats`` times *interleaved* (plain, fast, plain, fast, ... with the order alternating),
so that both see the same machine load; ``ratio`` is ``median(plain) / median(fast)`` of the wall
times measured in the same process, ``cpu_ratio`` the same for the process CPU time (at one thread
it ignores the time other processes take the core away, so it is the steadier figure on a shared
machine; at two threads it includes OpenMP's spin-waiting), ``paired_ratio`` the median of the
ratios of each plain call to the fast call next to it (load that drifts slower than two calls
cancels in it).  ``--quiet-wait S`` waits up to S
seconds before each timed call for the machine to be idle (Linux ``/proc/stat``: under 10 % busy);
``busy_calls`` counts the calls that ran without that.  ``max_abs_diff`` is the largest difference
between the two outputs (and the output's largest magnitude, for scale); ``fast_cache_mib`` the
memory the fast path's caches hold (packed weights).  Random weights (v1 UNet, VQ-f4) are drawn
with the golden fixtures' scaling (std 1/sqrt(fan_in)), so activations are O(1) and the difference
means something; timing does not depend on them.  Prints a table and writes JSON to
``benchmarks/results/networks.json`` (or ``--out``); the JSON records the torch version and the
load average at the start.

    python benchmarks/networks.py --repeats 5 --quiet-wait 60   # ~5-10 minutes on 2 cores
    python benchmarks/networks.py --threads 1 --repeats 3 --skip-vq --out /tmp/n.json

Measured (``--repeats 9 --quiet-wait 30``, torch 2.14.1, 2-core AMD EPYC VM with AVX-512; the
JSON in ``benchmarks/results``)::

    network          thr  plain ms  fast ms  ratio    cpu  paired  max|diff|  cache MiB
    v1_unet            1    1477.9   1036.6   1.43   1.42    1.46    5.2e-06      593.4
    v1_unet            2     834.3    593.5   1.41   1.42    1.44    5.2e-06      440.9
    bundled_pixel      1    3528.5   2349.5   1.50   1.50    1.54    8.6e-06       16.6
    bundled_pixel      2    2082.3   1522.0   1.37   1.36    1.37    8.6e-06       16.6
    vq_f4_decode       1    8740.1   6016.5   1.45   1.45    1.44    5.7e-06      199.7
    vq_f4_decode       2    5004.9   3932.9   1.27   1.31    1.28    5.7e-06      199.7

Ratios move between runs with the host's load, by more than the differences tuned for: on this
code the v1 UNet gave 1.43-1.59 at one thread and 1.39-1.47 at two in four runs of this script
(earlier runs on a slower, busier host: 1.36-1.55 and 1.37-1.46), the bundled pixel model
1.38-1.52 / 1.37-1.41 in three (earlier 1.39-1.71 / 1.48-1.61).  The VQ-f4 decoder went from
1.21-1.22 / 1.19-1.22 to 1.45 / 1.27 when its 256- and 512-channel convolutions (and its two
upsamplings) moved to Winograd on its default-layout activations
(``winograd.MIN_RATIO_DEFAULT_LAYOUT``); what is left at two threads is its 128-channel level at
256 x 256 (five direct convolutions, a fifth of its time), attention over 4096 tokens (PyTorch's
CPU kernel gains ~1.4x from the second thread) and the layout copies around each Winograd layer.
Where the v1 UNet's fast path spends its time (one thread, CPU ms
per forward, dispatch-level profile): Winograd products ~345 (``ctlib.nn.winograd``: the work of
27.3 GFLOP in place of 61.5 GFLOP of direct 3x3 convolutions, plus 3.2 in place of 5.6 for the
upsampling ones, at ~80 GFLOP/s), Swin matrix products ~310 (23.9 GFLOP at 80-90 GFLOP/s, about
this core's peak), Winograd transforms 100-150 (memory passes), attention ~45, GroupNorm ~25;
the plain port spends ~600 in its 3x3 convolutions alone.  The two-thread ratio is lower because
the plain port's large convolutions gain 1.9x from the second thread and the fast path 1.75x: the
Winograd transforms are memory passes that gain 1.25-1.65x, PyTorch's CPU attention kernel gains
~1.2x, and reading Winograd's larger weights sets the time of the 8 x 8 layers (so on two threads
they run direct, ``winograd.enough_tiles``).  What is left is arithmetic near the core's peak and
memory passes.  Tried and not kept: the transforms fused by ``torch.compile`` (Inductor, dynamic
shapes) run 2-4x faster on their own, cache-hot, yet made whole layers slower (160 channels at
64 x 64, one thread: 27 ms against 19) and cost 5-35 s of compilation per process; the output
transform as one matrix product with ``kron(A^T, A^T)``, the residual added band by band, and
zeroing only the padding's border: no measurable change; lower precision is outside the fixture
tolerances, and so is Winograd F(4x4, 3x3) (2.25 instead of 4 multiplications per output, but
1.3-7e-5 from a float64 convolution on single v1-sized layers in float32, for points 0, +-1, +-2
or +-1/2, against 2-2.5e-6 for F(2x2, 3x3)); ``torch.jit.trace`` of the fast path (to drop
Python's share, ~40 ms of a forward) fails on the packed weights; explicit matrix products for
attention were slower than ``scaled_dot_product_attention`` (the VQ decoder's 4096 tokens: 641
against 466 ms at one thread, 304 against 223 at two).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ctlib.files import write_json
from ctlib.nn import load_checkpoint
from ctlib.nn.configs import BUNDLED_PIXEL, V1_UNET, V1_VQF4, build_unet, build_vq
from ctlib.nn.fast import accelerate, cache_bytes

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "networks.json"
DEFAULT_CHECKPOINT = ROOT / "data" / "checkpoints" / "continuous_finetune.pt"

Case = tuple[nn.Module, Callable[[nn.Module], torch.Tensor], tuple[int, ...]]


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Overwrite every parameter like the golden fixtures do: weights N(0, 1/fan_in), biases
    N(0, 0.05^2), norm scales 1 + N(0, 0.1^2).  Keeps activations O(1) through deep stacks."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if p.ndim > 1:
                p.copy_(noise / p[0].numel() ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(0.05 * noise)
    return model


def v1_case() -> Case:
    model = randomize_(build_unet(V1_UNET)).eval()
    gen = torch.Generator().manual_seed(1)
    x, lq = torch.randn(1, 3, 64, 64, generator=gen), torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
    t = torch.full((1,), 7.0)
    return model, lambda m: m(x, t, lq=lq), tuple(x.shape)


def pixel_case(checkpoint: Path | None, batch: int, size: int) -> Case:
    if checkpoint is not None:
        model = load_checkpoint(checkpoint).model.eval()
    else:
        model = randomize_(build_unet(BUNDLED_PIXEL)).eval()
    gen = torch.Generator().manual_seed(2)
    x, lq = torch.randn(batch, 3, size, size, generator=gen), torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    t = torch.full((batch,), 7.0)
    return model, lambda m: m(x, t, lq=lq), tuple(x.shape)


def vq_decode_case() -> Case:
    model = randomize_(build_vq(V1_VQF4)).eval()
    z = torch.randn(1, model.embed_dim, 64, 64, generator=torch.Generator().manual_seed(3))
    return model, lambda m: m.decode(z), tuple(z.shape)


def count_gflop(model: nn.Module, call: Callable[[nn.Module], torch.Tensor]) -> float:
    """GFLOP of one plain call (PyTorch's FLOP counter)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        call(model)
    return counter.get_total_flops() / 1e9


def _cpu_jiffies() -> tuple[int, int] | None:
    """(total, idle) CPU jiffies of the whole machine, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields), fields[3] + fields[4]


def wait_quiet(timeout: float, busy: float = 0.1, window: float = 0.5) -> bool:
    """Wait up to ``timeout`` seconds for a ``window`` in which the machine is under ``busy`` busy;
    True when it was (always False with ``timeout <= 0`` or without ``/proc/stat``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = _cpu_jiffies()
        if before is None:
            return False
        time.sleep(window)
        after = _cpu_jiffies()
        total = after[0] - before[0]
        if total > 0 and 1 - (after[1] - before[1]) / total < busy:
            return True
    return False


def compare(name: str, case: Case, threads: list[int], repeats: int, flops: bool = True,
            quiet_wait: float = 0.0) -> list[dict]:
    """Time plain and fast interleaved at each thread count; one result per thread count."""
    plain, call, shape = case
    fast = accelerate(copy.deepcopy(plain))
    channels_last = bool(next((p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                               for p in fast.parameters() if p.ndim == 4), False))
    with torch.inference_mode():
        ref, out = call(plain), call(fast)
    diff, scale = float((ref - out).abs().max()), float(ref.abs().max())
    gflop = round(count_gflop(plain, call), 2) if flops else None
    results = []
    for n in threads:
        torch.set_num_threads(n)
        times: dict[str, list[float]] = {"plain": [], "fast": []}
        cpu: dict[str, list[float]] = {"plain": [], "fast": []}
        busy_calls = 0
        with torch.inference_mode():
            call(plain), call(fast)  # warm-up at this thread count
            for r in range(repeats):
                order = ("plain", "fast") if r % 2 == 0 else ("fast", "plain")
                for which in order:
                    model = plain if which == "plain" else fast
                    busy_calls += not wait_quiet(quiet_wait)
                    start, start_cpu = time.perf_counter(), time.process_time()
                    call(model)
                    times[which].append(time.perf_counter() - start)
                    cpu[which].append(time.process_time() - start_cpu)
        med = {k: statistics.median(v) for k, v in times.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        results.append({
            "name": name,
            "threads": n,
            "parameters": sum(p.numel() for p in plain.parameters()),
            "input": list(shape),
            "gflop": gflop,
            "plain_ms": round(1000 * med["plain"], 1),
            "fast_ms": round(1000 * med["fast"], 1),
            "ratio": round(med["plain"] / med["fast"], 3),
            "plain_cpu_ms": round(1000 * med_cpu["plain"], 1),
            "fast_cpu_ms": round(1000 * med_cpu["fast"], 1),
            "cpu_ratio": round(med_cpu["plain"] / med_cpu["fast"], 3),
            "paired_ratio": round(statistics.median(p / f for p, f in zip(times["plain"], times["fast"])), 3),
            "plain_all_ms": [round(1000 * t, 1) for t in times["plain"]],
            "fast_all_ms": [round(1000 * t, 1) for t in times["fast"]],
            "busy_calls": busy_calls,
            "max_abs_diff": diff,
            "max_abs_output": scale,
            "fast_channels_last": channels_last,
            "fast_cache_mib": round(cache_bytes(fast) / 2**20, 1),
        })
        c = results[-1]
        print(f"  {name} @ {n} thread(s): plain {c['plain_ms']:.1f} ms, fast {c['fast_ms']:.1f} ms, ratio {c['ratio']:.2f}"
              f" (CPU time {c['cpu_ratio']:.2f}, paired {c['paired_ratio']:.2f}, {busy_calls} of {2 * repeats} calls"
              f" on a busy machine)", flush=True)
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU thread counts (default 1 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per variant and thread count")
    parser.add_argument("--bundled-batch", type=int, default=8)
    parser.add_argument("--bundled-size", type=int, default=256)
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT),
                        help="pixel model checkpoint ('none': random BUNDLED_PIXEL weights)")
    parser.add_argument("--skip-v1", action="store_true", help="skip the 118M-parameter v1 UNet")
    parser.add_argument("--skip-vq", action="store_true", help="skip the VQ-f4 decoder")
    parser.add_argument("--skip-pixel", action="store_true", help="skip the bundled pixel model")
    parser.add_argument("--quiet-wait", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds before each timed call for an idle machine (default 0: no wait)")
    args = parser.parse_args(argv)
    if min(args.threads) < 1 or args.repeats < 1 or args.quiet_wait < 0:
        parser.error("--threads and --repeats must be >= 1, --quiet-wait >= 0")

    torch.manual_seed(0)
    report: dict[str, Any] = {
        "device": "cpu",
        "dtype": "float32",
        "threads": args.threads,
        "repeats": args.repeats,
        "quiet_wait_s": args.quiet_wait,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "results": [],
    }
    cases = report["results"]
    print(f"CPU float32, torch {torch.__version__}, threads {args.threads}, median of {args.repeats} interleaved calls")
    wait = args.quiet_wait
    if not args.skip_v1:
        cases += compare("v1_unet", v1_case(), args.threads, args.repeats, quiet_wait=wait)
    if not args.skip_pixel:
        ckpt = None if args.checkpoint.lower() == "none" else Path(args.checkpoint)
        cases += compare("bundled_pixel", pixel_case(ckpt, args.bundled_batch, args.bundled_size), args.threads,
                         args.repeats, quiet_wait=wait)
    if not args.skip_vq:
        cases += compare("vq_f4_decode", vq_decode_case(), args.threads, args.repeats, quiet_wait=wait)

    print(f"{'network':16s} {'thr':>3s} {'params':>12s} {'input':>12s} {'GFLOP':>7s} {'plain ms':>9s} {'fast ms':>9s}"
          f" {'ratio':>6s} {'cpu':>6s} {'paired':>6s} {'max|diff|':>9s} {'cache MiB':>9s}")
    for c in cases:
        shape = "x".join(str(v) for v in c["input"])
        gflop = f"{c['gflop']:7.1f}" if c["gflop"] is not None else f"{'-':>7s}"
        print(f"{c['name']:16s} {c['threads']:3d} {c['parameters']:12,d} {shape:>12s} {gflop} {c['plain_ms']:9.1f}"
              f" {c['fast_ms']:9.1f} {c['ratio']:6.2f} {c['cpu_ratio']:6.2f} {c['paired_ratio']:6.2f} {c['max_abs_diff']:9.1e}"
              f" {c['fast_cache_mib']:9.1f}")
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
