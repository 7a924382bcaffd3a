"""Evaluation sets: the HR / LR pairs a table is scored on.

:func:`bundled_eval_set` -- the bundled test photos (optionally centre-cropped); :func:`folder_eval_set`
-- every image of a folder the user gives (sides cropped to multiples of 4, images under
:data:`MIN_HR_SIDE` px rejected and listed).  Both return a :class:`~ctlib.data.PairedTestSet` whose LR
is MATLAB bicubic x1/4 of the HR, in 8-bit levels.  :func:`choose_crop_windows` picks the zoom windows
of the crop figure (the window with the most HR gradient energy).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .._checks import check_int
from .datasets import PairedTestSet, bicubic_lr

__all__ = ["MIN_HR_SIDE", "SCALE", "check_crop", "bundled_eval_set", "folder_eval_set", "choose_crop_windows"]

#: Smallest HR side accepted (LR side 4; HaarPSI needs 16 px).
MIN_HR_SIDE = 16


SCALE = 4


def _center_crop(img: torch.Tensor, h: int, w: int) -> torch.Tensor:
    H, W = img.shape[-2:]
    top, left = (H - h) // 2, (W - w) // 2
    return img[..., top : top + h, left : left + w]


def _make_lr(hr: torch.Tensor) -> torch.Tensor:
    return bicubic_lr(hr[None].double(), SCALE).float()[0]


def check_crop(crop: Any) -> int:
    """A crop side: an integer >= :data:`MIN_HR_SIDE` and a multiple of :data:`SCALE`."""
    crop = check_int(crop, "crop", minimum=MIN_HR_SIDE)
    if crop % SCALE:
        raise ValueError(f"crop must be a multiple of {SCALE} (the LR is 1/{SCALE} of it), got {crop}")
    return crop


def bundled_eval_set(n_images: int | None = None, crop: int | None = None) -> PairedTestSet:
    """The bundled test photos (first ``n_images``; 256 x 256), centre-cropped to ``crop`` x ``crop``
    (a multiple of 4) if given; LR = MATLAB bicubic x1/4 of the (cropped) HR, 8-bit."""
    from .bundled import load_bundled_test_set

    test = load_bundled_test_set(limit=n_images)
    if crop is None:
        test.description = f"{len(test)} bundled test photos, 256 x 256, LR by MATLAB bicubic x1/4"
        return test
    crop = check_crop(crop)
    if crop > test.hr.shape[-1]:
        raise ValueError(f"crop must be at most {test.hr.shape[-1]}, got {crop}")
    hr = [_center_crop(t, crop, crop).contiguous() for t in test.hr]
    return PairedTestSet(hr, [_make_lr(t) for t in hr], list(test.names),
                         f"{len(hr)} bundled test photos, centre {crop} x {crop} crops of 256 x 256, "
                         "LR by MATLAB bicubic x1/4 of the crop")


def folder_eval_set(folder: str | Path, *, limit: int | None = None, crop: int | None = None) -> PairedTestSet:
    """Every image of ``folder`` (sorted by name; first ``limit``) as HR, LR by MATLAB bicubic x1/4.

    Images whose sides are not multiples of 4 are centre-cropped to the largest multiple of 4 (listed
    in ``notes``); images with a side below :data:`MIN_HR_SIDE` px are rejected (listed in ``notes``
    and in a warning).  ``crop``: centre-crop every image to at most ``crop`` x ``crop``.  Raises
    ValueError when the folder holds no usable image (saying why).
    """
    from .io import load_images, to_tensor

    if limit is not None:
        limit = check_int(limit, "limit", minimum=1)
    if crop is not None:
        crop = check_crop(crop)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"HR folder not found: {folder}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loaded = load_images(folder)
    notes = [f"skipped unreadable {p.name}: {why}" for p, why in loaded.skipped]
    if not loaded.images:
        extra = f" ({len(loaded.skipped)} unreadable file(s))" if loaded.skipped else ""
        raise ValueError(f"no images found in the HR folder {folder}{extra}; expected PNG/JPEG/... files")
    hr, names, rejected, cropped = [], [], [], []
    for img, path in zip(loaded.images, loaded.paths):
        t = to_tensor(img)
        h, w = t.shape[-2:]
        if min(h, w) < MIN_HR_SIDE:
            rejected.append(f"{path.name} ({w}x{h})")
            continue
        nh, nw = h - h % SCALE, w - w % SCALE
        if crop is not None:
            nh, nw = min(nh, crop), min(nw, crop)
        if (nh, nw) != (h, w):
            cropped.append(f"{path.name} {w}x{h} -> {nw}x{nh}")
            t = _center_crop(t, nh, nw)
        hr.append(torch.round(t.contiguous().clamp(0, 1) * 255) / 255)  # 8-bit levels, as scored
        names.append(path.name)
        if limit is not None and len(hr) >= limit:
            break
    if rejected:
        msg = (f"rejected {len(rejected)} image(s) smaller than {MIN_HR_SIDE} px on a side (the x4 LR would "
               f"be under {MIN_HR_SIDE // SCALE} px): {', '.join(rejected)}")
        notes.append(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
    if cropped:
        notes.append("centre-cropped to a multiple of 4 (or to --crop): " + "; ".join(cropped))
    if not hr:
        raise ValueError(f"no usable images in the HR folder {folder}: " + "; ".join(notes))
    return PairedTestSet(hr, [_make_lr(t) for t in hr], names,
                         f"{len(hr)} images from {folder}, LR by MATLAB bicubic x1/4", notes)


def choose_crop_windows(eval_set: PairedTestSet, indices: Sequence[int], size: int | None = None) -> list[tuple[int, int, int, int]]:
    """``(index, top, left, size)`` zoom windows: per image, the ``size`` x ``size`` window (positions
    on a stride-4 lattice, so the LR window is exact) with the most HR gradient energy.  ``size``
    defaults to 3/8 of the smaller side, rounded down to a multiple of 4."""
    out = []
    for i in indices:
        if not 0 <= i < len(eval_set):
            continue
        hr = eval_set.hr[i]
        H, W = hr.shape[-2:]
        s = size if size is not None else max(MIN_HR_SIDE, (min(H, W) * 3 // 8) // SCALE * SCALE)
        s = min(s, H - H % SCALE, W - W % SCALE)
        y = (0.299 * hr[0] + 0.587 * hr[1] + 0.114 * hr[2]).double()
        energy = torch.zeros_like(y)
        energy[:, 1:] += (y[:, 1:] - y[:, :-1]) ** 2
        energy[1:, :] += (y[1:, :] - y[:-1, :]) ** 2
        integral = torch.nn.functional.pad(energy.cumsum(0).cumsum(1), (1, 0, 1, 0))
        best, best_pos = -1.0, (0, 0)
        for top in range(0, H - s + 1, SCALE):
            for left in range(0, W - s + 1, SCALE):
                e = float(integral[top + s, left + s] - integral[top, left + s] - integral[top + s, left] + integral[top, left])
                if e > best + 1e-12:
                    best, best_pos = e, (top, left)
        out.append((int(i), best_pos[0], best_pos[1], int(s)))
    return out
