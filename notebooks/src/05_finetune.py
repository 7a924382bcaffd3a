# %% [markdown]
# # 05 · Fine-tuning ResShift in continuous time
#
# **Claim.** A ResShift network trained on the 15 discrete noise levels becomes a model of the continuous-time
# process of notebooks 01-02 by a short fine-tune, and four things change when it does:
# 1. **the training time**: $t \sim U(1/T, 1)$ instead of $t = k/T$ with $k \sim U\{1, \dots, T\}$;
# 2. **the time input**: the network's index $Tt - 1$ becomes a real number, not only $0, \dots, 14$;
# 3. **the loss** stays ResShift's plain $\lVert f_\theta(x_t, y, t) - x_0\rVert^2$; what it weights, seen as a
#    score-matching loss, is derived below;
# 4. **the schedule** $\eta(t)$ the model trains on: the discrete model knows 15 values of $\eta$; a continuous
#    model learns whatever $\eta(t)$ it is fine-tuned on, and that choice decides how large an ODE solver's steps are.
#
# **What this notebook shows.** §1 the four changes, each with a numerical check. §2 a short real fine-tune of the
# shipped discrete model, run here, and its measured effect on Euler's 15-step samples. §3 the two shipped runs, their
# loss curves and quality, read from their files in `data/checkpoints/`, and why a 15-step sample scores below the
# one-step prediction. §4 how to fine-tune the large models on a GPU (`gpu` and `paper` profiles). How the shipped
# recipe was chosen (crop size, $\kappa$, degradation, schedule) is written up in `docs/finetune_findings.md`.
#
# **Run time** (2 CPU cores; the last cell prints the measurement): profile `cpu` (the stored outputs) about 30 s on
# idle cores and up to 3 min on a busy machine, most of it the fine-tune of §2 and its before/after samples; profile
# `smoke` about 10 s on idle cores (a tiny fine-tune; up to 90 s on a busy machine).
# With profile `gpu` or `paper` §4 also runs a GPU fine-tune (minutes to days, see §4).

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from ctlib.data import bicubic_lr, load_bundled_test_set
from ctlib.diffusion import q_sample, score_from_x0
from ctlib.metrics import psnr
from ctlib.nn import ResShiftDenoiser
from ctlib.nn.denoiser import time_to_index
from ctlib.pipeline import batch_noise, load_model, super_resolve, upsample
from ctlib.profiles import FINETUNE_DEMO, TRAIN_PROFILES, check_profile
from ctlib.samplers import sample
from ctlib.schedule import ResShiftSchedule
from ctlib.solver_accuracy import sample_spread
from ctlib.toy import GaussianMixtureToy
from ctlib.train import (
    build_network,
    make_schedule,
    read_log,
    run_training,
    sample_t,
    training_loss,
)

t_start = time.perf_counter()

# %% tags=["parameters"]
profile = "cpu"
results_dir = "../results/notebooks"
baseline_checkpoint = "../data/checkpoints/baseline_discrete.pt"
continuous_checkpoint = "../data/checkpoints/continuous_finetune.pt"
official_unet = "../data/checkpoints/resshift_realsrx4_s15_v1.pth"  # the paper profile's inputs
official_vq = "../data/checkpoints/autoencoder_vq_f4.pth"
imagenet_train = "/path/to/imagenet/train"
seed = 0

# %%
check_profile(profile)
torch.set_num_threads(2)
# the fine-tune of section 2: the cpu profile's continuous recipe (whole 256 x 256 photos, batch 2, fitted schedule),
# cut short; smoke only checks the wiring on small crops
demo = FINETUNE_DEMO[profile]
out_dir = Path(results_dir) / "05_finetune_demo"  # this notebook's scratch run, replaced on every execution
ckpt_dir = Path(baseline_checkpoint).parent
T = 15
print(f"profile {profile}: a {demo['iterations']}-iteration fine-tune on {demo['crop_size']}x{demo['crop_size']} "
      f"crops, scored on {demo['photos']} test photo(s) of {demo['side']}x{demo['side']}")

# %% [markdown]
# ## 1. What changes between discrete and continuous training
#
# ### 1a. The training time
#
# ResShift trains on the chain's 15 states: each training pair gets a step $k \sim U\{1..T\}$, i.e. the time
# $t = k/T$. The report's fine-tune draws $t \sim U(1/T, 1)$, so that the network sees every noise level an ODE
# solver may visit between the official ones (`ctlib.train.sample_t`; $t < 1/T$ is never drawn: below the first
# official level there is nothing left to denoise that the last step does not do). Check: discrete times lie on the
# grid $k/T$ with equal frequencies, continuous times fill $[1/T, 1]$ with the uniform mean $(1 + 1/T)/2$ and
# variance $(1 - 1/T)^2/12$.

# %%
n_draw = 20_000
t_disc = sample_t("discrete", T, n_draw, torch.Generator().manual_seed(seed)).numpy()
t_cont = sample_t("continuous", T, n_draw, torch.Generator().manual_seed(seed)).numpy()
on_grid = lambda t: np.abs(t * T - np.round(t * T)) < 1e-9  # noqa: E731
counts = np.bincount(np.round(t_disc * T).astype(int), minlength=T + 1)[1:]
z_counts = (counts - n_draw / T) / np.sqrt(n_draw * (1 / T) * (1 - 1 / T))
mean_u, var_u = (1 + 1 / T) / 2, (1 - 1 / T) ** 2 / 12
z_mean = (t_cont.mean() - mean_u) / np.sqrt(var_u / n_draw)
print(f"discrete: {on_grid(t_disc).mean():.0%} of the draws on the grid k/T; counts per k within "
      f"{np.abs(z_counts).max():.1f} standard errors of {n_draw // T}")
print(f"continuous: {on_grid(t_cont).mean():.0%} on the grid; range [{t_cont.min():.4f}, {t_cont.max():.4f}]; "
      f"mean {t_cont.mean():.4f} (uniform: {mean_u:.4f}, z = {z_mean:.2f})")
assert on_grid(t_disc).all() and np.abs(z_counts).max() < 4, "discrete times should be k/T, k uniform on 1..T"
assert not on_grid(t_cont).any() and t_cont.min() >= 1 / T and t_cont.max() <= 1, "continuous times fill [1/T, 1]"
assert abs(z_mean) < 4, "continuous times should be uniform on [1/T, 1]"

fig, ax = plt.subplots(figsize=(7, 3))
ax.hist(t_cont, bins=np.linspace(0, 1, 121), density=True, color="C1", alpha=0.6, label="continuous: U(1/T, 1)")
ax.vlines(np.arange(1, T + 1) / T, 0, counts / n_draw * T, color="C0", lw=2, label="discrete: k/T (frequency x T)")
ax.set(xlabel="training time $t$", ylabel="density", title="what times the network is trained at")
ax.legend(fontsize=9, loc="upper left")
plt.show()

# %% [markdown]
# ### 1b. The time input
#
# The network is the official one: it receives a time *index* and embeds it with sinusoids, as every diffusion
# U-Net does. The kit feeds it $Tt - 1$ in training and in sampling alike (`ctlib.nn.denoiser.time_to_index`, the one
# mapping both use; the report's fine-tuning code reverses it, erratum 5). At the official times this is the
# official integer index $k - 1$; in between it is a real number the discrete model was never trained on. The
# sinusoidal embedding makes such an index meaningful (it is smooth in the index), but only training makes the
# network *use* it correctly.

# %%
t_check = torch.tensor([1 / T, 2 / T, 2.5 / T, 0.5, 1.0], dtype=torch.float64)
index = time_to_index(t_check, T)
print("t      :", np.round(t_check.numpy(), 4).tolist())
print("index  :", np.round(index.numpy(), 4).tolist())
assert index[0] == 0 and index[1] == 1 and index[-1] == T - 1, "t = k/T must give the official index k - 1"
assert abs(index[2] - 1.5) < 1e-12, "between the levels the index is a real number"

# %% [markdown]
# ### 1c. The loss and its weight
#
# The fine-tune keeps ResShift's loss, $\lVert f_\theta(x_t, y, t) - x_0\rVert^2$ with
# $x_t = x_0 + \eta(t)(y - x_0) + \kappa\sqrt{\eta(t)}\,\varepsilon$, and no weight over $t$ (`ctlib.train.training_loss`).
# Read as score matching (notebook 02: $s = -(x - (1-\eta)\hat x_0 - \eta y)/(\kappa^2\eta)$, and the same for the
# target $x_0$), the difference of two scores at the same $x$ is
# $$s_\theta - \nabla\log q_t(x_t\mid x_0, y) = \frac{1-\eta}{\kappa^2\eta}\,\big(f_\theta - x_0\big),
# \qquad\text{so}\qquad \lVert f_\theta - x_0\rVert^2 = w(t)\,\lVert s_\theta - \nabla\log q_t\rVert^2,\quad
# w(t) = \Big(\frac{\kappa^2\eta(t)}{1-\eta(t)}\Big)^2 .$$
# The $x_0$ loss is a score loss weighted by $w(t)$, tiny at small $\eta$ (where the score is huge) and large near
# $t = 1$: the $x_0$ target keeps every time's loss of order one, which is why ResShift (and the report) train it
# rather than the score. A continuous $t$ changes none of this; only the set of times it is averaged over.
#
# Check, on random tensors: `training_loss` is the plain per-sample MSE of the prediction at the noised state, and
# the identity above holds to rounding error.

# %%
g = torch.Generator().manual_seed(seed)
x0 = torch.rand(3, 3, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
y = torch.rand(3, 3, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
noise = torch.randn(3, 3, 16, 16, generator=g, dtype=torch.float64)
t_b = torch.tensor([0.1, 0.5, 0.95], dtype=torch.float64)
fit_schedule = make_schedule("fit")
guess = torch.rand(3, 3, 16, 16, generator=g, dtype=torch.float64) * 2 - 1  # any prediction f_theta


def predict(x_t, t):
    return guess


loss = training_loss(predict, x0, y, t_b, fit_schedule, noise).double()  # the trainer's loss (float32)
mse = ((guess - x0) ** 2).flatten(1).mean(1)  # float64
eta_b = fit_schedule.eta(t_b)
x_t = q_sample(x0, y, eta_b, fit_schedule.kappa, noise=noise)
s_model = score_from_x0(x_t, guess, y, eta_b, fit_schedule.kappa)
s_target = score_from_x0(x_t, x0, y, eta_b, fit_schedule.kappa)
weight = (fit_schedule.kappa**2 * eta_b / (1 - eta_b)) ** 2
score_loss = ((s_model - s_target) ** 2).flatten(1).mean(1)
print("t       :", t_b.tolist())
print("w(t)    :", [f"{w:.3g}" for w in weight.tolist()])
print("training_loss :", [f"{v:.5f}" for v in loss.tolist()])
print("MSE on x0     :", [f"{v:.5f}" for v in mse.tolist()])
print("w * score loss:", [f"{v:.5f}" for v in (weight * score_loss).tolist()])
assert torch.allclose(loss, mse, rtol=1e-6), "training_loss is the plain MSE on x0 (in float32)"
assert torch.allclose(mse, weight * score_loss, rtol=1e-10), "x0 loss = w(t) * score loss"

# %% [markdown]
# ### 1d. The schedule the model trains on
#
# $dx/d\eta$ contains no schedule (notebook 02): the schedule only decides which $\eta$ a solver on a uniform $t$
# grid visits, and so how large its steps are in $\eta$. A discrete model is tied to the official 15 levels and the
# kit samples it on their exact continuous extension (notebook 03). A fine-tuned model can be given any $\eta(t)$, and
# the kit's `cpu` and `gpu` fine-tunes use the least-squares fit of notebook 03, $\eta(t) = a((e^{\lambda t} - 1)/\lambda - t)$
# (`make_schedule("fit")`; the `paper` profile uses the report code's preset, as the report did). Why, in one
# calculation: take a perfect model of a point-mass posterior ($\hat x_0 = y = c$). The exact flow shrinks the start's
# noise $n = x_T - c$ by $\sqrt{\eta_b/\eta_a}$ from $\eta_a$ to $\eta_b$; an Euler step in $t$ multiplies it by
# $1 - h\,\alpha(t_a)/(2\eta(t_a))$ instead. On the official schedule $\eta$ jumps by a factor of 34 between $t = 1/T$ and
# $2/T$ (its $u^{0.3}$ rise): there Euler keeps far more noise than the exact flow, and its last step, into
# $\eta = 0$, keeps half of what is left. The fit grows like $t^2$ near 0, where Euler's factor is nearly exact. At the
# network's 15 time indices the fit's noise levels stay close to the official ones (notebook 03), so a fine-tune from
# the discrete model starts where that model left off.

# %%
ts_15 = np.arange(T, 0, -1) / T  # Euler's evaluation times at nfe 15, rho 1; the last step goes to 0
noise_left = {}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for name, color in (("resshift", "C0"), ("fit", "C1")):
    sch = make_schedule(name)
    eta_i, alpha_i = sch.eta(ts_15), sch.alpha(ts_15)
    euler_factor = 1 - alpha_i / (T * 2 * eta_i)
    exact_factor = np.sqrt(np.append(eta_i[1:], 0.0) / eta_i)
    label = {"resshift": "official schedule", "fit": "fitted schedule"}[name]
    axes[0].plot(ts_15, euler_factor, "o-", color=color, label=f"Euler, {label}")
    axes[0].plot(ts_15, exact_factor, "x:", color=color, ms=8, label=f"exact, {label}")
    left_euler, left_exact = np.abs(np.cumprod(euler_factor)), np.cumprod(exact_factor)
    axes[1].semilogy(ts_15[1:], left_euler[:-1], "o-", color=color, label=f"Euler, {label}")
    axes[1].semilogy(ts_15[1:], left_exact[:-1], "x:", color=color, ms=8, label=f"exact, {label}")
    noise_left[name] = abs(np.prod(euler_factor))
    print(f"{label:17s} eta(1/15) = {eta_i[-1]:.4f}, eta(2/15) = {eta_i[-2]:.4f}; Euler keeps {euler_factor[-2]:.3f} "
          f"of the noise on the step 2/15 -> 1/15 (exact {exact_factor[-2]:.3f}) and {euler_factor[-1]:+.3f} on the "
          f"last; noise left at t = 0: {noise_left[name]:.2%} of the start's")
axes[0].set(xlabel="t at the step's start", ylabel="factor on the noise", title="one Euler step, nfe 15, rho 1")
axes[1].set(xlabel="t after the step", ylabel="noise left / start's noise", title="noise left")
for ax in axes:
    ax.invert_xaxis()
    ax.legend(fontsize=8)
plt.show()
assert noise_left["resshift"] > 0.01 > 0.002 > noise_left["fit"], \
    "Euler should leave over 1 % of the start's noise on the official schedule and under 0.2 % on the fit"

# %% [markdown]
# At $\kappa = 2$ the start's noise has a standard deviation of about 2 in $[-1, 1]$ pixel units, so what Euler leaves
# on the official schedule is a visible grain in every sample, whatever the network does; on the fitted schedule it is
# gone. The next section measures this, and what a few iterations of training add to it.
#
# ## 2. A short real fine-tune, measured
#
# Starting from the shipped discrete baseline, the `cpu` profile's continuous recipe (whole 256 x 256 photos, batch 2,
# AdamW, EMA, the fitted schedule, $t \sim U(1/T, 1)$) runs for a few iterations here (the shipped fine-tune ran 1000).
# Three models are then sampled from the same seeded $x_T$ on the same test photos with Euler, nfe = 15, $\rho = 1$:
# * the discrete baseline on its own official schedule (what the report's solvers get without a fine-tune);
# * the same network, untouched, on the fitted schedule (the schedule alone: the network is called at the same 15
#   indices, with slightly different noise levels, and badly so at the first);
# * the fine-tune (the schedule plus training on it).
#
# The crops after the measurement show the centre of the first test photo, each sampler started from the same $x_T$.

# %% tags=["nbval-ignore-output"]
start = time.perf_counter()
summary = run_training("cpu", "continuous", out_dir, init=baseline_checkpoint, overwrite=True, progress=False,
                       seed=seed, val_every=0, ckpt_every=demo["iterations"], iterations=demo["iterations"],
                       crop_size=demo["crop_size"], warmup=demo["iterations"] // 4, ema_decay=0.5)
print(f"{summary['steps']} iterations in {time.perf_counter() - start:.0f} s")

# %% tags=["nbval-ignore-output"]
test = load_bundled_test_set(limit=demo["photos"])
c0 = (test.hr.shape[-1] - demo["side"]) // 2
hr = test.hr[..., c0: c0 + demo["side"], c0: c0 + demo["side"]]
lr = bicubic_lr(hr)  # MATLAB bicubic x1/4, 8-bit: the report's test LR
baseline = load_model(baseline_checkpoint)
models = {
    "baseline, official schedule": baseline,
    "baseline, fitted schedule": ResShiftDenoiser(baseline.network, make_schedule("fit"), **baseline.settings()).eval(),
    "fine-tune, fitted schedule": load_model(out_dir / "model.pt"),
}


def euler_and_x0_hat(den):
    """Euler (nfe 15, rho 1) and the one-step x0_hat(x_T, 1) from the same seeded x_T; images in [0, 1]."""
    return [super_resolve(den, lr, solver=solver, nfe=nfe, noise=batch_noise(torch.Generator().manual_seed(seed)))
            for solver, nfe in (("euler", 15), ("x0_hat", 1))]


bicubic_up = upsample(baseline, lr)
scores = {"bicubic": (float(np.mean(psnr(bicubic_up, hr, y_channel=True))), None)}
images = {}
for name, den in models.items():
    euler_img, x0_img = euler_and_x0_hat(den)
    images[name] = euler_img
    scores[name] = (float(np.mean(psnr(euler_img, hr, y_channel=True))), float(np.mean(psnr(x0_img, hr, y_channel=True))))
print(f"{'':28s} {'Euler nfe 15':>13s} {'x0_hat(x_T, 1)':>15s}   PSNR-Y (dB), {len(hr)} photo(s)")
for name, (p_euler, p_x0) in scores.items():
    print(f"{name:28s} {p_euler:13.2f} {'' if p_x0 is None else f'{p_x0:15.2f}'}")

# %% tags=["nbval-ignore-output"]
gain_schedule = scores["baseline, fitted schedule"][0] - scores["baseline, official schedule"][0]
gain_training = scores["fine-tune, fitted schedule"][0] - scores["baseline, fitted schedule"][0]
change_x0 = scores["fine-tune, fitted schedule"][1] - scores["baseline, official schedule"][1]
display(Markdown(
    f"**Measured.** Euler's 15-step samples gain {gain_schedule:+.2f} dB PSNR-Y from the fitted schedule alone and "
    f"{gain_training:+.2f} dB more from {demo['iterations']} iterations of training on it, while the one-step "
    f"prediction moves by only {change_x0:+.2f} dB: the fine-tune does not make the network a better one-step "
    f"denoiser, it changes what the network does along the sampler's path. The crops below show how: the "
    f"baseline's samples carry grain and invented texture, on either schedule; after a few iterations on the fitted "
    f"schedule the samples are smooth, close to the one-step prediction, which PSNR rewards. That is not where "
    f"training ends: over the shipped run's 1000 iterations the network learns to invent texture again, and its "
    f"samples scatter more and score lower than these (§3, §3b), which is what a sampler of the posterior should do."))
if profile != "smoke":
    assert gain_schedule > 0, f"the fitted schedule alone should lift Euler (measured {gain_schedule:+.2f} dB)"
    assert gain_training > 0.5, f"training on the fitted schedule should lift Euler further ({gain_training:+.2f} dB)"
    assert abs(change_x0) < 0.5, f"the one-step prediction should barely move ({change_x0:+.2f} dB)"

# %% tags=["nbval-ignore-output"]
zoom = slice(demo["side"] // 2 - demo["side"] // 8, demo["side"] // 2 + demo["side"] // 8)
panels = [("original", hr), ("bicubic", bicubic_up)] + list(images.items())
fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
for ax, (title, img) in zip(axes, panels):
    ax.imshow(img[0, :, zoom, zoom].permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_title(title.replace(", ", ",\n"), fontsize=9)
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. The shipped runs
#
# `data/checkpoints/` holds the discrete baseline and its continuous fine-tune, each with its training log and its
# quality on the bundled test set, made by
#
# ```
# python -m ctlib train --profile cpu --mode discrete --out runs/baseline --iterations 3600 --seed 1
# python -m ctlib train --profile cpu --mode continuous --init runs/baseline/model.pt --out runs/continuous --seed 2 \
#     --val-every 200 --ckpt-every 100
# python scripts/ship_checkpoint.py runs/baseline baseline_discrete
# python scripts/ship_checkpoint.py runs/continuous continuous_finetune
# ```
#
# `OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m ctlib train ...` runs the same recipe as two
# one-thread processes (as fast on idle cores, and less sensitive to a busy machine). The recipes of every profile,
# and the arguments each shipped run stored in its checkpoint:

# %%
for name, settings in TRAIN_PROFILES.items():
    keys = ("net", "crop_size", "iterations", "batch_size", "micro_batch", "lr", "warmup", "ema_decay", "degradation",
            "kappa")
    print(f"{name:6s}", ", ".join(f"{k}={settings.get(k, 'official')}" for k in keys))
    for mode, changes in settings.get("by_mode", {}).items():
        print(f"{'':6s} --mode {mode}: " + ", ".join(f"{k}={v}" for k, v in changes.items()))
print()
shipped = {}
for name in ("baseline_discrete", "continuous_finetune"):
    meta = torch.load(ckpt_dir / f"{name}.pt", map_location="cpu", weights_only=True)["meta"]
    log = read_log(ckpt_dir / f"{name}.log.csv")
    quality = json.loads((ckpt_dir / f"{name}.quality.json").read_text())
    shipped[name] = (meta, log, quality)
    t = meta["train"]
    print(f"{name}: mode {t['mode']}, {meta['steps']} iterations, batch {t['batch_size']}, lr {t['lr']}, "
          f"warm-up {t['warmup']}, EMA {t['ema_decay']}, crops {t['extra']['crop_size']}, LR by {t['extra']['degradation']}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
offset = 0
for name, (_meta, log, _quality) in shipped.items():
    steps, loss_values = log["step"] + offset, log["loss"]
    k = max(1, len(loss_values) // 10)  # a tenth of each run: batch-2 losses are noisy
    smooth = np.convolve(loss_values, np.ones(k) / k, mode="valid")
    axes[0].plot(steps[k - 1:], smooth, label=f"{name} (moving mean of {k})")
    val_steps = [s + offset for s, v in zip(log["step"], log["val"]) if v]
    val_psnr = [v["psnr_y_x0_hat_t1"] for v in log["val"] if v]
    axes[1].plot(val_steps, val_psnr, "o-", label=name)
    offset += int(log["step"][-1])
val_bicubic = [v["psnr_y_bicubic"] for _m, log, _q in shipped.values() for v in log["val"] if v]
if val_bicubic:
    axes[1].axhline(val_bicubic[0], color="gray", ls="--", label="bicubic (same 4 photos)")
axes[0].set(xlabel="iteration (the fine-tune continues the baseline's count)", ylabel="training MSE", yscale="log",
            title="loss")
axes[1].set(xlabel="iteration", ylabel="PSNR-Y (dB)", title="one-step x0_hat(t = 1), 4 test photos, EMA weights")
for ax in axes:
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Quality on the whole bundled test set (256 x 256 photos, bicubic x4 LR; PSNR-Y / SSIM-Y with the official
# conventions), measured by `scripts/ship_checkpoint.py` and stored beside each checkpoint:

# %%
rows = ("bicubic", "x0_hat_t1", "resshift_T15", "euler_nfe15_rho1")
labels = {"bicubic": "bicubic", "x0_hat_t1": "one step, $\\hat x_0(x_T, 1)$", "resshift_T15": "official sampler, 15 steps",
          "euler_nfe15_rho1": "Euler, nfe 15, $\\rho = 1$"}
q_base, q_cont = shipped["baseline_discrete"][2], shipped["continuous_finetune"][2]
table = ["| | discrete baseline | continuous fine-tune |", "| --- | --- | --- |"]
for row in rows:
    cells = [f"{q[row]['psnr_y']:.2f} dB / {q[row]['ssim_y']:.3f}" for q in (q_base, q_cont)]
    table.append(f"| {labels[row]} | {cells[0]} | {cells[1]} |")


def gain(q, row):
    return q[row]["psnr_y"] - q["bicubic"]["psnr_y"]


display(Markdown(
    f"PSNR-Y / SSIM-Y, mean over the {q_cont['images']} test photos:\n\n" + "\n".join(table) + "\n\n"
    f"**What the numbers say.** The one-step prediction is {gain(q_base, 'x0_hat_t1'):+.2f} dB (baseline) and "
    f"{gain(q_cont, 'x0_hat_t1'):+.2f} dB (fine-tune) from bicubic: the fine-tune hardly changes the network as a "
    f"denoiser. It changes what the solvers get out of it: Euler at nfe = 15 goes from "
    f"{gain(q_base, 'euler_nfe15_rho1'):+.2f} dB to {gain(q_cont, 'euler_nfe15_rho1'):+.2f} dB against bicubic, "
    f"and the official sampler from {gain(q_base, 'resshift_T15'):+.2f} to {gain(q_cont, 'resshift_T15'):+.2f} dB. "
    f"Both 15-step samplers stay below the one-step prediction; the next section says why that is expected."))
assert gain(q_cont, "euler_nfe15_rho1") > gain(q_base, "euler_nfe15_rho1") + 1, "the fine-tune should lift Euler"
assert abs(gain(q_cont, "x0_hat_t1") - gain(q_base, "x0_hat_t1")) < 0.5, "the one-step prediction barely moves"

# %% [markdown]
# ### 3b. Why a 15-step sample loses PSNR: a sample is not the mean
#
# **Claim.** A probability-flow sampler driven by a perfect model returns a draw $x_s$ from the posterior
# $p(x_0\mid y)$, independent of the true $x_0$ given $y$. Expanding the square around the posterior mean
# $m(y) = E[x_0\mid y]$, the cross term vanishes and
# $$E\lVert x_s - x_0\rVert^2 = E\lVert m(y) - x_0\rVert^2 + E\,\mathrm{tr}\,\mathrm{Cov}(x_s\mid y) = 2\,E\lVert m(y) - x_0\rVert^2,$$
# because a faithful sample scatters exactly as much as the truth does around $m(y)$. The one-step prediction
# $\hat x_0(x_T, 1)$ estimates $m(y)$ ($x_T$ says nothing more about $x_0$ than $y$), so a *correct* sampler has twice
# its MSE, $10\log_{10}2$ dB less PSNR. `ctlib.solver_accuracy.sample_spread` splits K samples per image into the error of
# their mean and their spread, and reports the **dispersion**, spread / MSE($\hat x_0$): 1 for a faithful sampler.
# Check on the exact Gaussian problem of notebook 04 (an exact denoiser, so the only errors are the solver's):

# %%
d, B, K, sigma = 400, 20, 6, 0.3
rng = np.random.default_rng(0)
toy = GaussianMixtureToy(0.5 * rng.standard_normal((1, d)), sigma, [1.0], 0.1 * rng.standard_normal(d),
                         ResShiftSchedule())
print(f"{'solver':8s} {'nfe':>4s} {'dispersion':>11s} {'MSE(sample) / MSE(x0_hat)':>26s}")
dispersion = {}
for solver, nfe in (("exp2m", 40), ("euler", 100), ("euler", 15)):
    g = torch.Generator().manual_seed(1)
    truth = toy.sample_x0(B, g)
    x0_hat = toy.denoiser(toy.prior_sample(B, g), torch.ones(B, dtype=torch.float64), toy.y_batch(B))
    draws = torch.stack([sample(toy.denoiser, toy.y_batch(B), schedule=toy.schedule, solver=solver, nfe=nfe,
                                rho=1.0, x_T=toy.prior_sample(B, g)) for _ in range(K)])
    st = sample_spread(draws, x0_hat, truth)
    ratio = st["mse_sample"].mean() / st["mse_x0_hat"].mean()
    dispersion[solver, nfe] = st["dispersion"].mean()
    print(f"{solver:8s} {nfe:4d} {dispersion[solver, nfe]:11.3f} {ratio:26.3f}")
assert abs(dispersion["exp2m", 40] - 1) < 0.1 and abs(dispersion["euler", 100] - 1) < 0.1, \
    "an accurate solve of the exact flow should scatter like the posterior (dispersion 1)"

# %% [markdown]
# The shipped continuous model, several Euler samples per photo, measured by `experiments/sampler_spread.py`: the MSE of
# the average of $k$ samples is the MSE of their mean plus spread$/k$, so averaging walks from a sample's error
# towards $\hat x_0$'s. The plot is in MSE relative to $\hat x_0$'s (1: the one-step prediction, 2: a faithful
# sample), every quantity a ratio of mean MSEs over the same photos.

# %%
spread = json.loads((ckpt_dir / "training_choices.json").read_text())["sampler_spread"]
m = spread["mse_y"]
ref = m["x0_hat_t1"]
k_avg = np.arange(1, spread["seeds"] + 1)
many = m[f"mean_of_{spread['seeds']}_samples"] - m["spread"] / spread["seeds"]  # the mean of infinitely many
k_fine = np.linspace(1, 12, 100)
fig, ax = plt.subplots(figsize=(6.4, 3.8))
ax.plot(k_avg, np.array(spread["mse_y_mean_of_first_k"]) / ref, "o", label="average of the first k samples (measured)")
ax.plot(k_fine, (many + m["spread"] / k_fine) / ref, "-", lw=1, label="MSE(mean of many) + spread / k")
ax.axhline(1, color="C2", ls="-.", label="one-step $\\hat x_0(x_T, 1)$")
ax.axhline(2, color="C3", ls=":", label="a faithful sample")
ax.axhline(m["bicubic"] / ref, color="gray", ls="--", label="bicubic")
ax.set(xlabel="k (samples averaged)", ylabel="mean MSE-Y / that of $\\hat x_0$",
       title=f"shipped continuous model, Euler nfe {spread['nfe']}, {spread['images']} photos")
ax.legend(fontsize=8, loc="center right")
plt.show()
faithful_loss = 10 * np.log10(2)
loss_db = 10 * np.log10(m["sample"] / ref)
display(Markdown(
    f"**Reading it.** On these {spread['images']} photos a single Euler sample has {m['sample'] / ref:.2f} times the "
    f"MSE of $\\hat x_0$ ({loss_db:.2f} dB less PSNR), less than a faithful sampler's 2 ({faithful_loss:.2f} dB): "
    f"dispersion {spread['dispersion']:.2f}, the samples scatter less than the posterior does according to the model. "
    f"Their mean is right: the average of many samples ({many / ref:.2f} times $\\hat x_0$'s MSE) lands on "
    f"$\\hat x_0$. So what keeps Euler below bicubic ({m['bicubic'] / ref:.2f} times $\\hat x_0$'s MSE here) is the "
    f"model: a faithful sample beats bicubic only if $\\hat x_0$ has less than half of bicubic's MSE, i.e. is "
    f"{faithful_loss:.2f} dB above it, and this small network trained on 2 CPU cores is not. A bigger "
    f"network trained longer (§4) is the way up; the samples' texture is what LPIPS rewards (notebook 06)."))
assert abs(many / ref - 1) < 0.05, "the mean of many samples should match x0_hat"

# %% [markdown]
# ## 4. Fine-tune the GPU model
#
# Two profiles train the large models; each cell below runs only when the `profile` parameter names it (for example
# `papermill 05_finetune.ipynb out.ipynb -p profile gpu`, or `python -m ctlib reproduce --profile gpu`).
#
# **`gpu`**: the same pixel-space network as the shipped models, trained from scratch on the bundled photos with the
# `gpu` recipe (256 x 256 crops, batch 32, 20 000 iterations), then fine-tuned in continuous time on the fitted
# schedule:
#
# ```
# python -m ctlib train --profile gpu --mode discrete --out runs/gpu_baseline
# python -m ctlib train --profile gpu --mode continuous --init runs/gpu_baseline/model.pt --out runs/gpu_continuous
# ```
#
# **`paper`**: the report's fine-tune of the official ResShift v1 network (VQ-f4 latent space, Real-ESRGAN degradation,
# lr 5e-5, 5000 warm-up iterations, 50K iterations of batch 16 in micro-batches of 8, EMA 0.999, bf16 autocast, the
# report code's schedule preset), from the official weights, on an ImageNet training folder you supply:
#
# ```
# python -m ctlib train --profile paper --mode continuous --official-unet resshift_realsrx4_s15_v1.pth \
#     --official-vq autoencoder_vq_f4.pth --data /path/to/imagenet/train --out runs/paper
# torchrun --nproc_per_node 8 -m ctlib train --profile paper ...   # the same on 8 GPUs (DDP)
# ```
#
# **Expected cost.** The kit was built without a GPU, so it holds no GPU timing: the cell below prints what it can
# compute (parameters, and the memory that weights, gradients, AdamW state and EMA take in float32, a lower bound:
# activations come on top), then, on a GPU, times the first iterations and projects the whole run from them
# (`python benchmarks/training.py --profiles gpu` writes the same measurement to `benchmarks/results/training.json`).
# The `paper` wiring is tested end to end with tiny random official-format weights
# (`tests/test_train.py::test_paper_profile_wiring_with_tiny_official_format_weights`).

# %%
with torch.device("meta"):  # shapes only: no memory, no weights
    n_params = {net: sum(p.numel() for p in build_network(net).parameters()) for net in ("bundled", "v1")}
for prof, net in (("gpu", "bundled"), ("paper", "v1")):
    state_gib = n_params[net] * 4 * 5 / 2**30  # weights, gradients, 2 AdamW moments, EMA: float32 each
    print(f"{prof:5s}: network {net}, {n_params[net] / 1e6:.1f} M parameters; weights + gradients + AdamW + EMA "
          f"{state_gib:.2f} GiB before activations; {TRAIN_PROFILES[prof]['iterations']} iterations of batch "
          f"{TRAIN_PROFILES[prof]['batch_size']}")

# %% tags=["nbval-ignore-output"]
if profile == "gpu":
    if not torch.cuda.is_available():
        print("profile gpu: no CUDA device here, nothing trained")
    else:
        for mode, init, run in (("discrete", None, "gpu_baseline"), ("continuous", "gpu_baseline", "gpu_continuous")):
            t0 = time.perf_counter()
            torch.cuda.reset_peak_memory_stats()
            init_path = Path(results_dir) / init / "model.pt" if init else None
            summary = run_training("gpu", mode, Path(results_dir) / run, init=init_path, overwrite=True, seed=seed)
            seconds = time.perf_counter() - t0
            print(f"{run}: {summary['steps']} iterations in {seconds / 60:.1f} min "
                  f"({seconds / summary['steps']:.3f} s per iteration), CUDA peak "
                  f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
elif profile == "paper":
    if not (torch.cuda.is_available() and Path(official_unet).is_file() and Path(official_vq).is_file()
            and Path(imagenet_train).is_dir()):
        print(f"profile paper needs CUDA, {official_unet}, {official_vq} and the ImageNet folder {imagenet_train}")
    else:
        probe = run_training("paper", "continuous", Path(results_dir) / "paper_probe", official_unet=official_unet,
                             official_vq=official_vq, data_dir=imagenet_train, overwrite=True, seed=seed,
                             iterations=20, val_every=0, ckpt_every=20, progress=False)
        print(f"20 probe iterations done ({probe['steps']}); the full run: python -m ctlib train --profile paper ...")
else:
    print(f"profile {profile}: the GPU fine-tunes run with profile gpu or paper")

# %% [markdown]
# ## Summary
#
# * Fine-tuning in continuous time changes four things: $t \sim U(1/T, 1)$ instead of $k/T$; a real-valued time index
#   $Tt - 1$; the same $x_0$ loss, which is a score loss weighted by $(\kappa^2\eta/(1-\eta))^2$; and the schedule
#   $\eta(t)$ the model learns, which decides Euler's step sizes.
# * On the official schedule's exact extension Euler leaves a grain of the start's noise in every sample; the fitted
#   schedule removes it, and a fine-tune teaches the network that schedule: §2 measures both steps on a few iterations,
#   §3 the shipped 1000-iteration run.
# * The fine-tune leaves the one-step prediction where it was; the 15-step samplers stay below it, as a faithful
#   sampler must (§3b), and below bicubic with this small network.
# * Next: notebook 06 puts the shipped models through the report's solver x rho table.

# %% tags=["nbval-ignore-output"]
print(f"notebook ran in {time.perf_counter() - t_start:.1f} s")
