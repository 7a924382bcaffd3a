r"""What a table of :mod:`ctlib.evaluate` concludes about the report's claims.

Everything here reads the table dictionary (``evaluate.load_table``: rows with ``key``, ``label``,
``group``, ``model``, ``solver``, ``nfe``, ``rho``, ``status`` and per-metric ``mean``) and computes,
never types, the numbers that notebook 06 states:

* :func:`matching_nfe`: per solver series, the smallest nfe at which it reaches the baseline's
  nfe-15 value of a metric (PSNR-Y, SSIM-Y, HaarPSI);
* :func:`cheapest_match`: the cheapest setting within a tolerance of the best nfe-15 row (what the
  ``upscale`` command's defaults follow);
* :func:`claims`: the report's four claims, each with the evidence in numbers and a verdict
  (``confirmed`` / ``contradicted`` / ``mixed`` / ``cannot decide``) and the metrics it rests on.

Directions are read on the distortion metrics the kit can always compute (PSNR-Y, SSIM-Y, HaarPSI);
LPIPS, the report's headline metric, decides where its weights are installed (``ctlib.metrics``)
and is reported as unavailable otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["DIRECTION_METRICS", "BASELINE_KEY", "matching_nfe", "cheapest_match", "claims", "claims_markdown"]

#: the metrics every direction is read on (higher is better for all three)
DIRECTION_METRICS: tuple[str, ...] = ("psnr_y", "ssim_y", "haarpsi")
METRIC_TITLES = {"psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "haarpsi": "HaarPSI", "lpips": "LPIPS"}
#: the discrete model with the official sampler at nfe = T: the report's "Baseline"
BASELINE_KEY = "baseline-resshift-nfe15"


def _ok(table: dict) -> list[dict]:
    return [r for r in table["rows"] if r["status"] == "ok"]


def _mean(row: dict, metric: str) -> float:
    v = row["mean"].get(metric)
    return math.nan if v is None else float(v)


def _row(table: dict, key: str) -> dict | None:
    return next((r for r in _ok(table) if r["key"] == key), None)


def _find(table: dict, solver: str, rho: float, nfe: int = 15, model: str = "continuous") -> dict | None:
    return next((r for r in _ok(table) if (r["model"], r["solver"], r["nfe"]) == (model, solver, nfe)
                 and r["rho"] is not None and float(r["rho"]) == float(rho)), None)


def _series_name(row: dict) -> str:
    if row["solver"] == "exp1_levels":
        return "baseline exp1 on trained levels"
    return f"{row['solver']} rho {float(row['rho']):g}" if row["rho"] is not None else row["solver"]


def matching_nfe(table: dict, metrics: Sequence[str] = DIRECTION_METRICS) -> dict[str, dict[str, int | None]]:
    """``{series: {metric: nfe}}``: for every solver series with rows at several nfe (the few-step
    sweep plus its nfe-15 row), the smallest nfe whose mean reaches the baseline's nfe-15 mean (None:
    never, up to 15)."""
    base = _row(table, BASELINE_KEY)
    if base is None:
        raise ValueError(f"the table has no {BASELINE_KEY!r} row")
    rows = [r for r in _ok(table) if r["model"] in ("continuous", "baseline") and r["solver"] not in
            ("resshift", "x0_hat", "bicubic")]
    series: dict[tuple, list[dict]] = {}
    for r in rows:
        series.setdefault((r["model"], r["solver"], r["rho"]), []).append(r)
    out = {}
    for members in series.values():
        if len({r["nfe"] for r in members}) < 2:
            continue
        name = _series_name(members[0])
        out[name] = {}
        for m in metrics:
            target = _mean(base, m)
            hits = [r["nfe"] for r in members if _mean(r, m) >= target]
            out[name][m] = min(hits) if hits else None
    return out


def cheapest_match(table: dict, psnr_tol: float = 0.05, ssim_tol: float = 0.002) -> dict[str, Any]:
    """The continuous row with the fewest evaluations whose PSNR-Y is at most ``psnr_tol`` dB and SSIM-Y
    at most ``ssim_tol`` below the best nfe-15 row's (``table["best"]``); ties go to the higher PSNR-Y."""
    best = _row(table, table["best"]["key"])
    if best is None:
        raise ValueError("the table's best row is missing or failed")
    ok = [r for r in _ok(table) if r["model"] == "continuous" and r["solver"] not in ("x0_hat",)
          and _mean(r, "psnr_y") >= _mean(best, "psnr_y") - psnr_tol
          and _mean(r, "ssim_y") >= _mean(best, "ssim_y") - ssim_tol]
    pick = min(ok, key=lambda r: (r["nfe"], -_mean(r, "psnr_y")))
    return {"solver": pick["solver"], "rho": None if pick["rho"] is None else float(pick["rho"]), "nfe": int(pick["nfe"]), "label": pick["label"],
            "psnr_y": _mean(pick, "psnr_y"), "ssim_y": _mean(pick, "ssim_y"), "best_label": best["label"],
            "best_psnr_y": _mean(best, "psnr_y"), "best_ssim_y": _mean(best, "ssim_y")}


def _signs(a: dict, b: dict, metrics: Sequence[str]) -> dict[str, float]:
    """``metric -> mean(a) - mean(b)``."""
    return {m: _mean(a, m) - _mean(b, m) for m in metrics}


def _verdict(votes: Sequence[bool]) -> str:
    if not votes:
        return "cannot decide"
    if all(votes):
        return "confirmed"
    if not any(votes):
        return "contradicted"
    return "mixed"


def _fmt(d: dict[str, float]) -> str:
    return ", ".join(f"{METRIC_TITLES[m]} {v:+.3f}" if m != "psnr_y" else f"{METRIC_TITLES[m]} {v:+.2f} dB"
                     for m, v in d.items())


def claims(table: dict, metrics: Sequence[str] = DIRECTION_METRICS) -> list[dict[str, Any]]:
    """The report's claims, each ``{"claim", "evidence", "verdict", "metrics", "lpips"}``.

    1. the continuous model at nfe = 15 is at least as good as the discrete sampler: every Euler / Heun
       row against the baseline;
    2. putting the steps near the noisy start (negative rho) helps: rho = -8 against rho = 1, Euler and
       Heun;
    3. Heun is not better than Euler at the same budget (the report's Heun rows are below its Euler
       rows): Heun against Euler at each rho;
    4. fewer evaluations suffice: the smallest nfe at which a continuous solver reaches the baseline's
       nfe-15 value, on every metric.
    """
    base = _row(table, BASELINE_KEY)
    if base is None:
        raise ValueError(f"the table has no {BASELINE_KEY!r} row")
    lpips_ok = not math.isnan(_mean(base, "lpips"))
    rhos = (1.0, 4.0, 8.0, -4.0, -8.0)
    out = []

    rows = [r for s in ("euler", "heun") for rho in rhos if (r := _find(table, s, rho)) is not None]
    votes = [_mean(r, m) >= _mean(base, m) for r in rows for m in metrics]
    worst = {m: min(_mean(r, m) - _mean(base, m) for r in rows) for m in metrics} if rows else {}
    out.append({"claim": "the continuous model with Euler/Heun at nfe 15 is at least as good as the discrete "
                         "ResShift sampler",
                "evidence": f"{sum(votes)} of {len(votes)} row-metric pairs at or above the baseline; smallest "
                            f"margins: {_fmt(worst)}" if rows else "no rows",
                "verdict": _verdict(votes), "metrics": list(metrics)})

    votes, ev = [], []
    for s in ("euler", "heun"):
        a, b = _find(table, s, -8.0), _find(table, s, 1.0)
        if a is None or b is None:
            continue
        d = _signs(a, b, metrics)
        votes += [v > 0 for v in d.values()]
        ev.append(f"{s} rho -8 vs 1: {_fmt(d)}")
    out.append({"claim": "a negative rho (steps packed near the noisy start) helps at nfe 15",
                "evidence": "; ".join(ev) or "no rows", "verdict": _verdict(votes), "metrics": list(metrics)})

    votes, ev = [], []
    for rho in rhos:
        a, b = _find(table, "heun", rho), _find(table, "euler", rho)
        if a is None or b is None:
            continue
        d = _signs(a, b, metrics)
        votes += [v <= 0 for v in d.values()]
        ev.append(f"rho {rho:g}: {_fmt(d)}")
    out.append({"claim": "Heun is not better than Euler at the same budget (nfe 15)",
                "evidence": "Heun - Euler, " + "; ".join(ev) if ev else "no rows", "verdict": _verdict(votes),
                "metrics": list(metrics)})

    match = matching_nfe(table, metrics)
    cont = {name: v for name, v in match.items() if not name.startswith("baseline")}
    fewest = {m: min((v[m] for v in cont.values() if v[m] is not None), default=None) for m in metrics}
    votes = [n is not None and n < 15 for n in fewest.values()]
    out.append({"claim": "fewer than 15 evaluations reach the baseline's nfe-15 quality",
                "evidence": ", ".join(f"{METRIC_TITLES[m]} at nfe {n if n is not None else '> 15'}"
                                      for m, n in fewest.items()) + " (best continuous series)",
                "verdict": _verdict(votes), "metrics": list(metrics)})
    for c in out:
        c["lpips"] = "computed" if lpips_ok else "unavailable (the report's deciding metric: install its weights)"
    return out


def claims_markdown(table: dict) -> str:
    """:func:`claims` as a Markdown table."""
    lines = ["| the report's claim | evidence (this table) | verdict | metrics | LPIPS |", "|---|---|---|---|---|"]
    for c in claims(table):
        lines.append(f"| {c['claim']} | {c['evidence']} | **{c['verdict']}** | "
                     f"{', '.join(METRIC_TITLES[m] for m in c['metrics'])} | {c['lpips']} |")
    return "\n".join(lines)
