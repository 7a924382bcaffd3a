"""Training: time sampling, the train/sample time mapping (erratum 5), resume and DDP equivalence,
divergence handling, run-folder safety and the paper profile's wiring with tiny official-format weights."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ctlib.nn import ResShiftDenoiser
from ctlib.nn.configs import BUNDLED_PIXEL, build_unet, build_vq
from ctlib.schedule import ResShiftSchedule
from ctlib.train import (
    TINY_PIXEL_OVERRIDES,
    TRAIN_PROFILES,
    RunFolderError,
    TrainConfig,
    TrainingDiverged,
    learning_rate,
    make_schedule,
    network_x0,
    read_log,
    run_training,
    sample_t,
    train,
)

from .conftest import ROOT

TINY = {**dict(BUNDLED_PIXEL), **TINY_PIXEL_OVERRIDES}


def tiny_wrapper(seed: int = 0) -> ResShiftDenoiser:
    torch.manual_seed(seed)
    return ResShiftDenoiser(build_unet(TINY), ResShiftSchedule(), lq="upsampled")


def random_pairs(n: int, g: torch.Generator, size: int = 32):
    hr = torch.rand(n, 3, size, size, generator=g)
    return hr, torch.nn.functional.avg_pool2d(hr, 4)


def tiny_config(**kw) -> TrainConfig:
    base = {"iterations": 4, "batch_size": 4, "micro_batch": 2, "lr": 1e-3, "warmup": 2, "ckpt_every": 2,
            "log_every": 1, "ema_decay": 0.5, "seed": 7}
    return TrainConfig(**{**base, **kw})


def state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_sample_t_ranges_and_law():
    g = torch.Generator().manual_seed(0)
    t = sample_t("discrete", 15, 30_000, g)
    k = t * 15
    assert torch.allclose(k, k.round()) and k.min() == 1 and k.max() == 15
    counts = np.bincount(k.round().long().numpy(), minlength=16)[1:]
    assert counts.min() > 1700  # ~2000 each
    t = sample_t("continuous", 15, 30_000, g)
    assert t.min() >= 1 / 15 and t.max() <= 1
    assert abs(float(t.mean()) - (1 + 1 / 15) / 2) < 0.005
    with pytest.raises(ValueError, match="mode"):
        sample_t("uniform", 15, 3, g)


def test_learning_rate_warmup():
    assert [learning_rate(s, 1.0, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert learning_rate(0, 2e-4, 0) == 2e-4


def test_learning_rate_cosine_decay():
    # warm-up 2, then (1 + cos(pi s)) / 2 with s = (step + 1 - 2) / (6 - 2): 1/4, 2/4, 3/4, 1
    got = [learning_rate(s, 1.0, 2, "cosine", 6) for s in range(6)]
    want = [0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3, 4)]
    assert got == pytest.approx(want, abs=1e-15)
    assert got[-1] == pytest.approx(0.0, abs=1e-15) and got[3] == pytest.approx(0.5)
    assert learning_rate(5, 1.0, 2, "constant", 6) == 1.0
    with pytest.raises(ValueError, match="decay"):
        learning_rate(3, 1.0, 2, "linear", 6)
    with pytest.raises(ValueError, match="total > warmup"):
        learning_rate(3, 1.0, 2, "cosine", None)
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(lr_decay="step")
    with pytest.raises(ValueError, match="iterations"):
        TrainConfig(lr_decay="cosine", iterations=10, warmup=10)


class SpyNet(torch.nn.Module):
    """Records what it is fed; predicts 0.5 * x_in."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))
        self.in_channels, self.size_multiple, self.calls = 3, 1, []

    def forward(self, x, index, lq=None):
        self.calls.append((x.detach().clone(), index.detach().clone()))
        return self.w * x


def test_training_and_sampling_feed_the_network_alike():
    """Erratum 5: the report's fine-tuning reversed the time input. Here one function serves both."""
    net = SpyNet()
    wrapper = ResShiftDenoiser(net, ResShiftSchedule(), lq="upsampled", clamp_x0=False)
    lr = torch.rand(2, 3, 4, 4) * 2 - 1
    cond = wrapper.condition(lr)
    x_t = torch.randn_like(cond.y)
    t = torch.tensor([1.0, 1 / 15], dtype=torch.float64)
    cond(x_t, t, cond.y)  # sampling path
    network_x0(wrapper, net, x_t, t, cond.lq)  # training path
    (x_s, i_s), (x_tr, i_tr) = net.calls
    assert torch.equal(x_s, x_tr) and torch.equal(i_s, i_tr)
    # the most noise is the official index T - 1 = 14, the least noise index 0, in both paths
    assert i_s.tolist() == [14.0, 0.0]


def test_resume_gives_the_same_weights(tmp_path):
    data = random_pairs
    full = train(tiny_wrapper(), ResShiftSchedule(), data, tiny_config(), tmp_path / "full", progress=False)
    half = train(tiny_wrapper(), ResShiftSchedule(), data, tiny_config(iterations=2), tmp_path / "split",
                 progress=False)
    assert half["steps"] == 2
    train(tiny_wrapper(), ResShiftSchedule(), data, tiny_config(), tmp_path / "split", resume=True, progress=False)
    a, b = state(tmp_path / "full" / "last.pt"), state(tmp_path / "split" / "last.pt")
    assert a["step"] == b["step"] == 4
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
        assert torch.equal(a["ema"][key], b["ema"][key]), key
    assert full["last_loss"] > 0
    # the log has one row per step and the model file rebuilds the network
    rows = (tmp_path / "split" / "log.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    from ctlib.nn import denoiser_from_checkpoint

    den = denoiser_from_checkpoint(tmp_path / "full" / "model.pt")
    assert den.lq_mode == "upsampled" and den.schedule.T == 15


def test_run_folder_is_never_overwritten(tmp_path):
    out = tmp_path / "run"
    train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=1), out, progress=False)
    before = (out / "last.pt").read_bytes()
    with pytest.raises(RunFolderError, match="already holds a training run"):
        train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=1), out, progress=False)
    with pytest.raises(RunFolderError, match="another configuration"):
        train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=2, lr=5e-3), out,
              resume=True, progress=False)
    assert (out / "last.pt").read_bytes() == before
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunFolderError, match="not a folder"):
        train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(), tmp_path / "afile", progress=False)


class NaNAfter(torch.nn.Module):
    """A network that turns NaN from its third call on."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.n = inner, 0
        self.in_channels, self.size_multiple = inner.in_channels, inner.size_multiple

    def forward(self, x, index, lq=None):
        self.n += 1
        out = self.inner(x, index, lq=lq)
        return out * float("nan") if self.n > 4 else out


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    wrapper = tiny_wrapper()
    wrapper.network = NaNAfter(wrapper.network)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="non-finite loss .* at step 3"):
        train(wrapper, ResShiftSchedule(), random_pairs, tiny_config(ckpt_every=1), out, progress=False)
    good = state(out / "last.pt")
    assert good["step"] == 2
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())
    assert not (out / "model.pt").exists()


def test_bad_settings_are_clear(tmp_path):
    with pytest.raises(ValueError, match="micro_batch"):
        TrainConfig(batch_size=2, micro_batch=4)
    with pytest.raises(ValueError, match="mode"):
        TrainConfig(mode="both")
    with pytest.raises(ValueError, match="unknown profile"):
        run_training("fast", "discrete", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        run_training("smoke", "discrete", tmp_path / "x", data_dir=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        run_training("smoke", "discrete", tmp_path / "x", data_dir=tmp_path / "empty")
    vq_file = tmp_path / "vq.pt"
    from ctlib.nn.checkpoint import save_checkpoint

    save_checkpoint(vq_file, build_vq({"embed_dim": 3, "n_embed": 8, "ddconfig": {
        "double_z": False, "z_channels": 3, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
        "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}}))
    with pytest.raises(ValueError, match="not a UNetModelSwin"):
        run_training("smoke", "discrete", tmp_path / "x", init=vq_file)
    with pytest.raises(ValueError, match="needs --data"):
        run_training("paper", "continuous", tmp_path / "x")


def test_smoke_profile_trains_on_the_bundled_photos(tmp_path):
    summary = run_training("smoke", "discrete", tmp_path / "run", progress=False, iterations=2, device="cpu")
    assert summary["steps"] == 2 and np.isfinite(summary["last_loss"])
    # continuous fine-tuning from that checkpoint
    summary = run_training("smoke", "continuous", tmp_path / "ft", init=tmp_path / "run" / "model.pt",
                           progress=False, iterations=2, device="cpu")
    assert summary["steps"] == 2


def test_kappa_and_lr_decay_reach_the_run_and_the_model(tmp_path):
    """--kappa sets the schedule trained and stored (a fine-tune inherits its init's kappa unless
    told otherwise); --lr-decay cosine is what the log shows, step by step."""
    summary = run_training("smoke", "discrete", tmp_path / "k", progress=False, iterations=3, device="cpu",
                           kappa=1.5, lr_decay="cosine", warmup=1)
    from ctlib.nn.checkpoint import load_checkpoint

    ckpt = load_checkpoint(summary["model"])
    assert ckpt.schedule.kappa == 1.5
    assert np.allclose(ckpt.schedule.etas, ResShiftSchedule(kappa=1.5).etas)
    assert ckpt.meta["train"]["lr_decay"] == "cosine"
    lrs = read_log(tmp_path / "k" / "log.csv")["lr"]
    base = TRAIN_PROFILES["smoke"]["lr"]
    assert np.allclose(lrs, [learning_rate(s, base, 1, "cosine", 3) for s in range(3)], rtol=1e-2)
    inherit = run_training("smoke", "continuous", tmp_path / "ft", init=summary["model"], progress=False,
                           iterations=1, device="cpu")
    assert load_checkpoint(inherit["model"]).schedule.kappa == 1.5
    moved = run_training("smoke", "continuous", tmp_path / "ft2", init=summary["model"], progress=False,
                         iterations=1, device="cpu", kappa=1.0)
    assert load_checkpoint(moved["model"]).schedule.kappa == 1.0
    fresh = run_training("smoke", "discrete", tmp_path / "fresh", progress=False, iterations=1, device="cpu")
    assert load_checkpoint(fresh["model"]).schedule.kappa == TRAIN_PROFILES["smoke"]["kappa"]


def test_profile_settings_per_mode_the_cpu_fine_tune_recipe(tmp_path):
    """The cpu profile's continuous fine-tune recipe (``by_mode``: whole 256 x 256 photos) applies to
    --mode continuous only, the caller's arguments beat it, and the rest is the profile's."""
    from ctlib.train import profile_settings

    common, fine = TRAIN_PROFILES["cpu"], TRAIN_PROFILES["cpu"]["by_mode"]["continuous"]
    discrete = profile_settings("cpu", "discrete")
    assert "by_mode" not in discrete and "by_mode" not in profile_settings("cpu")
    assert (discrete["crop_size"], discrete["batch_size"]) == (common["crop_size"], common["batch_size"]) == (64, 16)
    cont = profile_settings("cpu", "continuous")
    assert (cont["crop_size"], cont["batch_size"], cont["lr_decay"]) == (256, 2, "cosine") == \
        (fine["crop_size"], fine["batch_size"], fine["lr_decay"])
    assert cont["ema_decay"] == common["ema_decay"] and cont["kappa"] == common["kappa"] == 2.0
    assert profile_settings("cpu", "continuous", crop_size=128, lr=None)["crop_size"] == 128
    assert profile_settings("cpu", "continuous", lr=None)["lr"] == fine["lr"]
    # what the run stores is the mode's recipe
    base = run_training("smoke", "discrete", tmp_path / "base", progress=False, iterations=1, device="cpu")
    from ctlib.nn.checkpoint import load_checkpoint

    ft = run_training("cpu", "continuous", tmp_path / "ft", init=base["model"], progress=False, device="cpu",
                      iterations=2, warmup=1, val_every=0, ckpt_every=1, crop_size=64)
    train = load_checkpoint(ft["model"]).meta["train"]
    assert (train["batch_size"], train["lr"], train["lr_decay"]) == (fine["batch_size"], fine["lr"], "cosine")
    assert train["extra"]["crop_size"] == 64 and train["mode"] == "continuous"


def test_paper_profile_wiring_with_tiny_official_format_weights(tmp_path):
    """Official-format files (bare state dicts with `module.` prefixes), the VQ latent space, the
    official crop and the Real-ESRGAN degradation on a tiny image folder: two iterations run."""
    unet_cfg = {**dict(BUNDLED_PIXEL), **TINY_PIXEL_OVERRIDES, "image_size": 16, "lq_size": 16,
                "attention_resolutions": [8], "mask_style": "official"}
    vq_cfg = {"embed_dim": 3, "n_embed": 16, "ddconfig": {
        "double_z": False, "z_channels": 3, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 32,
        "ch_mult": [1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}}
    torch.manual_seed(0)
    unet, vq = build_unet(unet_cfg), build_vq(vq_cfg)
    torch.save({"module." + k: v for k, v in unet.state_dict().items()}, tmp_path / "unet.pth")
    torch.save({"state_dict": vq.state_dict()}, tmp_path / "vq.pth")
    folder = tmp_path / "imagenet" / "n0001"
    folder.mkdir(parents=True)
    from ctlib.data import write_png

    g = torch.Generator().manual_seed(1)
    for i in range(3):
        write_png(folder / f"img{i}.png", torch.rand(3, 80, 96, generator=g))
    summary = run_training("paper", "continuous", tmp_path / "run", official_unet=tmp_path / "unet.pth",
                           official_vq=tmp_path / "vq.pth", data_dir=tmp_path / "imagenet", progress=False,
                           iterations=2, batch_size=2, micro_batch=1, crop_size=256, device="cpu",
                           official_configs=(unet_cfg, vq_cfg))
    assert summary["steps"] == 2 and np.isfinite(summary["last_loss"])
    saved = state(tmp_path / "run" / "model.pt")
    assert saved["denoiser"]["lq"] == "lr" and saved["denoiser"]["latent_scaling"] is True
    assert saved["meta"]["train"]["extra"]["degradation"] == "realesrgan"


@pytest.mark.slow
def test_ddp_two_processes_match_one(tmp_path):
    """torchrun with 2 gloo processes and the same global batch matches one process.

    Tolerances: the losses and the gradients (Adam's first moment) agree to 1e-6 relative (float32
    sums in another order).  Adam divides by sqrt(second moment), which turns that rounding into a
    full-size step for the few weights whose gradient is ~0: those may differ by up to lr per step;
    all but 1% of the weights agree to 1e-6 and the mean difference is below 1e-7."""
    common = ["-m", "ctlib", "train", "--profile", "smoke", "--mode", "discrete", "--iterations", "2",
              "--batch-size", "4", "--micro-batch", "1", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "one")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29517", *common, "--out", str(tmp_path / "two")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = state(tmp_path / "one" / "last.pt"), state(tmp_path / "two" / "last.pt")
    losses = [np.loadtxt(tmp_path / r / "log.csv", delimiter=",", skiprows=1, usecols=1) for r in ("one", "two")]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)
    m_a, m_b = a["optimizer"]["state"], b["optimizer"]["state"]
    grad_diff = max(float((m_a[k]["exp_avg"] - m_b[k]["exp_avg"]).abs().max()) for k in m_a)
    grad_scale = max(float(m_a[k]["exp_avg"].abs().max()) for k in m_a)
    assert grad_diff < 1e-6 * grad_scale
    diff = torch.cat([(a["model"][k].float() - b["model"][k].float()).abs().flatten() for k in a["model"]])
    assert float(diff.max()) <= 2 * 2e-4 * 1.01
    assert float((diff > 1e-6).float().mean()) < 0.01 and float(diff.mean()) < 1e-7
    moved = max(float((a["model"][k].float() - a["ema"][k].float()).abs().max()) for k in a["model"])
    assert moved > 1e-4  # the weights did move, so the comparison means something


def test_make_schedule_names():
    """``resshift`` is the official schedule; ``fit`` is the least-squares fit of eta(t) to the official
    eta_k (checked here with scipy's own least_squares from another start, and for the eta ~ t^2 start
    that makes Euler exact near 0); ``report`` is the report code's preset; anything else is refused."""
    from scipy.optimize import least_squares

    from ctlib.schedule import ExpAlphaSchedule

    official = make_schedule("resshift")
    assert isinstance(official, ResShiftSchedule) and official.kappa == 2.0
    np.testing.assert_allclose(official.etas, ResShiftSchedule().etas, rtol=0, atol=0)
    assert make_schedule("resshift", 0.5).kappa == 0.5
    fit = make_schedule("fit")
    assert isinstance(fit, ExpAlphaSchedule) and fit.kappa == 2.0 and fit.T == 15
    t = np.arange(1, 16) / 15
    target = ResShiftSchedule().etas

    def residual(p):
        a, lam = p
        return a * (np.expm1(lam * t) - lam * t) / lam - target

    ref = least_squares(residual, x0=(0.5, 2.0), method="lm", xtol=1e-14, ftol=1e-14).x
    np.testing.assert_allclose([fit.a, fit.lam], ref, rtol=1e-5)
    assert np.max(np.abs(fit.eta(t) - target)) < 0.005  # the network's 15 noise levels nearly unchanged
    np.testing.assert_allclose(fit.eta(1e-4) / 1e-8, fit.a * fit.lam / 2, rtol=1e-3)  # eta ~ (a lam / 2) t^2
    report = make_schedule("report", 1.0)
    assert (report.a, report.kappa) == (1.1113, 1.0)
    assert report.lam == pytest.approx(math.log(1 + 2.3177576 / 1.1113))
    with pytest.raises(ValueError, match="unknown schedule 'cosine'.*resshift, fit, report"):
        make_schedule("cosine")


def test_schedule_option_reaches_the_run_and_the_model(tmp_path):
    """--schedule picks the eta(t) trained and stored; the cpu and gpu profiles fine-tune on the fit, the
    paper profile on the report's preset; a fine-tune without one keeps its init's schedule; resuming with
    another schedule is refused."""
    from ctlib.nn.checkpoint import load_checkpoint
    from ctlib.train import profile_settings

    assert profile_settings("cpu", "continuous")["schedule"] == profile_settings("gpu", "continuous")["schedule"] == "fit"
    assert profile_settings("paper", "continuous")["schedule"] == "report"
    assert "schedule" not in profile_settings("cpu", "discrete") and "schedule" not in profile_settings("smoke", "continuous")
    base = run_training("smoke", "discrete", tmp_path / "base", progress=False, iterations=1, device="cpu")
    assert load_checkpoint(base["model"]).schedule.to_dict() == ResShiftSchedule().to_dict()
    ft = run_training("smoke", "continuous", tmp_path / "ft", init=base["model"], progress=False, iterations=2,
                      device="cpu", schedule="fit")
    stored = load_checkpoint(ft["model"]).schedule
    assert stored.to_dict() == make_schedule("fit").to_dict()
    extra = json.loads((tmp_path / "ft" / "train_config.json").read_text())["train"]["extra"]
    assert extra["schedule"] == stored.to_dict()
    again = run_training("smoke", "continuous", tmp_path / "ft2", init=ft["model"], progress=False, iterations=1,
                         device="cpu", kappa=1.0)
    assert load_checkpoint(again["model"]).schedule.to_dict() == {**stored.to_dict(), "kappa": 1.0}
    with pytest.raises(RunFolderError, match="another configuration"):
        run_training("smoke", "continuous", tmp_path / "ft", init=base["model"], progress=False, iterations=2,
                     device="cpu", schedule="report", resume=True)  # only the schedule differs
    assert load_checkpoint(ft["model"]).schedule.to_dict() == stored.to_dict()  # nothing overwritten


def test_train_cli_schedule(tmp_path, capsys):
    from ctlib.cli import build_parser, main
    from ctlib.nn.checkpoint import load_checkpoint
    from ctlib.train import SCHEDULES

    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    assert next(a.choices for a in train_parser._actions if a.dest == "schedule") == SCHEDULES
    assert main(["train", "--profile", "smoke", "--mode", "continuous", "--out", str(tmp_path / "r"),
                 "--schedule", "report", "--iterations", "1", "--device", "cpu", "--no-progress"]) == 0
    assert load_checkpoint(tmp_path / "r" / "model.pt").schedule.to_dict() == make_schedule("report").to_dict()
    with pytest.raises(SystemExit):
        main(["train", "--profile", "smoke", "--out", str(tmp_path / "bad"), "--schedule", "linear"])
    assert "invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_train_cli_refuses_nonsense_kappa_and_decay(tmp_path, capsys):
    from ctlib.cli import main

    assert main(["train", "--profile", "smoke", "--mode", "discrete", "--out", str(tmp_path / "k"),
                 "--kappa", "-1", "--no-progress"]) == 2
    assert "kappa" in capsys.readouterr().err
    assert not (tmp_path / "k").exists()
    with pytest.raises(SystemExit):
        main(["train", "--profile", "smoke", "--mode", "discrete", "--out", str(tmp_path / "d"), "--lr-decay", "step"])
    assert not (tmp_path / "d").exists()


def _ramp_photo(size: int = 512) -> torch.Tensor:
    """A (3, size, size) photo whose value rises linearly from left to right (0 -> 1)."""
    ramp = torch.linspace(0, 1, size, dtype=torch.float64).float()
    return ramp.expand(3, size, size).contiguous()


def test_pair_source_without_scale_augmentation_cuts_plain_crops():
    from ctlib.data import PairSource

    photo = torch.rand(3, 96, 80, generator=torch.Generator().manual_seed(3))
    hr, lr = PairSource([photo], 32, "bicubic")(12, torch.Generator().manual_seed(0))
    windows = photo.unfold(1, 32, 1).unfold(2, 32, 1)  # (3, 65, 49, 32, 32): every 32 x 32 window
    for crop in hr:
        hits = [((windows - c[:, None, None]).abs().amax(dim=(0, 3, 4)) == 0).any() for c in (crop, crop.flip(-1))]
        assert any(hits)  # a window of the photo, maybe mirrored, untouched
    assert lr.shape == (12, 3, 8, 8)


def test_pair_source_scale_augmentation_shrinks_regions_of_the_drawn_size():
    """On a linear ramp, MATLAB bicubic keeps the interior linear, so a crop's slope measures
    the factor region / crop it was shrunk by: it must cover [1, 1 / min_scale] and no more."""
    from ctlib.data import PairSource

    size, min_scale = 64, 0.25
    photo = _ramp_photo(512)
    step = 1 / 511  # the photo's slope per pixel
    hr, _ = PairSource([photo], size, "bicubic", min_scale=min_scale)(200, torch.Generator().manual_seed(1))
    inner = hr[:, 0, 8:-8, 8:-8].double()  # away from the resize's symmetric padding
    slope = (inner[:, :, 1:] - inner[:, :, :-1]).mean(dim=(1, 2)).abs()
    factor = (slope / step).numpy()
    shrunk = hr[torch.from_numpy(factor > 1.01)] * 255
    assert len(shrunk) > 150 and float((shrunk - shrunk.round()).abs().max()) < 1e-3  # 8-bit levels, as the test photos
    assert factor.min() >= 1 - 0.02 and factor.max() <= 1 / min_scale + 0.05
    assert factor.min() < 1.2 and factor.max() > 3.6  # the whole range is drawn
    # s = size / region is uniform on [min_scale, 1]: its mean is (1 + min_scale) / 2
    assert np.mean(1 / factor) == pytest.approx((1 + min_scale) / 2, abs=0.05)


def test_pair_source_scale_augmentation_is_capped_by_the_photo_and_checked():
    from ctlib.data import PairSource

    small = _ramp_photo(80)  # regions of up to 256 px wanted, 80 available
    hr, lr = PairSource([small], 64, "bicubic", min_scale=0.25)(8, torch.Generator().manual_seed(0))
    assert hr.shape == (8, 3, 64, 64) and lr.shape == (8, 3, 16, 16)
    inner = hr[:, 0, 8:-8, 8:-8].double()
    factor = (inner[:, :, 1:] - inner[:, :, :-1]).mean(dim=(1, 2)).abs() * 79  # the photo's step is 1/79
    assert float(factor.max()) <= 80 / 64 + 0.03 and float(factor.min()) >= 1 - 0.02
    for bad in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="min_scale"):
            PairSource([small], 64, "bicubic", min_scale=bad)
    with pytest.raises(ValueError, match="official crop"):
        PairSource([small], 64, "bicubic", min_scale=0.5, official_crop=True)


def test_min_scale_reaches_the_run_and_the_cli_refuses_nonsense(tmp_path, capsys):
    from ctlib.cli import main

    summary = run_training("smoke", "discrete", tmp_path / "s", progress=False, iterations=1, device="cpu",
                           min_scale=0.5)
    meta = torch.load(summary["model"], map_location="cpu", weights_only=True)["meta"]
    assert meta["train"]["extra"]["min_scale"] == 0.5
    assert main(["train", "--profile", "smoke", "--mode", "discrete", "--out", str(tmp_path / "bad"),
                 "--min-scale", "0", "--no-progress"]) == 2
    assert "min_scale" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
