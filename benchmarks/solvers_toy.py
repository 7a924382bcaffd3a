"""Solver accuracy on the exactly solvable toy: every solver x rho x nfe against the exact PF-ODE.

For each schedule (the official ``ResShiftSchedule()`` and the report's ``ExpAlphaSchedule.report()``)
the toy is ``GaussianMixtureToy.demo(schedule, d)`` (three components, d = 2 by default) and:

* ``rel_err``       ||x_solver(0) - x_exact(0)|| / ||x_exact(0)|| over a batch of ``--n`` starts drawn
                    from the samplers' prior (same start for both); deterministic solvers only;
* ``rel_err_last``  the same at the last grid point before 0 (final step excluded: the step into 0
                    always starts from that point, so its error does not shrink with nfe);
* ``w1``            mean over coordinates of the 1-D Wasserstein distance between the samples and the
                    true law of x0, from ``--n-dist`` starts drawn from the *true* marginal at t = 1 (so
                    the exact flow would reach the law of x0; ``w1_exact_flow`` is that finite-sample
                    floor); every solver, the stochastic ones included;
* ``orders``        minus the slope of log error against log nfe over nfe in [10, 50]
                    (``ctlib.solver_accuracy.empirical_order``; Heun: the even nfe only, which all spend
                    one extra Euler step);
* ``variants``      ``rel_err`` of the exponential integrators with the other final step
                    (``solver/euler_eta``, :mod:`ctlib.solver_accuracy`);
* ``goal``          per schedule: the best variant and rho at nfe = 5, 10, 15 against Euler (rho 1) at
                    nfe = 15 (``ctlib.solver_accuracy.goal_table``; goals 0.5x, 0.1x, 0.03x);
* ``log_eta_probe`` the same ratios for exp3m in log eta on a grid uniform in log eta, which is not
                    one of the report's grids: how much of the distance to the goals is the grid's.

Writes JSON (``--out``, default ``benchmarks/results/solvers_toy.json``), a log-log plot of the
errors (``--plot``, default next to the JSON, ``.png``) and a W1 plot (``*_w1.png``), and prints
summary tables.  About a minute on 2 CPU cores with the defaults; ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ctlib.files import REPO_ROOT, write_json
from ctlib.samplers import (
    SOLVERS,
    STOCHASTIC_SOLVERS,
    heun_euler_step,
    min_nfe,
    sample,
    sample_euler,
    sample_exp1,
    sample_exp2m,
    sample_exp3m,
    sample_heun,
    solver_grid,
)
from ctlib.schedule import ExpAlphaSchedule, ResShiftSchedule
from ctlib.solver_accuracy import (
    GOALS,
    ODE_SOLVERS,
    empirical_order,
    error_rows,
    goal_table,
    log_eta_probe,
    variants,
)
from ctlib.toy import GaussianMixtureToy
from ctlib.train import make_schedule

RHOS = (1.0, 4.0, 8.0, -4.0, -8.0)
NFES = (3, 4, 5, 6, 8, 10, 15, 20, 30, 50)
ODE = ODE_SOLVERS
RUN_TO_LAST = {"euler": sample_euler, "heun": sample_heun, "exp1": sample_exp1, "exp2m": sample_exp2m,
               "exp2m_sqrt": partial(sample_exp2m, variable="sqrt_eta"), "exp3m": sample_exp3m}
SCHEDULES = {"official": ResShiftSchedule, "fit": lambda: make_schedule("fit"), "report": ExpAlphaSchedule.report}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _order(nfes, errs) -> float | None:
    pts = [(n, e) for n, e in zip(nfes, errs) if e is not None and e > 0]
    if len(pts) < 2:
        return None
    n, e = np.array(pts).T
    return empirical_order(n, e)


def run_schedule(name: str, args) -> dict:
    schedule = SCHEDULES[name]()
    toy = GaussianMixtureToy.demo(schedule, d=args.dim, seed=args.seed)
    T = schedule.T
    x_T = toy.prior_sample(args.n, torch.Generator().manual_seed(args.seed))
    y = toy.y_batch(args.n)
    x_1 = toy.sample_xt(args.n_dist, 1.0, torch.Generator().manual_seed(args.seed + 1))
    y_dist = toy.y_batch(args.n_dist)

    # exact solutions: at 0 and at every "last grid point" any run will stop at
    t_last = sorted({float(solver_grid(s, nfe, rho, T)[-2]) for s in ODE for rho in args.rhos for nfe in args.nfes
                     if nfe >= min_nfe(s, T)}, reverse=True)
    exact = toy.exact_ode(x_T, t_eval=[*t_last, 0.0])
    exact_at = dict(zip(t_last, exact[:-1]))
    exact_0 = exact[-1]
    w1_exact_flow = toy.wasserstein1(toy.exact_ode(x_1))
    w1_iid = toy.wasserstein1(toy.sample_x0(args.n_dist, torch.Generator().manual_seed(args.seed + 2)))

    rows = []
    for solver in SOLVERS:
        configs = [(None, T)] if solver == "resshift" else [(r, n) for r in args.rhos for n in args.nfes]
        for rho, nfe in configs:
            if nfe < min_nfe(solver, T):
                continue
            r = 1.0 if rho is None else rho
            gen = torch.Generator().manual_seed(args.seed + 3)
            row = {"schedule": name, "solver": solver, "rho": rho, "nfe": nfe}
            if solver in STOCHASTIC_SOLVERS:
                row["rel_err"] = row["rel_err_last"] = None
            else:
                row["rel_err"] = _rel(sample(toy.denoiser, y, schedule=schedule, solver=solver, nfe=nfe, rho=r,
                                             x_T=x_T), exact_0)
                ts = solver_grid(solver, nfe, r, T)
                kw = {"euler_step": None if nfe % 2 else heun_euler_step(ts)} if solver == "heun" else {}
                last = RUN_TO_LAST[solver](toy.denoiser, x_T, y, ts[:-1], schedule=schedule, **kw)
                row["t_last"] = float(ts[-2])
                row["rel_err_last"] = _rel(last, exact_at[float(ts[-2])])
            out = sample(toy.denoiser, y_dist, schedule=schedule, solver=solver, nfe=nfe, rho=r, x_T=x_1,
                         generator=gen)
            row["w1"] = toy.wasserstein1(out)
            rows.append(row)

    orders = []
    for solver in ODE:
        for rho in args.rhos:
            sel = [row for row in rows if row["solver"] == solver and row["rho"] == rho and 10 <= row["nfe"] <= 50
                   and (solver != "heun" or row["nfe"] % 2 == 0)]
            nf = [row["nfe"] for row in sel]
            orders.append({"schedule": name, "solver": solver, "rho": rho, "nfe": nf,
                           "order_last": _order(nf, [row["rel_err_last"] for row in sel]),
                           "order_full": _order(nf, [row["rel_err"] for row in sel])})

    extra = [v for v in variants() if "/" in v]
    variant_rows = error_rows(toy, extra, args.rhos, args.nfes, n=args.n, seed=args.seed)
    all_rel = [{"variant": r["solver"], "rho": r["rho"], "nfe": r["nfe"], "rel_err": r["rel_err"]} for r in rows
               if r["rel_err"] is not None] + variant_rows
    goal = goal_table(all_rel, GOALS)
    probe = log_eta_probe(toy, sorted(GOALS), n=args.n, seed=args.seed)
    return {"rows": rows, "variants": variant_rows, "orders": orders, "goal": goal, "log_eta_probe": probe,
            "w1_exact_flow": w1_exact_flow, "w1_iid_samples": w1_iid, "toy": {
                "means": toy.means.tolist(), "stds": toy.stds.tolist(), "weights": toy.weights.tolist(),
                "y": toy.y.tolist(), "schedule": schedule.to_dict()}}


def plot(results: dict, path: Path, key: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = list(results["schedules"])
    rhos = results["config"]["rhos"]
    fig, axes = plt.subplots(len(names), len(rhos), figsize=(3.2 * len(rhos), 3.0 * len(names)),
                             sharex=True, sharey=True, squeeze=False)
    solvers = ODE if key == "rel_err" else SOLVERS
    for i, name in enumerate(names):
        rows = results["schedules"][name]["rows"]
        for j, rho in enumerate(rhos):
            ax = axes[i, j]
            for k, solver in enumerate(solvers):
                sel = [row for row in rows if row["solver"] == solver and row["rho"] in (rho, None)]
                sel = [row for row in sel if row[key] is not None]
                if not sel:
                    continue
                nf = [row["nfe"] for row in sel]
                style = {"color": f"C{k}", "marker": "o", "ms": 3}
                if len(sel) == 1:
                    ax.loglog(nf, [sel[0][key]], ls="none", label=solver, **style)
                    continue
                ax.loglog(nf, [row[key] for row in sel], label=solver, **style)
                if key == "rel_err":
                    ax.loglog(nf, [row["rel_err_last"] for row in sel], ls="--", lw=0.8, color=f"C{k}")
            if key == "w1":
                ax.axhline(results["schedules"][name]["w1_exact_flow"], color="k", lw=0.7, ls=":")
            else:  # the goals: error allowed at nfe 5, 10, 15 (any solver, any rho)
                goals = results["schedules"][name]["goal"]
                ax.plot([g["nfe"] for g in goals], [g["goal"] * g["reference_err"] for g in goals], "kv", ms=6,
                        label="goal")
            ax.set_xticks([3, 5, 10, 20, 50])
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_title(f"{name}, rho = {rho:g}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            if i == len(names) - 1:
                ax.set_xlabel("nfe")
        axes[i, 0].set_ylabel("relative error" if key == "rel_err" else "W1 to p(x0)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("solid: final sample (t = 0); dashed: last grid point before 0" if key == "rel_err"
                 else "W1 from the true marginal at t = 1 (dotted: exact flow, finite-sample floor)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_summary(results: dict) -> None:
    nfes = results["config"]["nfes"]
    for name, res in results["schedules"].items():
        print(f"\n== {name} schedule: relative error at t = 0 (deterministic) / W1 (stochastic)")
        print(f"{'solver':>15} {'rho':>5} " + " ".join(f"{n:>8}" for n in nfes))
        for solver in SOLVERS:
            for rho in ([None] if solver == "resshift" else results["config"]["rhos"]):
                cells = []
                for n in nfes:
                    row = next((r for r in res["rows"] if r["solver"] == solver and r["rho"] == rho and r["nfe"] == n),
                               None)
                    val = None if row is None else (row["w1"] if solver in STOCHASTIC_SOLVERS else row["rel_err"])
                    cells.append(f"{val:8.2e}" if val is not None else f"{'-':>8}")
                print(f"{solver:>15} {'-' if rho is None else f'{rho:g}':>5} " + " ".join(cells))
        print(f"W1 floor (exact flow, n = {results['config']['n_dist']}): {res['w1_exact_flow']:.3e}")
        print("orders (nfe 10..50): at the last grid point / at t = 0")
        for o in res["orders"]:
            fmt = lambda v: "  n/a" if v is None else f"{v:5.2f}"  # noqa: E731
            print(f"  {o['solver']:>6} rho {o['rho']:>4g}: {fmt(o['order_last'])} / {fmt(o['order_full'])}")
        print("goals (best variant and rho against Euler rho 1 at nfe 15):")
        for g in res["goal"]:
            print(f"  nfe {g['nfe']:>2}: {g['best']:>16} rho {g['rho']:>3g}  {g['rel_err']:.3e} = {g['ratio']:.3f}x "
                  f"(goal {g['goal']}x) -> {'met' if g['met'] else 'not met'}")
        print("  the grid's share: exp3m in log eta on a grid uniform in log eta (not a report grid): "
              + ", ".join(f"nfe {p['nfe']} {p['ratio']:.3f}x" for p in res["log_eta_probe"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "solvers_toy.json")
    ap.add_argument("--plot", type=Path, default=None, help="PNG path (default: --out with .png)")
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--n", type=int, default=64, help="starts for the error against the exact ODE")
    ap.add_argument("--n-dist", type=int, default=4000, help="starts for the W1 distance")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--schedules", default="official,fit,report")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (small tensors: 1 is fastest)")
    ap.add_argument("--quick", action="store_true", help="rho 1 and -4, nfe 5/10/15, small batches")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.rhos, args.nfes = (list(RHOS), list(NFES)) if not args.quick else ([1.0, -4.0], [5, 10, 15])
    if args.quick:
        args.n, args.n_dist = min(args.n, 16), min(args.n_dist, 500)
    start = time.perf_counter()
    results = {"config": {"dim": args.dim, "n": args.n, "n_dist": args.n_dist, "seed": args.seed,
                          "rhos": args.rhos, "nfes": args.nfes, "torch": torch.__version__},
               "schedules": {name: run_schedule(name, args) for name in args.schedules.split(",")}}
    results["runtime_s"] = time.perf_counter() - start
    write_json(args.out, results, indent=1)
    png = args.plot or args.out.with_suffix(".png")
    plot(results, png, "rel_err")
    plot(results, png.with_name(png.stem + "_w1.png"), "w1")
    print_summary(results)
    print(f"\nwrote {args.out}, {png} and {png.with_name(png.stem + '_w1.png')} in {results['runtime_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
