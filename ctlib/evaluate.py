r"""Rows of a sweep: one way from LR to SR each, scored per image on a test set, cached as CSV.

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
``torch.Generator().manual_seed(i + 1_000_000 * seed)`` (:func:`ctlib.pipeline.image_noise`), the same
for every row, so rows differ only by the solver; the stochastic rows (``resshift``, ``euler_maruyama``)
then draw their per-step noise from the same generator (after ``eps_T``).  Results are identical on
rerun.

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

Where the rest lives: the images a row is scored on are :mod:`ctlib.data.evalsets`; the LR -> SR path
(model loading, seeded prior, sampler, decoding) is :mod:`ctlib.pipeline`; the whole table and its
files are :mod:`ctlib.table`; its figures :mod:`ctlib.plots`; the profiles' settings
:mod:`ctlib.profiles`; the ``evaluate`` command :mod:`ctlib.cli`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._checks import check_int
from .conclusions import REPORT_RHOS
from .data import PairedTestSet, quantize_u8
from .data.evalsets import SCALE
from .files import from_json_value, write_json
from .nn.checkpoint import model_fingerprint
from .pipeline import check_sampler, image_noise, load_model, super_resolve
from .samplers import SOLVERS, min_nfe

__all__ = [
    "REFERENCE_SOLVERS",
    "LEVELS_SOLVER",
    "ROW_SOLVERS",
    "METRIC_KEYS",
    "METRIC_FORMATS",
    "METRIC_TITLES",
    "HIGHER_IS_BETTER",
    "RowSpec",
    "RowResult",
    "table_rows",
    "smoke_rows",
    "sweep_rows",
    "evaluate_row",
    "run_rows",
    "best_row",
    "matching_nfe",
]

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


METRIC_TITLES: dict[str, str] = {
    "psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "psnr_rgb": "PSNR-RGB", "ssim_rgb": "SSIM-RGB", "haarpsi": "HaarPSI",
    "ms_ssim": "MS-SSIM", "lpips": "LPIPS-alex", "psnr_rgb_piq": "PSNR-RGB (piq)",
    "ssim_loss_piq": "1-SSIM (piq)", "lpips_vgg_piq": "LPIPS-VGG (piq)",
}


HIGHER_IS_BETTER: dict[str, bool] = {k: k not in ("lpips", "ssim_loss_piq", "lpips_vgg_piq") for k in METRIC_KEYS}


CACHE_VERSION = 1


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


def smoke_rows(T: int = 15) -> list[RowSpec]:
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
# one row
# ---------------------------------------------------------------------------------------------
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


def _check_spec(spec: RowSpec, den) -> None:
    if spec.solver not in ROW_SOLVERS:
        raise ValueError(f"unknown solver {spec.solver!r}; known: {', '.join(ROW_SOLVERS)}")
    if spec.solver == "bicubic":
        return
    if spec.model is None:
        raise ValueError(f"row {spec.key}: solver {spec.solver!r} needs a model")
    check_sampler(spec.solver, spec.nfe, spec.rho, int(den.schedule.T))


def evaluate_row(
    spec: RowSpec,
    denoiser: Any,
    eval_set: PairedTestSet,
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
                    sr = super_resolve(denoiser, lr, solver=spec.solver, nfe=spec.nfe, rho=spec.rho,
                                       noise=image_noise(idx, seed)).cpu()
                sr_u8, hr_u8 = quantize_u8(sr), quantize_u8(hr)
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
# cache and sweeps
# ---------------------------------------------------------------------------------------------
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
    write_json(json_path, meta, indent=1, sort_keys=True)


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
        per_image = {k: np.array([from_json_value(r[k]) for r in rows], dtype=np.float64) for k in keys}
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


def run_rows(
    specs: Sequence[RowSpec],
    models: Mapping[str, Any],
    eval_set: PairedTestSet,
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
                        loaded[spec.model] = load_model(models[spec.model], autoencoder=autoencoder, device=device)
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
    higher = HIGHER_IS_BETTER.get(metric, True)
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
    higher = HIGHER_IS_BETTER.get(metric, True)
    found = []
    for r in rows:
        s = r.spec
        if r.ok and (s.solver, s.model, s.rho if s.uses_rho else None) == (
                series.solver, series.model, series.rho if series.uses_rho else None):
            v = r.mean(metric)
            if not math.isnan(v) and (v >= target if higher else v <= target):
                found.append(s.nfe)
    return min(found) if found else None
