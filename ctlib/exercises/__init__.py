"""Checks for the course's exercises (``notebooks/src/exercises/``).

A notebook defines the functions an exercise asks for, then calls ``check("E1", marginal)``: the
check runs the student's code on randomised inputs against references computed here
independently (simulation judged in standard errors, finite differences, scipy, closed forms,
piq / scikit-image), prints one line when everything agrees, and otherwise raises

* :class:`NotAttempted` while an answer still raises ``NotImplementedError`` (the student's blank);
* :class:`ExerciseFailed` (an ``AssertionError``) saying what is wrong and where to look, without
  the answer.

``EXERCISES`` holds every auto-graded exercise (points, minutes, assignment, the names the student
defines); ``WRITTEN`` the hand-graded questions with their rubrics.
"""

from __future__ import annotations

from . import forward, schedule_grids, solvers, training_metrics  # noqa: F401  (registers the checks)
from ._core import EXERCISES, WRITTEN, Exercise, ExerciseFailed, NotAttempted, Written, check, written

__all__ = ["check", "EXERCISES", "WRITTEN", "Exercise", "Written", "ExerciseFailed", "NotAttempted", "ASSIGNMENTS"]

written("W1", "why PSNR rises as nfe falls", points=10, minutes=15, assignment=training_metrics.ASSIGNMENT, rubric=(
    (3, "PSNR rewards the posterior mean: the MSE-optimal estimate is E[x0 | y], which is blurry"),
    (3, "a sampler with many steps draws a sample from p(x0 | y): it adds plausible detail that is not "
        "the true detail, so its MSE is about twice the mean's (the sample's spread adds to the error)"),
    (2, "with few steps the sampler stops near its x0 guess / averages more (the last step lands on "
        "x0_hat, the deterministic flow has less time to add detail), so it stays closer to the mean"),
    (2, "consequence: PSNR alone cannot rank samplers; look at LPIPS or a perceptual check as well"),
))
written("W2", "why only the eta levels a solver visits matter", points=10, minutes=15, assignment=solvers.ASSIGNMENT,
        rubric=(
    (4, "dividing the flow by alpha gives dx/d eta, with no schedule in it: the ODE lives in eta"),
    (3, "a solver's result is fixed by the sequence of eta values at which it evaluates x0_hat and steps "
        "(for the exact step, exactly; for Euler in t, up to alpha's role as a step factor)"),
    (3, "so two schedules that visit the same eta levels give the same samples; changing the schedule "
        "or the rho grid only moves those levels (a reparametrisation of time)"),
))

ASSIGNMENTS: dict[str, str] = {
    forward.ASSIGNMENT: "the forward process: marginal, score, probability-flow drift",
    schedule_grids.ASSIGNMENT: "schedules and grids: lambda, the alpha(t) fit, the rho grid, nfe",
    solvers.ASSIGNMENT: "solvers: exact step, ResShift's posterior step, order of convergence",
    training_metrics.ASSIGNMENT: "training and metrics: the fine-tuning loss, PSNR-Y, the report's SSIM",
}
