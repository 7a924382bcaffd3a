# %% [markdown]
# # Assignment 2 · Schedules, time grids and counting evaluations
#
# **Covers** lessons 03 and 04 (sections 1 and 2). **Prerequisites:** assignment 1, least squares
# with scipy, numpy arrays. **Time:** about 70 minutes. **Points:** 35 (four auto-graded exercises).
#
# Fill in every `# YOUR CODE HERE` (delete the `raise NotImplementedError()` line) and run the check
# below it. Checks compare your functions with independent references (scipy's root finder,
# quadrature and `curve_fit`, solver loops that count their own calls) on random inputs.

# %%
import math

import numpy as np
import torch
from scipy.optimize import least_squares

from ctlib.exercises import check
from ctlib.schedule import ResShiftSchedule

torch.set_num_threads(1)

# %% [markdown]
# ## E4 · $\lambda$ from $a$ and $\alpha'(1)$, and $\eta(t)$ of the report's form (5 points, ~10 min)
#
# The report models the rate as $\alpha(t) = a\,(e^{\lambda t} - 1)$. Its code fixes $a = 1.1113$ and
# the end value $\alpha(1) = 2.3177576$ and derives $\lambda$ from them; the report then prints
# $\lambda = 0.489$.
#
# **Tasks.** `lam_from(a, alpha_end)` returns the $\lambda$ with $\alpha(1) = $ `alpha_end`.
# `eta_exp(t, a, lam)` returns $\eta(t) = \int_0^t \alpha$ for a float or a numpy array `t`.
#
# *Hint.* Check your $\lambda$ against the printed 0.489: which logarithm gives that number, and
# which one does $e^{\lambda t}$ need? For `eta_exp`, verify $\eta(0) = 0$ and $\eta' = \alpha$.

# %%
def lam_from(a, alpha_end):
    ### BEGIN SOLUTION
    return math.log1p(alpha_end / a)
    ### END SOLUTION


def eta_exp(t, a, lam):
    ### BEGIN SOLUTION
    t = np.asarray(t, dtype=np.float64)
    return a * (np.expm1(lam * t) / lam - t)
    ### END SOLUTION


# %%
check("E4", lam_from, eta_exp)
### BEGIN HIDDEN TESTS
check("E4", lam_from, eta_exp, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## E5 · Fitting $\alpha(t)$ to the official schedule (10 points, ~20 min)
#
# The official schedule has levels $\eta_k$, $k = 1..T$ (`schedule.etas`), with jumps
# $\alpha_k = \eta_k - \eta_{k-1}$ ($\eta_0 = 0$). Step $k$ happens at $t = k/T$ and lasts $1/T$.
#
# **Tasks.** `report_alpha_data(schedule)` returns `(t, data)`: the $T$ times of the steps and the
# rates $\alpha(t)$ they imply (numpy float64 arrays). `fit_alpha(t, data)` returns the
# least-squares `(a, lam)` of $a(e^{\lambda t} - 1)$ to the data.
#
# *Hint.* A jump per time step is not a rate: what do you divide by? Fit in the data's own units
# (`scipy.optimize.least_squares` with a starting point such as `(1, 1)`), not in logarithms.

# %%
def report_alpha_data(schedule):
    ### BEGIN SOLUTION
    T = schedule.T
    etas = np.asarray(schedule.etas, dtype=np.float64)
    t = np.arange(1, T + 1, dtype=np.float64) / T
    return t, T * np.diff(etas, prepend=0.0)
    ### END SOLUTION


def fit_alpha(t, data):
    ### BEGIN SOLUTION
    res = least_squares(lambda p: p[0] * np.expm1(p[1] * t) - data, [1.0, 1.0], xtol=1e-15, ftol=1e-15, gtol=1e-15)
    return float(res.x[0]), float(res.x[1])
    ### END SOLUTION


# %%
check("E5", report_alpha_data, fit_alpha)
### BEGIN HIDDEN TESTS
check("E5", report_alpha_data, fit_alpha, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## E6 · The report's $\rho$ grid, negative $\rho$ included (10 points, ~20 min)
#
# The samplers step along $t_i = \bigl(1 + \tfrac{i}{n-1}\,((1/T)^{1/\rho} - 1)\bigr)^{\rho}$,
# $i = 0..n-1$ (from $t = 1$ down to $t = 1/T$), then a final $t = 0$. The report's code runs a
# negative $\rho$ as $|\rho|$ on the mirrored grid $1 - \text{reversed}(\text{grid})$; the report
# prints a formula that, read literally with a negative $\rho$, gives something else.
#
# **Task.** `report_rho_grid(n, rho, T)` returns the $n + 1$ times (numpy float64, decreasing from 1
# to 0) for $n \ge 2$ and any nonzero $\rho$.
#
# *Hint.* Check the first and last two values of your grid for $\rho = 8$ and $\rho = -8$. Where
# is the first step of the mirrored grid?

# %%
def report_rho_grid(n, rho, T):
    ### BEGIN SOLUTION
    if rho < 0:
        return 1.0 - report_rho_grid(n, -rho, T)[::-1]
    i = np.arange(n, dtype=np.float64)
    t = (1.0 + i / (n - 1) * ((1.0 / T) ** (1.0 / rho) - 1.0)) ** rho
    return np.append(t, 0.0)
    ### END SOLUTION


# %%
check("E6", report_rho_grid)
### BEGIN HIDDEN TESTS
check("E6", report_rho_grid, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## E7 · Counting function evaluations (10 points, ~20 min)
#
# The report's code counts "steps" as the steps from $t = 1$ down to $t = 1/T$; every solver then
# takes one final step into $t = 0$, a plain Euler step (the drift cannot be evaluated at
# $\eta = 0$). A Heun step evaluates the denoiser at both ends of the step.
#
# **Tasks.** `CountingDenoiser(denoiser)` wraps a denoiser `denoiser(x, t, y) -> x0_hat`: calling
# it forwards the call unchanged and adds 1 to its attribute `calls` (0 at the start).
# `nfe_of(solver, n_steps)` returns the number of denoiser evaluations of `"euler"` or `"heun"`
# with `n_steps` steps. `steps_for_nfe(solver, nfe)` is the inverse for odd `nfe`.
#
# *Hint.* Wrap a denoiser in your counter and run `ctlib.sample` with it (the cell after the check
# shows how). The report's "nfe = 15" is not "15 steps" (erratum 7).

# %%
class CountingDenoiser:
    def __init__(self, denoiser):
        ### BEGIN SOLUTION
        self.denoiser = denoiser
        self.calls = 0
        ### END SOLUTION

    def __call__(self, x, t, y):
        ### BEGIN SOLUTION
        self.calls += 1
        return self.denoiser(x, t, y)
        ### END SOLUTION


def nfe_of(solver, n_steps):
    ### BEGIN SOLUTION
    if solver == "euler":
        return n_steps + 1
    if solver == "heun":
        return 2 * n_steps + 1
    raise ValueError(f"unknown solver {solver!r}")
    ### END SOLUTION


def steps_for_nfe(solver, nfe):
    ### BEGIN SOLUTION
    if solver == "euler":
        return nfe - 1
    if solver == "heun":
        return (nfe - 1) // 2
    raise ValueError(f"unknown solver {solver!r}")
    ### END SOLUTION


# %%
check("E7", CountingDenoiser, nfe_of, steps_for_nfe)
### BEGIN HIDDEN TESTS
check("E7", CountingDenoiser, nfe_of, steps_for_nfe, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Try it
#
# Not graded: count what the kit's samplers spend at the paper's nfe = 15 on the exact toy problem.

# %%
import ctlib
from ctlib.toy import GaussianMixtureToy

toy = GaussianMixtureToy.demo()
for solver in ("euler", "heun"):
    try:
        counter = CountingDenoiser(toy.denoiser)
        ctlib.sample(counter, toy.y_batch(4), schedule=ResShiftSchedule(), solver=solver, nfe=15,
                     generator=torch.Generator().manual_seed(0))
        print(solver, "evaluations:", counter.calls, " steps to 1/T:", steps_for_nfe(solver, 15))
    except NotImplementedError:
        print("fill in E7 first")
