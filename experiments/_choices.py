"""Shared by the experiments: the rows they score (through ``ctlib.pipeline``) and the store of their
results, ``data/checkpoints/training_choices.json``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ctlib import pipeline
from ctlib.files import REPO_ROOT, write_json

#: where the experiments store their results (one entry per key; ``experiments/README.md``)
STORE = REPO_ROOT / "data" / "checkpoints" / "training_choices.json"
#: the rows the experiments score: name -> (solver, nfe) at rho = 1; ``bicubic`` is the model's own
#: upsampling of the LR (``pipeline.upsample``), ``x0_hat_t1`` the one-step prediction x0_hat(x_T, t = 1)
ROWS: dict[str, tuple[str, int] | None] = {
    "bicubic": None,
    "x0_hat_t1": ("x0_hat", 1),
    "euler_nfe15_rho1": ("euler", 15),
    "exp1_nfe15_rho1": ("exp1", 15),
}


def sr_rows(model: Any, lr: torch.Tensor, noise: Callable[[], pipeline.NoiseSource],
            names: Iterable[str]) -> dict[str, torch.Tensor]:
    """SR images in [0, 1] of the LR batch ``lr`` for the rows ``names`` of :data:`ROWS`, each sampled
    from the noise source ``noise()`` (called once per row, so every row starts from the same x_T)."""
    out = {}
    for name in names:
        row = ROWS[name]
        if row is None:
            out[name] = pipeline.upsample(model, lr)
        else:
            solver, nfe = row
            out[name] = pipeline.super_resolve(model, lr, solver=solver, nfe=nfe, rho=1.0, noise=noise())
    return out


def store_entry(path: Path, key: str, entry: dict[str, Any]) -> None:
    """Set ``doc[key] = entry`` in the JSON file ``path`` (created if missing; other keys kept), and print it."""
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc[key] = entry
    write_json(path, doc)
    print(json.dumps(entry, indent=1))
