"""Sampler overhead: the share of sampling time spent outside the denoiser.

The denoiser is the bundled-profile network (``ctlib.nn.BUNDLED_PIXEL``: the kit's pixel-space
Swin-UNet, 1.6 M parameters, random weights; the timing does not depend on the values) wrapped by
``ctlib.nn.ResShiftDenoiser`` (``lq="upsampled"``), on a batch of 8 LR images of 64 x 64 (states
8 x 3 x 256 x 256), float32, CPU.  For every solver the script times ``ctlib.sample`` end to end and
the time spent inside the denoiser calls; the overhead is ``(total - denoiser) / total``.  It also
times each solver with a free denoiser (``x0_hat = y``) on the same tensors (the median of
``--free-repeats`` runs, 7 by default: a single run of a few milliseconds is at the mercy of a busy
machine), which gives the sampler's own cost per step in milliseconds, independent of the network.

If ``ctlib.nn`` cannot be imported, a stand-in of similar cost is used (five 3x3 convolutions of
64 channels at full resolution) and the JSON says so.

Writes ``benchmarks/results/sampler_overhead.json`` (or ``--out``) and prints a table.  The default
run makes 15 + 7 x 15 = 120 network calls: about 2 minutes on 2 idle CPU cores (~0.9 s per call),
much longer on a busy machine; ``--nfe 5`` (the overhead is per step) makes 50, ``--quick`` uses a
batch of 2 at 64 x 64 and nfe = 5.

Measured (torch 2.14.1, 2 threads, ``--nfe 5``, on a shared 2-core machine whose load changed from
minute to minute), with the solvers calling the named formulas of docs/maths.md (``pf_drift``,
``pf_exact_step``, ...): in three runs the network took 1.6-14 s per call and the overhead was
0.43-1.79 % (the JSON: 0.43-0.61 % for the solvers timed at ~1.7 s per call, up to 1.79 % for exp3m
while other jobs competed for memory bandwidth); two runs of the earlier solvers, which applied
pre-collected float64 coefficients, gave 0.20-0.81 % in the same session.  On its own (free
denoiser, medians of 7 runs interleaved with the earlier code's, 2 threads) the sampler costs
5.5-8.2 ms per step for the ODE solvers (3.0-3.9 ms with the earlier solvers) and 8.9 / 10.7 ms for
resshift / euler_maruyama (7.5 / 7.7 ms; the draw of 1.6 M Gaussian numbers adds about 4.5 ms),
i.e. 0.6-0.9 % and 1.0-1.2 % of the ~0.9 s a call takes on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from ctlib.samplers import SOLVERS, sample
from ctlib.schedule import ResShiftSchedule


class _StandIn(torch.nn.Module):
    def __init__(self, width: int = 64) -> None:
        super().__init__()
        layers = [torch.nn.Conv2d(6, width, 3, padding=1)]
        for _ in range(3):
            layers += [torch.nn.SiLU(), torch.nn.Conv2d(width, width, 3, padding=1)]
        layers += [torch.nn.SiLU(), torch.nn.Conv2d(width, 3, 3, padding=1)]
        self.body = torch.nn.Sequential(*layers)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([x_t, y], dim=1))


def build_denoiser(batch: int, lr_side: int, schedule, seed: int):
    """(denoiser, y, description): the bundled network if ctlib.nn is there, else the stand-in."""
    g = torch.Generator().manual_seed(seed)
    lr = torch.rand((batch, 3, lr_side, lr_side), generator=g) * 2 - 1
    try:
        from ctlib.nn import BUNDLED_PIXEL, ResShiftDenoiser, build_unet
    except ImportError as err:  # pragma: no cover - depends on the checkout
        torch.manual_seed(seed)
        net = _StandIn().eval()
        y = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
        return net, y, f"stand-in conv net (ctlib.nn not importable: {err})"
    torch.manual_seed(seed)
    net = build_unet(BUNDLED_PIXEL).eval()
    cond = ResShiftDenoiser(net, schedule, lq="upsampled").condition(lr)
    n_params = sum(p.numel() for p in net.parameters())
    return cond, cond.y, f"ctlib.nn BUNDLED_PIXEL via ResShiftDenoiser ({n_params:,} parameters, random weights)"


def time_solver(denoiser, y, schedule, solver: str, nfe: int, seed: int) -> dict:
    inside = 0.0

    def timed(x_t, t, cond):
        nonlocal inside
        start = time.perf_counter()
        out = denoiser(x_t, t, cond)
        inside += time.perf_counter() - start
        return out

    start = time.perf_counter()
    with torch.inference_mode():
        sample(timed, y, schedule=schedule, solver=solver, nfe=nfe, rho=4.0, generator=torch.Generator().manual_seed(seed))
    total = time.perf_counter() - start
    return {"total_s": total, "denoiser_s": inside, "overhead_s": total - inside,
            "overhead_fraction": (total - inside) / total}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sampler_overhead.json")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr-side", type=int, default=64, help="LR side; the state is 4x larger")
    ap.add_argument("--nfe", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--free-repeats", type=int, default=7, help="runs with the free denoiser (median)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.lr_side, args.nfe = 2, 16, 5
    torch.set_num_threads(args.threads)
    schedule = ResShiftSchedule()
    denoiser, y, what = build_denoiser(args.batch, args.lr_side, schedule, args.seed)
    with torch.inference_mode():
        denoiser(y, torch.ones(y.shape[0]), y)  # warm-up

    rows = []
    for solver in SOLVERS:
        nfe = schedule.T if solver == "resshift" else args.nfe
        net = time_solver(denoiser, y, schedule, solver, nfe, args.seed)
        free = statistics.median(time_solver(lambda x_t, t, cond: cond, y, schedule, solver, nfe, args.seed)["total_s"]
                                 for _ in range(args.free_repeats))
        rows.append({"solver": solver, "nfe": nfe, **net, "free_denoiser_total_s": free,
                     "sampler_ms_per_step": 1e3 * free / nfe})
        print(f"{solver:>15} nfe {nfe:>2}: total {net['total_s']:7.2f} s, denoiser {net['denoiser_s']:7.2f} s, "
              f"overhead {100 * net['overhead_fraction']:6.3f} %  (sampler alone {rows[-1]['sampler_ms_per_step']:.2f} ms/step)")
    result = {"denoiser": what, "state_shape": list(y.shape), "dtype": str(y.dtype), "threads": args.threads,
              "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "rows": rows, "max_overhead_fraction": max(r["overhead_fraction"] for r in rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"denoiser: {what}; state {tuple(y.shape)}; max overhead {100 * result['max_overhead_fraction']:.3f} %")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
