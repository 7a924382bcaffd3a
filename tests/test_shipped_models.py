"""The shipped pixel models (data/checkpoints/): they load, fit the size limit, carry the recipe
notebook 05 documents, and their quality JSON is real: the one-step rows are recomputed here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ctlib.data import load_bundled_test_set
from ctlib.metrics import psnr, ssim
from ctlib.nn import denoiser_from_checkpoint
from ctlib.pipeline import image_noise, load_model, super_resolve, upsample
from ctlib.schedule import fit_exp_alpha
from ctlib.train import make_schedule, profile_settings

from .conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")
CKPTS = ROOT / "data" / "checkpoints"
NAMES = ("baseline_discrete", "continuous_finetune")


@pytest.mark.parametrize("name", NAMES)
def test_shipped_checkpoint_files(name):
    path = CKPTS / f"{name}.pt"
    assert path.stat().st_size <= 25 * 2**20
    den = denoiser_from_checkpoint(path)
    meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
    train = meta["train"]
    assert train["mode"] == ("discrete" if name == "baseline_discrete" else "continuous")
    # the schedule and crops are the profile's choice for the mode (notebook 05), and the ones trained
    recipe = profile_settings("cpu", train["mode"])
    assert den.schedule.kappa == recipe["kappa"] == train["extra"]["kappa"]
    expected = make_schedule(recipe.get("schedule", "resshift"), recipe["kappa"]).to_dict()
    assert den.schedule.to_dict() == expected  # discrete: the official schedule; continuous: the fit
    assert train["extra"]["crop_size"] == recipe["crop_size"]
    assert train["extra"]["degradation"] == recipe["degradation"]
    log = (CKPTS / f"{name}.log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss") and int(log[-1].split(",")[0]) == meta["steps"]
    quality = json.loads((CKPTS / f"{name}.quality.json").read_text())
    assert quality["checkpoint"] == path.name and quality["images"] == 26
    for row in ("x0_hat_t1", "resshift_T15", "euler_nfe15_rho1"):
        gain = quality[row]["psnr_y"] - quality["bicubic"]["psnr_y"]
        assert quality[row]["gain_psnr_y_over_bicubic"] == pytest.approx(gain, abs=2e-3)


def test_continuous_model_starts_from_the_baseline():
    meta = torch.load(CKPTS / "continuous_finetune.pt", map_location="cpu", weights_only=True)["meta"]
    # the baseline's run folder (runs/baseline/model.pt) or its export, data/checkpoints/baseline_discrete.pt
    assert meta["train"]["extra"]["init"].rsplit("/", 1)[-1] in ("model.pt", "baseline_discrete.pt")
    # same noise scale and time indexing as the baseline; eta(t) is the fit to the baseline's levels
    base = denoiser_from_checkpoint(CKPTS / "baseline_discrete.pt").schedule
    cont = denoiser_from_checkpoint(CKPTS / "continuous_finetune.pt").schedule
    assert (cont.kappa, cont.T) == (base.kappa, base.T)
    assert cont.to_dict() == fit_exp_alpha(base, target="eta").schedule.to_dict()


def test_quality_json_one_step_rows_are_reproduced():
    """Recompute bicubic and x0_hat(x_T, t = 1) on the 26 test photos through the pipeline (the loader's
    default fast path, the table's seeds): the stored values come back to the digits stored."""
    den = load_model(CKPTS / "continuous_finetune.pt")
    quality = json.loads((CKPTS / "continuous_finetune.quality.json").read_text())
    test = load_bundled_test_set()
    got: dict[str, list[np.ndarray]] = {"bicubic": [], "x0_hat_t1": []}
    for b0 in range(0, len(test.hr), 13):
        lr, hr = test.lr[b0:b0 + 13], test.hr[b0:b0 + 13]
        images = {"bicubic": upsample(den, lr),
                  "x0_hat_t1": super_resolve(den, lr, solver="x0_hat", nfe=1, noise=image_noise(range(b0, b0 + len(lr))))}
        for key, sr in images.items():
            got[key].append(np.stack([np.asarray(psnr(sr, hr, y_channel=True, quantize=True)),
                                      np.asarray(ssim(sr, hr, y_channel=True, quantize=True))], axis=-1))
    for key, parts in got.items():
        mean = np.concatenate(parts).mean(axis=0)
        assert round(float(mean[0]), 3) == quality[key]["psnr_y"], key
        assert round(float(mean[1]), 4) == quality[key]["ssim_y"], key


def test_sampler_spread_entry_belongs_to_the_shipped_model():
    """notebook 05 §3b's numbers (experiments/sampler_spread.py): the one-step and bicubic MSEs recompute
    with the shipped continuous model, and the stored means obey the decomposition
    mse(sample) = mse(mean of K) + (K - 1)/K spread (linear, so it holds for the means too)."""
    from ctlib.metrics import rgb_to_y

    entry = json.loads((CKPTS / "training_choices.json").read_text())["sampler_spread"]
    assert entry["checkpoint"].endswith("continuous_finetune.pt") and entry["solver"] == "euler"
    K, m = entry["seeds"], entry["mse_y"]
    assert m["sample"] == pytest.approx(m[f"mean_of_{K}_samples"] + (K - 1) / K * m["spread"], rel=1e-9)
    assert entry["mse_y_mean_of_first_k"][-1] == pytest.approx(m[f"mean_of_{K}_samples"], rel=1e-9)
    den = load_model(CKPTS / "continuous_finetune.pt")
    test = load_bundled_test_set().subset(entry["images"])

    def mse_y(sr: torch.Tensor) -> float:
        return float(((rgb_to_y(sr.double()) - rgb_to_y(test.hr.double())) ** 2).mean())

    assert mse_y(upsample(den, test.lr)) == pytest.approx(m["bicubic"], rel=1e-6)
    x0_hat = super_resolve(den, test.lr, solver="x0_hat", nfe=1, noise=image_noise(range(entry["images"])))
    assert mse_y(x0_hat) == pytest.approx(m["x0_hat_t1"], rel=1e-4)
