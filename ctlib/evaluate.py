r"""Solver x rho x nfe sweeps on super-resolution test images: per-image CSVs, tables, figures, CLI.

What a sweep does
-----------------
Every *row* (:class:`RowSpec`) is one way to turn an LR image into an SR image: a solver of
:mod:`ctlib.samplers` with its ``rho`` and ``nfe`` on one of the models (``"baseline"``: the
discrete ResShift model; ``"continuous"``: its continuous-time fine-tune), or a reference:

* ``bicubic`` -- MATLAB ``imresize`` x4 of the LR (no network; the field's "Bicubic" row);
* ``x0_hat`` -- the one-step prediction ``x0_hat(x_T, t = 1)`` from the prior sample (nfe 1);
* ``exp1_levels`` -- the *few-step baseline*: the first-order exponential integrator (the
  deterministic, DDIM-like counterpart of ResShift) on ``nfe`` of the discrete model's own trained
  levels ``t = k/T`` (``k = round(linspace(T, 1, nfe))``), so the discrete model is never asked
  about a time it was not trained on; the official ``resshift`` sampler itself only runs at
  ``nfe = T``.

Randomness: the prior noise of image ``i`` is ``eps_T ~ N(0, I)`` drawn from
``torch.Generator().manual_seed(i + 1_000_000 * seed)`` (:func:`image_generator`), the same for every
row, so rows differ only by the solver; the stochastic ``resshift`` rows then draw their per-step
noise from the same generator (after ``eps_T``).  Results are identical on rerun.

Metrics (per image, on the 8-bit quantised SR image, as a saved PNG would be scored;
:mod:`ctlib.metrics`): ``psnr_y``, ``ssim_y`` (official conventions, BT.601 Y, no border),
``psnr_rgb``, ``ssim_rgb``, ``haarpsi``, ``ms_ssim`` (NaN below 161 px), ``lpips`` (the ``lpips``
package, AlexNet; "unavailable" with the file it needs when the backbone is not on the machine), and
the report's conventions (errata 3 and 4): ``psnr_rgb_piq`` (``piq.psnr``), ``ssim_loss_piq``
(``piq.SSIMLoss`` = 1 - SSIM, the report's "SSIM" column) and ``lpips_vgg_piq`` (piq's VGG LPIPS).

Caching: each row writes ``rows/<key>.csv`` (per-image metrics), ``rows/<key>.json`` (what was run,
on which checkpoint sha256 and which images, status, time) and ``rows/<key>.crops.npz`` (zoomed crops
for the figure) into the results folder; a rerun reads them back instead of recomputing unless the
fingerprint (checkpoint sha256, image set, seed, crop windows) changed or ``recompute=True``.  A row
that fails (unknown solver, wrong checkpoint, nfe a solver cannot use, ...) is reported as failed
with its reason and the rest of the sweep runs.

Profiles (:data:`EVAL_PROFILES`): ``smoke`` 2 bundled images centre-cropped to 64 x 64, 5 rows;
``cpu`` all 26 bundled test images centre-cropped to 128 x 128 (4x fewer pixels than 256: the
whole table, ~290 network evaluations per image, fits in about 10 minutes on 2 CPU cores);
``gpu`` the 26 images at 256 x 256; ``paper`` a folder of HR images given by the user, all of them.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._checks import atomic_write, check_device, check_int, check_output_file
from .diffusion import prior_sample
from .samplers import SOLVERS, sample, sample_exp1

__all__ = [
    "REPO_ROOT",
    "SHIPPED_CHECKPOINTS",
    "DEV_CHECKPOINTS",
    "DEFAULT_CHECKPOINTS",
    "RECORD_DIR",
    "REFERENCE_SOLVERS",
    "LEVELS_SOLVER",
    "ROW_SOLVERS",
    "METRIC_KEYS",
    "METRIC_FORMATS",
    "REPORT_RHOS",
    "REPORT_TABLE1",
    "EVAL_PROFILES",
    "MIN_HR_SIDE",
    "RowSpec",
    "RowResult",
    "EvalSet",
    "TableResult",
    "levels_grid",
    "image_generator",
    "seeded_prior",
    "sample_spread",
    "bundled_eval_set",
    "folder_eval_set",
    "choose_crop_windows",
    "load_denoiser",
    "model_fingerprint",
    "file_sha256",
    "evaluate_row",
    "run_rows",
    "table_rows",
    "sweep_rows",
    "best_row",
    "matching_nfe",
    "reproduce_table",
    "write_table",
    "load_table",
    "format_table",
    "compare_with_report",
    "rho_effects",
    "record_matches",
    "save_record",
    "print_table_from",
    "plot_table",
    "plot_nfe",
    "plot_crops",
    "add_evaluate_parser",
    "cli_evaluate",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The shipped pixel-space models (relative to the repository root).
SHIPPED_CHECKPOINTS: dict[str, str] = {
    "baseline": "data/checkpoints/baseline_discrete.pt",
    "continuous": "data/checkpoints/continuous_finetune.pt",
}
#: A snapshot of the baseline training, used for both roles while the shipped models are trained.
DEV_CHECKPOINTS: dict[str, str] = {"baseline": "runs/dev_baseline.pt", "continuous": "runs/dev_baseline.pt"}
#: The checkpoints the ``smoke`` / ``cpu`` / ``gpu`` profiles use.
DEFAULT_CHECKPOINTS: dict[str, str] = SHIPPED_CHECKPOINTS
#: The committed results of record of the ``cpu`` profile (relative to the repository root).
RECORD_DIR = "data/results/cpu"

REFERENCE_SOLVERS: tuple[str, ...] = ("bicubic", "x0_hat")
LEVELS_SOLVER = "exp1_levels"
#: Every solver name a row may use.
ROW_SOLVERS: tuple[str, ...] = (*REFERENCE_SOLVERS, *SOLVERS, LEVELS_SOLVER)
_RHO_SOLVERS = tuple(s for s in SOLVERS if s != "resshift")

#: Per-image metric columns (see the module docstring), in table order.
METRIC_KEYS: tuple[str, ...] = (
    "psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "haarpsi", "ms_ssim", "lpips",
    "psnr_rgb_piq", "ssim_loss_piq", "lpips_vgg_piq",
)
#: Precision used when tables are printed (modest, so that outputs compare stably across machines).
METRIC_FORMATS: dict[str, str] = {
    "psnr_y": ".2f", "ssim_y": ".4f", "psnr_rgb": ".2f", "ssim_rgb": ".4f", "haarpsi": ".4f", "ms_ssim": ".4f",
    "lpips": ".4f", "psnr_rgb_piq": ".2f", "ssim_loss_piq": ".4f", "lpips_vgg_piq": ".4f",
}
_METRIC_TITLES: dict[str, str] = {
    "psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "psnr_rgb": "PSNR-RGB", "ssim_rgb": "SSIM-RGB", "haarpsi": "HaarPSI",
    "ms_ssim": "MS-SSIM", "lpips": "LPIPS-alex", "psnr_rgb_piq": "PSNR-RGB (piq)",
    "ssim_loss_piq": "1-SSIM (piq)", "lpips_vgg_piq": "LPIPS-VGG (piq)",
}
_HIGHER_IS_BETTER: dict[str, bool] = {k: k not in ("lpips", "ssim_loss_piq", "lpips_vgg_piq") for k in METRIC_KEYS}

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

#: Smallest HR side accepted (LR side 4; HaarPSI needs 16 px).
MIN_HR_SIDE = 16
SCALE = 4
CACHE_VERSION = 1

#: Evaluation settings per profile.  ``n_images``: None = all; ``crop``: centre crop side (None = full
#: images); ``sweep_nfes``: the nfe values of the few-step sweep (nfe = 15 comes from the table);
#: ``rows``: "table" (the report's rows + exp1/exp2m/exp3m) or "smoke" (5 rows); ``grid_images``: images shown
#: in the crop figure.
EVAL_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"n_images": 2, "crop": 64, "batch_size": 2, "rows": "smoke", "sweep_nfes": (3,), "grid_images": (0, 1),
              "source": "bundled"},
    "cpu": {"n_images": None, "crop": 128, "batch_size": 13, "rows": "table", "sweep_nfes": (3, 5, 8, 10),
            "grid_images": (0, 5, 12, 21), "source": "bundled"},
    "gpu": {"n_images": None, "crop": None, "batch_size": 26, "rows": "table", "sweep_nfes": (3, 5, 8, 10),
            "grid_images": (0, 5, 12, 21), "source": "bundled"},
    "paper": {"n_images": None, "crop": None, "batch_size": 8, "rows": "table", "sweep_nfes": (3, 5, 8, 10),
              "grid_images": (0, 1, 2, 3), "source": "folder"},
}


# ---------------------------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------------------------
def _rho_text(rho: float) -> str:
    r = float(rho)
    text = f"{abs(r):g}"
    return ("m" if r < 0 else "") + text


@dataclass(frozen=True)
class RowSpec:
    """One row of a sweep.

    Attributes:
        solver: one of :data:`ROW_SOLVERS` (validated when the row runs, so a bad row fails alone).
        model: which model of the sweep's ``models`` mapping (``"baseline"`` / ``"continuous"``);
            None for ``bicubic``.
        nfe: network evaluations per image (0 for bicubic, 1 for x0_hat, T for resshift).
        rho: the time-grid parameter (ignored by resshift, exp1_levels and the references).
        label: name shown in tables (default: made from the fields).
        group: ``"reference"``, ``"table"`` or ``"sweep"``.
    """

    solver: str
    model: str | None = "continuous"
    nfe: int = 15
    rho: float = 1.0
    label: str = ""
    group: str = "table"

    @property
    def uses_rho(self) -> bool:
        return self.solver in _RHO_SOLVERS

    @property
    def key(self) -> str:
        """File-name-safe identifier, e.g. ``continuous-euler-rhom4-nfe15``."""
        if self.solver == "bicubic":
            return "bicubic"
        parts = [str(self.model), self.solver]
        if self.uses_rho:
            parts.append(f"rho{_rho_text(self.rho)}")
        parts.append(f"nfe{self.nfe}")
        return re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(parts))

    @property
    def title(self) -> str:
        if self.label:
            return self.label
        if self.solver == "bicubic":
            return "Bicubic"
        if self.solver == "x0_hat":
            return f"x0_hat(t=1) [{self.model}]"
        if self.solver == "resshift":
            return f"ResShift sampler [{self.model}]"
        if self.solver == LEVELS_SOLVER:
            return f"exp1 on trained levels [{self.model}] nfe {self.nfe}"
        rho = f" rho {self.rho:g}" if self.uses_rho else ""
        return f"{self.solver}{rho} [{self.model}] nfe {self.nfe}"


def levels_grid(nfe: int, T: int) -> np.ndarray:
    """``nfe`` of the discrete levels ``k/T`` (``k = round(linspace(T, 1, nfe))``, all distinct), then 0."""
    nfe = check_int(nfe, "nfe", minimum=1)
    T = check_int(T, "T", minimum=1)
    if nfe > T:
        raise ValueError(f"exp1_levels visits distinct trained levels k/T: nfe must be <= T = {T}, got {nfe}")
    ks = np.array([T]) if nfe == 1 else np.round(np.linspace(T, 1, nfe))
    return np.append(ks / T, 0.0)


def table_rows(rhos: Sequence[float] = REPORT_RHOS, nfe: int = 15, T: int = 15) -> list[RowSpec]:
    """The report's Table 1 rows (Baseline, Euler and Heun x rho) plus exp1 / exp2m and the references."""
    rows = [
        RowSpec("bicubic", None, 0, label="Bicubic", group="reference"),
        RowSpec("x0_hat", "baseline", 1, label="x0_hat(t=1) baseline", group="reference"),
        RowSpec("x0_hat", "continuous", 1, label="x0_hat(t=1) continuous", group="reference"),
        RowSpec("resshift", "baseline", T, label="Baseline (resshift)"),
    ]
    for solver in ("euler", "heun"):
        rows += [RowSpec(solver, "continuous", nfe, float(r), label=f"{solver.capitalize()} rho {r:g}") for r in rhos]
    rows += [RowSpec("exp1", "continuous", nfe, 1.0, label="exp1 rho 1"),
             RowSpec("exp2m", "continuous", nfe, 1.0, label="exp2m rho 1"),
             RowSpec("exp3m", "continuous", nfe, 1.0, label="exp3m rho 1")]
    return rows


def _smoke_rows(T: int = 15) -> list[RowSpec]:
    return [
        RowSpec("bicubic", None, 0, label="Bicubic", group="reference"),
        RowSpec("x0_hat", "continuous", 1, label="x0_hat(t=1) continuous", group="reference"),
        RowSpec("resshift", "baseline", T, label="Baseline (resshift)"),
        RowSpec("euler", "continuous", 15, 1.0, label="Euler rho 1"),
        RowSpec("exp2m", "continuous", 15, 1.0, label="exp2m rho 1"),
    ]


def sweep_rows(best: RowSpec | None, nfes: Sequence[int], T: int = 15) -> list[RowSpec]:
    """The few-step sweep: the discrete model with ``exp1_levels`` at ``nfes`` and at T (the honest
    few-step baseline), the best continuous row at ``nfes``, and exp2m and exp3m (rho 1) at ``nfes``."""
    from .samplers import min_nfe

    rows = [RowSpec(LEVELS_SOLVER, "baseline", n, label=f"Baseline exp1 levels nfe {n}", group="sweep")
            for n in sorted({*nfes, T}) if n <= T]
    series = []
    if best is not None and best.solver not in ("resshift", LEVELS_SOLVER, *REFERENCE_SOLVERS):
        series.append(best)
    for solver in ("exp2m", "exp3m"):
        if best is None or best.solver != solver or best.rho != 1.0:
            series.append(RowSpec(solver, "continuous", 15, 1.0))
    for s in series:
        for n in nfes:
            if n == s.nfe or n < min_nfe(s.solver, T):
                continue
            name = f"{s.solver.capitalize() if s.solver in ('euler', 'heun') else s.solver}"
            rho = f" rho {s.rho:g}" if s.uses_rho else ""
            rows.append(RowSpec(s.solver, s.model, n, s.rho, label=f"{name}{rho} nfe {n}", group="sweep"))
    return rows


# ---------------------------------------------------------------------------------------------
# evaluation images
# ---------------------------------------------------------------------------------------------
@dataclass
class EvalSet:
    """HR / LR pairs (lists, so images may differ in size): ``hr[i]`` (3, H, W), ``lr[i]`` (3, H/4, W/4),
    float32 in [0, 1], 8-bit levels; ``notes``: what was done to the images (crops, rejections)."""

    hr: list[torch.Tensor]
    lr: list[torch.Tensor]
    names: list[str]
    description: str
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def fingerprint(self) -> str:
        """sha256 over names and 8-bit pixels of HR and LR: a cache is only reused on the same images."""
        h = hashlib.sha256()
        for name, hr, lr in zip(self.names, self.hr, self.lr):
            h.update(name.encode())
            for t in (hr, lr):
                h.update(str(tuple(t.shape)).encode())
                h.update(_to_u8(t).numpy().tobytes())
        return h.hexdigest()

    def batches(self, batch_size: int) -> list[list[int]]:
        """Indices grouped by image size (in index order), in chunks of at most ``batch_size``."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, t in enumerate(self.hr):
            groups.setdefault(tuple(t.shape), []).append(i)
        out = []
        for idx in groups.values():
            out += [idx[k : k + batch_size] for k in range(0, len(idx), batch_size)]
        return out


def _to_u8(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.detach().float().clamp(0, 1) * 255).to(torch.uint8).cpu()


def _center_crop(img: torch.Tensor, h: int, w: int) -> torch.Tensor:
    H, W = img.shape[-2:]
    top, left = (H - h) // 2, (W - w) // 2
    return img[..., top : top + h, left : left + w]


def _make_lr(hr: torch.Tensor) -> torch.Tensor:
    from .data import bicubic_lr

    return bicubic_lr(hr[None].double(), SCALE).float()[0]


def _check_crop(crop: Any) -> int:
    """A crop side: an integer >= :data:`MIN_HR_SIDE` and a multiple of :data:`SCALE`."""
    crop = check_int(crop, "crop", minimum=MIN_HR_SIDE)
    if crop % SCALE:
        raise ValueError(f"crop must be a multiple of {SCALE} (the LR is 1/{SCALE} of it), got {crop}")
    return crop


def bundled_eval_set(n_images: int | None = None, crop: int | None = None) -> EvalSet:
    """The bundled test photos (first ``n_images``; 256 x 256), centre-cropped to ``crop`` x ``crop``
    (a multiple of 4) if given; LR = MATLAB bicubic x1/4 of the (cropped) HR, 8-bit."""
    from .data import load_bundled_test_set

    test = load_bundled_test_set(limit=n_images)
    if crop is None:
        return EvalSet(list(test.hr), list(test.lr), list(test.names),
                       f"{len(test)} bundled test photos, 256 x 256, LR by MATLAB bicubic x1/4")
    crop = _check_crop(crop)
    if crop > test.hr.shape[-1]:
        raise ValueError(f"crop must be at most {test.hr.shape[-1]}, got {crop}")
    hr = [_center_crop(t, crop, crop).contiguous() for t in test.hr]
    return EvalSet(hr, [_make_lr(t) for t in hr], list(test.names),
                   f"{len(hr)} bundled test photos, centre {crop} x {crop} crops of 256 x 256, "
                   "LR by MATLAB bicubic x1/4 of the crop")


def folder_eval_set(folder: str | Path, *, limit: int | None = None, crop: int | None = None) -> EvalSet:
    """Every image of ``folder`` (sorted by name; first ``limit``) as HR, LR by MATLAB bicubic x1/4.

    Images whose sides are not multiples of 4 are centre-cropped to the largest multiple of 4 (listed
    in ``notes``); images with a side below :data:`MIN_HR_SIDE` px are rejected (listed in ``notes``
    and in a warning).  ``crop``: centre-crop every image to at most ``crop`` x ``crop``.  Raises
    ValueError when the folder holds no usable image (saying why).
    """
    from .data import load_images, to_tensor

    if limit is not None:
        limit = check_int(limit, "limit", minimum=1)
    if crop is not None:
        crop = _check_crop(crop)
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
    return EvalSet(hr, [_make_lr(t) for t in hr], names,
                   f"{len(hr)} images from {folder}, LR by MATLAB bicubic x1/4", notes)


def choose_crop_windows(eval_set: EvalSet, indices: Sequence[int], size: int | None = None) -> list[tuple[int, int, int, int]]:
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


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
def _resolve(path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() or p.exists() else REPO_ROOT / p


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_fingerprint(source: Any) -> str:
    """sha256 of a checkpoint file, or of a denoiser's weights, schedule and wrapper settings."""
    if isinstance(source, (str, Path)):
        return file_sha256(_resolve(source))
    h = hashlib.sha256()
    for k, v in source.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    schedule = getattr(source, "schedule", None)
    if schedule is not None and hasattr(schedule, "to_dict"):
        h.update(json.dumps(schedule.to_dict(), sort_keys=True, default=str).encode())
    if hasattr(source, "settings"):
        h.update(json.dumps(source.settings(), sort_keys=True, default=str).encode())
    return "model:" + h.hexdigest()


def load_denoiser(source: Any, *, autoencoder: str | Path | None = None, device: str | torch.device = "cpu"):
    """A :class:`~ctlib.nn.ResShiftDenoiser` from a kit checkpoint (a UNetModelSwin saved with its
    schedule), from official weights (``source`` = ``resshift_realsrx4_s15_v1.pth`` with
    ``autoencoder`` = ``autoencoder_vq_f4.pth``), or a denoiser passed through.

    Raises ValueError naming the file when it holds something else (e.g. a VQModel autoencoder).
    """
    from .nn import ResShiftDenoiser, build_official_denoiser, denoiser_from_checkpoint, load_checkpoint

    if isinstance(source, ResShiftDenoiser):
        return source.eval()
    if not isinstance(source, (str, Path)):
        raise TypeError(f"a model must be a checkpoint path or a ResShiftDenoiser, got {type(source).__name__}")
    path = _resolve(source)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        ckpt = load_checkpoint(path)
    except ValueError as err:
        if autoencoder is None or "not a ctlib checkpoint" not in str(err):
            raise
        return build_official_denoiser(path, _resolve(autoencoder), device=device).eval()
    kind = type(ckpt.model).__name__
    if kind != "UNetModelSwin":
        raise ValueError(
            f"{path} holds a {kind} checkpoint"
            + (" (an autoencoder)" if kind == "VQModel" else "")
            + ", not a denoiser network (UNetModelSwin); pass a checkpoint saved by training"
        )
    if ckpt.schedule is None:
        raise ValueError(f"{path} stores no schedule, so its times cannot be mapped; save it with a schedule")
    return denoiser_from_checkpoint(path, autoencoder=autoencoder, device=device).eval()


# ---------------------------------------------------------------------------------------------
# one row
# ---------------------------------------------------------------------------------------------
def image_generator(index: int, seed: int = 0) -> torch.Generator:
    """The generator of image ``index``: ``torch.Generator().manual_seed(index + 1_000_000 * seed)``."""
    return torch.Generator().manual_seed(int(index) + 1_000_000 * int(seed))


def seeded_prior(cond: Any, indices: Sequence[int], seed: int = 0) -> torch.Tensor:
    """``x_T = y + kappa sqrt(eta(1)) eps`` for a conditioned batch (``den.condition(...)``) of the
    images ``indices``, each ``eps`` the first draw of :func:`image_generator` (the table's start)."""
    shape = tuple(cond.y.shape[1:])
    eps = torch.stack([torch.randn(shape, generator=image_generator(i, seed)) for i in indices])
    schedule = cond.denoiser.schedule
    return prior_sample(cond.y, float(schedule.eta(1.0)), schedule.kappa,
                        noise=eps.to(device=cond.y.device, dtype=cond.y.dtype))


def sample_spread(samples: torch.Tensor, x0_hat: torch.Tensor, truth: torch.Tensor) -> dict[str, np.ndarray]:
    r"""Split the error of K samples per image into the error of their mean and their spread.

    ``samples`` (K, B, ...) are K sampler outputs for each of B images, ``x0_hat`` (B, ...) the
    one-step prediction and ``truth`` (B, ...) the ground truth, all on one scale (e.g. Y in [0, 1]).
    Per image (float64 arrays of shape (B,), means over pixels):

    * ``mse_sample``: mean over the K samples of ``mean((x_k - x0)^2)``;
    * ``mse_mean``: ``mean((xbar - x0)^2)`` of the sample average ``xbar``;
    * ``spread``: the per-pixel variance over the K samples (unbiased), averaged over pixels;
    * ``mse_x0_hat``: ``mean((x0_hat - x0)^2)``;
    * ``dispersion``: ``spread / mse_x0_hat``.

    Exactly ``mse_sample = mse_mean + (K - 1)/K spread``.  For a faithful sampler (outputs drawn
    from p(x0 | y), independent of the true x0 given y) and x0_hat the posterior mean
    ``E[x0 | y]``, both ``spread`` and ``mse_x0_hat`` estimate ``tr Cov(x0 | y)`` per pixel:
    the dispersion is 1 on average and a sample has twice the MSE of x0_hat (3.01 dB less PSNR).
    """
    if samples.dim() < 2 or samples.shape[0] < 2:
        raise ValueError(f"samples must have shape (K, B, ...) with K >= 2, got {tuple(samples.shape)}")
    if tuple(samples.shape[1:]) != tuple(truth.shape) or tuple(x0_hat.shape) != tuple(truth.shape):
        raise ValueError(f"shapes differ: samples {tuple(samples.shape)}, x0_hat {tuple(x0_hat.shape)}, "
                         f"truth {tuple(truth.shape)} (samples must be (K, *truth.shape))")
    samples, x0_hat, truth = samples.double(), x0_hat.double(), truth.double()

    def per_image(z: torch.Tensor) -> np.ndarray:
        return z.flatten(1).mean(1).cpu().numpy()

    mse_x0_hat = per_image((x0_hat - truth) ** 2)
    spread = per_image(samples.var(0, unbiased=True))
    return {
        "mse_sample": per_image(((samples - truth) ** 2).mean(0)),
        "mse_mean": per_image((samples.mean(0) - truth) ** 2),
        "spread": spread,
        "mse_x0_hat": mse_x0_hat,
        "dispersion": spread / mse_x0_hat,
    }


@dataclass
class RowResult:
    """What one row produced: per-image metric values (NaN where unavailable), status and timing."""

    spec: RowSpec
    status: str  # "ok" or "failed"
    reason: str | None
    names: list[str]
    per_image: dict[str, np.ndarray]
    metric_info: dict[str, dict[str, Any]]
    seconds: float = 0.0
    crops: np.ndarray | None = None  # (K, s, s, 3) uint8 zoom crops of the grid images
    crop_windows: list[tuple[int, int, int, int]] = field(default_factory=list)
    cached: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def mean(self, key: str) -> float:
        """Mean over images (NaN when the row failed or the metric is unavailable)."""
        v = self.per_image.get(key)
        if not self.ok or v is None or v.size == 0 or np.isnan(v).any():
            return math.nan
        return float(np.mean(v))

    def unavailable(self, key: str) -> str | None:
        info = self.metric_info.get(key) or {}
        return info.get("reason")


def _failed(spec: RowSpec, reason: str, names: list[str]) -> RowResult:
    return RowResult(spec, "failed", reason, list(names), {}, {})


def _metrics(sr: torch.Tensor, hr: torch.Tensor, lpips_net: str | None) -> dict[str, Any]:
    """MetricResults for uint8 (B, 3, H, W) tensors: compute_all + the report's piq conventions."""
    from .metrics import compute_all, report_metrics

    out = dict(compute_all(sr, hr, lpips_net=lpips_net))
    out.update(report_metrics(sr.float() / 255, hr.float() / 255))
    return out


def _run_solver(spec: RowSpec, den, lr: torch.Tensor, indices: Sequence[int], seed: int, device) -> torch.Tensor:
    """SR images (B, 3, H, W) in [0, 1] of one batch for a model-based row."""
    cond = den.condition(lr.to(device) * 2 - 1)
    schedule = den.schedule
    T = int(schedule.T)
    shape = tuple(cond.y.shape[1:])
    eps, step_noise = [], []
    for i in indices:
        g = image_generator(i, seed)
        eps.append(torch.randn(shape, generator=g))
        if spec.solver == "resshift":
            step_noise.append(torch.randn((T - 1, *shape), generator=g))
    eps_t = torch.stack(eps).to(device=device, dtype=cond.y.dtype)
    x_T = prior_sample(cond.y, float(schedule.eta(1.0)), schedule.kappa, noise=eps_t)
    if spec.solver == "x0_hat":
        out = cond(x_T, torch.ones(len(indices), dtype=torch.float64, device=device), cond.y)
    elif spec.solver == LEVELS_SOLVER:
        out = sample_exp1(cond, x_T, cond.y, levels_grid(spec.nfe, T), schedule=schedule)
    else:
        noise = None
        if spec.solver == "resshift":
            noise = [torch.stack([n[s] for n in step_noise]).to(device=device, dtype=cond.y.dtype) for s in range(T - 1)]
        out = sample(cond, cond.y, schedule=schedule, solver=spec.solver, nfe=spec.nfe, rho=spec.rho, x_T=x_T,
                     noise=noise)
    return (cond.decode(out).clamp(-1, 1) + 1) / 2


def _check_spec(spec: RowSpec, den) -> None:
    from .samplers import solver_grid

    if spec.solver not in ROW_SOLVERS:
        raise ValueError(f"unknown solver {spec.solver!r}; known: {', '.join(ROW_SOLVERS)}")
    if spec.solver == "bicubic":
        return
    if spec.model is None:
        raise ValueError(f"row {spec.key}: solver {spec.solver!r} needs a model")
    T = int(den.schedule.T)
    if spec.solver == "x0_hat":
        if spec.nfe != 1:
            raise ValueError(f"x0_hat is one network evaluation: nfe must be 1, got {spec.nfe}")
    elif spec.solver == LEVELS_SOLVER:
        levels_grid(spec.nfe, T)
    else:
        solver_grid(spec.solver, spec.nfe, spec.rho, T)


def evaluate_row(
    spec: RowSpec,
    denoiser: Any,
    eval_set: EvalSet,
    *,
    seed: int = 0,
    batch_size: int = 8,
    crop_windows: Sequence[tuple[int, int, int, int]] = (),
    lpips_net: str | None = "alex",
    device: str | torch.device = "cpu",
    bar: Any = None,
) -> RowResult:
    """Run one row on every image (``torch.no_grad``, batches of images of equal size) and score it.

    ``denoiser``: a :class:`~ctlib.nn.ResShiftDenoiser` (None for ``bicubic``).  Errors of the row
    itself (bad solver/nfe/rho, a model that fails) give a failed :class:`RowResult` with the reason.
    """
    from .data import imresize

    start = time.perf_counter()
    n = len(eval_set)
    try:
        _check_spec(spec, denoiser)
        if spec.solver != "bicubic" and denoiser is None:
            raise ValueError(f"row {spec.key}: model {spec.model!r} is not available")
        per_image: dict[str, np.ndarray] = {}
        info: dict[str, dict[str, Any]] = {}
        crop_of = {w[0]: w for w in crop_windows}
        crops: dict[int, np.ndarray] = {}
        with torch.no_grad():
            for idx in eval_set.batches(batch_size):
                lr = torch.stack([eval_set.lr[i] for i in idx])
                hr = torch.stack([eval_set.hr[i] for i in idx])
                if spec.solver == "bicubic":
                    sr = imresize(lr.double(), float(SCALE)).float().clamp(0, 1)
                else:
                    sr = _run_solver(spec, denoiser, lr, idx, seed, device).cpu()
                sr_u8, hr_u8 = _to_u8(sr), _to_u8(hr)
                for key, res in _metrics(sr_u8, hr_u8, lpips_net).items():
                    if key not in METRIC_KEYS:
                        continue
                    values = per_image.setdefault(key, np.full(n, np.nan))
                    values[idx] = res.values
                    if key not in info or (res.reason and not info[key].get("reason")):
                        info[key] = {"name": res.name, "higher_is_better": res.higher_is_better,
                                     "reason": res.reason or None, "text": res.format() if res.reason else None}
                for j, i in enumerate(idx):
                    if i in crop_of:
                        _, top, left, s = crop_of[i]
                        crops[i] = sr_u8[j, :, top : top + s, left : left + s].permute(1, 2, 0).numpy()
                if bar is not None:
                    bar.update(len(idx) * max(spec.nfe, 1))
    except Exception as err:  # a failing row is reported, the sweep goes on
        return RowResult(spec, "failed", f"{type(err).__name__}: {err}", list(eval_set.names), {}, {},
                         seconds=time.perf_counter() - start)
    stacked = np.stack([crops[w[0]] for w in crop_windows if w[0] in crops]) if crops else None
    return RowResult(spec, "ok", None, list(eval_set.names), per_image, info, seconds=time.perf_counter() - start,
                     crops=stacked, crop_windows=[tuple(w) for w in crop_windows])


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------
def _json_value(x: Any) -> Any:
    if isinstance(x, float) or isinstance(x, np.floating):
        x = float(x)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    return x


def _from_json_value(x: Any) -> float:
    if x is None or x == "":
        return math.nan
    if x in ("inf", "-inf"):
        return float(x)
    return float(x)


def _row_paths(results_dir: Path, key: str) -> tuple[Path, Path, Path]:
    rows = results_dir / "rows"
    return rows / f"{key}.csv", rows / f"{key}.json", rows / f"{key}.crops.npz"


def _write_row(results_dir: Path, row: RowResult, fingerprint: Mapping[str, Any]) -> None:
    csv_path, json_path, npz_path = _row_paths(results_dir, row.spec.key)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    keys = [k for k in METRIC_KEYS if k in row.per_image]
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "name", *keys])
        for i, name in enumerate(row.names):
            w.writerow([i, name, *(repr(float(row.per_image[k][i])) for k in keys)])
    if row.crops is not None:
        np.savez_compressed(npz_path, crops=row.crops, windows=np.asarray(row.crop_windows, dtype=np.int64))
    meta = {
        "version": CACHE_VERSION,
        "key": row.spec.key,
        "spec": {"solver": row.spec.solver, "model": row.spec.model, "nfe": row.spec.nfe, "rho": row.spec.rho,
                 "label": row.spec.label, "group": row.spec.group},
        "status": row.status,
        "reason": row.reason,
        "fingerprint": dict(fingerprint),
        "metrics": row.metric_info,
        "seconds": round(row.seconds, 2),
        "n_images": len(row.names),
    }
    json_path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _read_row(results_dir: Path, spec: RowSpec, fingerprint: Mapping[str, Any], names: list[str]) -> RowResult | None:
    """The cached row if it was computed with the same fingerprint on the same images, else None."""
    csv_path, json_path, npz_path = _row_paths(results_dir, spec.key)
    if not (csv_path.is_file() and json_path.is_file()):
        return None
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        if meta.get("version") != CACHE_VERSION or meta.get("status") != "ok":
            return None
        if json.loads(json.dumps(dict(fingerprint))) != meta.get("fingerprint"):
            return None
        with open(csv_path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        if [r["name"] for r in rows] != list(names):
            return None
        keys = [k for k in METRIC_KEYS if rows and k in rows[0]]
        per_image = {k: np.array([_from_json_value(r[k]) for r in rows], dtype=np.float64) for k in keys}
        crops, windows = None, []
        if npz_path.is_file():
            with np.load(npz_path, allow_pickle=False) as z:
                crops = z["crops"]
                windows = [tuple(int(v) for v in w) for w in z["windows"]]
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return RowResult(spec, "ok", None, list(names), per_image, meta.get("metrics", {}),
                     seconds=float(meta.get("seconds", 0.0)), crops=crops, crop_windows=windows, cached=True,
                     meta=meta)


# ---------------------------------------------------------------------------------------------
# many rows
# ---------------------------------------------------------------------------------------------
def run_rows(
    specs: Sequence[RowSpec],
    models: Mapping[str, Any],
    eval_set: EvalSet,
    results_dir: str | Path,
    *,
    recompute: bool = False,
    seed: int = 0,
    batch_size: int = 8,
    crop_windows: Sequence[tuple[int, int, int, int]] = (),
    lpips_net: str | None = "alex",
    autoencoder: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> list[RowResult]:
    """Evaluate ``specs`` (reading cached rows from ``results_dir/rows`` unless ``recompute``).

    ``models`` maps a model name of the rows (``"baseline"``, ``"continuous"``) to a checkpoint path
    or a denoiser; each is loaded once, only if a row needs computing.  A model that cannot be loaded
    fails its rows (with the reason); the other rows still run.
    """
    from tqdm import tqdm

    results_dir = Path(results_dir)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    data_fp = eval_set.fingerprint()
    fps: dict[str, str | None] = {}
    fp_errors: dict[str, str] = {}
    for name in {s.model for s in specs if s.model is not None}:
        if name not in models:
            fp_errors[name] = f"no model named {name!r} was given (models: {', '.join(models) or 'none'})"
            continue
        try:
            fps[name] = model_fingerprint(models[name])
        except (OSError, TypeError) as err:
            fp_errors[name] = f"{type(err).__name__}: {err}"

    def fingerprint(spec: RowSpec) -> dict[str, Any]:
        return {"model": fps.get(spec.model) if spec.model else None, "data": data_fp, "seed": int(seed),
                "crop_windows": [list(w) for w in crop_windows],
                "lpips_net": lpips_net}

    results: list[RowResult | None] = []
    todo = []
    for spec in specs:
        cached = None if recompute or spec.model in fp_errors else _read_row(results_dir, spec, fingerprint(spec),
                                                                               eval_set.names)
        results.append(cached)
        if cached is None:
            todo.append(spec)
    loaded: dict[str, Any] = {}
    load_errors: dict[str, str] = dict(fp_errors)
    total = sum(max(s.nfe, 1) * len(eval_set) for s in todo)
    # under `python -m ctlib reproduce` the bar is drawn on the terminal (the kernel's own stderr), where
    # it moves while the notebook's cell runs
    from .cli import TERMINAL_PROGRESS_ENV

    to_terminal = os.environ.get(TERMINAL_PROGRESS_ENV) == "1" and sys.__stderr__ is not None
    bar = tqdm(total=total, desc="table rows" if to_terminal else "evaluate", unit="img-eval",
               disable=not progress or not todo, mininterval=1.0, file=sys.__stderr__ if to_terminal else None)
    try:
        for k, spec in enumerate(specs):
            if results[k] is not None:
                continue
            bar.set_postfix_str(spec.key)
            den = None
            if spec.model is not None and spec.solver != "bicubic":
                if spec.model not in loaded and spec.model not in load_errors:
                    try:
                        loaded[spec.model] = load_denoiser(models[spec.model], autoencoder=autoencoder, device=device)
                    except Exception as err:  # reported in every row that needs this model
                        load_errors[spec.model] = f"{type(err).__name__}: {err}"
                if spec.model in load_errors:
                    results[k] = _failed(spec, f"model {spec.model!r}: {load_errors[spec.model]}", eval_set.names)
                    bar.update(max(spec.nfe, 1) * len(eval_set))
                    continue
                den = loaded[spec.model]
            row = evaluate_row(spec, den, eval_set, seed=seed, batch_size=batch_size, crop_windows=crop_windows,
                               lpips_net=lpips_net, device=device, bar=bar)
            if row.ok:
                _write_row(results_dir, row, fingerprint(spec))
            results[k] = row
    finally:
        bar.close()
    return [r for r in results if r is not None]


def best_row(rows: Sequence[RowResult], metric: str = "psnr_y", model: str = "continuous") -> RowResult | None:
    """The ``table`` row of ``model`` with the best mean ``metric`` (ties: the first)."""
    higher = _HIGHER_IS_BETTER.get(metric, True)
    best, best_v = None, math.nan
    for r in rows:
        if r.spec.group != "table" or r.spec.model != model or not r.ok:
            continue
        v = r.mean(metric)
        if math.isnan(v):
            continue
        if best is None or (v > best_v if higher else v < best_v):
            best, best_v = r, v
    return best


def matching_nfe(rows: Sequence[RowResult], series: RowSpec, reference: RowResult, metric: str = "psnr_y") -> int | None:
    """The smallest nfe at which ``series`` (same solver/model/rho) reaches ``reference``'s mean
    ``metric`` (None if it never does)."""
    target = reference.mean(metric)
    higher = _HIGHER_IS_BETTER.get(metric, True)
    found = []
    for r in rows:
        s = r.spec
        if r.ok and (s.solver, s.model, s.rho if s.uses_rho else None) == (
                series.solver, series.model, series.rho if series.uses_rho else None):
            v = r.mean(metric)
            if not math.isnan(v) and (v >= target if higher else v <= target):
                found.append(s.nfe)
    return min(found) if found else None


# ---------------------------------------------------------------------------------------------
# the whole table
# ---------------------------------------------------------------------------------------------
@dataclass
class TableResult:
    """Rows of a reproduce_table run, the evaluation set and where it all was written."""

    rows: list[RowResult]
    eval_set: EvalSet
    results_dir: Path
    profile: str
    checkpoints: dict[str, dict[str, Any]]
    best_key: str | None
    best_by: str
    seconds: float

    def row(self, key: str) -> RowResult | None:
        return next((r for r in self.rows if r.spec.key == key), None)

    @property
    def computed(self) -> int:
        return sum(1 for r in self.rows if not r.cached and r.ok)


def _checkpoint_info(models: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, src in models.items():
        if isinstance(src, (str, Path)):
            p = _resolve(src)
            try:
                rel = str(p.resolve().relative_to(REPO_ROOT))
            except ValueError:
                rel = str(p)
            out[name] = {"path": rel, "sha256": file_sha256(p) if p.is_file() else None}
        else:
            out[name] = {"path": None, "sha256": model_fingerprint(src)}
    return out


def record_matches(record_dir: str | Path, checkpoints: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the results of record in ``record_dir`` were computed with these checkpoints (sha256)."""
    record_dir = _resolve(record_dir)
    table = record_dir / "table.json"
    if not table.is_file():
        return False, f"no results of record in {record_dir}"
    stored = json.loads(table.read_text(encoding="utf-8")).get("checkpoints", {})
    now = _checkpoint_info(checkpoints)
    for name, info in now.items():
        if info["sha256"] is None:
            return False, f"checkpoint {name!r} not found: {info['path']}"
        if stored.get(name, {}).get("sha256") != info["sha256"]:
            return False, f"checkpoint {name!r} ({info['path']}) differs from the one the record was computed with"
    return True, f"results of record in {record_dir} match the checkpoints' sha256"


def _row_model_fingerprint(json_path: Path) -> Any:
    """The model fingerprint stored in a row's JSON (``"unreadable"`` for a damaged file)."""
    try:
        return json.loads(json_path.read_text(encoding="utf-8"))["fingerprint"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable"


def _copy_record(record_dir: Path, results_dir: Path) -> int:
    """Copy the record's rows into ``results_dir/rows``; returns the number of rows copied.

    Called only when the record matches the checkpoints in use.  A row already in ``results_dir`` is
    kept unless it was computed with another model (a stale cache from an older checkpoint, which
    would otherwise be recomputed): then the record's row replaces it.
    """
    src = record_dir / "rows"
    dst = results_dir / "rows"
    dst.mkdir(parents=True, exist_ok=True)
    n = 0
    for meta in sorted(src.glob("*.json")) if src.is_dir() else []:
        key = meta.name[:-len(".json")]
        mine = dst / meta.name
        if mine.exists() and _row_model_fingerprint(mine) == _row_model_fingerprint(meta):
            continue
        for f in (src / f"{key}.csv", meta, src / f"{key}.crops.npz"):
            if f.is_file():
                shutil.copy2(f, dst / f.name)
            elif (dst / f.name).exists():  # the stale row's crops: not part of the record's row
                (dst / f.name).unlink()
        n += 1
    return n


def reproduce_table(
    profile: str = "cpu",
    results_dir: str | Path = "results/table",
    *,
    checkpoints: Mapping[str, Any] | None = None,
    hr_dir: str | Path | None = None,
    recompute: bool = False,
    record_dir: str | Path | None = None,
    seed: int = 0,
    best_by: str = "psnr_y",
    autoencoder: str | Path | None = None,
    lpips_net: str | None = "alex",
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    progress: bool = True,
) -> TableResult:
    """The table of ``profile`` (:data:`EVAL_PROFILES`) written into ``results_dir``.

    1. the table rows (:func:`table_rows`, or 5 rows for ``smoke``) at nfe = 15;
    2. the best continuous row by ``best_by``, then the few-step sweep (:func:`sweep_rows`);
    3. ``table.md`` / ``table.csv`` / ``table.json`` (:func:`write_table`).

    ``record_dir``: results of record; when given, ``recompute`` is False and
    :func:`record_matches` holds, its row files are copied into ``results_dir`` first, so that
    nothing is recomputed.  ``recompute=True`` ignores every cache.
    """
    from .profiles import check_profile

    start = time.perf_counter()
    settings = EVAL_PROFILES[check_profile(profile)]
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    models = dict(checkpoints if checkpoints is not None else DEFAULT_CHECKPOINTS)
    if settings["source"] == "folder" or hr_dir is not None:
        if hr_dir is None:
            raise ValueError(f"profile {profile!r} evaluates a folder of HR images: pass hr_dir")
        eval_set = folder_eval_set(hr_dir, limit=settings["n_images"], crop=settings["crop"])
    else:
        eval_set = bundled_eval_set(settings["n_images"], settings["crop"])
    if record_dir is not None and not recompute:
        ok, _ = record_matches(record_dir, models)
        if ok:
            _copy_record(_resolve(record_dir), results_dir)
    windows = choose_crop_windows(eval_set, settings["grid_images"])
    common = dict(recompute=recompute, seed=seed, batch_size=batch_size or settings["batch_size"],
                  crop_windows=windows, lpips_net=lpips_net, autoencoder=autoencoder, device=device,
                  progress=progress)
    specs = _smoke_rows() if settings["rows"] == "smoke" else table_rows()
    rows = run_rows(specs, models, eval_set, results_dir, **common)
    best = best_row(rows, best_by)
    rows += run_rows(sweep_rows(best.spec if best else None, settings["sweep_nfes"]), models, eval_set, results_dir,
                     **common)
    result = TableResult(rows, eval_set, results_dir, profile, _checkpoint_info(models),
                         best.spec.key if best else None, best_by, time.perf_counter() - start)
    write_table(result)
    return result


# ---------------------------------------------------------------------------------------------
# table files
# ---------------------------------------------------------------------------------------------
def _fmt(value: float, key: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, METRIC_FORMATS.get(key, ".4f"))


def _row_record(r: RowResult) -> dict[str, Any]:
    s = r.spec
    return {
        "key": s.key, "label": s.title, "group": s.group, "model": s.model, "solver": s.solver, "nfe": s.nfe,
        "rho": s.rho if s.uses_rho else None, "status": r.status, "reason": r.reason, "n_images": len(r.names),
        "seconds": round(r.seconds, 2), "cached": r.cached,
        "mean": {k: _json_value(r.mean(k)) for k in METRIC_KEYS if k in r.per_image},
    }


def format_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] = ("psnr_y", "ssim_y", "psnr_rgb",
                 "haarpsi", "lpips", "psnr_rgb_piq", "ssim_loss_piq")) -> str:
    """A Markdown table of row records (:func:`load_table`'s ``rows``), modest precision; failed rows
    show their reason."""
    head = ["row", "nfe", *(_METRIC_TITLES[m] for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['label']} | {r['nfe']} | failed: {str(r['reason']).replace('|', '/')} "
                         + "| " * (len(metrics) - 1) + "|")
            continue
        vals = [_fmt(_from_json_value(r["mean"].get(m)), m) for m in metrics]
        lines.append(f"| {r['label']} | {r['nfe']} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def write_table(result: TableResult) -> dict[str, Path]:
    """Write ``table.md``, ``table.csv`` and ``table.json`` (rows with means, metric availability, the
    evaluation set, checkpoints with sha256, the best row and the nfe at which it matches the baseline)."""
    out = result.results_dir
    records = [_row_record(r) for r in result.rows]
    metric_info: dict[str, Any] = {}
    for r in result.rows:
        for k, info in r.metric_info.items():
            metric_info.setdefault(k, info)
    baseline = result.row(RowSpec("resshift", "baseline", 15).key)
    best = result.row(result.best_key) if result.best_key else None
    match = {}
    if baseline is not None and baseline.ok:
        for metric in ("psnr_y", "ssim_y"):
            series = {}
            if best is not None:
                series[best.spec.key] = matching_nfe(result.rows, best.spec, baseline, metric)
            lv = RowSpec(LEVELS_SOLVER, "baseline", 15)
            series[f"baseline-{LEVELS_SOLVER}"] = matching_nfe(result.rows, lv, baseline, metric)
            match[metric] = series
    doc = {
        "profile": result.profile,
        "eval_set": {"description": result.eval_set.description, "names": result.eval_set.names,
                     "notes": result.eval_set.notes, "fingerprint": result.eval_set.fingerprint()},
        "checkpoints": result.checkpoints,
        "seed": "image i: torch.Generator().manual_seed(i + 1_000_000 * seed), seed = 0",
        "metrics": {k: {**metric_info.get(k, {}), "title": _METRIC_TITLES[k],
                        "higher_is_better": _HIGHER_IS_BETTER[k]} for k in METRIC_KEYS},
        "best": {"key": result.best_key, "by": result.best_by},
        "matching_nfe": match,
        "rows": records,
    }
    paths = {"json": out / "table.json", "csv": out / "table.csv", "md": out / "table.md"}
    paths["json"].write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "label", "group", "model", "solver", "nfe", "rho", "status", "reason", "n_images",
                    "seconds", *METRIC_KEYS])
        for rec in records:
            w.writerow([rec["key"], rec["label"], rec["group"], rec["model"], rec["solver"], rec["nfe"],
                        "" if rec["rho"] is None else rec["rho"], rec["status"], rec["reason"] or "", rec["n_images"],
                        rec["seconds"], *("" if rec["mean"].get(k) is None else rec["mean"][k] for k in METRIC_KEYS)])
    unavailable = [f"- {_METRIC_TITLES[k]}: {info.get('text') or info.get('reason')}"
                   for k, info in metric_info.items() if info.get("reason") and k != "ms_ssim"]
    md = [f"# Table ({result.profile} profile)", "", result.eval_set.description + ".", "",
          format_table([r for r in records if r["group"] != "sweep"]), "", "## Few-step sweep", "",
          format_table([r for r in records if r["group"] == "sweep"])]
    if unavailable:
        md += ["", "Unavailable metrics:", *unavailable]
    paths["md"].write_text("\n".join(md) + "\n", encoding="utf-8")
    return paths


def load_table(path: str | Path) -> dict[str, Any]:
    """``table.json`` of a results folder (or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "table.json"
    if not p.is_file():
        raise FileNotFoundError(f"no table.json at {p}")
    return json.loads(p.read_text(encoding="utf-8"))


def save_record(results_dir: str | Path, record_dir: str | Path = RECORD_DIR) -> Path:
    """Copy a run's table files and per-row CSV/JSON to ``record_dir`` (the results of record), with the
    zoom crops of the rows :func:`plot_crops` shows (bicubic, the baseline, the best row) only."""
    src, dst = Path(results_dir), _resolve(record_dir)
    (dst / "rows").mkdir(parents=True, exist_ok=True)
    for old in (dst / "rows").glob("*"):
        old.unlink()
    for name in ("table.json", "table.csv", "table.md"):
        shutil.copy2(src / name, dst / name)
    table = load_table(src)
    keys = {r["key"] for r in table["rows"] if r["status"] == "ok"}
    shown = {"bicubic", RowSpec("resshift", "baseline", 15).key, table["best"]["key"]}  # plot_crops' columns
    for f in sorted((src / "rows").glob("*")):
        key = f.name.removesuffix(".crops.npz").removesuffix(".csv").removesuffix(".json")
        if key in keys and (not f.name.endswith(".crops.npz") or key in shown):
            shutil.copy2(f, dst / "rows" / f.name)
    return dst


def print_table_from(results_dir: str | Path, file: Any = None) -> str | None:
    """Print the ``table.md`` of ``results_dir`` (or of a ``table`` folder below it, or of any
    subfolder); returns its text, or None (with a message) when there is none."""
    base = Path(results_dir)
    candidates = [base / "table.md", base / "table" / "table.md", *sorted(base.glob("*/table.md"))]
    file = file or sys.stdout
    for c in candidates:
        if c.is_file():
            text = c.read_text(encoding="utf-8")
            print(text, file=file)
            return text
    print(f"(no table.md found in {base})", file=file)
    return None


# ---------------------------------------------------------------------------------------------
# the report side by side
# ---------------------------------------------------------------------------------------------
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
        v = _from_json_value(r["mean"].get(key))
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
        v = row[key] if from_report else _from_json_value(row["mean"].get(key))
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


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def plot_table(table: Mapping[str, Any], metrics: Sequence[str] = ("psnr_y", "ssim_y", "haarpsi")):
    """Horizontal bars of the table rows (nfe = 15 and references) for ``metrics``; the baseline's
    value is a dashed line.  Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    rows = [r for r in table["rows"] if r["group"] != "sweep" and r["status"] == "ok"]
    metrics = [m for m in metrics if any(r["mean"].get(m) is not None for r in rows)]
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4.2 * max(len(metrics), 1), 0.32 * len(rows) + 1.4),
                             sharey=True, squeeze=False)
    labels = [r["label"] for r in rows]
    base = next((r for r in rows if r["solver"] == "resshift"), None)
    for ax, m in zip(axes[0], metrics):
        vals = np.array([_from_json_value(r["mean"].get(m)) for r in rows])
        colours = ["0.6" if r["group"] == "reference" else ("C3" if r["solver"] == "resshift" else
                   {"euler": "C0", "heun": "C1"}.get(r["solver"], "C2")) for r in rows]
        ax.barh(np.arange(len(rows)), vals, color=colours)
        finite = vals[np.isfinite(vals)]
        if finite.size:
            lo, hi = finite.min(), finite.max()
            pad = 0.15 * (hi - lo) + 1e-9
            ax.set_xlim(lo - pad, hi + pad)
        if base is not None and base["mean"].get(m) is not None:
            ax.axvline(_from_json_value(base["mean"][m]), color="C3", ls="--", lw=1)
        ax.set_title(_METRIC_TITLES[m] + (" (higher is better)" if _HIGHER_IS_BETTER[m] else " (lower is better)"),
                     fontsize=9)
    axes[0][0].set_yticks(np.arange(len(rows)), labels, fontsize=8)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return fig


def plot_nfe(table: Mapping[str, Any], metrics: Sequence[str] = ("psnr_y", "ssim_y")):
    """Metric against nfe for each sweep series (plus its nfe = 15 table row), with the baseline
    (resshift, nfe = T) as a dashed line.  Returns the figure."""
    import matplotlib.pyplot as plt

    ok = [r for r in table["rows"] if r["status"] == "ok"]
    sweep_ids = {(r["solver"], r["model"], r["rho"]) for r in ok if r["group"] == "sweep"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    base = next((r for r in ok if r["solver"] == "resshift"), None)
    for ax, m in zip(axes[0], metrics):
        for sid in sorted(sweep_ids, key=str):
            pts = sorted((r["nfe"], _from_json_value(r["mean"].get(m))) for r in ok
                         if (r["solver"], r["model"], r["rho"]) == sid and r["group"] != "reference")
            solver, model, rho = sid
            name = ("exp1 on trained levels [baseline]" if solver == LEVELS_SOLVER
                    else f"{solver}{'' if rho is None else f' rho {rho:g}'} [{model}]")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
        if base is not None and base["mean"].get(m) is not None:
            ax.axhline(_from_json_value(base["mean"][m]), color="C3", ls="--", lw=1, label="Baseline resshift, nfe 15")
        ax.set_xlabel("nfe (network evaluations)")
        ax.set_ylabel(_METRIC_TITLES[m])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_crops(result: TableResult, keys: Sequence[str] | None = None):
    """Zoomed crops: per grid image, LR (nearest x4), bicubic, baseline, the best solver, HR.
    ``keys``: the row keys of the middle columns (default: bicubic, the baseline, the best row)."""
    import matplotlib.pyplot as plt

    if keys is None:
        keys = ["bicubic", RowSpec("resshift", "baseline", 15).key] + ([result.best_key] if result.best_key else [])
    cols = [r for r in (result.row(k) for k in keys) if r is not None and r.ok and r.crops is not None]
    windows = cols[0].crop_windows if cols else []
    n_cols = len(cols) + 2
    fig, axes = plt.subplots(max(len(windows), 1), n_cols, figsize=(1.9 * n_cols, 1.9 * max(len(windows), 1) + 0.3),
                             squeeze=False)
    for row_i, (i, top, left, s) in enumerate(windows):
        lr = result.eval_set.lr[i][:, top // SCALE : (top + s) // SCALE, left // SCALE : (left + s) // SCALE]
        lr_big = lr.repeat_interleave(SCALE, 1).repeat_interleave(SCALE, 2)
        hr = result.eval_set.hr[i][:, top : top + s, left : left + s]
        panels = [("LR (x4 nearest)", _to_u8(lr_big).permute(1, 2, 0).numpy())]
        panels += [(r.spec.title, r.crops[row_i]) for r in cols]
        panels += [("HR", _to_u8(hr).permute(1, 2, 0).numpy())]
        for ax, (title, img) in zip(axes[row_i], panels):
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row_i == 0:
                ax.set_title(title, fontsize=8)
        axes[row_i][0].set_ylabel(result.eval_set.names[i], fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# the evaluate command
# ---------------------------------------------------------------------------------------------
def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``evaluate`` to the CLI's subparsers (``python -m ctlib evaluate --help``)."""
    p = subparsers.add_parser(
        "evaluate",
        help="one solver row (and the x0_hat / bicubic references) on a folder of HR images -> JSON",
        description="Evaluate one solver on every image of a folder (LR by MATLAB bicubic x1/4; sides cropped "
                    "to a multiple of 4; images under 16 px rejected) and write per-image and mean PSNR-Y, "
                    "SSIM-Y, PSNR-RGB, HaarPSI, LPIPS (or 'unavailable' with the file it needs) and the "
                    "report's piq metrics as JSON. Exit status: 0 all rows scored, 1 the solver row failed "
                    "(its reason is printed; the JSON is written), 2 a usage or environment error found before "
                    "any image is read (bad argument, --out existing without --overwrite or not writable, "
                    "checkpoint or device missing), 130 interrupted (nothing written).",
    )
    p.add_argument("--hr", required=True, help="folder of HR images")
    p.add_argument("--checkpoint", required=True, help="kit checkpoint (or official UNet weights with --autoencoder)")
    p.add_argument("--autoencoder", help="autoencoder_vq_f4.pth for latent (official) models")
    p.add_argument("--solver", default="euler", help=f"one of {', '.join(s for s in ROW_SOLVERS if s != 'bicubic')}")
    p.add_argument("--rho", type=float, default=1.0, help="time-grid rho (default 1)")
    p.add_argument("--nfe", type=int, default=15, help="network evaluations (resshift: T)")
    p.add_argument("--out", required=True, help="output JSON file (never replaced without --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of every image's x_T (default 0); same seed, thread count, device and torch build: "
                        "same numbers (README, 'What is reproducible')")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--limit", type=int, help="only the first N images (N >= 1)")
    p.add_argument("--crop", type=int, help=f"centre-crop every image to at most CROP x CROP (a multiple of {SCALE}, "
                                            f">= {MIN_HR_SIDE})")
    p.add_argument("--lpips-net", default="alex", choices=("alex", "vgg", "none"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cli_evaluate)
    return p


def _row_json(r: RowResult) -> dict[str, Any]:
    rec = _row_record(r)
    rec["per_image"] = [
        {"name": name, **{k: _json_value(float(r.per_image[k][i])) for k in METRIC_KEYS if k in r.per_image}}
        for i, name in enumerate(r.names)
    ] if r.ok else []
    return rec


def cli_evaluate(args: argparse.Namespace) -> int:
    """``python -m ctlib evaluate``: returns 0 on success, 1 when the solver row failed, 2 on bad input
    (every argument, the device and --out are checked before any image is read), 130 on Ctrl-C."""
    solver = args.solver
    if solver not in ROW_SOLVERS or solver == "bicubic":
        print(f"error: unknown solver {solver!r}; known: {', '.join(s for s in ROW_SOLVERS if s != 'bicubic')}",
              file=sys.stderr)
        return 2
    try:
        # the cheap checks first: nothing is read or computed before they pass
        if args.limit is not None:
            check_int(args.limit, "--limit", minimum=1)
        if args.crop is not None:
            _check_crop(args.crop)
        check_int(args.batch_size, "--batch-size", minimum=1)
        check_int(args.seed, "--seed", minimum=0)
        check_device(args.device, "--device")
        out = check_output_file(args.out, overwrite=args.overwrite)
        from .data.io import IMAGE_EXTENSIONS

        hr_dir = Path(args.hr)
        if out.suffix.lower() in IMAGE_EXTENSIONS and hr_dir.is_dir() and out.resolve().parent == hr_dir.resolve():
            raise ValueError(f"--out {out} would be one of the HR images it reads; choose another name or folder")
        for name, path in (("--checkpoint", args.checkpoint), ("--autoencoder", args.autoencoder)):
            if path is not None and out.resolve() == _resolve(path).resolve():
                raise ValueError(f"--out {out} is the {name} file it reads; choose another name")
        eval_set = folder_eval_set(args.hr, limit=args.limit, crop=args.crop)
        den = load_denoiser(args.checkpoint, autoencoder=args.autoencoder, device=args.device)
        spec = RowSpec(solver, "model", int(args.nfe), float(args.rho), group="table")
        _check_spec(spec, den)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in eval_set.notes:
        print(f"note: {note}", file=sys.stderr)
    specs = [RowSpec("bicubic", None, 0, group="reference"), RowSpec("x0_hat", "model", 1, group="reference")]
    if spec.key != specs[1].key:
        specs.append(spec)
    lpips_net = None if args.lpips_net == "none" else args.lpips_net
    from tqdm import tqdm

    rows = []
    bar = tqdm(total=sum(max(s.nfe, 1) for s in specs) * len(eval_set), desc="evaluate", unit="img-eval",
               disable=args.no_progress)
    try:
        with bar:
            for s in specs:
                rows.append(evaluate_row(s, None if s.solver == "bicubic" else den, eval_set, seed=args.seed,
                                         batch_size=args.batch_size, lpips_net=lpips_net, device=args.device,
                                         bar=bar))
    except KeyboardInterrupt:
        print(f"interrupted (Ctrl-C) after {len(rows)} of {len(specs)} rows; nothing was written ({out} "
              f"{'is unchanged' if out.exists() else 'was not created'})", file=sys.stderr)
        return 130
    metric_info: dict[str, Any] = {}
    for r in rows:
        for k, info in r.metric_info.items():
            metric_info.setdefault(k, info)
    doc = {
        "hr_dir": str(args.hr),
        "images": eval_set.names,
        "notes": eval_set.notes,
        "lr": "MATLAB bicubic x1/4 of the HR, 8-bit",
        "checkpoint": {"path": str(args.checkpoint), "sha256": model_fingerprint(args.checkpoint)},
        "seed": int(args.seed),
        "metrics": {k: {**metric_info.get(k, {}), "title": _METRIC_TITLES[k], "higher_is_better": _HIGHER_IS_BETTER[k],
                        "available": not (metric_info.get(k) or {}).get("reason")} for k in METRIC_KEYS},
        "rows": [_row_json(r) for r in rows],
    }
    text = (json.dumps(doc, indent=1) + "\n").encode("utf-8")
    atomic_write(out, lambda f: f.write(text))  # all or nothing: never half a JSON file
    print(format_table([_row_record(r) for r in rows]))
    for k, info in doc["metrics"].items():
        if not info["available"] and k != "ms_ssim":
            print(f"{_METRIC_TITLES[k]}: {info.get('text') or info.get('reason')}")
    print(f"wrote {out}")
    failed = [r for r in rows if not r.ok]
    for r in failed:
        print(f"error: row {r.spec.title} failed: {r.reason}", file=sys.stderr)
    return 1 if failed else 0
