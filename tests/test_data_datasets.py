"""Datasets and the test-set builder: official crops, size rejection, ResShift selection, files."""

from __future__ import annotations

import csv
import hashlib
import json
import random
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ctlib.data.datasets import (
    ImageFolderDataset,
    bicubic_lr,
    build_test_set,
    load_paired_folder,
    pad_reflect_to,
    resize_short_side_center_crop,
    select_resshift,
)
from ctlib.data.imresize import imresize
from ctlib.data.io import read_image, to_tensor


def _coord_image(h: int, w: int) -> np.ndarray:
    """uint8 image whose pixels encode their position: R = x mod 256, G = y mod 256, B = x // 256 * 64 + y // 256."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x % 256, y % 256, (x // 256) * 64 + y // 256], -1).astype(np.uint8)


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_pad_reflect_matches_numpy_reflect():
    img = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    out = pad_reflect_to(img, 9)
    ref = np.pad(img.numpy(), ((0, 0), (0, 4), (0, 2)), mode="reflect")  # numpy 'reflect' = BORDER_REFLECT_101
    np.testing.assert_array_equal(out.numpy(), ref)
    big = pad_reflect_to(img, 40)  # needs several passes
    assert big.shape[-2:] == (40, 40)
    np.testing.assert_array_equal(big[:, :5, :7].numpy(), img.numpy())


def test_folder_dataset_crops_are_windows_of_the_image(tmp_path):
    arr = _coord_image(320, 400)
    _save(tmp_path / "n01" / "a.png", arr)
    _save(tmp_path / "n02" / "deep" / "b.png", _coord_image(280, 290))
    ds = ImageFolderDataset(tmp_path, seed=3)
    assert len(ds) == 2
    img = to_tensor(arr)

    def xcoord(t: torch.Tensor) -> torch.Tensor:
        return torch.round(t[0] * 255) + 256 * torch.div(torch.round(t[2] * 255), 64, rounding_mode="floor")

    flips = 0
    for epoch in range(6):
        ds.set_epoch(epoch)
        crop = ds[0]
        assert crop.shape == (3, 256, 256) and crop.dtype == torch.float32
        x = xcoord(crop)
        increasing = bool(x[0, 0] < x[0, 1])
        flips += int(not increasing)
        c = crop if increasing else crop.flip(-1)
        left, top = int(xcoord(c)[0, 0]), round(float(c[1, 0, 0]) * 255)
        torch.testing.assert_close(c, img[:, top : top + 256, left : left + 256], rtol=0, atol=0)
    assert 0 < flips < 6  # both flipped and unflipped crops occur
    # reproducible per (seed, epoch, index), different across epochs
    ds.set_epoch(2)
    a = ds[1]
    ds2 = ImageFolderDataset(tmp_path, seed=3)
    ds2.set_epoch(2)
    assert torch.equal(a, ds2[1])
    ds2.set_epoch(3)
    assert not torch.equal(a, ds2[1])


def test_small_images_are_padded_by_reflection(tmp_path):
    _save(tmp_path / "s.png", _coord_image(100, 180))
    ds = ImageFolderDataset(tmp_path, hflip=False)
    crop = ds[0]
    padded = pad_reflect_to(to_tensor(_coord_image(100, 180)), 300)
    left, top = None, None
    # locate the crop in the padded image through its first row/column
    for t in range(300 - 256 + 1):
        for l in range(300 - 256 + 1):
            if torch.equal(padded[:, t, l : l + 256], crop[:, 0]) and torch.equal(padded[:, t : t + 256, l], crop[:, :, 0]):
                top, left = t, l
                break
        if top is not None:
            break
    assert top is not None
    torch.testing.assert_close(crop, padded[:, top : top + 256, left : left + 256], rtol=0, atol=0)


def test_tiny_and_broken_files_are_rejected_with_a_clear_message(tmp_path):
    _save(tmp_path / "ok.png", _coord_image(64, 80))
    _save(tmp_path / "one.png", _coord_image(1, 1))
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ImageFolderDataset(tmp_path)
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1
    assert "one.png" in msgs[0] and "1x1" in msgs[0] and ">= 32" in msgs[0] and "broken.jpg" in msgs[0]
    assert [p.name for p in ds.paths] == ["ok.png"]
    # without the scan, fetching the 1x1 image raises
    lazy = ImageFolderDataset(tmp_path, scan=False, extensions=[".png"])
    idx = [p.name for p in lazy.paths].index("one.png")
    with pytest.raises(ValueError, match=r"1x1.*needs both sides >= 32"):
        lazy[idx]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no usable images"):
        ImageFolderDataset(empty)


def test_rescale_gt_mode(tmp_path):
    _save(tmp_path / "a.png", _coord_image(300, 500))
    out = ImageFolderDataset(tmp_path, rescale_gt=True)[0]
    assert out.shape == (3, 256, 256)


@pytest.mark.parametrize("h,w", [(375, 500), (500, 333), (200, 150), (256, 256)])
def test_short_side_resize_and_centre_crop(h, w):
    img = torch.rand(3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h))
    out = resize_short_side_center_crop(img, 256)
    assert out.shape == (3, 256, 256)
    s = 256 / min(h, w)
    nh, nw = (256, round(w * s)) if h <= w else (round(h * s), 256)
    full = imresize(img, size=(nh, nw)) if (nh, nw) != (h, w) else img
    top, left = (nh - 256) // 2, (nw - 256) // 2
    torch.testing.assert_close(out, full[:, top : top + 256, left : left + 256])


def test_select_resshift_reproduces_the_official_script():
    """The official script: random.seed(10000); random.shuffle(img_list); random.sample(paths, n)."""
    files = [f"n{c:02d}/ILSVRC2012_val_{i:08d}.JPEG" for c in range(7) for i in range(c * 30, c * 30 + 30)]
    state = random.getstate()
    try:
        random.seed(10000)
        img_list = sorted(files)
        random.shuffle(img_list)
        expected = random.sample(sorted(files), 50)
    finally:
        random.setstate(state)
    assert [str(p) for p in select_resshift(sorted(files), 50, 10000)] == expected
    with pytest.raises(ValueError, match="only 210"):
        select_resshift(files, 500)


@pytest.fixture()
def photo_folder(tmp_path):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    sizes = [(300, 400), (500, 375), (260, 300), (333, 500), (280, 280), (400, 300)]
    for i, (h, w) in enumerate(sizes):
        base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
        arr = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        _save(src / f"n0{i % 2}" / f"img_{i}.JPEG", arr)
    (src / "n00" / "corrupt.JPEG").write_bytes(b"\xff\xd8 broken")
    return src


def test_build_test_set_bicubic(photo_folder, tmp_path):
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = build_test_set(photo_folder, out, n=5, lr="bicubic", seed=1)
    assert len(res) + len(res.skipped) == 5
    if res.skipped:
        assert any("corrupt.JPEG" in str(w.message) for w in caught)
    pairs = load_paired_folder(out)
    assert pairs.hr.shape == (len(res), 3, 256, 256) and pairs.lr.shape == (len(res), 3, 64, 64)
    # the LR on disk is exactly MATLAB bicubic x1/4 of the HR on disk, rounded to 8 bit
    torch.testing.assert_close(pairs.lr, bicubic_lr(pairs.hr.double()).float(), rtol=0, atol=1e-6)
    # the HR is the short-side resize + centre crop of the chosen source
    for name, src in zip(res.names, res.sources):
        hr = resize_short_side_center_crop(to_tensor(read_image(src)).double(), 256)
        on_disk = pairs.hr[pairs.names.index(name)].double()
        torch.testing.assert_close(on_disk, torch.round(hr.clamp(0, 1) * 255) / 255, rtol=0, atol=1e-6)
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["name"] for r in rows] == res.names
    for r in rows:
        assert hashlib.sha256((out / "hr" / r["name"]).read_bytes()).hexdigest() == r["hr_sha256"]
        assert hashlib.sha256((out / "lr" / r["name"]).read_bytes()).hexdigest() == r["lr_sha256"]
    info = json.loads((out / "build_info.json").read_text())
    assert info["n_requested"] == 5 and info["lr"] == "bicubic" and info["files_found"] == 7


def test_build_test_set_refuses_existing_output_and_empty_input(photo_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    with pytest.raises(FileExistsError, match="already exists.*overwrite=True"):
        build_test_set(photo_folder, out, n=2)
    res = build_test_set(photo_folder, out, n=2, overwrite=True, extensions=("JPEG",))
    assert (out / "keep.txt").read_text() == "user file"  # only our own files are replaced
    assert len(list((out / "hr").iterdir())) == len(res)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        build_test_set(empty, tmp_path / "o2", n=2)
    with pytest.raises(ValueError, match="fewer than n=100"):
        build_test_set(photo_folder, tmp_path / "o3", n=100)
    with pytest.raises(FileNotFoundError):
        build_test_set(tmp_path / "missing", tmp_path / "o4", n=1)
    with pytest.raises(ValueError, match="lr must be"):
        build_test_set(photo_folder, tmp_path / "o5", n=1, lr="nearest")


def test_build_test_set_degradation_is_seeded(photo_folder, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the corrupt file may be among the chosen ones
        a = build_test_set(photo_folder, tmp_path / "a", n=3, lr="degradation", seed=5, extensions=("JPEG",))
        b = build_test_set(photo_folder, tmp_path / "b", n=3, lr="degradation", seed=5, extensions=("JPEG",))
    pa, pb = load_paired_folder(tmp_path / "a"), load_paired_folder(tmp_path / "b")
    assert a.names == b.names and len(a) >= 2 and torch.equal(pa.lr, pb.lr)
    assert pa.lr.shape[-2:] == (64, 64)
    assert not torch.equal(pa.lr, bicubic_lr(pa.hr.double()).float())
