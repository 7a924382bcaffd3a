# %% [markdown]
# # Assignment 3 · Solvers: the exact step, ResShift's step, and orders of convergence
#
# **Covers** lesson 04 (sections 2-4). **Prerequisites:** assignments 1 and 2, linear ODEs,
# Gaussian conditioning. **Time:** about 80 minutes. **Points:** 40 (30 auto-graded in three
# exercises, 10 for a written answer graded by hand).
#
# Fill in every `# YOUR CODE HERE` (delete the `raise NotImplementedError()` line) and run the check
# below it. The references here are scipy's ODE solver, Gaussian conditioning, finite differences and
# a simulation judged in standard errors.
#
# With $\hat x_0$ held fixed, dividing the probability-flow ODE by $\alpha$ gives an ODE in $\eta$:
# $$\frac{dx}{d\eta} = (y - \hat x_0) + \frac{x - (1 - \eta)\hat x_0 - \eta y}{2\eta}.$$

# %%
import math

import numpy as np
import torch

from ctlib.exercises import check

torch.set_num_threads(1)

# %% [markdown]
# ## E8 · The exact step (10 points, ~15 min)
#
# **Task.** `exact_step(x_a, x0_hat, y, eta_a, eta_b)` returns the exact solution at $\eta_b$ of the
# ODE above started from $x_a$ at $\eta_a$ (with $\hat x_0$ fixed; $0 \le \eta_b < \eta_a$). This is
# the deterministic, DDIM-like counterpart of ResShift's sampler. Keep the inputs' dtype.
#
# *Hint.* Write $x = m(\eta) + d$ with $m(\eta) = \hat x_0 + \eta (y - \hat x_0)$. What ODE does $d$ satisfy?

# %%
def exact_step(x_a, x0_hat, y, eta_a, eta_b):
    ### BEGIN SOLUTION
    e = y - x0_hat
    return x0_hat + eta_b * e + math.sqrt(eta_b / eta_a) * (x_a - x0_hat - eta_a * e)
    ### END SOLUTION


# %%
check("E8", exact_step)
### BEGIN HIDDEN TESTS
check("E8", exact_step, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## E9 · ResShift's posterior step, and how it reduces to the exact step (10 points, ~25 min)
#
# The official sampler steps from $\eta_a$ to $\eta_b$ by drawing from the posterior
# $q(x_b \mid x_a, x_0 = \hat x_0)$ of the forward chain. Consider the family
# $$x_b = \hat x_0 + \eta_b e + c\,(x_a - \hat x_0 - \eta_a e) + \sigma z,\qquad e = y - \hat x_0,\quad
# \sigma^2 = \gamma\,\kappa^2 \frac{\eta_b}{\eta_a}(\eta_a - \eta_b),$$
# with $\gamma \in [0, 1]$ and $z$ standard normal noise.
#
# **Task.** Implement `resshift_step(x_a, x0_hat, y, eta_a, eta_b, kappa, gamma, z)`, choosing $c$
# so that if $x_a$ has the marginal of $\eta_a$ then $x_b$ has the marginal of $\eta_b$ (E1), for
# every $\gamma$. The check verifies that $\gamma = 1$ is ResShift's posterior and $\gamma = 0$ is your
# exact step of E8.
#
# *Hint.* The deviation $x_a - \hat x_0 - \eta_a e$ has variance $\kappa^2\eta_a$; the variances of
# $c\,\cdot$(deviation) and $\sigma z$ add up.

# %%
def resshift_step(x_a, x0_hat, y, eta_a, eta_b, kappa, gamma, z):
    ### BEGIN SOLUTION
    e = y - x0_hat
    sigma2 = gamma * kappa**2 * eta_b / eta_a * (eta_a - eta_b)
    c = math.sqrt((eta_b - sigma2 / kappa**2) / eta_a)
    return x0_hat + eta_b * e + c * (x_a - x0_hat - eta_a * e) + math.sqrt(sigma2) * z
    ### END SOLUTION


# %%
check("E9", resshift_step)
### BEGIN HIDDEN TESTS
check("E9", resshift_step, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## E10 · An empirical order of convergence (10 points, ~25 min)
#
# **Tasks.** `euler_eta(x, x0_fn, y, etas)` integrates the ODE in $\eta$ with explicit Euler along
# the decreasing levels `etas` (a numpy array, all $> 0$), calling `x0_fn(x, eta)` for $\hat x_0$
# once per step, at the step's start; it returns the final state (same dtype as `x`).
# `empirical_order(ns, errors)` returns the order $p$ of a study where `errors[i]` $\approx C\,$`ns[i]`$^{-p}$.
#
# The check runs your Euler with 8, 16, 32, 64 steps on an exactly solvable problem (Gaussian $x_0$,
# so $\hat x_0$ is linear in $x$) against scipy's solution and feeds the errors to your `empirical_order`.
#
# *Hint.* Use every point of the study (least squares on a log-log plot), and keep the state in float64:
# float32 rounding would stop the error from falling.

# %%
def euler_eta(x, x0_fn, y, etas):
    ### BEGIN SOLUTION
    for eta_a, eta_b in zip(etas[:-1], etas[1:]):
        x0_hat = x0_fn(x, eta_a)
        x = x + (eta_b - eta_a) * ((y - x0_hat) + (x - (1 - eta_a) * x0_hat - eta_a * y) / (2 * eta_a))
    return x
    ### END SOLUTION


def empirical_order(ns, errors):
    ### BEGIN SOLUTION
    slope, _ = np.polyfit(np.log(ns), np.log(errors), 1)
    return -float(slope)
    ### END SOLUTION


# %%
check("E10", euler_eta, empirical_order)
### BEGIN HIDDEN TESTS
check("E10", euler_eta, empirical_order, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## W2 · Written: why only the $\eta$ levels a solver visits matter (10 points, ~15 min, graded by hand)
#
# Lesson 02 shows that the flow, divided by $\alpha$, has no schedule in it. Explain in 5-10
# sentences why, for the exact step of E8, two schedules that visit the same $\eta$ levels give the
# same sample, what a change of schedule or of the $\rho$ grid therefore really changes, and whether
# the same holds for Euler's steps in $t$.

# %% [markdown]
# **Answer (W2).**
#
# ### BEGIN SOLUTION
# Divided by $\alpha(t) = d\eta/dt$ the probability-flow ODE reads $dx/d\eta = (y - \hat x_0) +
# (x - (1-\eta)\hat x_0 - \eta y)/(2\eta)$: time only enters through $\eta$, so the flow is an ODE in
# $\eta$ and a schedule is just a reparametrisation of time. The exact step of E8 maps the state at
# $\eta_a$ to the state at $\eta_b$ using only $\eta_a$, $\eta_b$ and $\hat x_0$ evaluated at
# $(x, t)$ with $\eta(t) = \eta_a$; a denoiser trained on the marginals depends on $t$ only through
# $\eta$. Two schedules that visit the same levels therefore make the same calls and the same steps:
# the same sample. Changing the schedule or the $\rho$ grid only moves the levels visited (how the
# step sizes in $\eta$ are spread). Euler in $t$ is different: its step in $\eta$ is
# $h\,\alpha(t_i)$, not $\eta_{i+1} - \eta_i$, so the schedule's $\alpha$ enters as a step factor and
# two schedules with the same levels can give different samples.
# ### END SOLUTION
