"""Shared test helpers: where the golden fixtures live and how to load them."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures" / "resshift_reference"
ROOT = Path(__file__).resolve().parent.parent



@functools.cache
def load_npz(name: str) -> dict[str, np.ndarray]:
    """Load a golden .npz from tests/fixtures/resshift_reference (no pickle)."""
    with np.load(FIXTURES / name, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module of small tensors: as fast, and immune to OpenMP
    oversubscription on a busy 2-core machine (2 threads there slowed small forwards ~20x).
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
