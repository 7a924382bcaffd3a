"""ctlib: the library of the Continuous-in-time ResShift reproduction kit.

The notebooks and tests import everything from here; see README.md for the map of modules.
"""

from .diffusion import (
    pf_drift,
    pf_drift_eta,
    pf_exact_step,
    posterior_mean_variance,
    prior_sample,
    q_sample,
    score_from_x0,
    x0_from_score,
)
from .grids import rho_grid, uniform_grid
from .samplers import SOLVERS, min_nfe, sample, solver_grid
from .schedule import ExpAlphaSchedule, ResShiftSchedule, Schedule, fit_exp_alpha, schedule_from_dict
from .toy import GaussianMixtureToy
from .upscale import upscale

__version__ = "0.1.0"

__all__ = [
    "ExpAlphaSchedule",
    "ResShiftSchedule",
    "Schedule",
    "fit_exp_alpha",
    "schedule_from_dict",
    "q_sample",
    "prior_sample",
    "posterior_mean_variance",
    "score_from_x0",
    "x0_from_score",
    "pf_drift",
    "pf_drift_eta",
    "pf_exact_step",
    "sample",
    "SOLVERS",
    "rho_grid",
    "uniform_grid",
    "solver_grid",
    "min_nfe",
    "GaussianMixtureToy",
    "upscale",
]
