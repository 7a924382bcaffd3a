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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .files import from_json_value

__all__ = ["DIRECTION_METRICS", "BASELINE_KEY", "REPORT_RHOS", "REPORT_TABLE1", "compare_with_report", "rho_effects", "matching_nfe", "cheapest_match", "claims", "claims_markdown"]

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


# ---------------------------------------------------------------------------------------------
# the report's Table 1 beside ours
# ---------------------------------------------------------------------------------------------
#: The rho values of the report's Table 1.
REPORT_RHOS: tuple[float, ...] = (1.0, 4.0, 8.0, -4.0, -8.0)


#: The report's Table 1 (nfe = 15) as printed: LPIPS is piq's VGG LPIPS, "SSIM" is piq's SSIMLoss = 1 - SSIM
#: (erratum 3), PSNR is on RGB (erratum 4); 1000 ImageNet images of 256 x 256, bicubic x4 LR, latent VQ-f4 model.
REPORT_TABLE1: tuple[dict[str, Any], ...] = (
    {"solver": "resshift", "rho": None, "lpips_vgg_piq": 0.376, "ssim_loss_piq": 0.428, "psnr_rgb_piq": 20.36},
    {"solver": "euler", "rho": 1.0, "lpips_vgg_piq": 0.364, "ssim_loss_piq": 0.457, "psnr_rgb_piq": 20.29},
    {"solver": "euler", "rho": 4.0, "lpips_vgg_piq": 0.363, "ssim_loss_piq": 0.451, "psnr_rgb_piq": 20.45},
    {"solver": "euler", "rho": 8.0, "lpips_vgg_piq": 0.362, "ssim_loss_piq": 0.449, "psnr_rgb_piq": 20.50},
    {"solver": "euler", "rho": -4.0, "lpips_vgg_piq": 0.362, "ssim_loss_piq": 0.453, "psnr_rgb_piq": 20.33},
    {"solver": "euler", "rho": -8.0, "lpips_vgg_piq": 0.361, "ssim_loss_piq": 0.453, "psnr_rgb_piq": 20.35},
    {"solver": "heun", "rho": 1.0, "lpips_vgg_piq": 0.375, "ssim_loss_piq": 0.473, "psnr_rgb_piq": 19.93},
    {"solver": "heun", "rho": 4.0, "lpips_vgg_piq": 0.374, "ssim_loss_piq": 0.472, "psnr_rgb_piq": 19.53},
    {"solver": "heun", "rho": 8.0, "lpips_vgg_piq": 0.374, "ssim_loss_piq": 0.472, "psnr_rgb_piq": 19.96},
    {"solver": "heun", "rho": -4.0, "lpips_vgg_piq": 0.365, "ssim_loss_piq": 0.462, "psnr_rgb_piq": 20.10},
    {"solver": "heun", "rho": -8.0, "lpips_vgg_piq": 0.364, "ssim_loss_piq": 0.459, "psnr_rgb_piq": 20.13},
)


def compare_with_report(table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Our rows beside the report's Table 1, both in the report's conventions with erratum 3 undone
    (SSIM = 1 - SSIMLoss): per row the report's and our PSNR-RGB (piq), SSIM (piq) and LPIPS-VGG (piq),
    and for each metric whether the change against the baseline has the same sign in both
    (``agree_*``: True / False, None when a value is missing)."""
    rows = {(r["solver"], r["rho"]): r for r in table["rows"] if r["group"] == "table" and r["status"] == "ok"}
    ours_base = rows.get(("resshift", None))
    rep_base = REPORT_TABLE1[0]

    def ours(r: Mapping[str, Any] | None, key: str) -> float:
        if r is None:
            return math.nan
        v = from_json_value(r["mean"].get(key))
        return 1.0 - v if key == "ssim_loss_piq" else v

    out = []
    for rep in REPORT_TABLE1:
        mine = rows.get((rep["solver"], rep["rho"]))
        entry: dict[str, Any] = {
            "label": "Baseline" if rep["solver"] == "resshift" else f"{rep['solver'].capitalize()} rho {rep['rho']:g}",
            "report_psnr_rgb": rep["psnr_rgb_piq"], "report_ssim": round(1.0 - rep["ssim_loss_piq"], 3),
            "report_lpips_vgg": rep["lpips_vgg_piq"],
            "ours_psnr_rgb": ours(mine, "psnr_rgb_piq"), "ours_ssim": ours(mine, "ssim_loss_piq"),
            "ours_lpips_vgg": ours(mine, "lpips_vgg_piq"),
        }
        for name, key, rep_key in (("psnr_rgb", "psnr_rgb_piq", "psnr_rgb_piq"), ("ssim", "ssim_loss_piq", "ssim_loss_piq"),
                                   ("lpips_vgg", "lpips_vgg_piq", "lpips_vgg_piq")):
            if rep["solver"] == "resshift":
                entry[f"agree_{name}"] = None
                continue
            d_rep = rep[rep_key] - rep_base[rep_key]
            d_ours = ours(mine, key) - ours(ours_base, key)
            if key == "ssim_loss_piq":
                d_rep = -d_rep  # compare SSIM, not the loss
            if math.isnan(d_ours) or d_rep == 0:
                entry[f"agree_{name}"] = None
            else:
                entry[f"agree_{name}"] = bool(np.sign(d_rep) == np.sign(d_ours))
        out.append(entry)
    return out


def rho_effects(table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the time grid does within each solver: for Euler and Heun, the change of PSNR-RGB (piq),
    SSIM (= 1 - SSIMLoss) and LPIPS-VGG (piq) from rho = 1 to each other rho, in the report's Table 1
    and in ours, and whether the two changes have the same sign (``agree_*``; None when missing)."""
    ours = {(r["solver"], r["rho"]): r for r in table["rows"] if r["group"] == "table" and r["status"] == "ok"}
    report = {(r["solver"], r["rho"]): r for r in REPORT_TABLE1}

    def value(row: Mapping[str, Any] | None, key: str, from_report: bool) -> float:
        if row is None:
            return math.nan
        v = row[key] if from_report else from_json_value(row["mean"].get(key))
        v = math.nan if v is None else float(v)
        return 1.0 - v if key == "ssim_loss_piq" else v

    out = []
    for solver in ("euler", "heun"):
        for rho in REPORT_RHOS[1:]:
            entry: dict[str, Any] = {"solver": solver, "rho": rho, "label": f"{solver.capitalize()} rho {rho:g} vs rho 1"}
            for name, key in (("psnr_rgb", "psnr_rgb_piq"), ("ssim", "ssim_loss_piq"), ("lpips_vgg", "lpips_vgg_piq")):
                d_rep = value(report.get((solver, rho)), key, True) - value(report.get((solver, 1.0)), key, True)
                d_ours = value(ours.get((solver, rho)), key, False) - value(ours.get((solver, 1.0)), key, False)
                entry[f"report_{name}"] = d_rep
                entry[f"ours_{name}"] = d_ours
                entry[f"agree_{name}"] = (None if math.isnan(d_ours) or math.isnan(d_rep) or d_rep == 0
                                          else bool(np.sign(d_rep) == np.sign(d_ours)))
            out.append(entry)
    return out

