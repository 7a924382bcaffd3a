"""ctlib.solver_accuracy: the goal table's arithmetic, the log-eta grid, and what the new solver buys."""

from __future__ import annotations

import numpy as np
import pytest

from ctlib.schedule import ExpAlphaSchedule, ResShiftSchedule
from ctlib.solver_accuracy import (
    GOALS,
    REFERENCE,
    empirical_order,
    error_rows,
    goal_table,
    log_eta_grid,
    variants,
)
from ctlib.toy import GaussianMixtureToy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_goal_table_picks_the_best_row_and_compares_with_the_reference():
    rows = [{"variant": "euler", "rho": 1.0, "nfe": 15, "rel_err": 0.2},
            {"variant": "exp2m", "rho": 4.0, "nfe": 5, "rel_err": 0.12},
            {"variant": "exp3m", "rho": 1.0, "nfe": 5, "rel_err": 0.09},
            {"variant": "exp3m", "rho": 4.0, "nfe": 10, "rel_err": 0.03},
            {"variant": "exp3m/euler_eta", "rho": 4.0, "nfe": 15, "rel_err": 0.005}]
    table = {g["nfe"]: g for g in goal_table(rows)}
    assert (table[5]["best"], table[5]["rho"]) == ("exp3m", 1.0)
    assert table[5]["ratio"] == pytest.approx(0.45) and table[5]["met"]
    assert table[10]["ratio"] == pytest.approx(0.15) and not table[10]["met"]
    assert table[15]["ratio"] == pytest.approx(0.025) and table[15]["met"]
    assert [g["goal"] for g in table.values()] == [GOALS[5], GOALS[10], GOALS[15]]
    with pytest.raises(ValueError, match="reference"):
        goal_table(rows[1:])


def test_variants_add_the_final_step_only_to_exponential_multistep_solvers():
    assert variants(("euler", "exp1", "exp3m")) == ["euler", "exp1", "exp3m", "exp3m/euler_eta"]


@pytest.mark.parametrize("schedule", [ResShiftSchedule(), ExpAlphaSchedule.report()])
def test_log_eta_grid_is_equally_spaced_in_log_eta(schedule):
    ts = log_eta_grid(schedule, 7)
    assert ts[0] == 1.0 and ts[-2] == pytest.approx(1 / 15) and ts[-1] == 0.0
    steps = np.diff(np.log(schedule.eta(ts[:-1])))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)


@pytest.mark.parametrize("schedule", [ResShiftSchedule(), ExpAlphaSchedule.report()])
def test_exp3m_is_several_times_closer_than_the_report_euler_at_nfe_15(schedule):
    """Same budget: exp3m on the rho = 4 grid is at least 3x closer to the exact x(0) than Euler rho 1
    (holding x0_hat in the last step; its O(eta(1/T)) floor is what stops it on the report's schedule)
    and at least 8x with the Euler-in-eta final step."""
    toy = GaussianMixtureToy.demo(schedule)
    rows = error_rows(toy, ["exp3m", "exp3m/euler_eta"], [4.0], [15], n=16)
    ref = next(r for r in rows if (r["variant"], r["rho"], r["nfe"]) == REFERENCE)["rel_err"]
    err = {r["variant"]: r["rel_err"] for r in rows if r["variant"] != "euler"}
    assert err["exp3m"] < ref / 3, (err, ref)
    assert err["exp3m/euler_eta"] < ref / 8, (err, ref)


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0, 3.7])
def test_empirical_order_is_exact_on_a_power_law_and_positive_for_falling_errors(p):
    """error = C nfe^-p gives order p (positive: minus the slope of log error against log nfe),
    every point counted; the slope of an error growing like eta^p is -empirical_order(eta, errors)."""
    nfe = np.array([5, 10, 15, 20, 40, 80])
    errors = 3.0 * nfe.astype(float) ** -p
    assert empirical_order(nfe, errors) == pytest.approx(p, rel=1e-12)
    assert empirical_order(list(nfe), list(errors)) == pytest.approx(p, rel=1e-12)
    eta = 1.0 / nfe
    assert -empirical_order(eta, 0.5 * eta**p) == pytest.approx(p, rel=1e-12)
    bent = errors.copy()
    bent[-1] *= 2.0  # a least-squares fit moves with every point, not only the last two
    assert empirical_order(nfe, bent) == pytest.approx(-np.polyfit(np.log(nfe), np.log(bent), 1)[0], rel=1e-15)
    assert empirical_order(nfe, bent) != pytest.approx(-np.log(bent[-1] / bent[-2]) / np.log(2.0))
