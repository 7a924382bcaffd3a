"""Figures of a table run: metric per row (:func:`plot_table`), metric against nfe
(:func:`plot_nfe`) and zoomed crops side by side (:func:`plot_crops`).  They read a ``table.json``
(:func:`ctlib.table.load_table`) or a :class:`~ctlib.table.TableResult`; matplotlib is imported
when a figure is drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .data import quantize_u8
from .data.evalsets import SCALE
from .evaluate import HIGHER_IS_BETTER, LEVELS_SOLVER, METRIC_TITLES, RowSpec
from .files import from_json_value

if TYPE_CHECKING:
    from .table import TableResult

__all__ = ["plot_table", "plot_nfe", "plot_crops"]


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
        vals = np.array([from_json_value(r["mean"].get(m)) for r in rows])
        colours = ["0.6" if r["group"] == "reference" else ("C3" if r["solver"] == "resshift" else
                   {"euler": "C0", "heun": "C1"}.get(r["solver"], "C2")) for r in rows]
        ax.barh(np.arange(len(rows)), vals, color=colours)
        finite = vals[np.isfinite(vals)]
        if finite.size:
            lo, hi = finite.min(), finite.max()
            pad = 0.15 * (hi - lo) + 1e-9
            ax.set_xlim(lo - pad, hi + pad)
        if base is not None and base["mean"].get(m) is not None:
            ax.axvline(from_json_value(base["mean"][m]), color="C3", ls="--", lw=1)
        ax.set_title(METRIC_TITLES[m] + (" (higher is better)" if HIGHER_IS_BETTER[m] else " (lower is better)"),
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
            pts = sorted((r["nfe"], from_json_value(r["mean"].get(m))) for r in ok
                         if (r["solver"], r["model"], r["rho"]) == sid and r["group"] != "reference")
            solver, model, rho = sid
            name = ("exp1 on trained levels [baseline]" if solver == LEVELS_SOLVER
                    else f"{solver}{'' if rho is None else f' rho {rho:g}'} [{model}]")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
        if base is not None and base["mean"].get(m) is not None:
            ax.axhline(from_json_value(base["mean"][m]), color="C3", ls="--", lw=1, label="Baseline resshift, nfe 15")
        ax.set_xlabel("nfe (network evaluations)")
        ax.set_ylabel(METRIC_TITLES[m])
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
        panels = [("LR (x4 nearest)", quantize_u8(lr_big).permute(1, 2, 0).numpy())]
        panels += [(r.spec.title, r.crops[row_i]) for r in cols]
        panels += [("HR", quantize_u8(hr).permute(1, 2, 0).numpy())]
        for ax, (title, img) in zip(axes[row_i], panels):
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row_i == 0:
                ax.set_title(title, fontsize=8)
        axes[row_i][0].set_ylabel(result.eval_set.names[i], fontsize=8)
    fig.tight_layout()
    return fig
