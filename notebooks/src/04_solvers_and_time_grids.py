# %% [markdown]
# # 04 · Solvers and time grids
#
# **Claim.** Once the network predicts $\hat x_0 = \mathbb E[x_0 \mid x_t, y]$, sampling ResShift is
# solving the probability-flow ODE
# $\frac{dx}{d\eta} = (y - \hat x_0) + \frac{x - (1-\eta)\hat x_0 - \eta y}{2\eta}$ from
# $\eta(1)$ down to $\eta = 0$. How well a sampler does that with a fixed budget of network calls
# (nfe) depends on two choices: the **time grid** (the report's $\rho$) and the **solver**. On a
# problem whose exact solution we know, second- and third-order exponential integrators beat the
# report's Euler and Heun steps by a wide margin, and every solver converges, at its order, to an end
# point we can name.
#
# **What this notebook shows.**
# 1. The report's $\rho$ grids, including the mirrored negative-$\rho$ grids, and the $\eta$ levels
#    they visit.
# 2. The exponential integrators, derived: `exp1` (the exact step with $\hat x_0$ frozen: the
#    deterministic counterpart of ResShift, checked against the official posterior step), `exp2m` and
#    `exp3m` (second and third order, multistep, in the spirit of DPM-Solver++(2M/3M)), the step into
#    $\eta = 0$ and what each solver converges to; how nfe is counted; and the observation that the
#    ResShift ODE *is* EDM's ODE in disguise.
# 3. Trajectories of every solver on a 2-D Gaussian-mixture toy whose ODE we solve exactly.
# 4. Error against nfe on log-log axes, with fitted slopes (empirical orders); Heun's odd and even
#    budgets; the few-step goals.
# 5. What the $\rho$ values of the report's table do, at its budget nfe = 15.
#
# **Run time** (2 CPU cores): profile `cpu` (the stored outputs) 8–30 s for the cells, depending on the
# load, plus about 10 s to import torch; profile `smoke` about two thirds of that. Everything runs on
# the CPU in float64. The full sweep over all solvers, $\rho$ and nfe, which section 4 reads,
# is `benchmarks/solvers_toy.py` (about 2–3 minutes).

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ctlib.diffusion import pf_drift, pf_drift_eta, pf_exact_step, pf_final_step, posterior_mean_variance
from ctlib.grids import rho_grid
from ctlib.samplers import (
    heun_euler_step,
    sample,
    sample_euler,
    sample_exp1,
    sample_exp2m,
    sample_exp3m,
    sample_heun,
    solver_grid,
)
from ctlib.schedule import ExpAlphaSchedule, ResShiftSchedule
from ctlib.solver_accuracy import empirical_order
from ctlib.toy import GaussianMixtureToy

# %% tags=["parameters"]
profile = "cpu"  # "cpu" (the stored run) or "smoke" (fewer starts and nfe values)
seed = 0

# %%
sizes = {  # starts for the error curves / trajectories / the nfe = 15 table; nfe values; plot resolution
    "cpu": {"n_err": 32, "n_traj": 12, "n15": 64, "nfes": (5, 8, 10, 15, 20, 30, 50), "res": 200},
    "smoke": {"n_err": 8, "n_traj": 4, "n15": 16, "nfes": (5, 10, 20, 50), "res": 80},
}
if profile not in sizes:
    raise ValueError(f"profile must be one of {sorted(sizes)}, got {profile!r}")
n_err, n_traj, n15, nfes, res = (sizes[profile][k] for k in ("n_err", "n_traj", "n15", "nfes", "res"))
torch.set_num_threads(1)  # tiny tensors: one thread is fastest and keeps results bit-stable
t_start = time.perf_counter()

official = ResShiftSchedule()  # T = 15, kappa = 2, eta(1) = 0.9801, eta(1/15) = 0.0004
report = ExpAlphaSchedule.report()  # the report's alpha(t) = a (e^{lam t} - 1), a = 1.1113, lam = 1.1268
T, kappa = official.T, official.kappa
RHOS = (1.0, 4.0, 8.0, -4.0, -8.0)
print(f"profile {profile}: {n_err} starts for the error curves, {n_traj} trajectories, {n15} starts at nfe 15, "
      f"nfe {nfes}")
print(f"official: eta(1) = {official.eta(1.0):.4f}, eta(1/T) = {official.eta(1 / T):.4g}")
print(f"report  : eta(1) = {report.eta(1.0):.4f}, eta(1/T) = {report.eta(1 / T):.4g}")

# %% [markdown]
# ## 1. The time grids
#
# The report's grid with $n$ evaluation points is Karras et al.'s grid between $t = 1$ and
# $t = 1/T$, then 0:
# $$t_i = \Big(1 + \tfrac{i}{n-1}\big((1/T)^{1/\rho} - 1\big)\Big)^{\rho},\quad i = 0..n-1,
# \qquad t_n = 0 .$$
# The points are uniform in $t^{1/\rho}$: $\rho = 1$ is uniform in $t$, and a larger $\rho$ packs the
# points towards $t = 0$, where the image is decided. A negative $\rho$ is run, as the report's code
# does, as $|\rho|$ on the mirrored grid $1 - \text{reversed}([1, t_1, \dots, 1/T, 0])
# = [1, 1 - 1/T, \dots, 1 - t_1, 0]$: points packed towards $t = 1$ (the noisy LR start), a first
# step $1 \to 1 - 1/T$ and a *large* last step from $1 - t_1$ into 0.
#
# With nfe = 15, Euler uses $n = 15$ points (14 steps down to $1/T$, then the final step into 0: at
# $\rho = 1$ exactly the official times $k/15$) and Heun $n = 8$ (7 Heun steps and a final Euler step:
# erratum 7). `ctlib.samplers.solver_grid` gives the grid any solver uses for a given nfe.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for k, rho in enumerate(RHOS):
    for j, n in enumerate((15, 8)):
        g = rho_grid(n, rho, T)
        axes[0].plot(g, np.full_like(g, k + 0.25 * j), "o-" if j == 0 else "s--", ms=3.5 - j, lw=0.6,
                     color=f"C{k}", label=f"rho = {rho:g}" if j == 0 else None)
        if j == 0:
            axes[1].semilogy(np.arange(n), official.eta(g[:-1]), "o-", ms=3, color=f"C{k}", label=f"rho = {rho:g}")
axes[0].set_yticks(range(len(RHOS)), [f"{r:g}" for r in RHOS])
axes[0].set_xlabel("t  (circles: n = 15, Euler at nfe 15; squares: n = 8, Heun at nfe 15)")
axes[0].set_ylabel("rho")
axes[0].set_title("evaluation times (and the final 0)")
axes[1].set_xlabel("step i (n = 15)")
axes[1].set_ylabel("eta(t_i), official schedule")
axes[1].set_title("the eta levels the denoiser is evaluated at")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()

print(f"{'rho':>5}  {'below t=0.5':>11}  {'below t=0.2':>11}  {'median t':>8}  {'last step into 0 from':>22}")
for rho in RHOS:
    pts = rho_grid(15, rho, T)[:-1]
    print(f"{rho:5g}  {np.mean(pts < 0.5):11.3f}  {np.mean(pts < 0.2):11.3f}  {np.median(pts):8.3f}  "
          f"t = {pts[-1]:.4f} (eta = {official.eta(pts[-1]):.4g})")

# %% [markdown]
# Beyond $\rho \approx 4$ the counts barely move; what a larger $\rho$ changes is the size of the
# steps nearest to $1/T$. The mirrored grids end with a big step: the last column shows where their
# final step into 0 starts, at an $\eta$ many times the official last level $\eta_1$.
#
# **Reading a negative $\rho$.** The report prints the literal formula with the negative $\rho$
# inserted, $t_{N-1-i} = 1 - (1 + \tfrac{i}{N-1}((1/T)^{1/\rho} - 1))^\rho$; its code (and the kit) runs
# $|\rho|$ on the mirrored grid. The literal formula would start at $1 - 1/T$, not at $t = 1$: the
# cell checks both readings.

# %%
N, r = 15, -4.0
i = np.arange(N)
literal = np.sort(1 - (1 + i / (N - 1) * ((1 / T) ** (1 / r) - 1)) ** r)[::-1]
mirrored = rho_grid(N, r, T)[:-1]
print(f"literal formula, rho = {r:g}: first point {literal[0]:.4f}, last {literal[-1]:.4f}")
print(f"mirrored |rho| grid (code)  : first point {mirrored[0]:.4f}, last {mirrored[-1]:.4f}")
assert mirrored[0] == 1.0 and abs(mirrored[1] - (1 - 1 / T)) < 1e-12, "the mirrored grid starts 1 -> 1 - 1/T"
assert literal[0] < 1.0, "the literal formula never evaluates the denoiser at t = 1"

# %% [markdown]
# ## 2. The solvers, and the exponential integrators derived
#
# Euler and Heun (the report's) step $dx/dt = \alpha(t)\,dx/d\eta$ in $t$; a step into $t = 0$ is
# always a plain Euler step (the drift has $\eta$ in a denominator).
#
# **The integrating factor.** Write $s = \sqrt{\eta}$. The ODE is linear in $x$ with the linear part
# $x/(2\eta)$, so $x/s$ removes it:
# $$\frac{d}{ds}\Big(\frac{x}{s}\Big) = y - \hat x_0\,\big(1 + s^{-2}\big)
# \quad\Longrightarrow\quad
# \frac{x_b}{s_b} = \frac{x_a}{s_a} + y\,(s_b - s_a) - \int_{s_a}^{s_b} \hat x_0(s)\,(1 + s^{-2})\,ds .$$
# Everything is exact except the integral of the network's output.
#
# **`exp1`** freezes $\hat x_0 = \hat x_0(x_a, t_a)$ over the step. The integral is elementary and
# $$x_b = \hat x_0 + \eta_b\,(y - \hat x_0) + \sqrt{\eta_b/\eta_a}\,\big(x_a - \hat x_0 - \eta_a (y - \hat x_0)\big),$$
# `ctlib.diffusion.pf_exact_step`: the deterministic, DDIM-like counterpart of the ResShift posterior
# step. At $\eta_b = 0$ it returns $\hat x_0$ itself, so its final step has no singularity.
#
# **Where it sits among ResShift's steps.** Write the current noise estimate as
# $\hat\varepsilon = (x_a - \hat x_0 - \eta_a(y - \hat x_0))/(\kappa\sqrt{\eta_a})$. Every step of the family
# $$x_b = \hat x_0 + \eta_b (y - \hat x_0) + \sqrt{\kappa^2\eta_b - \sigma^2}\,\hat\varepsilon + \sigma z$$
# keeps the marginal $\mathcal N(x_0 + \eta_b(y - x_0), \kappa^2\eta_b)$ when $\hat x_0$ is exact. With
# $\sigma^2$ equal to the posterior variance $\kappa^2\eta_b(\eta_a - \eta_b)/\eta_a$, the mean is the
# official posterior mean $(\eta_b/\eta_a) x_a + ((\eta_a - \eta_b)/\eta_a)\hat x_0$; with $\sigma = 0$
# it is `pf_exact_step` (DDIM's $\eta_\text{DDIM} = 0$). The cell checks both identities.

# %%
g = torch.Generator().manual_seed(seed)
x_a, x0_hat, y = (torch.randn(5, 4, generator=g, dtype=torch.float64) for _ in range(3))
eta_a, eta_b = float(official.etas[9]), float(official.etas[8])
eps_hat = (x_a - x0_hat - eta_a * (y - x0_hat)) / (kappa * eta_a**0.5)


def family_mean(sigma2):
    return x0_hat + eta_b * (y - x0_hat) + (kappa**2 * eta_b - sigma2) ** 0.5 * eps_hat


post_mean, post_var = posterior_mean_variance(x_a, x0_hat, eta_a, eta_b, kappa)
gap_post = (family_mean(post_var) - post_mean).abs().max().item()
gap_ddim = (family_mean(0.0) - pf_exact_step(x_a, x0_hat, y, eta_a, eta_b)).abs().max().item()
print(f"sigma^2 = posterior variance: |family - official posterior mean| = {gap_post:.1e}")
print(f"sigma = 0                   : |family - pf_exact_step|            = {gap_ddim:.1e}")
assert gap_post < 1e-12 and gap_ddim < 1e-12, "the family must contain both steps"

# %% [markdown]
# **`exp2m`** keeps the last two evaluations and lets $\hat x_0$ vary linearly in $\eta$ through them,
# $\hat x_0(\eta) = \hat x_{0,a} + (\eta - \eta_a) D$ with $D = (\hat x_{0,a} - \hat x_{0,a-1})/(\eta_a - \eta_{a-1})$
# (the first step is `exp1`). The integral is still exact:
# $$x_b = \texttt{exp1}(x_a \to \eta_b) - W\,D,\qquad
# W = s_b\!\int_{s_a}^{s_b}\!(s^2 - s_a^2)(1 + s^{-2})\,ds
# = \frac{s_b (s_b^3 - s_a^3)}{3} + (1 - \eta_a)(\eta_b - s_a s_b) + \eta_a\Big(1 - \frac{s_b}{s_a}\Big).$$
# The local error is $O(h^3)$, the global error $O(h^2)$.
#
# **`exp3m`** takes $\hat x_0$ quadratic in $\eta$ through the last three evaluations. In Lagrange form
# $\hat x_0(\eta) = \sum_j \ell_j(\eta)\,\hat x_{0,j}$, and the step needs the moments
# $M_k = s_b\int_{s_a}^{s_b}(v(s) - v_a)^k(1 + s^{-2})\,ds$ ($v = \eta$, $k \le 2$):
# $x_b = \tfrac{s_b}{s_a}x_a + s_b(s_b - s_a)\,y - \sum_j w_j \hat x_{0,j}$ with
# $w_j = \sum_k [\ell_j]_k M_k$ (`ctlib.samplers.exp_multistep_weights`; with $s = s_a e^{-\tau}$ the
# moments are integrals of smooth functions over $\tau\in[0, \ln(s_a/s_b)]$, done by Gauss–Legendre to
# rounding). One node gives `exp1`, two `exp2m`. A multistep method is only as good as its start: an
# `exp1` first step has a local error $O(h^2)$, which alone would cap the method at order 2. So the
# first step of `exp3m` predicts with `exp1`, evaluates $\hat x_0$ at the prediction (it needs that
# evaluation for the next step anyway) and redoes the step with $\hat x_0$ linear between both ends:
# order 3 at no extra cost.
#
# **The step into $\eta = 0$, and what a solver converges to.** The last step always starts at the
# last grid point $t_\text{last}$ ($1/T$ for $\rho > 0$) whatever nfe is, so no solver converges to the
# exact $x(0)$ as nfe grows: each converges to *the exact flow down to $t_\text{last}$ followed by its
# final step*. Extrapolating the multistep line into $\eta = 0$ would converge to
# $\hat x_0 - \eta_a\,d\hat x_0/d\eta$, which is neither $\hat x_0$ nor the exact end point: more steps
# then buy a *larger* error. The kit's exponential integrators therefore hold $\hat x_0$ in that step
# (`final_step="hold"`, the default, as the official sampler's last step outputs $\hat x_0$) or take
# one Euler step in $\eta$, `pf_final_step` $= x_a - \eta_a\,\frac{dx}{d\eta} = \tfrac12\big(x_a + (1+\eta_a)\hat x_0 - \eta_a y\big)$.
# Why the latter is second order: along a flow that is smooth in $\eta$ write
# $x = \hat x_0 + \eta(y - \hat x_0) + \eta g + O(\eta^2)$; the ODE then forces
# $d\hat x_0/d\eta = -g/2$ at 0, so $x(0) = \hat x_0(0) = \hat x_0(\eta_a) + \eta_a g/2 + O(\eta_a^2)$,
# which is exactly that step. Holding $\hat x_0$ is off by $O(\eta_a)$. The cell measures both from the
# exact state on the toy. (For a point mass, $\hat x_0 = $ const, the flow is $\sqrt\eta$-shaped, not
# smooth: there holding is exact and the Euler step keeps half the remaining noise. Real images sit in
# between: with the shipped model holding scores higher on every metric,
# `benchmarks/results/final_step.json`, printed in notebook 06.) On the official schedule $\alpha(1/T)/T = \eta_1$, so the report's Euler step from $1/T$ into
# 0 *is* `pf_final_step`.

# %%
toy_r = GaussianMixtureToy.demo(report)
x_T = toy_r.prior_sample(16, torch.Generator().manual_seed(seed))
y16 = toy_r.y_batch(16)
t_last = np.array([1 / 15, 1 / 30, 1 / 60])
states = toy_r.exact_ode(x_T, t_eval=[*t_last, 0.0])
floor = {"hold": [], "euler_eta": []}
for t, x_last in zip(t_last, states[:-1]):
    e = float(report.eta(t))
    x0_last = toy_r.posterior_mean(x_last, e)
    floor["hold"].append(float((x0_last - states[-1]).norm() / states[-1].norm()))
    floor["euler_eta"].append(float((pf_final_step(x_last, x0_last, y16, e) - states[-1]).norm() / states[-1].norm()))
eta_last = report.eta(t_last)
for kind, errs in floor.items():
    slope = -empirical_order(eta_last, errs)  # error ~ eta^slope: minus the order in nfe's convention
    print(f"{kind:>9}: error of the final step from the exact state at eta = "
          + ", ".join(f"{e:.2g}" for e in eta_last) + ": " + ", ".join(f"{v:.2e}" for v in errs)
          + f"  (slope in eta {slope:.2f})")
    assert abs(slope - (1.0 if kind == "hold" else 2.0)) < 0.2, f"{kind}: expected order {1 if kind == 'hold' else 2}"

# %% [markdown]
# **Why $\eta$ as the interpolation variable?** DPM-Solver++ interpolates in
# $\lambda = \log(\text{signal}/\text{noise})$, here $\lambda = \log\frac{1-\eta}{\kappa\sqrt\eta}$. That
# choice fails at the very step every ResShift sampler must take, into $\eta = 0$ ($\lambda = \infty$):
# the weight of $D$ diverges like $\log$. The kit's last step does not extrapolate, so that is no obstacle
# any more, and `ctlib.samplers.exp_moments` also offers $v = \log\eta$; but on the report's grids
# (uniform in $t^{1/\rho}$) $\eta$ and $\sqrt\eta$ do better, and $\log\eta$ pays only on a grid uniform in
# $\log\eta$ (section 4). For Gaussian data $\hat x_0$ along an ODE trajectory is an analytic function of
# $\eta$: $\hat x_0 = m + (1-\eta)\sigma_0^2 z/\sqrt{(1-\eta)^2\sigma_0^2 + \kappa^2\eta}$.
# `exp2m_sqrt` interpolates in $s = \sqrt\eta$ instead (weight
# $W = s_b (s_b - s_a)^2/2 + s_b \ln(s_b/s_a) + s_a - s_b$).
#
# **Counting evaluations (erratum 7).** The report's "nfe = 15" is Euler with 14 steps to $1/T$ plus
# the final step, and Heun with 7 Heun steps (2 evaluations each) plus the final Euler step. An even
# budget cannot be all Heun steps: the kit gives Heun one more grid point and takes its shortest step
# as an Euler step (`heun_euler_step`). A denoiser that counts its calls checks the bookkeeping.

# %%
class CountingDenoiser:
    def __init__(self):
        self.times = []

    def __call__(self, x_t, t, y):
        self.times.append(round(float(t[0]), 4))
        return 0.5 * x_t + 0.5 * y


y1 = torch.zeros(1, 2, dtype=torch.float64)
for solver, nfe in (("euler", 15), ("heun", 15), ("heun", 14), ("exp3m", 15)):
    den = CountingDenoiser()
    sample(den, y1, schedule=official, solver=solver, nfe=nfe, rho=1.0, x_T=y1 + 1.0)
    steps = len(solver_grid(solver, nfe, 1.0, T)) - 1
    print(f"{solver:>6} nfe {nfe}: {len(den.times)} denoiser calls, {steps} steps; first times {den.times[:5]}")
    assert len(den.times) == nfe, f"{solver} must call the denoiser exactly nfe times"
assert len(solver_grid("heun", 15, 1.0, T)) - 1 == 8, "nfe 15 = 7 Heun steps + 1 final Euler step"

# %% [markdown]
# **ResShift's ODE is EDM's ODE.** Put $X = (x - \eta y)/(1-\eta)$ and
# $\sigma = \kappa\sqrt{\eta}/(1-\eta)$. The forward marginal becomes $X = x_0 + \sigma\varepsilon$ (a
# variance-exploding diffusion), and the PF-ODE becomes Karras et al.'s
# $dX/d\sigma = (X - \hat x_0)/\sigma$. The official levels span $\sigma \in [0.04, 99.5]$, close to EDM's
# $[0.002, 80]$. The next cell checks the identity numerically at random points.

# %%
g = torch.Generator().manual_seed(seed)
x, x0_hat, y = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3))
eta = torch.tensor([0.0004, 0.05, 0.4, 0.98], dtype=torch.float64)[:, None]
dx_deta = pf_drift_eta(x, x0_hat, y, eta[:, 0])
X = (x - eta * y) / (1 - eta)
dX_deta = (dx_deta - y) / (1 - eta) + (x - eta * y) / (1 - eta) ** 2  # chain rule
dsigma_deta = kappa * (1 + eta) / (2 * eta.sqrt() * (1 - eta) ** 2)
sigma = kappa * eta.sqrt() / (1 - eta)
gap = (dX_deta / dsigma_deta - (X - x0_hat) / sigma).abs().max().item()
print(f"max |dX/dsigma - (X - x0_hat)/sigma| over 12 random points: {gap:.1e}")

# %% [markdown]
# ## 3. Trajectories on an exactly solvable toy
#
# `GaussianMixtureToy.demo()`: $x_0$ is a mixture of three Gaussians in 2-D with a fixed $y$. The
# ideal denoiser $\mathbb E[x_0\mid x_t]$ is known in closed form, and the exact ODE solution comes from
# scipy's `solve_ivp` (DOP853, rtol $10^{-10}$) in $s = \sqrt\eta$, where the ODE is not stiff near 0.
# Each panel starts the same points from the prior $y + \kappa\sqrt{\eta(1)}\,\varepsilon$ with nfe = 6
# ($\rho = 4$, official schedule): grey the exact paths, coloured the solver's states after each step.

# %%
toy = GaussianMixtureToy.demo(official)
x_T = toy.prior_sample(n_traj, torch.Generator().manual_seed(seed))
y_traj = toy.y_batch(n_traj)
t_dense = np.concatenate([np.linspace(1, 0.05, res // 2), np.geomspace(0.05, 1e-4, res // 6)[1:], [0.0]])
exact_paths = toy.exact_ode(x_T, t_eval=t_dense).numpy()  # (len(t_dense), n, 2)

grid = np.linspace(-2.2, 2.2, res)
GX, GY = np.meshgrid(grid, grid)
dens = toy.density(np.stack([GX, GY], -1))
panels = ("euler", "heun", "exp1", "exp2m", "exp3m", "euler_maruyama")
fig, axes = plt.subplots(2, 3, figsize=(12, 7.6), sharex=True, sharey=True)
final_err = {}
for ax, solver in zip(axes.ravel(), panels):
    ax.contour(GX, GY, dens, levels=6, colors="k", linewidths=0.4, alpha=0.5)
    for b in range(n_traj):
        ax.plot(exact_paths[:, b, 0], exact_paths[:, b, 1], color="0.6", lw=0.8)
    states = [x_T]
    out = sample(toy.denoiser, y_traj, schedule=official, solver=solver, nfe=6, rho=4.0, x_T=x_T,
                 generator=torch.Generator().manual_seed(seed + 1), callback=lambda d, states=states: states.append(d["x_next"]))
    path = torch.stack(states).numpy()
    for b in range(n_traj):
        ax.plot(path[:, b, 0], path[:, b, 1], "o-", ms=2.5, lw=1.0, color="C3")
    ax.plot(exact_paths[-1, :, 0], exact_paths[-1, :, 1], "k*", ms=6)
    if solver != "euler_maruyama":  # the SDE does not aim at the ODE's end points
        final_err[solver] = float((out - torch.from_numpy(exact_paths[-1])).norm() / torch.from_numpy(exact_paths[-1]).norm())
    ax.set_title(f"{solver} (nfe 6)" + (f"  rel. error {final_err[solver]:.3f}" if solver in final_err else ""), fontsize=9)
    ax.set_xlim(-2.2, 2.2)
    ax.set_ylim(-2.2, 2.2)
fig.suptitle("grey: exact PF-ODE paths, black stars: exact end points, red: solver steps "
             "(euler_maruyama follows the reverse SDE, not the ODE)", fontsize=9)
fig.tight_layout()
plt.show()
for solver, e in final_err.items():
    print(f"{solver:>11}: relative error at t = 0 with nfe 6 = {e:.3f}  ({final_err['euler'] / e:.1f}x closer than Euler)")
assert final_err["exp3m"] < final_err["euler"] / 2, "the third-order integrator should beat Euler clearly at nfe 6"

# %% [markdown]
# With six evaluations, Euler and `exp1` stop short of the exact end points on the paths that bend
# late (their last steps are first order and the final one is large), Heun does better, and the
# multistep exponential integrators land on or next to almost every star (the printed ratios).
# Euler–Maruyama follows the reverse SDE: its paths jump with the injected
# noise and end on the right *distribution*, not on the ODE's end points (no error is printed for it;
# `benchmarks/solvers_toy.py` scores it with a Wasserstein distance to $p(x_0)$).
#
# ## 4. Error against nfe, and empirical orders
#
# **What is measured.** The step into $t = 0$ always starts at the last grid point ($1/T$ for
# $\rho > 0$) whatever nfe is, so its error does not shrink with nfe; it would hide the order. We
# therefore report two errors: at the last grid point before 0 (the grid without its final point;
# this is where the order is defined) and at $t = 0$ (what a user gets). Relative error
# $\|x - x_\text{exact}\| / \|x_\text{exact}\|$ over 32 starts (profile `cpu`); the order is minus the fitted slope over
# nfe in [10, 50] (Heun: even nfe only, its odd and even budgets are two series, see below). Two
# schedules: the official one and the report's smooth $\alpha(t) = a(e^{\lambda t} - 1)$.

# %%
RUN_TO_LAST = {"euler": sample_euler, "heun": sample_heun, "exp1": sample_exp1, "exp2m": sample_exp2m,
               "exp2m_sqrt": lambda *a, **k: sample_exp2m(*a, variable="sqrt_eta", **k), "exp3m": sample_exp3m}
curves = {}
for sched_name, sched in (("official", official), ("report", report)):
    toy_s = GaussianMixtureToy.demo(sched)
    x_T = toy_s.prior_sample(n_err, torch.Generator().manual_seed(seed))
    y_err = toy_s.y_batch(n_err)
    exact_last, exact_0 = toy_s.exact_ode(x_T, t_eval=[1 / T, 0.0])
    for solver, run in RUN_TO_LAST.items():
        last, full = [], []
        for nfe in nfes:
            ts = solver_grid(solver, nfe, 4.0, T)
            tail = {"euler_step": None if nfe % 2 else heun_euler_step(ts)} if solver == "heun" else {}
            x_last = run(toy_s.denoiser, x_T, y_err, ts[:-1], schedule=sched, **tail)
            x_full = sample(toy_s.denoiser, y_err, schedule=sched, solver=solver, nfe=nfe, rho=4.0, x_T=x_T)
            last.append(float((x_last - exact_last).norm() / exact_last.norm()))
            full.append(float((x_full - exact_0).norm() / exact_0.norm()))
        curves[sched_name, solver] = (np.array(last), np.array(full))


def fitted_order(errs, solver):
    nf = np.array(nfes)
    keep = (nf >= 10) & (nf <= 50) & ((nf % 2 == 0) if solver == "heun" else True)
    return empirical_order(nf[keep], errs[keep])


fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
print(f"{'schedule':>9} {'solver':>11}   order at 1/T   order at 0   error at 0, nfe = {nfes}")
for ax, sched_name in zip(axes, ("official", "report")):
    for k, solver in enumerate(RUN_TO_LAST):
        last, full = curves[sched_name, solver]
        o_last, o_full = fitted_order(last, solver), fitted_order(full, solver)
        ax.loglog(nfes, full, "o-", ms=3.5, color=f"C{k}", label=f"{solver}: {o_last:.2f} / {o_full:.2f}")
        ax.loglog(nfes, last, "--", lw=0.8, color=f"C{k}")
        print(f"{sched_name:>9} {solver:>11}   {o_last:12.2f}   {o_full:10.2f}   " + " ".join(f"{e:.3g}" for e in full))
    ax.set_xticks([5, 10, 20, 50], ["5", "10", "20", "50"])
    ax.set_xticks([], minor=True)
    ax.set_xlabel("nfe")
    ax.set_title(f"{sched_name} schedule, rho = 4 (solid: at t = 0, dashed: at t = 1/T)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, title="order at 1/T / at 0", title_fontsize=8)
axes[0].set_ylabel("relative error")
fig.tight_layout()
plt.show()

# %% [markdown]
# **Reading the slopes.** With the report's smooth schedule the orders at $t = 1/T$ are the textbook
# ones (Euler and `exp1` 1, Heun and the `exp2m` pair 2, `exp3m` close to 3). At $t = 0$ the final
# step, which always starts from $t = 1/T$, adds an error that no nfe removes: that is why each solver
# is said to converge to the exact flow down to $1/T$ *followed by its final step*
# (`tests/test_samplers_convergence.py` asserts those orders for every solver, both schedules and all
# five $\rho$). The official schedule ends at a smaller $\eta$, so its final step costs less; but
# $\eta(t)$ has an infinite slope just above $t = 1/T$ ($\alpha(t) \sim (t - 1/T)^{-0.7}$ for power 0.3),
# so on a grid in $t$ the last $\eta$-step before $1/T$ shrinks only like $h^{0.3}$ and the solvers in $t$
# (Euler, Heun) lose order there; at an interior end point all recover theirs.
#
# **Heun's odd and even budgets.** An odd nfe $= 2N + 1$ is the report's variant: $N$ Heun steps and
# the final Euler step. An even nfe has one grid point more and takes its shortest step as an Euler
# step. The two are different methods on different grids, so their errors lie on two curves; plotting
# them as one series gives a zig-zag (on the report's schedule the report's nfe = 15 was worse than
# nfe = 10 with the earlier even rule, which took the step into $1/T$ as the Euler step there; with
# the official schedule that step crosses $\alpha$'s singularity). The cell measures both series
# against the end point Heun converges to.

# %%
def heun_end_point_error(toy_s, nfe, rho, x_T, y_h):
    ts = solver_grid("heun", nfe, rho, T)
    x_last = toy_s.exact_ode(x_T, t_end=float(ts[-2]))
    e, a = float(toy_s.schedule.eta(ts[-2])), float(toy_s.schedule.alpha(ts[-2]))
    end = x_last - ts[-2] * pf_drift(x_last, toy_s.posterior_mean(x_last, e), y_h, e, a)  # the report's final step
    out = sample(toy_s.denoiser, y_h, schedule=toy_s.schedule, solver="heun", nfe=nfe, rho=rho, x_T=x_T)
    return float((out - end).norm() / end.norm())


heun_nfes = range(5, 18) if profile == "cpu" else range(5, 12)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
for ax, (sched_name, sched) in zip(axes, (("official", official), ("report", report))):
    toy_s = GaussianMixtureToy.demo(sched)
    x_T = toy_s.prior_sample(n_err, torch.Generator().manual_seed(seed))
    y_h = toy_s.y_batch(n_err)
    for k, rho in enumerate((1.0, 4.0)):
        errs = {n: heun_end_point_error(toy_s, n, rho, x_T, y_h) for n in heun_nfes}
        odd = [n for n in heun_nfes if n % 2]
        even = [n for n in heun_nfes if n % 2 == 0]
        ax.loglog(odd, [errs[n] for n in odd], "o-", color=f"C{k}", ms=4, label=f"rho {rho:g}, odd nfe (report)")
        ax.loglog(even, [errs[n] for n in even], "s--", color=f"C{k}", ms=4, label=f"rho {rho:g}, even nfe")
        for series in (odd, even):
            e = [errs[n] for n in series]
            assert e[-1] < e[0], f"{sched_name} rho {rho}: Heun must converge along each parity"
    ax.set_title(f"Heun on the {sched_name} schedule: error against its end point", fontsize=9)
    ax.set_xlabel("nfe")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
axes[0].set_ylabel("relative error")
fig.tight_layout()
plt.show()

# %% [markdown]
# Along each parity Heun's error falls steadily. Between the two parities it need not: the even
# budget spends its extra evaluation on a finer grid with one first-order step, the odd one on an
# all-Heun grid, and which wins depends on where the Euler step lands (on $\rho \ge 4$ grids it is the
# tiny last step into $1/T$, so the even series is *below* the odd one). Compare solvers at one
# parity, as the report's table does (nfe = 15).
#
# **The few-step goals.** Beyond the report: how close to the exact $x(0)$ can a solver get with 5, 10
# and 15 evaluations, best over solvers, final steps and the report's $\rho$ grids, relative to the
# report's Euler ($\rho = 1$) at nfe = 15? The kit's targets are 0.5x, 0.1x and 0.03x. The full sweep
# (`python benchmarks/solvers_toy.py`, 64 starts, three schedules: official, its scipy fit, the
# report's) is stored in `benchmarks/results/solvers_toy.json`; the cell plots its best curves with the
# goals and prints the goal table, and the distance a grid uniform in $\log\eta$ (not one of the
# report's) would cover.

# %%
bench = json.loads((Path("..") / "benchmarks" / "results" / "solvers_toy.json").read_text())
fig, axes = plt.subplots(1, len(bench["schedules"]), figsize=(4.2 * len(bench["schedules"]), 3.6), sharey=True)
for ax, (sched_name, res) in zip(axes, bench["schedules"].items()):
    rows = [r for r in res["rows"] if r["rel_err"] is not None] + [
        {"solver": r["variant"], "rho": r["rho"], "nfe": r["nfe"], "rel_err": r["rel_err"]} for r in res["variants"]]
    ref = res["goal"][0]["reference_err"]
    for k, solver in enumerate(sorted({r["solver"] for r in rows}, key=lambda v: (v.split("/")[0], v))):
        best = {}
        for r in rows:
            if r["solver"] == solver:
                best[r["nfe"]] = min(best.get(r["nfe"], np.inf), r["rel_err"] / ref)
        nf = sorted(best)
        ax.loglog(nf, [best[n] for n in nf], "o-" if "/" not in solver else "x:", ms=3, color=f"C{k % 10}", label=solver)
    ax.plot([g["nfe"] for g in res["goal"]], [g["goal"] for g in res["goal"]], "kv", ms=8, label="goal")
    ax.plot([p["nfe"] for p in res["log_eta_probe"]], [p["ratio"] for p in res["log_eta_probe"]], "k*", ms=8,
            label="exp3m, log-eta grid")
    ax.set_title(f"{sched_name}: best over rho, / Euler rho 1 nfe 15", fontsize=9)
    ax.set_xlabel("nfe")
    ax.grid(True, which="both", alpha=0.3)
axes[0].set_ylabel("error relative to the reference")
axes[-1].legend(fontsize=8, ncol=2)
fig.tight_layout()
plt.show()
print(f"{'schedule':>9} {'nfe':>4} {'goal':>6} {'best (solver / rho)':>26} {'ratio':>7}  log-eta grid")
for sched_name, res in bench["schedules"].items():
    probe = {p["nfe"]: p["ratio"] for p in res["log_eta_probe"]}
    for gl in res["goal"]:
        print(f"{sched_name:>9} {gl['nfe']:>4} {gl['goal']:>6} {gl['best'] + ' / ' + format(gl['rho'], 'g'):>26} "
              f"{gl['ratio']:7.3f}  {probe[gl['nfe']]:.3f}  {'met' if gl['met'] else 'missed'}")
    assert res["goal"][-1]["ratio"] < 0.15, "at nfe 15 the best solver must be several times better than Euler"

# %% [markdown]
# On the report's grids the best solvers (`exp3m` and `exp2m_sqrt`, mostly with the Euler-in-$\eta$
# final step) come within the printed ratios: the targets at nfe = 5, 10 and 15 are missed by the
# factors the table shows. What limits them is the grid, not the solver order: a grid uniform in
# $t^{1/\rho}$ with $t_\text{min} = 1/T$ crosses the narrow range of $\eta$ where the posterior sharpens
# (here $\kappa^2\eta$ comparable to the components' variances) in one or two steps at nfe = 5, and on
# the official schedule its last step before $1/T$ jumps across $\alpha$'s singularity. The same
# third-order solver with $\hat x_0$ quadratic in $\log\eta$ on a grid uniform in $\log\eta$ (last
# column) reaches the goals at nfe = 10 and 15 on the exp-alpha schedules. Such a grid is not part of
# the report's method, so the table in notebook 06 keeps the report's grids.
#
# ## 5. What the report's $\rho$ values do, at nfe = 15
#
# The report compares Euler and Heun at nfe = 15 for $\rho \in \{1, 4, 8, -4, -8\}$ on images (its
# Table 1; "SSIM" there is $1 - \text{SSIM}$, erratum 3). On the toy we can measure what the grid does
# to the *ODE error*, with the same budget and both schedules:

# %%
table = {"Euler": {1: "0.364 / 20.29", 4: "0.363 / 20.45", 8: "0.362 / 20.50", -4: "0.362 / 20.33", -8: "0.361 / 20.35"},
         "Heun": {1: "0.375 / 19.93", 4: "0.374 / 19.53", 8: "0.374 / 19.96", -4: "0.365 / 20.10", -8: "0.364 / 20.13"}}
print(f"{'solver':>11} {'rho':>4}   {'report LPIPS / PSNR':>19}   toy rel. error at t = 0, official / report schedule")
toys = {name: GaussianMixtureToy.demo(s) for name, s in (("official", official), ("report", report))}
starts = {name: t.prior_sample(n15, torch.Generator().manual_seed(seed + 2)) for name, t in toys.items()}
exacts = {name: toys[name].exact_ode(starts[name]) for name in toys}
errs15 = {}
for solver in ("euler", "heun", "exp2m", "exp2m_sqrt", "exp3m"):
    for rho in RHOS:
        errs = []
        for name, t in toys.items():
            out = sample(t.denoiser, t.y_batch(n15), schedule=t.schedule, solver=solver, nfe=15, rho=rho, x_T=starts[name])
            errs.append(float((out - exacts[name]).norm() / exacts[name].norm()))
        errs15[solver, rho] = errs
        ref = table.get(solver.capitalize(), {}).get(int(rho), "-")
        print(f"{solver:>11} {rho:4g}   {ref:>19}   {errs[0]:.4f} / {errs[1]:.4f}")

# %%
for k, name in enumerate(toys):
    euler_best = min(errs15["euler", r][k] for r in RHOS)
    ours = min((errs15[sv, r][k], sv, r) for sv in ("exp2m", "exp2m_sqrt", "exp3m") for r in RHOS)
    print(f"{name}: Euler's best grid {euler_best:.4f}; best exponential integrator {ours[1]} rho {ours[2]:g} "
          f"{ours[0]:.4f} ({euler_best / ours[0]:.1f}x closer)")
    assert ours[0] < euler_best / 3, "at nfe 15 the multistep integrators must beat Euler's best grid"
    mirrored_worse = all(errs15["euler", r][k] > errs15["euler", 1.0][k] for r in (-4.0, -8.0))
    print(f"   Euler on the mirrored grids worse than on rho 1: {mirrored_worse}")

# %% [markdown]
# The mirrored grids are among the least accurate for Euler (the line above): they spend their points
# near $t = 1$, where the paths are nearly straight, and finish with a large step from $t = 1 - t_1$.
# The report found Heun best at $\rho = -8$ on images. Both can be true: the toy scores the distance to
# the exact ODE solution with a perfect denoiser, the table scores pixel and perceptual distances to the
# ground truth with a fine-tuned network whose own errors are largest at high noise, where the
# mirrored grids put their steps. What the toy does show is the room left by the solver at the
# report's budget: the multistep exponential integrators are several times closer to the exact
# solution than Euler on its best grid (the printed ratios).
#
# The full sweep, all solvers × $\rho$ × nfe $\in \{3, \dots, 50\}$ with a distribution distance for the
# stochastic samplers, is `python benchmarks/solvers_toy.py`.

# %% tags=["nbval-ignore-output"]
print(f"notebook cells ran in {time.perf_counter() - t_start:.1f} s")
