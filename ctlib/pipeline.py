r"""From LR images to SR images: the one path every command takes.

``evaluate`` (a table row), ``upscale`` (a batch of tiles), the training validator (the one-step
prediction), the notebooks, the benchmarks and the scripts all turn LR images into SR images here.
For a batch ``lr`` (B, 3, h, w) with values in [0, 1] and a model from :func:`load_model`:

1. ``cond = model.condition(to_model_range(lr))`` -- pad, upsample, encode: ``cond.y`` is the state
   of the LR image (``x`` at eta = 0 has mean ``x0``; at t = 1 it is centred on ``y``), and ``cond``
   is the denoiser ``cond(x_t, t, y)`` bound to this batch;
2. ``x_T = prior_sample(y, eta(1), kappa, noise=eps)`` with ``eps ~ N(0, I)`` from a *noise source*;
3. ``x0 = ctlib.sample(cond, y, solver=..., nfe=..., rho=..., x_T=x_T, noise=step_noise)``, or one of
   the two rows that are not a solver of :mod:`ctlib.samplers`: ``"x0_hat"`` (one evaluation,
   ``x0_hat(x_T, t = 1)``) and ``"exp1_levels"`` (exp1 on the discrete model's trained levels,
   :func:`ctlib.grids.levels_grid`);
4. ``to_image(cond.decode(x0))`` -- back to pixels and to [0, 1]: ``(clamp(x, -1, 1) + 1) / 2``.

A noise source is a callable ``noise(y, n_steps) -> (eps, step_noise)`` that returns standard normal
tensors shaped like ``y``: ``eps`` for x_T and ``n_steps`` tensors for the stochastic solvers' steps
(None when ``n_steps`` is 0).  :func:`image_noise` is the evaluation's convention (image ``i`` of a
set draws eps, then its step noise, from its own generator, so an image's result does not depend on
the batch it is in); :func:`batch_noise` draws from one generator (the training validator);
``ctlib.upscale`` draws noise by image coordinates, so that overlapping tiles agree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ._checks import check_device
from .diffusion import prior_sample
from .files import REPO_ROOT, repo_path
from .grids import levels_grid
from .samplers import SOLVERS, STOCHASTIC_SOLVERS, sample, sample_exp1, solver_grid

__all__ = [
    "DEFAULT_MODEL",
    "ROW_SOLVERS",
    "NoiseSource",
    "load_model",
    "to_model_range",
    "to_image",
    "image_generator",
    "image_noise",
    "batch_noise",
    "check_sampler",
    "n_step_noise",
    "seeded_prior",
    "super_resolve",
    "sample_conditioned",
    "upsample",
]

#: The model used when none is named: the shipped continuously fine-tuned pixel model.
DEFAULT_MODEL = "data/checkpoints/continuous_finetune.pt"
#: What a model-based row may run: every solver of :mod:`ctlib.samplers`, the one-step prediction
#: and exp1 on the trained levels.
ROW_SOLVERS: tuple[str, ...] = (*SOLVERS, "x0_hat", "exp1_levels")

NoiseSource = Callable[[torch.Tensor, int], tuple[torch.Tensor, "list[torch.Tensor] | None"]]


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------
def _where(given: str | os.PathLike) -> str:
    """Where a relative path was looked for (the working directory, then the repository)."""
    return "" if Path(given).is_absolute() else f" (looked in {Path.cwd()} and in {REPO_ROOT})"


def load_model(
    source: Any = None,
    *,
    autoencoder: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    fast: bool = True,
):
    """The denoiser (:class:`~ctlib.nn.ResShiftDenoiser`, eval mode, on ``device``) of ``source``:

    * None: :data:`DEFAULT_MODEL`, the shipped continuous fine-tune;
    * a kit checkpoint (a UNetModelSwin saved by training with its schedule; ``autoencoder`` for a
      latent model);
    * the official weights: ``source`` = ``resshift_realsrx4_s15_v1.pth`` with ``autoencoder`` =
      ``autoencoder_vq_f4.pth``;
    * a ResShiftDenoiser, passed through.

    Relative paths that do not exist from the working directory are looked up in the repository
    (so a notebook finds ``data/checkpoints/...``).  ``fast`` (default True): the inference fast
    path of :mod:`ctlib.nn.fast`; ``fast=False`` the plain port.  Errors name the file and say
    what it holds instead (e.g. an autoencoder, official weights without their autoencoder).
    """
    from .nn import ResShiftDenoiser, build_official_denoiser, denoiser_from_checkpoint, load_checkpoint

    if isinstance(source, ResShiftDenoiser):
        if autoencoder is not None:
            raise ValueError("autoencoder is only used with a checkpoint path, not with a loaded denoiser")
        return source.eval()
    if source is not None and not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"a model must be a checkpoint path or a ResShiftDenoiser, got {type(source).__name__}")
    device = check_device(device)
    given = DEFAULT_MODEL if source is None else source
    path = repo_path(given)
    if not path.is_file():
        hint = (" (the shipped model; train one with `python -m ctlib train` or name a checkpoint)"
                if source is None else "")
        raise FileNotFoundError(f"checkpoint not found: {given}{_where(given)}{hint}")
    ae_path = None if autoencoder is None else repo_path(autoencoder)
    if ae_path is not None and not ae_path.is_file():
        raise FileNotFoundError(f"autoencoder weight file not found: {autoencoder}{_where(autoencoder)}")
    try:
        ckpt = load_checkpoint(path)
    except ValueError as err:
        if "not a ctlib checkpoint" not in str(err):
            raise
        if ae_path is None:
            raise ValueError(f"{path} is not a checkpoint saved by the kit; if it holds the official ResShift weights "
                             "(resshift_realsrx4_s15_v1.pth), also give the official autoencoder (autoencoder_vq_f4.pth): "
                             "evaluate --autoencoder, upscale --official-unet/--official-vq, or "
                             "load_model(..., autoencoder=...)") from None
        return build_official_denoiser(path, ae_path, device=device, fast=fast).eval()
    kind = type(ckpt.model).__name__
    if kind != "UNetModelSwin":
        raise ValueError(
            f"{path} holds a {kind} checkpoint"
            + (" (an autoencoder)" if kind == "VQModel" else "")
            + ", not a denoiser network (UNetModelSwin); pass a checkpoint saved by training"
        )
    if ckpt.schedule is None:
        raise ValueError(f"{path} stores no schedule, so its times cannot be mapped; save it with a schedule")
    return denoiser_from_checkpoint(path, autoencoder=ae_path, device=device, fast=fast).eval()


# ---------------------------------------------------------------------------------------------
# image ranges
# ---------------------------------------------------------------------------------------------
def to_model_range(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> the model's [-1, 1]."""
    return image * 2 - 1


def to_image(x: torch.Tensor) -> torch.Tensor:
    """The model's [-1, 1] (decoded) -> [0, 1] images: ``(clamp(x, -1, 1) + 1) / 2``."""
    return (x.clamp(-1, 1) + 1) / 2


# ---------------------------------------------------------------------------------------------
# noise
# ---------------------------------------------------------------------------------------------
def image_generator(index: int, seed: int = 0) -> torch.Generator:
    """The generator of image ``index``: ``torch.Generator().manual_seed(index + 1_000_000 * seed)``."""
    return torch.Generator().manual_seed(int(index) + 1_000_000 * int(seed))


def image_noise(indices: Sequence[int], seed: int = 0) -> NoiseSource:
    """The evaluation's noise: image ``indices[b]`` draws ``eps`` (the shape of one image's state),
    then its ``n_steps`` step noises in one draw, from :func:`image_generator`."""

    def noise(y: torch.Tensor, n_steps: int) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        if len(indices) != y.shape[0]:
            raise ValueError(f"one index per image: got {len(indices)} indices for a batch of {y.shape[0]}")
        shape = tuple(y.shape[1:])
        eps, steps = [], []
        for i in indices:
            g = image_generator(i, seed)
            eps.append(torch.randn(shape, generator=g))
            if n_steps:
                steps.append(torch.randn((n_steps, *shape), generator=g))
        eps_t = torch.stack(eps).to(device=y.device, dtype=y.dtype)
        if not n_steps:
            return eps_t, None
        return eps_t, [torch.stack([s[k] for s in steps]).to(device=y.device, dtype=y.dtype) for k in range(n_steps)]

    return noise


def batch_noise(generator: torch.Generator) -> NoiseSource:
    """Noise for the whole batch from one CPU ``generator`` (eps first, then the step noises)."""

    def noise(y: torch.Tensor, n_steps: int) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        eps = torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
        steps = [torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device) for _ in range(n_steps)]
        return eps, steps or None

    return noise


# ---------------------------------------------------------------------------------------------
# sampler settings
# ---------------------------------------------------------------------------------------------
def check_sampler(solver: str, nfe: int, rho: float, T: int) -> None:
    """Raise ValueError when ``solver`` / ``nfe`` / ``rho`` cannot run with ``T`` trained levels."""
    if solver not in ROW_SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; known: {', '.join(ROW_SOLVERS)}")
    if solver == "x0_hat":
        if nfe != 1:
            raise ValueError(f"x0_hat is one network evaluation: nfe must be 1, got {nfe}")
    elif solver == "exp1_levels":
        levels_grid(nfe, T)
    else:
        solver_grid(solver, nfe, rho, T)


def n_step_noise(solver: str, nfe: int, rho: float, T: int) -> int:
    """How many step noises a run draws: one per step but the last for the stochastic solvers, else 0."""
    if solver not in STOCHASTIC_SOLVERS:
        return 0
    return len(solver_grid(solver, nfe, rho, T)) - 2


def seeded_prior(cond: Any, indices: Sequence[int], seed: int = 0) -> torch.Tensor:
    """``x_T = y + kappa sqrt(eta(1)) eps`` of a conditioned batch, ``eps`` from :func:`image_noise`
    (the start of every table row)."""
    eps, _ = image_noise(indices, seed)(cond.y, 0)
    schedule = cond.denoiser.schedule
    return prior_sample(cond.y, float(schedule.eta(1.0)), schedule.kappa, noise=eps)


# ---------------------------------------------------------------------------------------------
# the path
# ---------------------------------------------------------------------------------------------
def sample_conditioned(
    cond: Any,
    *,
    solver: str,
    nfe: int,
    rho: float = 1.0,
    noise: NoiseSource,
    final_step: str | None = None,
) -> torch.Tensor:
    """Steps 2-3 for a conditioned batch: the final state ``x0`` (not decoded)."""
    schedule = cond.denoiser.schedule
    T = int(schedule.T)
    check_sampler(solver, nfe, rho, T)
    eps, step_noise = noise(cond.y, n_step_noise(solver, nfe, rho, T))
    x_T = prior_sample(cond.y, float(schedule.eta(1.0)), schedule.kappa, noise=eps)
    if solver == "x0_hat":
        return cond(x_T, torch.ones(x_T.shape[0], dtype=torch.float64, device=x_T.device), cond.y)
    if solver == "exp1_levels":
        return sample_exp1(cond, x_T, cond.y, levels_grid(nfe, T), schedule=schedule)
    return sample(cond, cond.y, schedule=schedule, solver=solver, nfe=nfe, rho=rho, x_T=x_T, noise=step_noise,
                  final_step=final_step)


def _device(model: Any) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


def upsample(model: Any, lr: torch.Tensor) -> torch.Tensor:
    """The model's own upsampling of ``lr`` (bicubic x sf; for a latent model through the autoencoder)
    as [0, 1] images: the state ``y`` decoded, the "bicubic" reference of a model."""
    with torch.no_grad():
        cond = model.condition(to_model_range(lr.to(_device(model))))
        return to_image(cond.decode(cond.y))


def super_resolve(
    model: Any,
    lr: torch.Tensor,
    *,
    solver: str,
    nfe: int,
    rho: float = 1.0,
    noise: NoiseSource | None = None,
    final_step: str | None = None,
) -> torch.Tensor:
    """SR images (B, 3, sf h, sf w) in [0, 1], on the model's device, of LR images ``lr`` (B, 3, h, w)
    in [0, 1] (steps 1-4 of the module docstring; ``torch.no_grad``).

    ``noise``: a noise source (default :func:`image_noise` of images 0..B-1, seed 0).
    ``final_step``: as :func:`ctlib.sample`.
    """
    with torch.no_grad():
        cond = model.condition(to_model_range(lr.to(_device(model))))
        x0 = sample_conditioned(cond, solver=solver, nfe=nfe, rho=rho,
                                noise=noise if noise is not None else image_noise(range(lr.shape[0])),
                                final_step=final_step)
        return to_image(cond.decode(x0))

