"""The table of record: run a profile's rows (:func:`reproduce_table`), write ``table.md`` /
``table.csv`` / ``table.json`` (:func:`write_table`), read them back (:func:`load_table`), format
them (:func:`format_table`) and keep the committed results of record in step with the checkpoints
(:func:`record_matches`, :func:`save_record`).  The rows themselves are :mod:`ctlib.evaluate`'s;
the profiles' settings are :data:`ctlib.profiles.EVAL_PROFILES`."""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .data import PairedTestSet
from .data.evalsets import bundled_eval_set, choose_crop_windows, folder_eval_set
from .evaluate import (
    HIGHER_IS_BETTER,
    LEVELS_SOLVER,
    METRIC_FORMATS,
    METRIC_KEYS,
    METRIC_TITLES,
    RowResult,
    RowSpec,
    best_row,
    matching_nfe,
    run_rows,
    smoke_rows,
    sweep_rows,
    table_rows,
)
from .files import REPO_ROOT, file_sha256, from_json_value, json_value, repo_path, write_json
from .nn.checkpoint import model_fingerprint
from .profiles import DEFAULT_CHECKPOINTS, EVAL_PROFILES, RECORD_DIR

__all__ = ["TableResult", "reproduce_table", "record_matches", "write_table", "load_table", "format_table",
           "row_record", "save_record", "print_table_from"]


@dataclass
class TableResult:
    """Rows of a reproduce_table run, the evaluation set and where it all was written."""

    rows: list[RowResult]
    eval_set: PairedTestSet
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
            p = repo_path(src)
            try:
                rel = str(p.resolve().relative_to(REPO_ROOT))
            except ValueError:
                rel = str(p)
            out[name] = {"path": rel, "sha256": file_sha256(p) if p.is_file() else None}
        else:
            out[name] = {"path": None, "sha256": model_fingerprint(src)}
    return out


def record_matches(record_dir: str | Path, checkpoints: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the results of record in ``record_dir`` were computed with these checkpoints (sha256).
    The message names ``record_dir`` as given (a relative path is looked up in the repository)."""
    given, record_dir = record_dir, repo_path(record_dir)
    table = record_dir / "table.json"
    if not table.is_file():
        return False, f"no results of record in {given}"
    stored = json.loads(table.read_text(encoding="utf-8")).get("checkpoints", {})
    now = _checkpoint_info(checkpoints)
    for name, info in now.items():
        if info["sha256"] is None:
            return False, f"checkpoint {name!r} not found: {info['path']}"
        if stored.get(name, {}).get("sha256") != info["sha256"]:
            return False, f"checkpoint {name!r} ({info['path']}) differs from the one the record was computed with"
    return True, f"results of record in {given} match the checkpoints' sha256"


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
            _copy_record(repo_path(record_dir), results_dir)
    windows = choose_crop_windows(eval_set, settings["grid_images"])
    common = dict(recompute=recompute, seed=seed, batch_size=batch_size or settings["batch_size"],
                  crop_windows=windows, lpips_net=lpips_net, autoencoder=autoencoder, device=device,
                  progress=progress)
    specs = smoke_rows() if settings["rows"] == "smoke" else table_rows()
    rows = run_rows(specs, models, eval_set, results_dir, **common)
    best = best_row(rows, best_by)
    rows += run_rows(sweep_rows(best.spec if best else None, settings["sweep_nfes"]), models, eval_set, results_dir,
                     **common)
    result = TableResult(rows, eval_set, results_dir, profile, _checkpoint_info(models),
                         best.spec.key if best else None, best_by, time.perf_counter() - start)
    write_table(result)
    return result


def _fmt(value: float, key: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, METRIC_FORMATS.get(key, ".4f"))


def row_record(r: RowResult) -> dict[str, Any]:
    s = r.spec
    return {
        "key": s.key, "label": s.title, "group": s.group, "model": s.model, "solver": s.solver, "nfe": s.nfe,
        "rho": s.rho if s.uses_rho else None, "status": r.status, "reason": r.reason, "n_images": len(r.names),
        "seconds": round(r.seconds, 2), "cached": r.cached,
        "mean": {k: json_value(r.mean(k)) for k in METRIC_KEYS if k in r.per_image},
    }


def format_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] = ("psnr_y", "ssim_y", "psnr_rgb",
                 "haarpsi", "lpips", "psnr_rgb_piq", "ssim_loss_piq")) -> str:
    """A Markdown table of row records (:func:`load_table`'s ``rows``), modest precision; failed rows
    show their reason."""
    head = ["row", "nfe", *(METRIC_TITLES[m] for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['label']} | {r['nfe']} | failed: {str(r['reason']).replace('|', '/')} "
                         + "| " * (len(metrics) - 1) + "|")
            continue
        vals = [_fmt(from_json_value(r["mean"].get(m)), m) for m in metrics]
        lines.append(f"| {r['label']} | {r['nfe']} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def write_table(result: TableResult) -> dict[str, Path]:
    """Write ``table.md``, ``table.csv`` and ``table.json`` (rows with means, metric availability, the
    evaluation set, checkpoints with sha256, the best row and the nfe at which it matches the baseline)."""
    out = result.results_dir
    records = [row_record(r) for r in result.rows]
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
        "metrics": {k: {**metric_info.get(k, {}), "title": METRIC_TITLES[k],
                        "higher_is_better": HIGHER_IS_BETTER[k]} for k in METRIC_KEYS},
        "best": {"key": result.best_key, "by": result.best_by},
        "matching_nfe": match,
        "rows": records,
    }
    paths = {"json": out / "table.json", "csv": out / "table.csv", "md": out / "table.md"}
    write_json(paths["json"], doc, indent=1)
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "label", "group", "model", "solver", "nfe", "rho", "status", "reason", "n_images",
                    "seconds", *METRIC_KEYS])
        for rec in records:
            w.writerow([rec["key"], rec["label"], rec["group"], rec["model"], rec["solver"], rec["nfe"],
                        "" if rec["rho"] is None else rec["rho"], rec["status"], rec["reason"] or "", rec["n_images"],
                        rec["seconds"], *("" if rec["mean"].get(k) is None else rec["mean"][k] for k in METRIC_KEYS)])
    unavailable = [f"- {METRIC_TITLES[k]}: {info.get('text') or info.get('reason')}"
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
    src, dst = Path(results_dir), repo_path(record_dir)
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
