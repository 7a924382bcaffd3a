"""ctlib.evaluate: row caching, determinism, exact results with an oracle denoiser, table files, the
evaluate CLI, and clear failures (bad folders, wrong checkpoints, unknown solvers) that leave the rest
of a sweep running.  Tiny images (32 x 32) and a tiny network keep it fast."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from ctlib import cli, conclusions, data, files, grids, pipeline, profiles, solver_accuracy, table
from ctlib import evaluate as ev
from ctlib.data import imresize, write_png
from ctlib.metrics import lpips_available, psnr
from ctlib.nn import ResShiftDenoiser, save_checkpoint
from ctlib.nn.denoiser import upsample_lr
from ctlib.nn.vq import VQModel
from ctlib.schedule import ResShiftSchedule
from ctlib.train import build_network
from tests.conftest import FIXTURES, ROOT

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def _photo(seed: int, h: int, w: int) -> np.ndarray:
    """A smooth random colour image with some texture (uint8 HWC)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.4 * np.sin(6 * xx + c + seed) * np.cos(5 * yy - c) for c in range(3)], -1)
    img += 0.08 * rng.standard_normal((h, w, 3))
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture
def hr_folder(tmp_path):
    d = tmp_path / "hr"
    d.mkdir()
    for i in range(3):
        write_png(d / f"img{i}.png", _photo(i, 32, 32))
    return d


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    net = build_network("tiny")
    wrapper = ResShiftDenoiser(net, ResShiftSchedule(), lq="upsampled")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, net, schedule=ResShiftSchedule(), denoiser=wrapper.settings())
    return path


class CountingNetwork(nn.Module):
    """Wraps a network and counts its forward calls."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.calls = 0
        self.size_multiple = net.size_multiple
        self.in_channels = net.in_channels

    def forward(self, x, index, lq):
        self.calls += 1
        return self.net(x, index, lq=lq)


class OracleNetwork(nn.Module):
    """Returns the true HR image (in [-1, 1]) of the batch: x0_hat = x0 exactly."""

    def __init__(self, hr: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("hr", hr * 2 - 1)
        self.calls = 0

    def forward(self, x, index, lq):
        self.calls += 1
        return self.hr.clone()


def _counting_denoiser(tiny_checkpoint) -> tuple[ResShiftDenoiser, CountingNetwork]:
    base = pipeline.load_model(tiny_checkpoint)
    counter = CountingNetwork(base.network)
    return ResShiftDenoiser(counter, base.schedule, **base.settings()).eval(), counter


SPECS = [
    ev.RowSpec("bicubic", None, 0, group="reference"),
    ev.RowSpec("x0_hat", "continuous", 1, group="reference"),
    ev.RowSpec("euler", "continuous", 3, -4.0),
    ev.RowSpec("resshift", "baseline", 15),
]


def test_levels_grid_and_keys():
    np.testing.assert_allclose(grids.levels_grid(15, 15), np.append(np.arange(15, 0, -1) / 15, 0.0))
    np.testing.assert_allclose(grids.levels_grid(3, 15), [1.0, 8 / 15, 1 / 15, 0.0])
    with pytest.raises(ValueError, match="nfe must be <= T"):
        grids.levels_grid(16, 15)
    rows = ev.table_rows() + ev.sweep_rows(ev.RowSpec("euler", "continuous", 15, -8.0), (3, 5, 8, 10))
    keys = [r.key for r in rows]
    assert len(keys) == len(set(keys))
    assert "continuous-euler-rhom8-nfe15" in keys and "continuous-euler-rhom8-nfe3" in keys
    assert "baseline-exp1_levels-nfe15" in keys and "baseline-resshift-nfe15" in keys
    # the report's 11 rows are all there
    table = {(r.solver, r.rho if r.uses_rho else None) for r in ev.table_rows()}
    assert {(r["solver"], r["rho"]) for r in conclusions.REPORT_TABLE1} <= table


def test_cache_is_reused_results_identical(tmp_path, hr_folder, tiny_checkpoint):
    eval_set = data.folder_eval_set(hr_folder)
    den, counter = _counting_denoiser(tiny_checkpoint)
    models = {"baseline": den, "continuous": den}
    windows = data.choose_crop_windows(eval_set, (0, 2))
    kw = dict(batch_size=2, crop_windows=windows, progress=False)
    first = ev.run_rows(SPECS, models, eval_set, tmp_path / "res", **kw)
    # 2 batches (2 + 1 images) x (1 + 3 + 15) evaluations
    assert counter.calls == 2 * (1 + 3 + 15)
    assert all(r.ok and not r.cached for r in first)

    counter.calls = 0
    again = ev.run_rows(SPECS, models, eval_set, tmp_path / "res", **kw)
    assert counter.calls == 0 and all(r.cached for r in again)
    for a, b in zip(first, again):
        for key in ("psnr_y", "ssim_y", "psnr_rgb", "haarpsi", "ssim_loss_piq"):
            np.testing.assert_array_equal(a.per_image[key], b.per_image[key])
        np.testing.assert_array_equal(a.crops, b.crops)

    fresh = ev.run_rows(SPECS, models, eval_set, tmp_path / "res", recompute=True, **kw)
    assert counter.calls == 2 * (1 + 3 + 15)
    for a, b in zip(first, fresh):
        np.testing.assert_array_equal(a.per_image["psnr_y"], b.per_image["psnr_y"])

    # another seed is another experiment: not read from the cache
    counter.calls = 0
    ev.run_rows(SPECS[1:2], models, eval_set, tmp_path / "res", seed=1, **kw)
    assert counter.calls == 2


class ScaledInputNetwork(nn.Module):
    """x0_hat = the scaled network input itself: an exactly known denoiser that depends on x_T."""

    def forward(self, x, index, lq):
        return x


def test_rows_against_direct_computation(tmp_path, hr_folder):
    """bicubic and x0_hat rows recomputed by hand: MATLAB bicubic of the LR, and
    x_T = y + kappa sqrt(eta(1)) eps with eps from torch.Generator().manual_seed(i)."""
    eval_set = data.folder_eval_set(hr_folder)
    sched = ResShiftSchedule()
    den = ResShiftDenoiser(ScaledInputNetwork(), sched, lq="upsampled")
    specs = SPECS[:2]
    rows = ev.run_rows(specs, {"continuous": den}, eval_set, tmp_path, batch_size=2, progress=False)
    hr = torch.stack(eval_set.hr)
    lr = torch.stack(eval_set.lr)
    bic = imresize(lr.double(), 4.0).float().clamp(0, 1)
    np.testing.assert_allclose(rows[0].per_image["psnr_y"], psnr(bic, hr, y_channel=True, quantize=True), atol=1e-9)
    y = upsample_lr(lr * 2 - 1, 4)
    eps = torch.stack([torch.randn(y.shape[1:], generator=torch.Generator().manual_seed(i)) for i in range(len(hr))])
    eta1 = float(sched.eta(1.0))
    x_T = y + sched.kappa * math.sqrt(eta1) * eps
    x0_hat = (x_T / (3 * sched.kappa * math.sqrt(eta1) + 1)).clamp(-1, 1)  # pixel-space input scaling
    expected = psnr((x0_hat + 1) / 2, hr, y_channel=True, quantize=True)
    np.testing.assert_allclose(rows[1].per_image["psnr_y"], expected, rtol=0, atol=1e-9)
    # another seed gives other values
    other = ev.run_rows(specs[1:], {"continuous": den}, eval_set, tmp_path, seed=1, progress=False)
    assert not np.allclose(other[0].per_image["psnr_y"], expected, atol=1e-3)


def test_oracle_denoiser_is_exact(tmp_path, hr_folder):
    """With x0_hat = x0 exactly, resshift, exp1(_levels) and exp2m land on the HR image (PSNR inf,
    SSIM 1, piq's PSNR 80 dB), while Euler's last step from 1/T leaves noise behind."""
    eval_set = data.folder_eval_set(hr_folder)
    hr = torch.stack(eval_set.hr)
    oracle = ResShiftDenoiser(OracleNetwork(hr), ResShiftSchedule(), lq="upsampled")
    specs = [ev.RowSpec("resshift", "m", 15), ev.RowSpec("exp1", "m", 4, 4.0), ev.RowSpec("exp2m", "m", 5, -8.0),
             ev.RowSpec(ev.LEVELS_SOLVER, "m", 3), ev.RowSpec("euler", "m", 5)]
    rows = ev.run_rows(specs, {"m": oracle}, eval_set, tmp_path, batch_size=3, progress=False)
    for r in rows[:4]:
        assert r.ok, r.reason
        assert np.all(np.isinf(r.per_image["psnr_y"])), r.spec.key
        np.testing.assert_allclose(r.per_image["ssim_y"], 1.0)
        np.testing.assert_allclose(r.per_image["psnr_rgb_piq"], 80.0, atol=1e-3)
    assert np.all(np.isfinite(rows[4].per_image["psnr_y"]))
    # inf survives the CSV round trip
    again = ev.run_rows(specs[:1], {"m": oracle}, eval_set, tmp_path, batch_size=3, progress=False)
    assert again[0].cached and np.all(np.isinf(again[0].per_image["psnr_y"]))


def test_failing_rows_are_reported_and_the_rest_runs(tmp_path, hr_folder, tiny_checkpoint):
    vq = torch.load(FIXTURES / "vqgan_small.pt", weights_only=True)
    vq_model = VQModel(**{k: v for k, v in vq["config"].items() if k != "calls"})
    vq_path = save_checkpoint(tmp_path / "vq.pt", vq_model, schedule=ResShiftSchedule())
    eval_set = data.folder_eval_set(hr_folder, limit=2)
    specs = [
        ev.RowSpec("bicubic", None, 0),
        ev.RowSpec("euler", "continuous", 3),
        ev.RowSpec("no_such_solver", "continuous", 3),
        ev.RowSpec("resshift", "continuous", 7),  # resshift needs nfe = T
        ev.RowSpec("euler", "vq", 3),
        ev.RowSpec("euler", "missing", 3),
    ]
    models = {"continuous": tiny_checkpoint, "vq": vq_path}
    rows = ev.run_rows(specs, models, eval_set, tmp_path / "res", batch_size=2, progress=False)
    status = {r.spec.key: (r.status, r.reason) for r in rows}
    assert status["bicubic"][0] == "ok" and status["continuous-euler-rho1-nfe3"][0] == "ok"
    assert "unknown solver 'no_such_solver'" in status["continuous-no_such_solver-nfe3"][1]
    assert "nfe must equal T = 15" in status["continuous-resshift-nfe7"][1]
    assert "VQModel" in status["vq-euler-rho1-nfe3"][1] and "not a denoiser" in status["vq-euler-rho1-nfe3"][1]
    assert "no model named 'missing'" in status["missing-euler-rho1-nfe3"][1]
    # failed rows are not cached, and the table shows them with their reason
    assert not (tmp_path / "res" / "rows" / "continuous-no_such_solver-nfe3.json").exists()
    md = table.format_table([table.row_record(r) for r in rows])
    assert "failed: ValueError: unknown solver" in md


def test_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images found"):
        data.folder_eval_set(empty)
    small = tmp_path / "small"
    small.mkdir()
    write_png(small / "tiny.png", _photo(0, 8, 12))
    with pytest.warns(UserWarning, match="smaller than 16 px"), pytest.raises(ValueError, match="no usable images"):
        data.folder_eval_set(small)
    write_png(small / "odd.png", _photo(1, 34, 31))
    with pytest.warns(UserWarning, match=r"tiny.png \(12x8\)"):
        s = data.folder_eval_set(small)
    assert s.names == ["odd.png"] and tuple(s.hr[0].shape) == (3, 32, 28) and tuple(s.lr[0].shape) == (3, 8, 7)
    assert any("31x34 -> 28x32" in n for n in s.notes)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.add_evaluate_parser(parser.add_subparsers())
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


def test_cli_evaluate_writes_json(tmp_path, hr_folder, tiny_checkpoint, capsys):
    write_png(hr_folder / "odd.png", _photo(7, 33, 30))
    out = tmp_path / "out" / "row.json"
    code = _cli(["--hr", str(hr_folder), "--checkpoint", str(tiny_checkpoint), "--solver", "heun", "--rho", "-4",
                 "--nfe", "5", "--out", str(out), "--no-progress"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["images"] == ["img0.png", "img1.png", "img2.png", "odd.png"]
    assert any("30x33 -> 28x32" in n for n in doc["notes"])
    assert [r["solver"] for r in doc["rows"]] == ["bicubic", "x0_hat", "heun"]
    assert doc["rows"][2]["rho"] == -4.0 and doc["rows"][2]["nfe"] == 5
    for row in doc["rows"]:
        assert row["status"] == "ok"
        for key in ("psnr_y", "ssim_y", "psnr_rgb", "haarpsi", "lpips", "psnr_rgb_piq", "ssim_loss_piq"):
            assert key in row["mean"] and all(key in img for img in row["per_image"])
        assert row["mean"]["psnr_y"] == pytest.approx(np.mean([img["psnr_y"] for img in row["per_image"]]))
    if not lpips_available("alex")[0]:
        assert doc["metrics"]["lpips"]["available"] is False
        assert "unavailable (needs alexnet-owt-7be5be79.pth" in doc["metrics"]["lpips"]["text"]
        assert doc["rows"][2]["mean"]["lpips"] is None
        assert "unavailable (needs" in capsys.readouterr().out


def test_cli_evaluate_bad_input(tmp_path, hr_folder, tiny_checkpoint, capsys):
    out = str(tmp_path / "x.json")
    assert _cli(["--hr", str(hr_folder), "--checkpoint", str(tiny_checkpoint), "--solver", "rk4", "--out", out]) == 2
    assert "unknown solver 'rk4'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli(["--hr", str(empty), "--checkpoint", str(tiny_checkpoint), "--out", out]) == 2
    assert "no images found" in capsys.readouterr().err
    vq = torch.load(FIXTURES / "vqgan_small.pt", weights_only=True)
    vq_path = save_checkpoint(tmp_path / "vq.pt", VQModel(**{k: v for k, v in vq["config"].items() if k != "calls"}))
    assert _cli(["--hr", str(hr_folder), "--checkpoint", str(vq_path), "--out", out]) == 2
    assert "holds a VQModel checkpoint (an autoencoder), not a denoiser" in capsys.readouterr().err
    assert _cli(["--hr", str(hr_folder), "--checkpoint", str(tiny_checkpoint), "--solver", "heun", "--nfe", "2",
                 "--out", out]) == 2
    assert "too small for solver 'heun'" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_reproduce_table_files(tmp_path, tiny_checkpoint):
    folder = tmp_path / "hr"
    folder.mkdir()
    for i in range(2):
        write_png(folder / f"p{i}.png", _photo(10 + i, 32, 32))
    ckpts = {"baseline": str(tiny_checkpoint), "continuous": str(tiny_checkpoint)}
    out = tmp_path / "table"
    result = table.reproduce_table("smoke", out, checkpoints=ckpts, hr_dir=folder, progress=False)
    doc = table.load_table(out)
    keys = [r["key"] for r in doc["rows"]]
    assert keys[:5] == ["bicubic", "continuous-x0_hat-nfe1", "baseline-resshift-nfe15",
                        "continuous-euler-rho1-nfe15", "continuous-exp2m-rho1-nfe15"]
    assert doc["best"]["key"] in keys and result.best_key == doc["best"]["key"]
    assert "baseline-exp1_levels-nfe3" in keys and "baseline-exp1_levels-nfe15" in keys
    assert doc["checkpoints"]["baseline"]["sha256"] == files.file_sha256(tiny_checkpoint)
    with open(out / "table.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["key"] for r in rows] == keys
    for r, rec in zip(rows, doc["rows"]):
        assert float(r["psnr_y"]) == pytest.approx(rec["mean"]["psnr_y"])
    md = (out / "table.md").read_text()
    assert md.count("\n| ") == len(keys) + 2  # two header rows, one line per row
    buf = io.StringIO()
    assert table.print_table_from(tmp_path, file=buf) == md
    # per-image CSV mean = table mean
    with open(out / "rows" / "baseline-resshift-nfe15.csv", newline="") as fh:
        per = [float(r["ssim_y"]) for r in csv.DictReader(fh)]
    assert np.mean(per) == pytest.approx(doc["rows"][2]["mean"]["ssim_y"])

    # the results of record: matched by the checkpoints' sha256 and reused without computing
    record = table.save_record(out, tmp_path / "record")
    assert table.record_matches(record, ckpts)[0]
    again = table.reproduce_table("smoke", tmp_path / "fresh", checkpoints=ckpts, hr_dir=folder, record_dir=record,
                               progress=False)
    assert again.computed == 0
    fresh = table.load_table(tmp_path / "fresh")["rows"]
    assert all(r["cached"] for r in fresh)
    assert [r["mean"] for r in fresh] == [r["mean"] for r in doc["rows"]]
    # a stale cached row (made with another checkpoint) is replaced by the record's row, not recomputed;
    # an up-to-date cached row is kept as it is
    stale = tmp_path / "stale" / "rows"
    stale.mkdir(parents=True)
    key = "baseline-resshift-nfe15"
    meta = json.loads((record / "rows" / f"{key}.json").read_text())
    meta["fingerprint"]["model"] = "0" * 64
    (stale / f"{key}.json").write_text(json.dumps(meta))
    (stale / f"{key}.csv").write_text("index,name,psnr_y\n0,p0,1.0\n1,p1,1.0\n")
    kept = "continuous-euler-rho1-nfe15"
    for suffix in (".json", ".csv"):
        (stale / f"{kept}{suffix}").write_bytes((record / "rows" / f"{kept}{suffix}").read_bytes())
    marker = (stale / f"{kept}.json").stat().st_mtime_ns
    again = table.reproduce_table("smoke", tmp_path / "stale", checkpoints=ckpts, hr_dir=folder, record_dir=record,
                               progress=False)
    assert again.computed == 0
    assert (stale / f"{key}.csv").read_bytes() == (record / "rows" / f"{key}.csv").read_bytes()
    assert (stale / f"{kept}.json").stat().st_mtime_ns == marker
    assert [r["mean"] for r in table.load_table(tmp_path / "stale")["rows"]] == [r["mean"] for r in doc["rows"]]
    other = tmp_path / "other.pt"
    other.write_bytes(tiny_checkpoint.read_bytes() + b"x")
    ok, why = table.record_matches(record, {**ckpts, "continuous": str(other)})
    assert not ok and "differs" in why


def test_crop_windows_find_the_texture():
    hr = torch.full((3, 64, 64), 0.5)
    g = torch.Generator().manual_seed(0)
    hr[:, 36:60, 8:32] = torch.rand((3, 24, 24), generator=g)
    eval_set = data.PairedTestSet([hr], [hr[:, ::4, ::4]], ["x"], "synthetic")
    [(i, top, left, s)] = data.choose_crop_windows(eval_set, [0], size=24)
    assert (i, s) == (0, 24) and (top, left) == (36, 8)


def test_compare_with_report_directions():
    def row(solver, rho, psnr_rgb, ssim_loss, lpips):
        return {"group": "table", "status": "ok", "solver": solver, "rho": rho,
                "mean": {"psnr_rgb_piq": psnr_rgb, "ssim_loss_piq": ssim_loss, "lpips_vgg_piq": lpips}}

    same = {"rows": [row(r["solver"], r["rho"], r["psnr_rgb_piq"], r["ssim_loss_piq"], r["lpips_vgg_piq"])
                     for r in conclusions.REPORT_TABLE1]}
    comp = conclusions.compare_with_report(same)
    assert comp[0]["label"] == "Baseline" and comp[0]["report_ssim"] == pytest.approx(0.572)
    assert all(c["agree_psnr_rgb"] and c["agree_ssim"] and c["agree_lpips_vgg"] for c in comp[1:])
    assert comp[1]["ours_ssim"] == pytest.approx(1 - 0.457)
    flipped = {"rows": [row(r["solver"], r["rho"], 40 - r["psnr_rgb_piq"], 1 - r["ssim_loss_piq"], None)
                        for r in conclusions.REPORT_TABLE1]}
    comp = conclusions.compare_with_report(flipped)
    assert not any(c["agree_psnr_rgb"] for c in comp[1:]) and not any(c["agree_ssim"] for c in comp[1:])
    assert all(c["agree_lpips_vgg"] is None for c in comp)
    # within a solver: the report's own changes from rho = 1 agree with themselves, the flipped ones never
    effects = conclusions.rho_effects(same)
    assert len(effects) == 8 and all(e["agree_psnr_rgb"] and e["agree_ssim"] for e in effects)
    heun_m8 = next(e for e in effects if (e["solver"], e["rho"]) == ("heun", -8.0))
    assert heun_m8["report_psnr_rgb"] == pytest.approx(20.13 - 19.93)
    assert heun_m8["report_ssim"] == pytest.approx(0.473 - 0.459)  # SSIM = 1 - loss: the loss fell
    assert not any(e["agree_psnr_rgb"] or e["agree_ssim"] for e in conclusions.rho_effects(flipped))


def test_record_of_the_cpu_profile_matches_the_shipped_checkpoints():
    """The committed cpu table (notebook 06 loads it in CI) must belong to the shipped models."""
    record = ROOT / profiles.RECORD_DIR
    if not (record / "table.json").is_file():
        pytest.skip("no results of record committed yet")
    ok, why = table.record_matches(record, profiles.DEFAULT_CHECKPOINTS)
    assert ok, why
    doc = table.load_table(record)
    assert doc["profile"] == "cpu" and len(doc["eval_set"]["names"]) == 26
    for r in doc["rows"]:
        if r["status"] == "ok":
            assert (record / "rows" / f"{r['key']}.csv").is_file()


def test_seeded_prior_is_the_tables_start(tiny_checkpoint):
    """The scripts' seeded_prior gives the x_T of the table's rows: the x0_hat row recomputed from it
    is identical, and each image's start depends on its index and the seed only."""
    den = pipeline.load_model(tiny_checkpoint).eval()
    lr = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        row = pipeline.super_resolve(den, lr, solver="x0_hat", nfe=1, noise=pipeline.image_noise([5, 7, 9], seed=2))
        cond = den.condition(lr * 2 - 1)
        x_T = pipeline.seeded_prior(cond, [5, 7, 9], seed=2)
        mine = (cond.decode(cond(x_T, torch.ones(3, dtype=torch.float64), cond.y)).clamp(-1, 1) + 1) / 2
        assert torch.equal(row, mine)
        again = pipeline.seeded_prior(den.condition(lr[1:2] * 2 - 1), [7], seed=2)
    assert torch.equal(again, x_T[1:2])
    sd = (x_T - cond.y).std().item()
    assert abs(sd - den.schedule.kappa * den.schedule.eta_T ** 0.5) < 0.1 * sd


def test_sample_spread_identity_and_checks():
    """mse_sample = mse_mean + (K-1)/K spread holds exactly, per image; bad shapes are refused."""
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(3, 5, 7, generator=g)
    samples = truth + 0.2 * torch.randn(4, 3, 5, 7, generator=g) + 0.05
    x0_hat = truth + 0.1 * torch.randn(3, 5, 7, generator=g)
    st = solver_accuracy.sample_spread(samples, x0_hat, truth)
    np.testing.assert_allclose(st["mse_sample"], st["mse_mean"] + 3 / 4 * st["spread"], rtol=1e-12)
    mine = ((samples.double() - truth.double()) ** 2).mean(dim=(0, 2, 3)).numpy()
    np.testing.assert_allclose(st["mse_sample"], mine, rtol=1e-12)
    np.testing.assert_allclose(st["spread"], samples.double().var(0).mean(dim=(1, 2)).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="K >= 2"):
        solver_accuracy.sample_spread(samples[:1], x0_hat, truth)
    with pytest.raises(ValueError, match="shapes differ"):
        solver_accuracy.sample_spread(samples, x0_hat[:2], truth)


def test_sample_spread_faithful_sampler_has_dispersion_one():
    """On an exactly solvable Gaussian problem, probability-flow samples driven by the exact denoiser
    scatter as the posterior does: dispersion ~ 1 and a sample has ~2x the MSE of the one-step
    x0_hat (3 dB), while a sampler that scatters 1.5x too widely shows dispersion ~ 2.25."""
    from ctlib.samplers import sample
    from ctlib.toy import GaussianMixtureToy

    d, B, K, sigma = 400, 20, 6, 0.3
    rng = np.random.default_rng(0)
    toy = GaussianMixtureToy(0.5 * rng.standard_normal((1, d)), sigma, [1.0], 0.1 * rng.standard_normal(d),
                             ResShiftSchedule())
    g = torch.Generator().manual_seed(1)
    truth = toy.sample_x0(B, g)
    x0_hat = toy.denoiser(toy.prior_sample(B, g), torch.ones(B, dtype=torch.float64), toy.y_batch(B))
    samples = torch.stack([sample(toy.denoiser, toy.y_batch(B), schedule=toy.schedule, solver="exp2m", nfe=40,
                                  rho=1.0, x_T=toy.prior_sample(B, g)) for _ in range(K)])
    st = solver_accuracy.sample_spread(samples, x0_hat, truth)
    assert abs(st["dispersion"].mean() - 1.0) < 0.08
    assert abs(st["mse_sample"].mean() / st["mse_x0_hat"].mean() - 2.0) < 0.16
    assert abs(st["spread"].mean() / sigma**2 - 1.0) < 0.08
    wide = toy.means[0] + 1.5 * (samples - toy.means[0])
    assert abs(solver_accuracy.sample_spread(wide, x0_hat, truth)["dispersion"].mean() - 2.25) < 0.2
