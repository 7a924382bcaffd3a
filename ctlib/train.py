r"""Training: discrete ResShift pretraining and continuous-time fine-tuning, one loop for both.

The loss is the official one, ``|| f_theta(x_t, y, t) - x0 ||^2`` (x0 prediction, plain MSE), with
``x_t ~ q(x_t | x0, y) = N(x0 + eta(t) (y - x0), kappa^2 eta(t) I)`` and

* ``mode="discrete"``:   ``t = k/T`` with ``k`` uniform on ``1..T`` (ResShift pretraining);
* ``mode="continuous"``: ``t ~ U(1/T, 1)`` (the report's fine-tuning), ``eta(t)`` from the schedule.

The schedule (:func:`make_schedule`, ``--schedule``) is the caller's, else the profile's for the mode
(the bundled continuous fine-tunes: the scipy fit of eta(t); ``paper``: the report's preset), else the
``init`` checkpoint's, else the official one; it is stored in every checkpoint, so the samplers use
the schedule the model was trained on.

The network is called through the same denoiser wrapper the samplers use (``wrapper.condition(lr)``
then ``cond(x_t, t, y)``), so the time input ``T t - 1``, the input scaling and the conditioning are
identical in training and sampling by construction (the report's code reversed the time input in
training: erratum 5; ``tests/test_train.py`` checks the agreement).

Recipe knobs (docs/maths.md §11): AdamW (weight decay 0), learning rate with linear warm-up,
a global batch accumulated over micro-batches, EMA of the weights (0.999), mixed precision on CUDA
(bfloat16 autocast), optional gradient clipping.  Every random draw (crops, degradations, t, noise)
comes from one ``torch.Generator`` whose state is checkpointed, so a resumed run gives the same
weights as an uninterrupted one.  Under ``torchrun`` (DDP) every rank draws the same global batch
and trains on its own slice, so N processes match one process with the same global batch.

Checkpoints are written atomically (temporary file, then rename): ``last.pt`` holds the model, the
EMA, the optimiser, the step and the generator state; ``model.pt`` is the kit's checkpoint format
(EMA weights + config + schedule + metadata, see :mod:`ctlib.nn.checkpoint`).  A non-finite loss
stops training with :class:`TrainingDiverged` and leaves the last good checkpoint untouched.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._checks import check_device, check_int, check_positive
from .data.pairs import DEGRADATIONS, PairSource
from .diffusion import q_sample
from .profiles import TINY_PIXEL_OVERRIDES, TRAIN_PROFILES, check_profile
from .schedule import ExpAlphaSchedule, ResShiftSchedule, Schedule, fit_exp_alpha, schedule_from_dict

__all__ = [
    "TrainConfig",
    "TrainingDiverged",
    "RunFolderError",
    "TrainingDataError",
    "TrainingInterrupted",
    "sample_t",
    "learning_rate",
    "EMA",
    "training_loss",
    "network_x0",
    "train",
    "atomic_save",
    "PairSource",
    "export_model",
    "read_log",
    "DEGRADATIONS",
]

MODES = ("discrete", "continuous")
LR_DECAYS = ("constant", "cosine")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunFolderError(RuntimeError):
    """The output folder holds another run (refused unless resuming or told to overwrite), cannot be
    resumed as asked, or cannot be written."""


class TrainingDataError(ValueError):
    """Training images that cannot be used (unreadable, corrupt, smaller than the crop); all listed in
    ``bad`` as ``(path, reason)``, found before the first step."""

    def __init__(self, bad: list[tuple[Path, str]], folder: Path) -> None:
        self.bad = bad
        lines = "\n".join(f"  {p}: {why}" for p, why in bad)
        super().__init__(f"{len(bad)} training image(s) in {folder} cannot be used; fix or remove them "
                         f"(nothing was trained):\n{lines}")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: ``step`` reached, ``saved_step`` in ``last.pt`` (``--resume`` goes on
    from there; the run folder is consistent)."""

    def __init__(self, out_dir: Path, step: int, saved_step: int | None) -> None:
        self.out_dir, self.step, self.saved_step = out_dir, step, saved_step
        where = (f"the last checkpoint (step {saved_step}) is {out_dir / 'last.pt'}; continue with --resume"
                 if saved_step else "no checkpoint was written yet; a rerun starts afresh")
        super().__init__(f"training interrupted at step {step}: {where}")


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved with every checkpoint)."""

    mode: str = "continuous"
    iterations: int = 1000
    batch_size: int = 16
    micro_batch: int = 8
    lr: float = 5e-5
    warmup: int = 0
    lr_decay: str = "constant"  # or "cosine": lr -> 0 over the steps after warm-up
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float | None = None
    amp: bool | None = None  # None: bfloat16 autocast on CUDA, off on CPU
    seed: int = 123456
    log_every: int = 10
    val_every: int = 0
    ckpt_every: int = 100
    extra: dict = field(default_factory=dict)  # free-form: data, degradation, profile, ...

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        check_int(self.iterations, "iterations", minimum=1)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_int(self.micro_batch, "micro_batch", minimum=1)
        if self.micro_batch > self.batch_size:
            raise ValueError(f"micro_batch ({self.micro_batch}) must not exceed batch_size ({self.batch_size})")
        check_positive(self.lr, "lr")
        check_int(self.warmup, "warmup", minimum=0)
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(f"lr_decay must be one of {', '.join(LR_DECAYS)}, got {self.lr_decay!r}")
        if self.lr_decay == "cosine" and self.iterations <= self.warmup:
            raise ValueError(f"cosine decay needs iterations ({self.iterations}) > warmup ({self.warmup})")
        check_positive(self.weight_decay, "weight_decay", allow_zero=True)
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.grad_clip is not None:
            check_positive(self.grad_clip, "grad_clip")


def sample_t(mode: str, T: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training times (float64, shape (n,)): ``k/T`` with ``k ~ U{1..T}`` (discrete) or ``U(1/T, 1)``."""
    if mode == "discrete":
        return torch.randint(1, T + 1, (n,), generator=generator).double() / T
    if mode == "continuous":
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        return 1.0 / T + (1.0 - 1.0 / T) * u
    raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def learning_rate(step: int, base_lr: float, warmup: int, decay: str = "constant", total: int | None = None) -> float:
    """The learning rate of step ``step`` (0-based): linear warm-up over ``warmup`` steps, then
    constant (``decay="constant"``, the official recipe) or ``base_lr (1 + cos(pi s)) / 2`` with
    ``s = (step + 1 - warmup) / (total - warmup)`` (``"cosine"``, reaching 0 at step ``total - 1``)."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    if decay == "constant":
        return base_lr
    if decay != "cosine":
        raise ValueError(f"decay must be one of {', '.join(LR_DECAYS)}, got {decay!r}")
    if total is None or total <= warmup:
        raise ValueError(f"cosine decay needs total > warmup, got total={total}, warmup={warmup}")
    s = min(1.0, (step + 1 - warmup) / (total - warmup))
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * s))


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for p_ema, p in zip(self.model.parameters(), model.parameters()):
            p_ema.lerp_(p.detach().to(p_ema.dtype), 1.0 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)


def network_x0(wrapper: Any, net: Callable[..., torch.Tensor], x_t: torch.Tensor, t: torch.Tensor,
               lq: torch.Tensor) -> torch.Tensor:
    """The network's x0 prediction for training: ``wrapper.network_x0(x_t, t, lq, network=net)``.

    That is the very function the sampling-time denoiser calls (input scaling, the time index
    ``T t - 1``, the optional global residual), so training and sampling feed the network alike.
    No clamp here: the official training loss is on the unclamped prediction.
    """
    return wrapper.network_x0(x_t, t.double(), lq, network=net)


def training_loss(
    predict_x0: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor,
    schedule: Schedule,
    noise: torch.Tensor,
) -> torch.Tensor:
    """Per-sample ``mean((f_theta(x_t, y, t) - x0)^2)`` with ``x_t = q_sample(x0, y, eta(t), kappa, noise)``;
    ``predict_x0(x_t, t)`` is the network's prediction (see :func:`network_x0`)."""
    eta = schedule.eta(t.double()).to(x0.dtype)
    x_t = q_sample(x0, y, eta, schedule.kappa, noise=noise)
    x0_hat = predict_x0(x_t, t)
    return ((x0_hat.float() - x0.float()) ** 2).flatten(1).mean(1)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a hidden temporary file in the same folder, then rename over ``path``
    (:func:`ctlib.nn.checkpoint.atomic_torch_save`: an error or Ctrl-C leaves no temporary file)."""
    from .nn.checkpoint import atomic_torch_save

    return atomic_torch_save(obj, path)


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


RUN_FILES = ("last.pt", "model.pt", "train_config.json", "log.csv")
LOG_HEADER = ["step", "loss", "lr", "seconds", "val"]


def _check_run_folder(out_dir: Path, resume: bool, overwrite: bool, init: str | os.PathLike | None = None) -> bool:
    """Check the run folder before any work; return True when the run resumes from ``out_dir/last.pt``.

    * a folder without ``last.pt`` and ``model.pt`` (new, empty, or the ``train_config.json`` /
      ``log.csv`` of a run that stopped before its first checkpoint) takes a new run;
    * with ``last.pt``: ``resume`` continues it, ``overwrite`` replaces it, else refused;
    * ``model.pt`` without ``last.pt`` (a finished run whose ``last.pt`` was deleted): refused, with
      or without ``resume`` (there is nothing to resume from), unless ``overwrite``;
    * ``init`` must not be a file of the folder this run writes.
    Raises RunFolderError (or ValueError for a location that cannot be written)."""
    from .files import check_output_dir

    if out_dir.exists() and not out_dir.is_dir():
        raise RunFolderError(f"output path {out_dir} exists and is not a folder")
    check_output_dir(out_dir)
    if init is not None and Path(init).resolve().parent == out_dir.resolve() and Path(init).name in RUN_FILES:
        raise RunFolderError(f"--init {init} is a file of the run folder {out_dir}, which this run writes; "
                             "copy it elsewhere first or choose another --out")
    present = sorted(n for n in RUN_FILES if (out_dir / n).exists()) if out_dir.is_dir() else []
    if "last.pt" in present:
        if resume:
            return True
        if overwrite:
            return False
        raise RunFolderError(
            f"{out_dir} already holds a training run ({', '.join(present)}); "
            "pass resume=True (--resume) to continue it or overwrite=True (--overwrite) to replace it"
        )
    if "model.pt" in present and not overwrite:
        why = "there is no last.pt to resume from" if resume else "it already holds a training run"
        raise RunFolderError(
            f"{out_dir} holds a finished run ({', '.join(present)}) and {why}; its model.pt, log.csv and "
            "train_config.json are kept. To train further start a new run from it (--init "
            f"{out_dir / 'model.pt'} --out NEW_FOLDER), or pass --overwrite to replace it"
        )
    return False


def _clear_stale_temporaries(out_dir: Path) -> None:
    """Remove what a kill during a save leaves behind (``.last.pt.*.tmp``, the old ``last.pt.tmp``)."""
    for pattern in (".last.pt.*.tmp", ".model.pt.*.tmp", "last.pt.tmp"):
        for p in out_dir.glob(pattern):
            p.unlink(missing_ok=True)


def _resume_log(path: Path, step: int) -> float:
    """Make ``log.csv`` end at the checkpoint's ``step`` (rows logged after it, before a kill, are
    dropped: the resumed run logs them again) and return the loss logged at ``step`` (NaN if none)."""
    from .files import atomic_write

    rows = list(csv.reader(path.open(newline=""))) if path.exists() else []
    body = [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if not rows or rows[0] != LOG_HEADER or len(body) != len(rows) - 1:
        def write(f: Any) -> None:
            text = io.StringIO()
            csv.writer(text).writerows([LOG_HEADER, *body])
            f.write(text.getvalue().encode())

        atomic_write(path, write)
    last = [r for r in body if int(r[0]) == step]
    return float(last[-1][1]) if last else float("nan")


def train(
    wrapper: Any,
    schedule: Schedule,
    data: Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]],
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    resume: bool = False,
    overwrite: bool = False,
    validate: Callable[[nn.Module], dict[str, float]] | None = None,
    progress: bool = True,
    model_meta: dict | None = None,
) -> dict[str, Any]:
    """Train ``wrapper.net`` and write checkpoints and a CSV log to ``out_dir``.

    ``wrapper`` is a :class:`ctlib.nn.ResShiftDenoiser`: ``wrapper.network`` is the trained module,
    ``wrapper.encode`` maps HR images in [-1, 1] to the state space (identity in pixel space, the
    frozen VQ encoder in latent space), ``wrapper.condition(lr)`` gives ``cond.y`` and the network
    condition ``cond.lq``, ``wrapper.network_input`` the network's inputs.  ``data(n, generator)``
    returns ``n`` (HR, LR) pairs in [0, 1] drawn from ``generator``.  ``validate(ema_net)`` may return metrics to log.
    Returns a summary dict (steps, last loss, seconds, paths).
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    rank, world = _dist_info()
    if config.batch_size % world != 0:
        raise ValueError(f"batch_size ({config.batch_size}) must be divisible by the number of processes ({world})")
    local_batch = config.batch_size // world
    device = check_device(device)
    resuming = _check_run_folder(out_dir, resume, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        _clear_stale_temporaries(out_dir)
    net: nn.Module = wrapper.network.to(device).train()
    if getattr(wrapper, "autoencoder", None) is not None:
        wrapper.autoencoder.to(device)
    ema = EMA(net, config.ema_decay)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    use_amp = config.amp if config.amp is not None else device.type == "cuda"
    step, history, last_loss = 0, [], float("nan")
    saved_step: list[int | None] = [None]  # the step in last.pt (for the Ctrl-C message)

    if resuming:
        state = torch.load(out_dir / "last.pt", map_location=device, weights_only=True)
        saved = TrainConfig(**state["config"])
        if asdict(saved) | {"iterations": 0} != asdict(config) | {"iterations": 0}:
            raise RunFolderError(
                f"{out_dir / 'last.pt'} was written with another configuration; resume with the same settings "
                f"(saved: {json.dumps(asdict(saved))})"
            )
        if int(state["step"]) > config.iterations:
            raise RunFolderError(
                f"{out_dir / 'last.pt'} has reached step {int(state['step'])}, beyond iterations={config.iterations}; "
                f"resume with iterations >= {int(state['step'])} (--iterations)"
            )
        net.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["rng"])
        step = saved_step[0] = int(state["step"])
        logged = _resume_log(out_dir / "log.csv", step) if rank == 0 else float("nan")
        last_loss = float(state["last_loss"]) if "last_loss" in state else logged
    elif rank == 0:
        for old in ("last.pt", "model.pt"):  # a replaced run's (--overwrite): never resumed into the new log
            (out_dir / old).unlink(missing_ok=True)
        (out_dir / "train_config.json").write_text(json.dumps(
            {"train": asdict(config), "schedule": schedule.to_dict(), "model": model_meta or {}}, indent=2))
        with open(out_dir / "log.csv", "w", newline="") as f:
            csv.writer(f).writerow(LOG_HEADER)

    ddp_net = net
    if world > 1:
        ddp_net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    def save_last() -> None:
        if rank != 0:
            return
        atomic_save({"config": asdict(config), "schedule": schedule.to_dict(), "step": step,
                     "net_config": dict(getattr(net, "config", {}) or {}), "denoiser": wrapper.settings(),
                     "model": net.state_dict(), "ema": ema.model.state_dict(),
                     "optimizer": optimizer.state_dict(), "rng": generator.get_state(), "last_loss": last_loss},
                    out_dir / "last.pt")
        saved_step[0] = step

    start = time.perf_counter()
    bar = tqdm(total=config.iterations, initial=step, desc=f"train [{config.mode}]", disable=not progress or rank != 0)
    try:
        while step < config.iterations:
            lr_now = learning_rate(step, config.lr, config.warmup, config.lr_decay, config.iterations)
            for group in optimizer.param_groups:
                group["lr"] = lr_now
            # the global batch, drawn identically on every rank; each rank trains on its slice
            hr, lr_img = data(config.batch_size, generator)
            t = sample_t(config.mode, schedule.T, config.batch_size, generator)
            with torch.no_grad():
                x0_all = wrapper.encode(hr.to(device) * 2 - 1)
            noise_all = torch.randn(x0_all.shape, generator=generator, dtype=x0_all.dtype).to(device)
            lo, hi = rank * local_batch, (rank + 1) * local_batch
            optimizer.zero_grad(set_to_none=True)
            total = torch.zeros((), device=device)
            starts = list(range(lo, hi, config.micro_batch))
            for j, m0 in enumerate(starts):
                m1 = min(m0 + config.micro_batch, hi)
                with torch.no_grad():
                    cond = wrapper.condition(lr_img[m0:m1].to(device) * 2 - 1)
                if cond.y.shape != x0_all[m0:m1].shape:
                    raise ValueError(f"HR crops {tuple(hr.shape)} need sides that are multiples of "
                                     f"{wrapper.lr_multiple * wrapper.sf} pixels (the network's size multiple)")
                sync = j == len(starts) - 1 or world == 1
                ctx = ddp_net.no_sync() if (world > 1 and not sync) else contextlib.nullcontext()
                with ctx, torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    def predict(x_t, t_, lq=cond.lq):
                        return network_x0(wrapper, ddp_net, x_t, t_, lq)

                    losses = training_loss(predict, x0_all[m0:m1], cond.y, t[m0:m1].to(device), schedule,
                                           noise_all[m0:m1])
                    loss = losses.sum() / local_batch
                loss.backward()
                total += loss.detach()
            if world > 1:
                torch.distributed.all_reduce(total)
                total /= world
            last_loss = float(total)
            if not math.isfinite(last_loss):
                raise TrainingDiverged(
                    f"non-finite loss ({last_loss}) at step {step + 1}; stopped. The last good checkpoint "
                    f"({out_dir / 'last.pt'}) is intact: lower the learning rate or enable gradient clipping"
                )
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            optimizer.step()
            ema.update(net)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4g}", lr=f"{lr_now:.2g}")
            val = {}
            if validate is not None and config.val_every and step % config.val_every == 0 and rank == 0:
                val = validate(ema.model)
            if rank == 0 and (step % config.log_every == 0 or val or step == config.iterations):
                history.append({"step": step, "loss": last_loss, "lr": lr_now, "val": val})
                with open(out_dir / "log.csv", "a", newline="") as f:
                    csv.writer(f).writerow([step, f"{last_loss:.6g}", f"{lr_now:.3g}",
                                            f"{time.perf_counter() - start:.1f}", json.dumps(val) if val else ""])
            if config.ckpt_every and step % config.ckpt_every == 0:
                save_last()
    except KeyboardInterrupt:
        bar.close()
        raise TrainingInterrupted(out_dir, step, saved_step[0]) from None
    bar.close()
    save_last()
    summary = {"steps": step, "last_loss": last_loss, "seconds": time.perf_counter() - start,
               "out_dir": str(out_dir), "history": history}
    if rank == 0:
        from .nn.checkpoint import save_checkpoint

        meta = {"train": asdict(config), "steps": step, "last_loss": last_loss, **(model_meta or {})}
        save_checkpoint(out_dir / "model.pt", ema.model, schedule=schedule, denoiser=wrapper.settings(), meta=meta)
        summary["model"] = str(out_dir / "model.pt")
    return summary



# ---------------------------------------------------------------------------------------------
# profiles (their numbers: ctlib.profiles.TRAIN_PROFILES)
# ---------------------------------------------------------------------------------------------
#: the eta(t) a model can be trained with (``--schedule``); see :func:`make_schedule`
SCHEDULES = ("resshift", "fit", "report")


def make_schedule(name: str, kappa: float | None = None) -> Schedule:
    """The schedule called ``name`` at noise scale ``kappa`` (default 2, the official one).

    * ``resshift``: the official eta schedule and its exact continuous extension (``ResShiftSchedule``);
    * ``fit``: ``eta(t) = a ((e^{lam t} - 1)/lam - t)`` fitted by scipy least squares to the official
      eta_k at t = k/T (``fit_exp_alpha(..., target="eta")``, notebook 03): the same noise levels at the
      network's 15 time indices, but ``eta ~ t^2`` near 0 instead of ResShift's steep ``u ** 0.3`` rise
      (notebook 05 explains why Euler needs that);
    * ``report``: the report code's preset ``a = 1.1113, lam = 1.1268`` (``ExpAlphaSchedule.report``).
    """
    kappa = 2.0 if kappa is None else kappa
    if name == "resshift":
        return ResShiftSchedule(kappa=kappa)
    if name == "fit":
        return fit_exp_alpha(ResShiftSchedule(kappa=kappa), target="eta").schedule
    if name == "report":
        return ExpAlphaSchedule.report(kappa=kappa)
    raise ValueError(f"unknown schedule {name!r}; known schedules: {', '.join(SCHEDULES)}")


def profile_settings(profile: str, mode: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The training settings of ``profile``: its common settings, then those of ``mode`` (the
    profile's ``by_mode`` entry, e.g. the cpu profile's fine-tune recipe), then ``overrides``
    (``None`` values ignored)."""
    settings = dict(TRAIN_PROFILES[check_profile(profile)])
    by_mode = settings.pop("by_mode", {})
    if mode is not None:
        settings.update(by_mode.get(mode, {}))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return settings


def build_network(net: str, init: str | os.PathLike | None = None, *, loaded: Any = None) -> nn.Module:
    """A fresh network of the profile's kind, or the one stored in ``init`` (a kit checkpoint;
    ``loaded``: that file already read by :func:`~ctlib.nn.checkpoint.load_checkpoint`)."""
    from .nn.checkpoint import load_checkpoint
    from .nn.configs import BUNDLED_PIXEL, V1_UNET, build_unet

    if init is not None:
        loaded = loaded if loaded is not None else load_checkpoint(init)
        if type(loaded.model).__name__ != "UNetModelSwin":
            raise ValueError(f"{init} holds a {type(loaded.model).__name__}, not a UNetModelSwin denoiser network")
        return loaded.model
    if net in ("tiny", "bundled"):
        fresh = build_unet({**dict(BUNDLED_PIXEL), **TINY_PIXEL_OVERRIDES} if net == "tiny" else BUNDLED_PIXEL)
        # zero output layer (as the official init): with the residual wrapper a fresh model outputs y
        nn.init.zeros_(fresh.out[-1].weight)
        nn.init.zeros_(fresh.out[-1].bias)
        return fresh
    if net == "v1":
        return build_unet(V1_UNET)
    raise ValueError(f"unknown network kind {net!r}")


def one_step_psnr_validator(wrapper: Any, n_images: int = 4, seed: int = 0) -> Callable[[nn.Module], dict[str, float]]:
    """``validate(ema_net)``: mean PSNR-Y of the one-step prediction x0_hat(x_T, t = 1) on the first
    ``n_images`` bundled test images (bicubic LR; x_T's noise from one generator seeded ``seed``), and of
    the model's own LR upsampling (bicubic), for the CSV log."""
    from .data import load_bundled_test_set
    from .metrics import psnr
    from .pipeline import batch_noise, sample_conditioned, to_image, to_model_range

    test = load_bundled_test_set().subset(n_images)
    hr = test.hr

    def validate(ema_net: nn.Module) -> dict[str, float]:
        saved = wrapper.network
        wrapper.network = ema_net
        try:
            with torch.no_grad():  # one conditioning serves both images
                cond = wrapper.condition(to_model_range(test.lr.to(next(ema_net.parameters()).device)))
                x0_hat = sample_conditioned(cond, solver="x0_hat", nfe=1,
                                            noise=batch_noise(torch.Generator().manual_seed(seed)))
                sr, bic = to_image(cond.decode(x0_hat)), to_image(cond.decode(cond.y))
        finally:
            wrapper.network = saved
        return {"psnr_y_x0_hat_t1": float(psnr(sr.cpu(), hr, y_channel=True).mean()),
                "psnr_y_bicubic": float(psnr(bic.cpu(), hr, y_channel=True).mean())}

    return validate


def _config_settings(mode: str, settings: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """The :class:`TrainConfig` arguments (all but ``extra``) of a profile's settings."""
    return dict(
        mode=mode, iterations=settings["iterations"], batch_size=settings["batch_size"],
        micro_batch=settings["micro_batch"], lr=settings["lr"], warmup=settings["warmup"],
        lr_decay=settings.get("lr_decay", "constant"),
        ema_decay=settings["ema_decay"], grad_clip=settings.get("grad_clip"), seed=seed if seed is not None else 123456,
        log_every=settings["log_every"], val_every=settings["val_every"], ckpt_every=settings["ckpt_every"],
    )


def run_training(
    profile: str,
    mode: str,
    out_dir: str | os.PathLike,
    *,
    init: str | os.PathLike | None = None,
    official_unet: str | os.PathLike | None = None,
    official_vq: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    device: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    seed: int | None = None,
    official_configs: tuple[dict, dict] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Set up and run one training job of ``profile`` (the CLI's ``train`` command).

    Bundled profiles (smoke / cpu / gpu) train a pixel-space model on the bundled photos, from
    scratch or from ``init`` (a kit checkpoint, e.g. the shipped baseline for a continuous
    fine-tune).  ``paper`` starts from the official weights (``official_unet`` + ``official_vq``,
    VQ-f4 latent space) on the ImageNet-style folder ``data_dir`` with the Real-ESRGAN degradation.
    Under torchrun (``WORLD_SIZE > 1``) it joins the process group (gloo on CPU, nccl on CUDA).
    ``official_configs`` = (UNet config, VQ config) replaces the v1 architectures (for tests with
    small official-format weight files).
    """
    from .nn import ResShiftDenoiser
    from .nn.denoiser import build_official_denoiser

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    # everything is checked before the first expensive step: settings, device, run folder, every data file
    settings = profile_settings(profile, mode, **overrides)
    TrainConfig(**_config_settings(mode, settings, seed))  # raises ValueError on a bad setting
    PairSource([None], settings["crop_size"], settings["degradation"],  # the crop settings, before any file is read
               official_crop=settings.get("official_crop", False), min_scale=settings.get("min_scale", 1.0))
    if settings.get("kappa") is not None:
        check_positive(settings["kappa"], "kappa")
    if settings.get("schedule") is not None and settings["schedule"] not in SCHEDULES:
        raise ValueError(f"unknown schedule {settings['schedule']!r}; known schedules: {', '.join(SCHEDULES)}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = str(check_device(device or ("cuda" if torch.cuda.is_available() else "cpu"), "--device"))
    if dev == "cuda" and world > 1:
        dev = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    _check_run_folder(Path(out_dir), resume, overwrite, init)
    for name, path in (("--init", init), ("--official-unet", official_unet), ("--official-vq", official_vq)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{name}: file not found: {path}")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if dev.startswith("cuda") else "gloo")

    # data: every file is decoded and measured now, so that none can stop the run halfway
    official_crop = settings.get("official_crop", False)
    min_side = 2 if official_crop else settings["crop_size"]  # the official crop reflect-pads small images
    if data_dir is not None:
        from .data import list_images
        from .data.datasets import check_training_images

        folder = Path(data_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder not found: {folder}")
        images: Any = list_images(folder, recursive=True)
        if not images:
            raise ValueError(f"no images found in {folder} (searched recursively)")
        bad = check_training_images(images, min_side)
        if bad:
            raise TrainingDataError(bad, folder)
    elif profile == "paper":
        raise ValueError("the paper profile needs --data DIR (an ImageNet-style folder of HR images)")
    else:
        from .data import load_bundled_train_images

        images = load_bundled_train_images()
        small = [i for i, t in enumerate(images) if min(t.shape[-2:]) < min_side]
        if small:
            raise ValueError(f"--crop-size {settings['crop_size']} is larger than {len(small)} of the bundled "
                             f"photos (the smallest side is {min(min(t.shape[-2:]) for t in images)} px)")
    source = PairSource(images, settings["crop_size"], settings["degradation"],
                        official_crop=official_crop, min_scale=settings.get("min_scale", 1.0))

    # network (a fresh one is initialised from the seed: every process and every rerun agree)
    torch.manual_seed(seed if seed is not None else 123456)
    if official_unet is not None or official_vq is not None:
        if official_unet is None or official_vq is None:
            raise ValueError("--official-unet and --official-vq go together (the UNet and its VQ-f4 autoencoder)")
        kw: dict[str, Any] = {} if official_configs is None else {"unet_config": official_configs[0],
                                                                  "vq_config": official_configs[1]}
        if settings.get("kappa") is not None or settings.get("schedule") is not None:
            kw["schedule"] = make_schedule(settings.get("schedule") or "resshift", settings.get("kappa"))
        wrapper = build_official_denoiser(official_unet, official_vq, device="cpu", **kw)
        wrapper.network.train()
    elif settings["net"] == "v1":
        raise ValueError("the paper profile starts from the official weights: pass --official-unet and --official-vq")
    else:
        from .nn.checkpoint import load_checkpoint

        loaded = load_checkpoint(init) if init is not None else None  # read once: network, wrapper, schedule
        residual = settings.get("residual", True)
        if loaded is not None:
            residual = bool((loaded.denoiser or {}).get("residual", False))
        # kappa: the caller's, else the init checkpoint's (a fine-tune keeps its model's schedule), else the profile's
        kappa = overrides.get("kappa")
        if kappa is None and loaded is not None and loaded.schedule is not None:
            kappa = loaded.schedule.kappa
        if kappa is None:
            kappa = settings.get("kappa")
        # the schedule: the caller's or the profile's for this mode, else the init checkpoint's (at its
        # kappa or the caller's), else the official one
        if settings.get("schedule") is None and loaded is not None and loaded.schedule is not None:
            schedule = schedule_from_dict({**loaded.schedule.to_dict(), "kappa": kappa})
        else:
            schedule = make_schedule(settings.get("schedule") or "resshift", kappa)
        wrapper = ResShiftDenoiser(build_network(settings["net"], init, loaded=loaded), schedule, lq="upsampled",
                                   residual=residual)

    config = TrainConfig(
        **_config_settings(mode, settings, seed),
        extra={"profile": profile, "crop_size": settings["crop_size"], "degradation": settings["degradation"],
               "min_scale": source.min_scale,
               "kappa": float(wrapper.schedule.kappa), "schedule": wrapper.schedule.to_dict(),
               "init": str(init) if init else None, "official_unet": str(official_unet) if official_unet else None,
               "data": str(data_dir) if data_dir else "bundled"},
    )
    validate = one_step_psnr_validator(wrapper) if settings["val_every"] and wrapper.space == "pixel" else None
    return train(wrapper, wrapper.schedule, source, config, out_dir, device=dev, resume=resume, overwrite=overwrite,
                 validate=validate, progress=progress, model_meta={"profile": profile, "mode": mode})


def export_model(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                 net_config: dict | None = None) -> Path:
    """Write the EMA weights of ``run_dir/last.pt`` as a kit checkpoint (``run_dir/model.pt`` by
    default) without waiting for the run to finish; ``net_config`` is needed only for ``last.pt``
    files written before the network config was stored in them."""
    from .nn.checkpoint import save_checkpoint
    from .nn.configs import build_unet

    run_dir = Path(run_dir)
    saved = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    cfg = saved.get("net_config") or net_config
    if not cfg:
        raise ValueError(f"{run_dir / 'last.pt'} stores no network config; pass net_config=")
    net = build_unet(cfg)
    net.load_state_dict(saved["ema"])
    meta = {"train": saved["config"], "steps": saved["step"], "exported_from": str(run_dir / "last.pt")}
    denoiser = saved.get("denoiser") or {"latent_scaling": False, "clamp_x0": True, "lq": "upsampled", "sf": 4,
                                         "lr_multiple": None, "scale_factor": 1.0}
    return save_checkpoint(Path(out) if out else run_dir / "model.pt", net, schedule=schedule_from_dict(saved["schedule"]),
                           denoiser=denoiser, meta=meta)


def read_log(path: str | os.PathLike) -> dict[str, Any]:
    """A run's ``log.csv`` as arrays: ``step``, ``loss``, ``lr``, ``seconds`` and ``val`` (a list of dicts,
    empty where no validation ran)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, Any] = {k: np.array([float(r[k]) for r in rows]) for k in ("step", "loss", "lr", "seconds")}
    out["val"] = [json.loads(r["val"]) if r.get("val") else {} for r in rows]
    return out
