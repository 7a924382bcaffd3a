"""ctlib.upscale: tiles, blending, coordinate noise, the API and the `upscale` command line.

Denoisers used (all fast on one thread):

* ``Local``: an exactly-known denoiser with a 3 x 3 receptive field (x0_hat = upsampled LR +
  0.2 tanh(3x3 mean of the scaled state)); tiled and untiled results must then agree exactly away
  from the blending bands;
* ``TileStat``: x0_hat depends on the mean over the whole tile (as GroupNorm makes a network do), so
  tiles disagree and hard tile borders show as seams;
* the ``tiny`` UNet of ``ctlib.train`` with a random (seeded) output layer, as a global residual on the
  upsampled LR (the kit's pixel models), for shapes, determinism and the CLI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import stats
from torch import nn

from ctlib.cli import add_upscale_parser, cmd_upscale
from ctlib.data.imresize import imresize_np
from ctlib.data.io import read_image, write_png
from ctlib.nn.checkpoint import save_checkpoint
from ctlib.nn.denoiser import ResShiftDenoiser, upsample_lr
from ctlib.schedule import ResShiftSchedule
from ctlib.train import build_network
from ctlib.upscale import (
    MIN_SIDE,
    collect_inputs,
    coordinate_noise,
    ramp_weights,
    read_for_upscale,
    seam_ratio,
    tile_layout,
    tile_starts,
    upscale,
    upscale_tensor,
)

ROOT = Path(__file__).resolve().parent.parent
SF = 4


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


class Local(nn.Module):
    """x0_hat = lq + 0.2 tanh(mean3x3(x_in)): what happens at a pixel depends on its 3 x 3 neighbours."""

    size_multiple = 1
    in_channels = 3

    def forward(self, x: torch.Tensor, index: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        return lq + 0.2 * torch.tanh(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))


class TileStat(nn.Module):
    """x0_hat = lq + 0.25 mean(lq over the tile) + 0.05 tanh(x_in): a tile-wide statistic."""

    size_multiple = 1
    in_channels = 3

    def forward(self, x: torch.Tensor, index: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        return lq + 0.25 * lq.mean(dim=(1, 2, 3), keepdim=True) + 0.05 * torch.tanh(x)


class Recorder(nn.Module):
    """Wraps a network and records the shape of every input it sees."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.size_multiple = net.size_multiple
        self.in_channels = 3
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor, index: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.net(x, index, lq=lq)


def _wrap(net: nn.Module) -> ResShiftDenoiser:
    return ResShiftDenoiser(net, ResShiftSchedule(), lq="upsampled")


def _tiny_net(seed: int = 0) -> nn.Module:
    """The tiny UNet with a seeded random output layer (fresh, it outputs zeros)."""
    torch.manual_seed(seed)
    net = build_network("tiny")
    torch.nn.init.normal_(net.out[2].weight, std=0.05, generator=torch.Generator().manual_seed(seed))
    return net.eval()


def _tiny(seed: int = 0) -> ResShiftDenoiser:
    return ResShiftDenoiser(_tiny_net(seed), ResShiftSchedule(), lq="upsampled", residual=True)


def _photo_lr(h: int, w: int) -> np.ndarray:
    """A bicubic x1/4 LR crop of a bundled photo, (h, w, 3) float32 in [0, 1]."""
    hr = read_image(ROOT / "data" / "photos" / "test" / "00_astronaut.png")[: SF * h, : SF * w]
    return np.clip(imresize_np(hr, 1 / SF), 0.0, 1.0).astype(np.float32)


def _band(starts, side: int, length: int, ramp: int) -> np.ndarray:
    """Output pixels (one axis) within ``ramp`` of a tile edge that has a neighbour (independent of
    the library: the blending bands as the docstring defines them)."""
    mask = np.zeros(SF * length, dtype=bool)
    for s in starts:
        if s > 0:
            mask[SF * s: SF * s + ramp] = True
        if s + side < length:
            mask[SF * (s + side) - ramp: SF * (s + side)] = True
    return mask


# ---------------------------------------------------------------------------------------------
# tiles, weights, noise
# ---------------------------------------------------------------------------------------------
def test_tile_starts_cover_the_side_with_equal_tiles():
    for length, tile, overlap in [(100, 32, 8), (64, 64, 16), (65, 64, 16), (7, 32, 4), (200, 96, 32), (50, 16, 0)]:
        starts = tile_starts(length, tile, overlap)
        side = min(tile, length)
        covered = np.zeros(length, dtype=int)
        for s in starts:
            assert 0 <= s and s + side <= length
            covered[s: s + side] += 1
        assert covered.min() >= 1
        assert starts == sorted(set(starts))
        # neighbours overlap by at least `overlap` (the last one may overlap more) and never leave a gap
        for a, b in zip(starts, starts[1:]):
            assert b - a <= tile - overlap
    assert tile_starts(100, 32, 8) == [0, 24, 48, 68]
    assert tile_starts(20, 32, 8) == [0]


def test_tile_layout_errors_and_whole_image():
    lay = tile_layout(40, 70, None, 8)
    assert len(lay) == 1 and (lay.tile_h, lay.tile_w) == (40, 70)
    with pytest.raises(ValueError, match="overlap must be smaller than tile"):
        tile_layout(40, 70, 16, 16)
    with pytest.raises(ValueError, match="tile"):
        tile_layout(40, 70, 0, 0)


def test_ramp_weights_are_a_partition_of_unity():
    ramp = 12
    w = ramp_weights(40, ramp, start=True, end=True)
    d = np.arange(ramp)
    np.testing.assert_allclose(w[:ramp].numpy(), np.sin(np.pi * (d + 0.5) / (2 * ramp)) ** 2, rtol=1e-12)
    np.testing.assert_allclose(w[-ramp:].numpy(), w[:ramp].numpy()[::-1], rtol=1e-12)
    assert (w[ramp:-ramp] == 1).all() and (w > 0).all()
    # two tiles overlapping by exactly `ramp`: the weights sum to 1 over the overlap
    left = ramp_weights(40, ramp, start=False, end=True)
    right = ramp_weights(40, ramp, start=True, end=False)
    np.testing.assert_allclose((left[-ramp:] + right[:ramp]).numpy(), 1.0, rtol=1e-12)
    assert (ramp_weights(40, ramp, start=False, end=False) == 1).all()


def test_coordinate_noise_does_not_depend_on_the_window():
    big = coordinate_noise(7, 0, 3, (5, 105), (10, 90))
    small = coordinate_noise(7, 0, 3, (37, 70), (41, 77))
    torch.testing.assert_close(small, big[:, 32:65, 31:67], rtol=0, atol=0)
    assert not torch.equal(coordinate_noise(7, 1, 3, (5, 105), (10, 90)), big)
    assert not torch.equal(coordinate_noise(8, 0, 3, (5, 105), (10, 90)), big)
    # it is standard normal (Kolmogorov-Smirnov over 24 000 values, several blocks)
    assert stats.kstest(big.flatten().numpy(), "norm").pvalue > 1e-3
    with pytest.raises(ValueError, match="rows"):
        coordinate_noise(7, 0, 3, (5, 5), (0, 4))


# ---------------------------------------------------------------------------------------------
# tiled vs untiled, seams, tile-sized calls
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solver,nfe", [("exp1", 4), ("euler_maruyama", 4)])
def test_tiled_equals_untiled_outside_the_blending_bands(solver, nfe):
    """With a local denoiser the only differences are in the blending bands (where a tile's
    bicubic y and its receptive field meet the tile edge), and they are small: max <= 0.02 and
    mean <= 1e-3 of the [0, 1] range (measured: 0.0086 and 3.4e-4).  Outside the bands the results
    are identical: the noise is a function of the pixel, not of the tile (stochastic solvers too)."""
    lr = _photo_lr(40, 48)
    d = _wrap(Local())
    full = upscale(lr, d, tile=None, solver=solver, nfe=nfe, seed=3)
    overlap = 4
    tiled = upscale(lr, d, tile=16, overlap=overlap, solver=solver, nfe=nfe, seed=3)
    lay = tile_layout(40, 48, 16, overlap)
    assert len(lay) == 12
    ramp = SF * overlap
    mask = _band(lay.rows, lay.tile_h, 40, ramp)[:, None] | _band(lay.cols, lay.tile_w, 48, ramp)[None, :]
    diff = np.abs(tiled - full).max(axis=2)
    assert diff[~mask].max() <= 1e-6
    assert diff[mask].max() <= 0.02
    assert diff[mask].mean() <= 1e-3
    assert diff[mask].max() > 0  # the bands are where the tiles' borders differ


class PoolAutoencoder(nn.Module):
    """A stand-in for VQ-f4: encode = 4 x 4 mean, decode = nearest x4 (latent = LR size)."""

    downsample_factor = 4
    embed_dim = 3

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(image, 4)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return F.interpolate(z, scale_factor=4, mode="nearest")


def test_latent_space_models_tile_in_latent_coordinates():
    """The official model's layout (VQ-f4 latent of the LR's size, raw LR as condition): the noise
    is indexed in latent pixels, tiles are decoded and blended in image space; a local network again
    gives identical results outside the blending bands (inside: measured max 0.0033)."""
    d = ResShiftDenoiser(Local(), ResShiftSchedule(), autoencoder=PoolAutoencoder(), lq="lr")
    assert d.space == "latent" and d.lr_multiple == 1
    lr = _photo_lr(40, 48)
    full = upscale(lr, d, tile=None, solver="exp1", nfe=4, seed=1)
    tiled = upscale(lr, d, tile=16, overlap=4, solver="exp1", nfe=4, seed=1)
    assert full.shape == (160, 192, 3)
    lay = tile_layout(40, 48, 16, 4)
    mask = _band(lay.rows, lay.tile_h, 40, SF * 4)[:, None] | _band(lay.cols, lay.tile_w, 48, SF * 4)[None, :]
    diff = np.abs(tiled - full).max(axis=2)
    assert diff[~mask].max() <= 1e-6 and 0 < diff[mask].max() <= 0.05


def test_an_image_that_fits_in_one_tile_is_not_tiled():
    lr = _photo_lr(20, 28)
    d = _tiny()
    whole = upscale(lr, d, tile=None, nfe=3, solver="exp1")
    one_tile = upscale(lr, d, tile=32, overlap=8, nfe=3, solver="exp1")
    np.testing.assert_array_equal(whole, one_tile)
    assert whole.shape == (80, 112, 3)


def test_no_seams_with_blending_and_the_check_detects_hard_seams():
    """Gradient energy across tile-border lines / all lines: <= 1.5 with blending (measured 0.50-0.97),
    while hard tile borders (overlap 0) of the same tile-dependent denoiser give > 5 (measured 10-15)."""
    lr = _photo_lr(32, 48)
    d = _wrap(TileStat())
    hard = upscale(lr, d, tile=16, overlap=0, nfe=3, solver="exp1")
    assert min(seam_ratio(hard, tile_layout(32, 48, 16, 0))) > 5
    for overlap in (2, 4, 8):
        soft = upscale(lr, d, tile=16, overlap=overlap, nfe=3, solver="exp1")
        assert max(seam_ratio(soft, tile_layout(32, 48, 16, overlap))) <= 1.5
    # the tiny UNet (tile statistics through GroupNorm) blends without seams as well
    tiny = upscale(lr, _tiny(), tile=16, overlap=4, nfe=2, solver="exp1")
    assert max(seam_ratio(tiny, tile_layout(32, 48, 16, 4))) <= 1.5


def test_the_network_only_sees_tile_sized_tensors():
    rec = Recorder(_tiny_net())
    d = ResShiftDenoiser(rec, ResShiftSchedule(), lq="upsampled", residual=True)
    lr = torch.from_numpy(_photo_lr(36, 44)).permute(2, 0, 1)
    out = upscale_tensor(lr, d, tile=16, overlap=4, nfe=2, solver="euler", batch=2)
    lay = tile_layout(36, 44, 16, 4)
    assert out.shape == (3, 144, 176)
    assert len(rec.shapes) == 2 * -(-len(lay) // 2)  # nfe calls per batch of (up to) 2 tiles
    for shape in rec.shapes:
        assert shape[0] <= 2 and shape[2:] == (SF * 16, SF * 16)
    # batching tiles changes only float rounding (measured 3.7e-6)
    one_by_one = upscale_tensor(lr, d, tile=16, overlap=4, nfe=2, solver="euler", batch=1)
    assert (out - one_by_one).abs().max() <= 1e-4


def test_same_seed_same_output_bit_for_bit():
    lr = _photo_lr(24, 24)
    d = _tiny()
    for solver, nfe in (("euler", 2), ("euler_maruyama", 2)):
        a = upscale(lr, d, tile=16, overlap=4, nfe=nfe, solver=solver, seed=11)
        b = upscale(lr, d, tile=16, overlap=4, nfe=nfe, solver=solver, seed=11)
        c = upscale(lr, d, tile=16, overlap=4, nfe=nfe, solver=solver, seed=12)
        np.testing.assert_array_equal(a, b)
        assert np.abs(a - c).max() > 1e-4
    g1 = upscale(lr, d, tile=16, overlap=4, nfe=2, generator=torch.Generator().manual_seed(5))
    g2 = upscale(lr, d, tile=16, overlap=4, nfe=2, generator=torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(g1, g2)


# ---------------------------------------------------------------------------------------------
# the API: kinds of images
# ---------------------------------------------------------------------------------------------
def test_gray_alpha_tensor_and_uint8_inputs():
    d = _tiny()
    lr = _photo_lr(16, 20)
    gray = lr.mean(axis=2)
    g = upscale(gray, d, tile=None, nfe=1)
    rgb_of_gray = upscale(np.repeat(gray[:, :, None], 3, axis=2), d, tile=None, nfe=1)
    assert g.shape == (64, 80)
    np.testing.assert_allclose(g, rgb_of_gray.mean(axis=2), atol=1e-6)
    alpha = np.linspace(0, 1, 16 * 20, dtype=np.float32).reshape(16, 20)
    rgba = upscale(np.dstack([lr, alpha]), d, tile=None, nfe=1)
    assert rgba.shape == (64, 80, 4)
    expected_alpha = upsample_lr(torch.from_numpy(alpha)[None, None], SF)[0, 0].clamp(0, 1).numpy()
    np.testing.assert_allclose(rgba[:, :, 3], expected_alpha, atol=1e-6)
    np.testing.assert_allclose(rgba[:, :, :3], upscale(lr, d, tile=None, nfe=1), atol=1e-6)
    t = upscale(torch.from_numpy(lr).permute(2, 0, 1), d, tile=None, nfe=1)
    assert isinstance(t, torch.Tensor) and t.shape == (3, 64, 80)
    u8 = upscale((lr * 255).round().astype(np.uint8), d, tile=None, nfe=1)
    assert u8.dtype == np.float32 and 0 <= u8.min() and u8.max() <= 1


def test_api_errors_are_clear():
    d = _tiny()
    with pytest.raises(ValueError, match=r"3 x 3 pixels.*smallest"):
        upscale(np.zeros((3, 3, 3), np.float32), d)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        upscale(np.full((16, 16, 3), 2.0, np.float32), d)
    with pytest.raises(ValueError, match="channels"):
        upscale(np.zeros((16, 16, 5), np.float32), d)
    with pytest.raises(ValueError, match="multiple of 4"):
        upscale(np.zeros((16, 16, 3), np.float32), d, tile=10, overlap=2)
    with pytest.raises(ValueError, match="overlap must be smaller"):
        upscale(np.zeros((16, 16, 3), np.float32), d, tile=8, overlap=8)
    with pytest.raises(ValueError, match="solver"):
        upscale(np.zeros((16, 16, 3), np.float32), d, solver="rk4")
    with pytest.raises(TypeError, match="image"):
        upscale([[0.5]], d)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        upscale(np.zeros((16, 16, 3), np.float32), "no/such/model.pt")
    assert MIN_SIDE == 8


# ---------------------------------------------------------------------------------------------
# files and the command line
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    net = _tiny_net()
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, net, schedule=ResShiftSchedule(), denoiser=_tiny().settings())
    return path


def _run(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    add_upscale_parser(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(["upscale", *argv])
    assert args.func is cmd_upscale
    return cmd_upscale(args)


def _fast(checkpoint: Path) -> list[str]:
    return ["--checkpoint", str(checkpoint), "--nfe", "1", "--tile", "16", "--overlap", "4", "--no-progress"]


def test_cli_writes_good_images_and_reports_a_corrupt_one(tmp_path, checkpoint, capsys):
    src = tmp_path / "in"
    src.mkdir()
    rgb = _photo_lr(20, 24)
    write_png(src / "a.png", rgb)
    Image.fromarray((rgb * 255).astype(np.uint8)).save(src / "b.jpg")
    (src / "broken.png").write_bytes((src / "a.png").read_bytes()[:120])  # truncated
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    rc = _run([str(src), "--out", str(out), *_fast(checkpoint)])
    captured = capsys.readouterr()
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_x4.png", "b_x4.png"]
    assert "broken.png" in captured.err and "FAILED 1" in captured.err
    assert "a_x4.png" in captured.out and "s/MP" in captured.out
    with Image.open(out / "a_x4.png") as im:
        assert im.size == (96, 80) and im.mode == "RGB"
    # same command again: the outputs exist and are kept; with --overwrite they are replaced
    before = (out / "a_x4.png").stat().st_mtime_ns
    rc = _run([str(src / "a.png"), "--out", str(out), *_fast(checkpoint)])
    assert rc == 1 and "--overwrite" in capsys.readouterr().err
    assert (out / "a_x4.png").stat().st_mtime_ns == before
    rc = _run([str(src / "a.png"), "--out", str(out), "--overwrite", *_fast(checkpoint)])
    assert rc == 0 and (out / "a_x4.png").stat().st_mtime_ns != before


def test_cli_is_deterministic_and_matches_the_api(tmp_path, checkpoint):
    rgb = _photo_lr(20, 24)
    write_png(tmp_path / "a.png", rgb)
    for name in ("o1", "o2"):
        assert _run([str(tmp_path / "a.png"), "--out", str(tmp_path / name), "--seed", "4", *_fast(checkpoint)]) == 0
    one = (tmp_path / "o1" / "a_x4.png").read_bytes()
    assert one == (tmp_path / "o2" / "a_x4.png").read_bytes()
    api = upscale(tmp_path / "a.png", checkpoint, nfe=1, tile=16, overlap=4, seed=4)
    np.testing.assert_array_equal(read_image(tmp_path / "o1" / "a_x4.png"), np.round(api * 255) / 255)


def test_cli_usage_errors(tmp_path, checkpoint, capsys):
    write_png(tmp_path / "a.png", _photo_lr(12, 12))
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert _run([str(tmp_path / "a.png"), "--out", str(afile), *_fast(checkpoint)]) == 2
    assert "is an existing file, not a folder" in capsys.readouterr().err
    assert _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), *_fast(checkpoint), "--nfe", "0"]) == 2
    assert "nfe" in capsys.readouterr().err
    assert _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), *_fast(checkpoint), "--threads", "0"]) == 2
    assert "--threads must be an integer >= 1" in capsys.readouterr().err
    # a 3 x 3 image and a missing file: reported, nothing else written, exit 1
    write_png(tmp_path / "tiny.png", np.full((3, 3, 3), 0.5))
    rc = _run([str(tmp_path / "tiny.png"), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o"),
               *_fast(checkpoint)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "3 x 3 pixels" in err and "smallest image" in err
    assert "missing.png: no such file or folder" in err


def test_gray_alpha_and_16_bit_files_keep_their_kind(tmp_path, checkpoint):
    rgb = _photo_lr(12, 16)
    gray = rgb.mean(axis=2)
    Image.fromarray((gray * 255).round().astype(np.uint8), "L").save(tmp_path / "g.png")
    Image.merge("LA", [Image.open(tmp_path / "g.png"), Image.new("L", (16, 12), 200)]).save(tmp_path / "ga.png")
    write_png(tmp_path / "rgba.png", np.dstack([rgb, np.linspace(0, 1, 12 * 16).reshape(12, 16)]))
    write_png(tmp_path / "deep.png", rgb, bits=16)
    write_png(tmp_path / "deepgray.png", gray, bits=16)
    assert read_for_upscale(tmp_path / "deep.png").bits == 16
    assert read_for_upscale(tmp_path / "g.png").gray
    out = tmp_path / "out"
    assert _run([str(tmp_path / "*.png"), "--out", str(out), *_fast(checkpoint)]) == 0
    modes = {}
    for p in sorted(out.iterdir()):
        with Image.open(p) as im:
            modes[p.name] = (im.mode, im.size)
    assert modes["g_x4.png"] == ("L", (64, 48))
    assert modes["ga_x4.png"] == ("LA", (64, 48))
    with Image.open(out / "ga_x4.png") as im:
        assert set(np.asarray(im.getchannel("A")).flatten().tolist()) == {200}  # bicubic keeps a constant
    assert modes["rgba_x4.png"] == ("RGBA", (64, 48))
    assert modes["deepgray_x4.png"][0].startswith("I;16")
    assert read_for_upscale(out / "deep_x4.png").bits == 16
    # the 16-bit output keeps more than 8 bits of precision
    deep = read_image(out / "deep_x4.png")
    assert np.abs(deep * 255 - np.round(deep * 255)).max() > 0.01


def test_collect_inputs_and_name_collisions(tmp_path, checkpoint, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    write_png(tmp_path / "x" / "same.png", _photo_lr(12, 12))
    write_png(tmp_path / "y" / "same.png", _photo_lr(12, 12))
    files, problems = collect_inputs([str(tmp_path / "x"), str(tmp_path / "x" / "same.png"), str(tmp_path / "z*.png")])
    assert files == [tmp_path / "x" / "same.png"]
    assert problems == [(str(tmp_path / "z*.png"), "pattern matches no image files")]
    rc = _run([str(tmp_path / "x"), str(tmp_path / "y"), "--out", str(tmp_path / "o"), *_fast(checkpoint)])
    assert rc == 1 and "also that of" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["same_x4.png"]
