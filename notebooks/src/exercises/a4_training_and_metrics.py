# %% [markdown]
# # Assignment 4 · The fine-tuning loss, PSNR-Y, and reading the report's table
#
# **Covers** lessons 05 and 06. **Prerequisites:** assignments 1-3, torch autograd and optimisers,
# images as arrays. **Time:** about 75 minutes. **Points:** 40 (30 auto-graded in three exercises,
# 10 for a written answer graded by hand).
#
# Fill in every `# YOUR CODE HERE` (delete the `raise NotImplementedError()` line) and run the check
# below it. References: the same random draws replayed, a Kolmogorov-Smirnov test, a tiny training
# run, scikit-image's colour conversion, the kit's golden-tested metrics, and piq.

# %%
import math

import numpy as np
import torch

from ctlib.exercises import check

torch.set_num_threads(1)

# %% [markdown]
# ## E11 · The continuous-time fine-tuning loss (15 points, ~30 min)
#
# The report fine-tunes an $x_0$-predicting network on continuous times: $t \sim U(1/T, 1)$,
# $x_t$ from the forward marginal at $\eta(t)$, the network sees a rescaled $x_t$ (the official
# latent-space input scaling), the time $t$ and $y$, and the loss is the plain mean squared error
# $\lVert f_\theta - x_0 \rVert^2$.
#
# **Tasks.**
# * `sample_train_t(n, T, generator)`: `n` times uniform on $[1/T, 1]$ from exactly one draw
#   `torch.rand(n, generator=generator, dtype=torch.float64)`.
# * `network_input(x_t, eta, kappa)`: $x_t$ divided by the standard deviation it has when $x_0$
#   has unit variance and $y = x_0$ (`eta` is a tensor of shape (B,), `x_t` has shape (B, ...)).
# * `score_loss_weight(eta, kappa)`: the weight $w$ with $\lVert \hat x_0 - x_0\rVert^2 =
#   w\,\lVert \hat s - s\rVert^2$, where $s, \hat s$ are the scores of E2 built from $x_0$ and $\hat x_0$
#   (what the plain $x_0$ loss weighs a score-matching loss by).
# * `finetune_loss(net, x0, y, schedule, generator)`: draw `t = sample_train_t(B, schedule.T, generator)`,
#   then `noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)`, build $x_t$, call
#   `net(network_input(x_t, eta, kappa), t, y)` and return the mean squared error over everything (a 0-d tensor).
#
# *Hint.* Keep the order of the random draws exactly as stated: the check replays them.

# %%
def sample_train_t(n, T, generator):
    ### BEGIN SOLUTION
    return 1.0 / T + (1.0 - 1.0 / T) * torch.rand(n, generator=generator, dtype=torch.float64)
    ### END SOLUTION


def network_input(x_t, eta, kappa):
    ### BEGIN SOLUTION
    eta = eta.reshape([-1] + [1] * (x_t.ndim - 1)).to(x_t.dtype)
    return x_t / (kappa**2 * eta + 1).sqrt()
    ### END SOLUTION


def score_loss_weight(eta, kappa):
    ### BEGIN SOLUTION
    return (kappa**2 * eta / (1 - eta)) ** 2
    ### END SOLUTION


def finetune_loss(net, x0, y, schedule, generator):
    ### BEGIN SOLUTION
    t = sample_train_t(x0.shape[0], schedule.T, generator)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    eta = torch.as_tensor(schedule.eta(t.numpy()), dtype=x0.dtype)
    eta_b = eta.reshape([-1] + [1] * (x0.ndim - 1))
    x_t = x0 + eta_b * (y - x0) + schedule.kappa * eta_b.sqrt() * noise
    x0_hat = net(network_input(x_t, eta, schedule.kappa), t, y)
    return ((x0_hat - x0) ** 2).mean()
    ### END SOLUTION


# %%
check("E11", sample_train_t, network_input, score_loss_weight, finetune_loss)
### BEGIN HIDDEN TESTS
check("E11", sample_train_t, network_input, score_loss_weight, finetune_loss, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## E12 · PSNR on the Y channel, the official way (10 points, ~20 min)
#
# Super-resolution papers (ResShift included) score PSNR on the luma channel of MATLAB's
# `rgb2ycbcr` (ITU-R BT.601): $Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255$ on values in
# $[0, 255]$, rounded to integers for 8-bit images, after cropping `border` pixels from every edge;
# $\mathrm{PSNR} = 20\log_{10}(255/\mathrm{RMSE})$.
#
# **Task.** `psnr_y(sr, hr, border)` for two uint8 arrays of shape (H, W, 3); returns a float in dB.
#
# *Hint.* uint8 arithmetic wraps around.

# %%
def psnr_y(sr, hr, border):
    ### BEGIN SOLUTION
    w = np.array([65.481, 128.553, 24.966])
    ys = np.round(sr.astype(np.float64) @ w / 255.0 + 16.0)
    yh = np.round(hr.astype(np.float64) @ w / 255.0 + 16.0)
    if border:
        ys, yh = ys[border:-border, border:-border], yh[border:-border, border:-border]
    return 20.0 * math.log10(255.0 / math.sqrt(np.mean((ys - yh) ** 2)))
    ### END SOLUTION


# %%
check("E12", psnr_y)
### BEGIN HIDDEN TESTS
check("E12", psnr_y, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## E13 · Reading the report's "SSIM" column (5 points, ~10 min)
#
# Table 1 of the report (nfe = 15) prints an "SSIM" column computed with `piq.SSIMLoss`:
# Baseline 0.428, Euler $\rho$ 1: 0.457, Euler $\rho$ 8: 0.449, Euler $\rho$ −8: 0.453, Heun $\rho$ −8: 0.459.
#
# **Tasks.** `ssim_from_report(value)` turns a number of that column into the SSIM it stands for.
# `row_with_highest_ssim(table)` takes such a column as a dict `{row name: value}` and returns the
# name of the row with the highest SSIM.
#
# *Hint.* Read piq's documentation of `SSIMLoss` (erratum 3).

# %%
def ssim_from_report(value):
    ### BEGIN SOLUTION
    return 1.0 - value
    ### END SOLUTION


def row_with_highest_ssim(table):
    ### BEGIN SOLUTION
    return max(table, key=lambda name: ssim_from_report(table[name]))
    ### END SOLUTION


# %%
check("E13", ssim_from_report, row_with_highest_ssim)
### BEGIN HIDDEN TESTS
check("E13", ssim_from_report, row_with_highest_ssim, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## W1 · Written: why PSNR rises as nfe falls (10 points, ~15 min, graded by hand)
#
# In lesson 06 (and in the report) a sampler with fewer function evaluations often scores a
# *higher* PSNR than one with more. Explain in 5-10 sentences why, using what the mean squared
# error rewards, what a sample from $p(x_0 \mid y)$ is, and what a few-step sampler returns. Say
# what this means for ranking samplers by PSNR.

# %% [markdown]
# **Answer (W1).**
#
# ### BEGIN SOLUTION
# PSNR is a monotone function of the mean squared error, and the estimate that minimises the
# expected squared error given $y$ is the posterior mean $E[x_0 \mid y]$: a smooth, blurry average
# of all plausible images. A sampler run with many steps draws an actual sample from
# $p(x_0 \mid y)$: it adds sharp, plausible detail, but that detail is not the true one, so its
# expected squared error is the posterior variance twice over (once from the truth's spread, once
# from the sample's), about double the mean's. With few steps the sampler ends close to its current
# guess $\hat x_0$ (the last step lands on the network's estimate of the mean) and has had little
# opportunity to add detail, so its output stays near the mean and its MSE is lower: PSNR rises as
# nfe falls. Hence PSNR alone cannot rank samplers: it prefers blur; use a perceptual measure
# (LPIPS) or look at the images as well.
# ### END SOLUTION
