# %% [markdown]
# # Assignment 1 · The forward process: marginal, score and probability-flow drift
#
# **Covers** lessons 01 and 02. **Prerequisites:** Gaussian conditioning, the chain rule, the
# score of a Gaussian. **Time:** about 40 minutes. **Points:** 15 (three auto-graded exercises).
#
# How to work: fill in every cell that says `# YOUR CODE HERE` (delete the `raise
# NotImplementedError()` line), then run the check cell below it. A check runs your function on
# random inputs and compares it with an independent reference (a simulation, autograd, scipy); it
# prints `passed` or says what is wrong and where to look. Graders run the same checks on more
# random inputs, so do not tune your code to one printout.
#
# Notation: HR image $x_0$, upsampled LR image $y$, residual $e_0 = y - x_0$, noise scale $\kappa$,
# a schedule with `schedule.eta(t)` ($\eta$, the accumulated shift) and `schedule.alpha(t)`
# ($\alpha = d\eta/dt$, its rate), for continuous time $t \in [0, 1]$.

# %%
import math

import numpy as np
import torch

from ctlib.exercises import check
from ctlib.schedule import ExpAlphaSchedule, ResShiftSchedule

torch.set_num_threads(1)
schedule = ResShiftSchedule()  # the official schedule: T = 15, kappa = 2

# %% [markdown]
# ## E1 · The marginal of the forward chain (5 points, ~15 min)
#
# ResShift's chain adds, at step $k$, a shift $\alpha_k e_0$ and independent Gaussian noise
# $\kappa\sqrt{\alpha_k}\,\varepsilon_k$:
# $x_k = x_{k-1} + \alpha_k e_0 + \kappa\sqrt{\alpha_k}\,\varepsilon_k$, starting from $x_0$.
# Its continuous-time limit is the SDE $dx = \alpha(t) e_0\,dt + \kappa\sqrt{\alpha(t)}\,dw$.
#
# **Task.** Implement `marginal(x0, y, t, schedule)` returning the pair `(mean, var)` of
# $q(x_t \mid x_0, y)$: `mean` a tensor shaped like `x0` (keep its dtype), `var` one number (the
# covariance is `var` times the identity).
#
# *Hint.* Add up the shifts and the variances of the independent increments. The report prints the
# variance with one of the two schedule functions; only one of them is right (erratum 1).

# %%
def marginal(x0, y, t, schedule):
    ### BEGIN SOLUTION
    eta = float(schedule.eta(t))
    return x0 + eta * (y - x0), schedule.kappa**2 * eta
    ### END SOLUTION


# %%
check("E1", marginal)
### BEGIN HIDDEN TESTS
check("E1", marginal, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## E2 · The score from $\hat x_0$ (5 points, ~10 min)
#
# A network predicts $\hat x_0 = E[x_0 \mid x_t, y]$. Replacing $x_0$ by $\hat x_0$ in the marginal
# of E1 gives a Gaussian in $x$ whose gradient of the log-density is the score the report's
# equation (1) needs.
#
# **Task.** Implement `score(x, x0_hat, y, t, schedule)`: $\nabla_x \log q(x_t = x \mid x_0 = \hat x_0, y)$,
# a tensor shaped like `x`.
#
# *Hint.* For $\mathcal N(m, v I)$ the score is $-(x - m)/v$. Expand $m$ so that $x_0$ and $y$
# appear separately.

# %%
def score(x, x0_hat, y, t, schedule):
    ### BEGIN SOLUTION
    eta = float(schedule.eta(t))
    return -(x - (1 - eta) * x0_hat - eta * y) / (schedule.kappa**2 * eta)
    ### END SOLUTION


# %%
check("E2", score)
### BEGIN HIDDEN TESTS
check("E2", score, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## E3 · The probability-flow drift (5 points, ~15 min)
#
# For an SDE $dx = f\,dt + g\,dw$ the probability-flow ODE $dx/dt = f - \tfrac12 g^2 \nabla\log p$
# has the same marginals. For ResShift, $f = \alpha(t)\, e_0$ and $g^2 = \kappa^2\alpha(t)$; with
# $e_0 \to y - \hat x_0$ and the score of E2 you get the ODE the continuous-time samplers solve.
#
# **Task.** Implement `pf_drift(x, x0_hat, y, t, schedule)` returning $dx/dt$ (a tensor shaped like `x`).
# The check also carries samples of the $t = 1$ marginal with your drift to an earlier time and
# compares them with that time's marginal.
#
# *Hint.* Watch the factor in front of the score term, and whether you return $dx/dt$ or $dx/d\eta$.

# %%
def pf_drift(x, x0_hat, y, t, schedule):
    ### BEGIN SOLUTION
    eta, alpha = float(schedule.eta(t)), float(schedule.alpha(t))
    return alpha * ((y - x0_hat) + (x - (1 - eta) * x0_hat - eta * y) / (2 * eta))
    ### END SOLUTION


# %%
check("E3", pf_drift)
### BEGIN HIDDEN TESTS
check("E3", pf_drift, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Try it
#
# Not graded. Compare your `marginal` with the printed erratum: how large is $\kappa^2\alpha(t)$
# against $\kappa^2\eta(t)$ at $t = 1$ for the official schedule and for the report's
# `ExpAlphaSchedule.report()`?

# %%
for sched in (schedule, ExpAlphaSchedule.report()):
    print(type(sched).__name__, "kappa^2 eta(1) =", round(sched.kappa**2 * float(sched.eta(1.0)), 4),
          " kappa^2 alpha(1) =", round(sched.kappa**2 * float(sched.alpha(1.0)), 4))
