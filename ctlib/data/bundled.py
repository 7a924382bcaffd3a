"""The photographs bundled with the kit (``data/photos``, listed in ``data/manifest.csv``).

* Test set: 26 HR images of 256 x 256 (PNG), each from a different source photo; the LR is
  made on load by MATLAB bicubic x1/4 (or by the ResShift testing degradation, seeded).
* Training set: 76 crops of 512 x 512 (JPEG quality 95, 4:4:4) from 14 multi-megapixel
  photographs that the test set never uses.

Licences, attributions and the rebuild script: ``data/README.md``.

The data folder is found at ``<repository>/data`` (the package is meant to be used from a
checkout, ``pip install -e .``); set the environment variable ``CTLIB_DATA_DIR`` to use another.
"""

from __future__ import annotations

import csv
import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .datasets import MIN_SIDE, PairedTestSet, bicubic_lr, crop_official, item_generator
from .degradation import degrade
from .degradation_params import RESSHIFT_TEST, DegradationConfig, get_preset
from .io import read_image, to_tensor

__all__ = [
    "data_dir",
    "manifest_path",
    "read_manifest",
    "verify_bundled",
    "bundled_paths",
    "load_bundled_test_set",
    "load_bundled_train_images",
    "BundledTrainDataset",
]


def data_dir() -> Path:
    """The kit's ``data/`` folder (``$CTLIB_DATA_DIR`` if set)."""
    env = os.environ.get("CTLIB_DATA_DIR")
    d = Path(env) if env else Path(__file__).resolve().parents[2] / "data"
    if not (d / "manifest.csv").is_file():
        raise FileNotFoundError(
            f"bundled data not found: {d / 'manifest.csv'} is missing. ctlib looks for the data/ folder of "
            f"its repository checkout; set CTLIB_DATA_DIR to the folder that holds manifest.csv."
        )
    return d


def manifest_path() -> Path:
    return data_dir() / "manifest.csv"


def read_manifest() -> list[dict[str, str]]:
    """The rows of ``data/manifest.csv`` (file, split, source_group, licence, sha256, ...)."""
    with open(manifest_path(), newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def verify_bundled() -> list[str]:
    """Check every manifest entry against its file; returns the problems (empty when all match)."""
    root = data_dir()
    problems = []
    for row in read_manifest():
        f = root / row["file"]
        if not f.is_file():
            problems.append(f"{row['file']}: missing")
            continue
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        if digest != row["sha256"]:
            problems.append(f"{row['file']}: sha256 {digest} != manifest {row['sha256']}")
    return problems


def bundled_paths(split: str) -> list[Path]:
    """Files of the ``'test'`` or ``'train'`` split, in manifest order."""
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")
    root = data_dir()
    return [root / r["file"] for r in read_manifest() if r["split"] == split]


def load_bundled_test_set(
    *,
    lr: str = "bicubic",
    seed: int = 0,
    degradation: DegradationConfig | str = RESSHIFT_TEST,
    device: torch.device | str | None = None,
    limit: int | None = None,
) -> PairedTestSet:
    """The bundled test set as tensors: ``hr`` (26, 3, 256, 256), ``lr`` (26, 3, 64, 64), ``names``.

    Args:
        lr: ``'bicubic'`` (MATLAB imresize x1/4 of the HR, clamped and rounded to 8 bit -- the
            report's kind of test set) or ``'degradation'`` (the ResShift testing degradation,
            image i drawn from ``item_generator(seed, 0, i)``).
        seed: only used by ``lr='degradation'``.
        degradation: the config for ``lr='degradation'``.
        device: where to put the tensors.
        limit: only the first ``limit`` images (smoke runs).
    """
    if lr not in ("bicubic", "degradation"):
        raise ValueError(f"lr must be 'bicubic' or 'degradation', got {lr!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    paths = bundled_paths("test")[:limit]
    hr = torch.stack([to_tensor(read_image(p)) for p in paths])  # type: ignore[arg-type]
    if lr == "bicubic":
        lr_t = bicubic_lr(hr.double()).float()
    else:
        cfg = get_preset(degradation)
        lr_t = torch.cat([degrade(hr[i : i + 1], item_generator(seed, 0, i), cfg) for i in range(len(paths))])
    out = PairedTestSet(hr=hr, lr=lr_t, names=[p.name for p in paths])
    return out.to(device) if device is not None else out


@lru_cache(maxsize=1)
def _train_images_u8() -> tuple[torch.Tensor, ...]:
    return tuple(
        torch.from_numpy(np.round(read_image(p) * 255.0).astype(np.uint8)).permute(2, 0, 1).contiguous()  # type: ignore[operator]
        for p in bundled_paths("train")
    )


def load_bundled_train_images() -> list[torch.Tensor]:
    """The bundled training photos as uint8 (3, H, W) tensors (cached after the first call)."""
    return list(_train_images_u8())


class BundledTrainDataset(torch.utils.data.Dataset):
    """Random ``crop_size`` crops of the bundled training photos, seeded.

    Item ``i`` picks a photo uniformly, a uniform position and a horizontal flip (p = 1/2) from
    ``item_generator(seed, epoch, i)``; ``length`` items per epoch. Items are float32
    (3, crop_size, crop_size) tensors in [0, 1]. ``official_crop=True`` uses the official
    pad-to-``crop_pad_size`` / random-crop recipe of :class:`ImageFolderDataset` instead.
    """

    def __init__(
        self,
        crop_size: int = 256,
        *,
        length: int = 1000,
        seed: int = 0,
        hflip: bool = True,
        official_crop: bool = False,
        crop_pad_size: int = 300,
    ) -> None:
        images = _train_images_u8()
        smallest = min(min(im.shape[-2:]) for im in images)
        if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 1:
            raise ValueError(f"crop_size must be a positive integer, got {crop_size!r}")
        if not official_crop and crop_size > smallest:
            raise ValueError(f"crop_size must be <= {smallest} (the bundled training photos' size), got {crop_size}")
        if smallest < MIN_SIDE:
            raise ValueError(f"a bundled training photo is smaller than {MIN_SIDE} px")
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.images = images
        self.crop_size, self.length, self.seed = crop_size, int(length), int(seed)
        self.hflip, self.official_crop, self.crop_pad_size = bool(hflip), bool(official_crop), int(crop_pad_size)
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of length {self.length}")
        g = item_generator(self.seed, self.epoch, index)
        k = int(torch.randint(len(self.images), (1,), generator=g))
        img = self.images[k].float() / 255.0
        if self.official_crop:
            return crop_official(img, g, gt_size=self.crop_size, crop_pad_size=max(self.crop_pad_size, self.crop_size),
                                 hflip=self.hflip)
        h, w = img.shape[-2:]
        top = int(torch.randint(h - self.crop_size + 1, (1,), generator=g))
        left = int(torch.randint(w - self.crop_size + 1, (1,), generator=g))
        flip = bool(torch.rand(1, generator=g) < 0.5)
        crop = img[:, top : top + self.crop_size, left : left + self.crop_size]
        return (crop.flip(-1) if self.hflip and flip else crop).contiguous()
