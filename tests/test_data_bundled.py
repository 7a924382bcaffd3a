"""The bundled photographs: integrity, licences, split hygiene, loaders (offline, fresh process)."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from ctlib.data.bundled import (
    BundledTrainDataset,
    bundled_paths,
    data_dir,
    load_bundled_test_set,
    load_bundled_train_images,
    read_manifest,
    verify_bundled,
)
from ctlib.data.imresize import imresize

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with open(DATA / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_manifest_sha256_matches_every_file(rows):
    assert rows
    for r in rows:
        digest = hashlib.sha256((DATA / r["file"]).read_bytes()).hexdigest()
        assert digest == r["sha256"], r["file"]
    assert verify_bundled() == []
    listed = {r["file"] for r in rows}
    on_disk = {p.relative_to(DATA).as_posix() for p in (DATA / "photos").rglob("*") if p.suffix in (".png", ".jpg")}
    assert on_disk == listed  # no unlisted photo, no missing one


def test_every_photo_has_licence_and_attribution(rows):
    for r in rows:
        for key in ("source_package", "original_name", "licence", "attribution", "source_group", "source_sha256"):
            assert r[key].strip(), (r["file"], key)
    licence_dir = DATA / "photos" / "LICENSES"
    assert (licence_dir / "Apache-2.0.txt").is_file()
    assert (licence_dir / "lomiri-wallpapers-16.04.copyright").is_file()
    assert "Attribution-ShareAlike 4.0" in (licence_dir / "lomiri-wallpapers-16.04.copyright").read_text()


def test_no_test_image_shares_a_source_photo_with_training(rows):
    test = [r for r in rows if r["split"] == "test"]
    train = [r for r in rows if r["split"] == "train"]
    assert {r["split"] for r in rows} == {"test", "train"}
    for key in ("source_group", "source_sha256", "original_name"):
        assert not ({r[key] for r in test} & {r[key] for r in train}), key
    # each test image comes from its own source photo
    assert len({r["source_sha256"] for r in test}) == len(test)


def test_sizes_formats_and_budget(rows):
    test = [r for r in rows if r["split"] == "test"]
    train = [r for r in rows if r["split"] == "train"]
    assert len(test) >= 24
    for r in test:
        with Image.open(DATA / r["file"]) as im:
            assert im.format == "PNG" and im.size == (256, 256) and im.mode == "RGB"
    for r in train:
        with Image.open(DATA / r["file"]) as im:
            assert min(im.size) >= 512  # real detail, not thumbnails
    total = sum(p.stat().st_size for p in (DATA / "photos").rglob("*") if p.is_file())
    assert total <= 25 * 1024 * 1024


def test_bundled_test_set_loads_offline_in_a_fresh_process(tmp_path):
    """A new interpreter with the network disabled loads the set from the checkout alone."""
    code = (
        "import socket\n"
        "def _no_net(*a, **k): raise OSError('network disabled in this test')\n"
        "socket.socket.connect = _no_net; socket.create_connection = _no_net; socket.getaddrinfo = _no_net\n"
        "from ctlib.data import load_bundled_test_set\n"
        "ts = load_bundled_test_set()\n"
        "print(tuple(ts.hr.shape), tuple(ts.lr.shape), len(ts.names))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CTLIB_DATA_DIR", "PYTHONPATH")}
    env["HOME"] = str(tmp_path)  # no user caches
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    n = len(bundled_paths("test"))
    assert out.stdout.split() == [f"({n},", "3,", "256,", "256)", f"({n},", "3,", "64,", "64)", str(n)]


def test_bundled_test_set_lr_is_matlab_bicubic():
    ts = load_bundled_test_set()
    assert ts.hr.shape[1:] == (3, 256, 256) and ts.lr.shape[1:] == (3, 64, 64)
    assert ts.names == [p.name for p in bundled_paths("test")]
    expected = torch.round(imresize(ts.hr.double(), 0.25).clamp(0, 1) * 255) / 255
    torch.testing.assert_close(ts.lr.double(), expected, rtol=0, atol=1e-6)
    deg_a = load_bundled_test_set(lr="degradation", seed=1, limit=3)
    deg_b = load_bundled_test_set(lr="degradation", seed=1, limit=3)
    deg_c = load_bundled_test_set(lr="degradation", seed=2, limit=3)
    assert deg_a.names == ts.names[:3] and deg_a.lr.shape == (3, 3, 64, 64)
    assert torch.equal(deg_a.lr, deg_b.lr) and not torch.equal(deg_a.lr, deg_c.lr)
    assert not torch.equal(deg_a.lr, ts.lr[:3])


def test_bundled_train_dataset():
    images = load_bundled_train_images()
    assert all(im.dtype == torch.uint8 and im.shape[0] == 3 for im in images)
    ds = BundledTrainDataset(96, length=12, seed=4)
    x = ds[5]
    assert x.shape == (3, 96, 96) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert torch.equal(x, BundledTrainDataset(96, length=12, seed=4)[5])
    assert not torch.equal(x, BundledTrainDataset(96, length=12, seed=5)[5])
    # every item is a window of one of the photos (possibly mirrored): find it by its first pixel
    found = False
    target = torch.round(x * 255).to(torch.uint8)
    for im in images:
        for cand in (im, im.flip(-1)):
            h, w = cand.shape[-2:]
            for yy, xx in torch.nonzero((cand == target[:, 0, 0, None, None]).all(dim=0)).tolist():
                if yy + 96 <= h and xx + 96 <= w and torch.equal(cand[:, yy : yy + 96, xx : xx + 96], target):
                    found = True
    assert found
    with pytest.raises(ValueError, match="crop_size"):
        BundledTrainDataset(1024)
    assert len(BundledTrainDataset(official_crop=True, length=3)[0].shape) == 3


def test_data_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("CTLIB_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="CTLIB_DATA_DIR"):
        data_dir()
    monkeypatch.setenv("CTLIB_DATA_DIR", str(DATA))
    assert len(read_manifest()) > 0
