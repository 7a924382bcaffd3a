"""ctlib.conclusions: verdicts, matching nfe and the cheapest setting, on tables built to a known answer."""

from __future__ import annotations

import pytest

from ctlib import conclusions as cc


def _row(model, solver, nfe, rho, psnr, ssim, haar, group="table"):
    key = f"{model}-{solver}-rho{rho}-nfe{nfe}" if solver != "resshift" else cc.BASELINE_KEY
    return {"key": key, "label": key, "group": group, "model": model, "solver": solver, "nfe": nfe,
            "rho": None if solver == "resshift" else rho, "status": "ok",
            "mean": {"psnr_y": psnr, "ssim_y": ssim, "haarpsi": haar, "lpips": None}}


def _table(heun_better=False, rho_helps=True):
    rows = [_row("baseline", "resshift", 15, None, 26.0, 0.670, 0.730)]
    for rho in (1.0, 4.0, 8.0, -4.0, -8.0):
        bonus = 0.3 if (rho < 0 and rho_helps) else (0.0 if rho_helps else 0.3 * (rho > 0))
        rows.append(_row("continuous", "euler", 15, rho, 27.0 + bonus, 0.70 + bonus / 10, 0.75 + bonus / 10))
        d = 0.1 if heun_better else -0.1
        rows.append(_row("continuous", "heun", 15, rho, 27.0 + bonus + d, 0.70 + bonus / 10 + d / 10,
                         0.75 + bonus / 10 + d / 10))
    for nfe, psnr in ((3, 23.0), (5, 26.1), (8, 27.2)):
        rows.append(_row("continuous", "euler", nfe, -8.0, psnr, 0.60 + (nfe - 3) * 0.0175, 0.74, group="sweep"))
    return {"rows": rows, "best": {"key": "continuous-euler-rho-8.0-nfe15", "by": "psnr_y"}}


def test_verdicts_follow_the_numbers():
    verdicts = {c["claim"].split()[1]: c["verdict"] for c in cc.claims(_table())}
    assert verdicts == {"continuous": "confirmed", "negative": "confirmed", "is": "confirmed", "than": "confirmed"}
    verdicts = {c["claim"].split()[1]: c["verdict"] for c in cc.claims(_table(heun_better=True, rho_helps=False))}
    assert verdicts["negative"] == "contradicted" and verdicts["is"] == "contradicted"
    assert all("unavailable" in c["lpips"] for c in cc.claims(_table()))


def test_matching_nfe_and_cheapest_match():
    t = _table()
    m = cc.matching_nfe(t)["euler rho -8"]
    assert m == {"psnr_y": 5, "ssim_y": 8, "haarpsi": 3}  # SSIM-Y 0.600, 0.635, 0.6875 against 0.670
    pick = cc.cheapest_match(t, psnr_tol=0.15, ssim_tol=0.05)
    assert (pick["solver"], pick["rho"], pick["nfe"]) == ("euler", -8.0, 8)
    with pytest.raises(ValueError, match="baseline"):
        cc.claims({"rows": [r for r in t["rows"] if r["solver"] != "resshift"], "best": t["best"]})
    assert cc.cheapest_match(t, psnr_tol=0.15, ssim_tol=0.01)["nfe"] == 15  # the nfe-8 row is 0.0425 below


def test_heun_worse_everywhere_and_rho_never_helping_give_the_other_verdicts():
    t = _table(heun_better=False, rho_helps=False)
    verdicts = {c["claim"].split()[1]: c["verdict"] for c in cc.claims(t)}
    assert verdicts["negative"] == "contradicted" and verdicts["is"] == "confirmed"
