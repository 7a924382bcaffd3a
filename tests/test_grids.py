"""Time grids: the report's rho grid, its mirrored negative-rho form, the uniform grid, validation."""

from __future__ import annotations

import re

import numpy as np
import pytest

import ctlib.grids as grids
from ctlib.grids import check_grid, rho_grid, uniform_grid


def test_rho_one_is_k_over_T():
    np.testing.assert_allclose(rho_grid(15, 1.0, 15) * 15, np.arange(15, -1, -1), atol=1e-12)
    np.testing.assert_allclose(uniform_grid(15) * 15, np.arange(15, -1, -1), atol=0)


@pytest.mark.parametrize("rho", [0.5, 2.0, 4.0, 7.0, 8.0])
@pytest.mark.parametrize("n", [2, 5, 15, 50])
def test_positive_rho_is_uniform_in_t_to_the_one_over_rho(n, rho):
    g = rho_grid(n, rho, 15)
    assert g.shape == (n + 1,) and g[0] == 1.0 and g[-1] == 0.0
    assert g[-2] == pytest.approx(1 / 15, abs=1e-15)
    u = g[:-1] ** (1 / rho)  # equally spaced from 1 to (1/T)^(1/rho)
    np.testing.assert_allclose(np.diff(u), (u[-1] - u[0]) / (n - 1), rtol=1e-9, atol=1e-13)
    assert (np.diff(g) < 0).all()


@pytest.mark.parametrize("rho", [1.0, 4.0, 8.0])
@pytest.mark.parametrize("n", [2, 5, 15])
def test_negative_rho_mirrors_the_full_grid(n, rho):
    pos, neg = rho_grid(n, rho), rho_grid(n, -rho)
    np.testing.assert_allclose(neg, 1 - pos[::-1], atol=1e-15)
    assert neg[0] == 1.0 and neg[-1] == 0.0
    assert neg[1] == pytest.approx(1 - 1 / 15)  # first step 1 -> 1 - 1/T
    assert neg[-2] == pytest.approx(1 - pos[1])  # the step into 0 starts at 1 - t_1
    assert (np.diff(neg) < 0).all()


def test_higher_rho_packs_points_towards_zero():
    below = {rho: np.mean(rho_grid(15, rho)[:-1] < 0.5) for rho in (1, 4, 8, -4, -8)}
    assert below[-8] <= below[-4] < below[1] < below[4] <= below[8]
    assert np.median(rho_grid(15, 8)[:-1]) < np.median(rho_grid(15, 4)[:-1]) < np.median(rho_grid(15, 1)[:-1])


def test_docstring_table_is_right():
    """The numbers the module docstring quotes are what the grids give."""
    rows = re.findall(r"^\s+(-?\d+)\s+([\d.]+) / ([\d.]+)\s+([\d.]+) / ([\d.]+)\s+([\d.]+) / ([\d.]+)\s+([\d.]+)$",
                      grids.__doc__, flags=re.M)
    assert len(rows) == 5
    for row in rows:
        rho = float(row[0])
        for j, n in enumerate((5, 8, 15)):
            pts = rho_grid(n, rho)[:-1]
            assert float(row[1 + 2 * j]) == pytest.approx(np.mean(pts < 0.5), abs=0.0005)
            assert float(row[2 + 2 * j]) == pytest.approx(np.mean(pts < 0.2), abs=0.0005)
        assert float(row[7]) == pytest.approx(np.median(rho_grid(15, rho)[:-1]), abs=0.0005)


def test_small_grids():
    np.testing.assert_array_equal(rho_grid(1, 3.0), [1.0, 0.0])
    np.testing.assert_array_equal(rho_grid(1, -3.0), [1.0, 0.0])
    np.testing.assert_allclose(rho_grid(2, 1.0, 10), [1.0, 0.1, 0.0])


@pytest.mark.parametrize("bad", [0, 0.0, float("nan"), float("inf"), "x"])
def test_bad_rho(bad):
    with pytest.raises(ValueError, match="rho"):
        rho_grid(5, bad)


def test_bad_sizes_and_grids():
    with pytest.raises(ValueError, match="n must"):
        rho_grid(0)
    with pytest.raises(ValueError, match="T must"):
        rho_grid(5, 1.0, T=1)
    with pytest.raises(ValueError, match="decreasing"):
        check_grid([0.5, 0.7, 0.0])
    with pytest.raises(ValueError, match="decreasing"):
        check_grid([1.0, 0.0, 0.0])  # so only the last time can be 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_grid([1.5, 0.5])
    with pytest.raises(ValueError, match="at least 2"):
        check_grid([1.0])
    np.testing.assert_array_equal(check_grid([1.0, 0.5]), [1.0, 0.5])
