# %% [markdown]
# # 05 · Discrete pretraining, then continuous-time fine-tuning
#
# **Claim.** The report takes a ResShift model trained on the 15 discrete levels and fine-tunes it
# with $t \sim U(1/T, 1)$, so that the network has seen every noise level an ODE solver may visit.
# The loss stays ResShift's: $\lVert f_\theta(x_t, y, t) - x_0\rVert^2$ with
# $x_t \sim \mathcal N(x_0 + \eta(t)(y - x_0), \kappa^2\eta(t) I)$.
#
# **What this notebook shows.**
# 1. The recipe, and why each part is there (with the report's errata 5 and 6).
# 2. What the network is trained on: bundled photos, degraded to LR (a grid of samples).
# 3. The two shipped runs (`data/checkpoints/`): the discrete baseline and its continuous
#    fine-tune, their loss curves, validation PSNR and bundled-test-set quality.
# 4. A short *real* continuous fine-tune, run here, starting from the shipped baseline.
# 5. How to run the report's own recipe (the `paper` profile) on ImageNet with the official weights.
#
# **Run time** (2 CPU cores): profile `cpu` (the stored outputs) about 1–2 minutes, most of it the
# short fine-tune; `smoke` about 20 s.

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ctlib.data import (
    REALESRGAN_TRAIN,
    bicubic_lr,
    load_bundled_test_set,
    load_bundled_train_images,
    plot_degradation_grid,
)
from ctlib.nn import denoiser_from_checkpoint
from ctlib.profiles import check_profile
from ctlib.train import TRAIN_PROFILES, PairSource, read_log, run_training

# %% tags=["parameters"]
profile = "cpu"
results_dir = "../results/notebooks"
baseline_checkpoint = "../data/checkpoints/baseline_discrete.pt"
continuous_checkpoint = "../data/checkpoints/continuous_finetune.pt"
seed = 0

# %%
check_profile(profile)
demo = {"iterations": 2, "batch_size": 2, "crop_size": 64} if profile == "smoke" else \
    {"iterations": 30, "batch_size": 8, "crop_size": 64}
n_val = 2 if profile == "smoke" else 4  # test photos for the before/after check
out_dir = Path(results_dir) / "05_finetune_demo"  # this notebook's scratch run, replaced on every execution
ckpt_dir = Path(baseline_checkpoint).parent
print(f"profile {profile}: demo fine-tune of {demo['iterations']} iterations, batch {demo['batch_size']}, "
      f"{demo['crop_size']}x{demo['crop_size']} crops; checkpoints in {ckpt_dir}")

# %% [markdown]
# ## 1. The recipe
#
# | part | the report (text) | the report's code / official ResShift | this kit |
# | --- | --- | --- | --- |
# | target | $x_0$ prediction, MSE | same | same (`ctlib.train.training_loss`) |
# | time | $t \sim U(1/T, 1)$ | same, but the network's time input **reversed** (erratum 5) | $t \sim U(1/T, 1)$; the network index is $Tt - 1$ in training *and* sampling (one function, `wrapper.network_input`) |
# | optimiser | Adam, fixed lr $5\cdot10^{-5}$ | AdamW (weight decay 0), 5000 warm-up iterations, EMA 0.999, AMP (erratum 6) | AdamW, linear warm-up, EMA, bf16 autocast on CUDA |
# | batch | 16, micro-batch 8 | same | global batch accumulated over micro-batches; under `torchrun` each rank trains a slice of the same global batch |
# | data | ImageNet, Real-ESRGAN LR | same | `paper` profile: the same; bundled profiles: bundled photos (see §2) |
#
# Why each part: the $x_0$ target makes the loss scale-free across $t$ (the score would blow up as
# $\eta \to 0$); continuous $t$ trains the network at the levels an ODE solver visits between the
# official $k/T$; warm-up and EMA are the standard stabilisers of diffusion training (EMA weights
# are what the samplers use); micro-batches keep memory bounded at the paper's batch 16.
# Every random draw (crops, degradations, $t$, noise) comes from one generator whose state is in the
# checkpoint, so a resumed run reproduces an uninterrupted one exactly (`tests/test_train.py`).

# %%
for name, settings in TRAIN_PROFILES.items():
    keys = ("net", "crop_size", "iterations", "batch_size", "micro_batch", "lr", "warmup", "ema_decay", "degradation")
    print(f"{name:6s}", ", ".join(f"{k}={settings[k]}" for k in keys))

# %% [markdown]
# ## 2. What the network sees
#
# Training pairs are random crops of the 76 bundled training photos (512 x 512 crops of wallpapers
# the test set never uses) with an LR made either by MATLAB bicubic x1/4 (the report's *test*
# degradation) or by the Real-ESRGAN second-order pipeline (ResShift's *training* degradation). The
# grid shows three Real-ESRGAN draws per photo: blur, resize, noise and JPEG vary from draw to draw.

# %%
train_images = load_bundled_train_images()
g = torch.Generator().manual_seed(seed)
source = PairSource(train_images, 256, "bicubic")
hr_examples, _ = source(3, g)
fig = plot_degradation_grid(hr_examples, torch.Generator().manual_seed(seed), REALESRGAN_TRAIN, samples=3)
plt.show()

# %% [markdown]
# **The degradation of the shipped models.** The report trains on Real-ESRGAN LR and tests on
# bicubic LR. Our shipped pixel models are trained on **bicubic** LR, the degradation of the test set
# (and of notebook 06's table): with a 1.6M-parameter network and minutes of CPU training, a model
# trained on the much harder and more varied Real-ESRGAN inputs spends its capacity on deblurring,
# denoising and JPEG removal that the bicubic test never asks for. The `paper` profile keeps the
# report's Real-ESRGAN training; `--degradation realesrgan|mix` switches any profile.
#
# ## 3. The shipped runs
#
# Made by two commands (run on 2 CPU cores; the `gpu` profile trains the same models at full size):
#
# ```
# python -m ctlib train --profile cpu --mode discrete --out runs/baseline --seed 1
# python -m ctlib train --profile cpu --mode continuous --init runs/baseline/model.pt --out runs/continuous \
#     --iterations N --seed 2
# python scripts/ship_checkpoint.py runs/baseline baseline_discrete
# python scripts/ship_checkpoint.py runs/continuous continuous_finetune
# ```
#
# (the exact arguments of each run are stored in its checkpoint, printed below).

# %%
shipped = {}
for name in ("baseline_discrete", "continuous_finetune"):
    ckpt = ckpt_dir / f"{name}.pt"
    if not ckpt.exists():
        print(f"{ckpt} is missing")
        continue
    meta = torch.load(ckpt, map_location="cpu", weights_only=True)["meta"]
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
    steps, loss = log["step"] + offset, log["loss"]
    k = max(1, len(loss) // 60)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    axes[0].plot(steps[k - 1:], smooth, label=f"{name} (moving mean of {k})")
    val_steps = [s + offset for s, v in zip(log["step"], log["val"]) if v]
    val_psnr = [v["psnr_y_x0_hat_t1"] for v in log["val"] if v]
    axes[1].plot(val_steps, val_psnr, "o-", label=name)
    offset += int(log["step"][-1])
if shipped:
    bic = next(iter(shipped.values()))[2]["bicubic"]["psnr_y"]
    axes[1].axhline(bic, color="gray", ls="--", label="bicubic (26 test photos)")
axes[0].set(xlabel="iteration (fine-tune continues the baseline's count)", ylabel="training MSE", yscale="log",
            title="loss")
axes[1].set(xlabel="iteration", ylabel="PSNR-Y (dB)", title="one-step x0_hat(t = 1), 4 test photos, EMA weights")
for ax in axes:
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Quality on the whole bundled test set (26 photos, 256 x 256, bicubic x4 LR; PSNR-Y / SSIM-Y with
# the official conventions), measured by `scripts/ship_checkpoint.py` and stored beside each
# checkpoint. The one-step prediction $\hat x_0(x_T, t{=}1)$ is the MSE-optimal guess; the 15-step
# samplers trade some PSNR for texture (the perception–distortion trade-off, notebook 06).

# %%
print(f"{'model':22s} {'row':18s} {'PSNR-Y':>8s} {'SSIM-Y':>8s} {'gain vs bicubic':>16s}")
for name, (_, _, q) in shipped.items():
    for row in ("bicubic", "x0_hat_t1", "resshift_T15", "euler_nfe15_rho1"):
        r = q[row]
        gain = r.get("gain_psnr_y_over_bicubic")
        print(f"{name:22s} {row:18s} {r['psnr_y']:8.2f} {r['ssim_y']:8.4f} {'' if gain is None else f'{gain:+16.2f}'}")

# %% [markdown]
# **What the numbers say.** The one-step prediction beats bicubic by +1.2 dB (discrete) and +1.3 dB
# (continuous fine-tune) PSNR-Y: real, but short of the +1.5 dB we aimed for, with a 1.6M-parameter
# network trained for about 35 minutes on 2 CPU cores (its validation PSNR had flattened). The
# 15-step samplers fall *below* bicubic in PSNR (-2 to -3 dB): with the official kappa = 2 the prior
# $y + \kappa\sqrt{\eta_T}\,\varepsilon$ carries noise of standard deviation ~2 on images in [-1, 1], so a
# sampler must synthesise all the high-frequency detail, and a small model synthesises plausible but
# wrong detail, which PSNR punishes (the perception–distortion trade-off; notebook 06 shows the
# perceptual side). What would close the gap, not done here: a smaller kappa for pixel space (less
# detail to invent), a bigger network and longer training (the `gpu` profile).
#
# ## 4. A short real fine-tune
#
# Continuous-time fine-tuning from the shipped baseline, here and now (profile `cpu`: 40 iterations
# of batch 8 on 64 x 64 crops; the shipped fine-tune ran much longer). Before and after, the one-step prediction and
# the mean squared error of $\hat x_0$ at times *between* the official levels, where the discrete
# model was never trained.

# %% tags=["nbval-ignore-output"]
start = time.perf_counter()
summary = run_training(profile if profile != "smoke" else "cpu", "continuous", out_dir, init=baseline_checkpoint,
                       overwrite=True, progress=False, seed=seed, val_every=0, ckpt_every=demo["iterations"],
                       iterations=demo["iterations"], batch_size=demo["batch_size"], micro_batch=demo["batch_size"],
                       crop_size=demo["crop_size"], lr=1e-4, warmup=5, ema_decay=0.9)
log = read_log(out_dir / "log.csv")
print(f"{summary['steps']} iterations in {time.perf_counter() - start:.0f} s; loss {log['loss'][0]:.4f} -> {log['loss'][-1]:.4f}")

# %%
test = load_bundled_test_set(limit=n_val)
hr = test.hr[..., 64:192, 64:192]  # centre 128 x 128: a quick check
lr = bicubic_lr(hr)


def mse_between_levels(model_path, t_values):
    den = denoiser_from_checkpoint(model_path).eval()
    cond = den.condition(lr * 2 - 1)
    x0 = hr * 2 - 1
    errors = []
    with torch.no_grad():
        for i, t in enumerate(t_values):
            gen = torch.Generator().manual_seed(1000 + i)
            eta = float(den.schedule.eta(t))
            x_t = x0 + eta * (cond.y - x0) + den.schedule.kappa * eta**0.5 * torch.randn(x0.shape, generator=gen)
            x0_hat = cond(x_t, torch.full((len(hr),), t, dtype=torch.float64), cond.y)
            errors.append(float(((x0_hat - x0) ** 2).mean()))
    return np.array(errors)


t_on = np.arange(3, 16, 2) / 15  # official levels
t_off = (np.arange(3, 15, 2) + 0.5) / 15  # half-way between official levels
rows = [("shipped baseline (discrete)", baseline_checkpoint), ("this notebook's fine-tune", out_dir / "model.pt")]
if Path(continuous_checkpoint).exists():
    rows.append(("shipped continuous fine-tune", continuous_checkpoint))
print(f"{'model':30s} {'MSE at k/T':>12s} {'MSE at (k+1/2)/T':>18s}")
for label, path in rows:
    on, off = mse_between_levels(path, t_on), mse_between_levels(path, t_off)
    print(f"{label:30s} {on.mean():12.3e} {off.mean():18.3e}")

# %% [markdown]
# ## 5. The report's recipe: the `paper` profile
#
# With the official weights (`resshift_realsrx4_s15_v1.pth`, `autoencoder_vq_f4.pth` from the
# ResShift releases) and an ImageNet training folder, one command runs the report's fine-tune
# (VQ-f4 latent space, Real-ESRGAN degradation, official crop, lr 5e-5, 5000 warm-up iterations,
# 50K iterations, batch 16 in micro-batches of 8, EMA 0.999, bf16 autocast on a GPU):
#
# ```
# python -m ctlib train --profile paper --mode continuous --official-unet resshift_realsrx4_s15_v1.pth \
#     --official-vq autoencoder_vq_f4.pth --data /path/to/imagenet/train --out runs/paper
# torchrun --nproc_per_node 8 -m ctlib train --profile paper ...   # the same on 8 GPUs (DDP)
# ```
#
# Its wiring is tested end to end with tiny random official-format weight files
# (`tests/test_train.py::test_paper_profile_wiring_with_tiny_official_format_weights`).
