"""Shared test helpers: where the golden fixtures live and how to load them."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures" / "resshift_reference"
ROOT = Path(__file__).resolve().parent.parent



@functools.cache
def load_npz(name: str) -> dict[str, np.ndarray]:
    """Load a golden .npz from tests/fixtures/resshift_reference (no pickle)."""
    with np.load(FIXTURES / name, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
