r"""From a network (+ optional frozen autoencoder) to a denoiser ``denoiser(x_t, t, y) -> x0_hat``.

The contract (docs/design.md §3): tensors ``(B, C, H, W)`` in the *state space* (pixels, or VQ latents),
``t`` a float tensor ``(B,)`` in ``(0, 1]`` with ``t = k/T`` the official step ``k`` (``t = 1`` is
the most noise).  :class:`ResShiftDenoiser` owns everything between that contract and the raw
network:

* **time**: the network's index is ``T t - 1`` (a float for continuous ``t``; values within 1e-6 of
  an integer are snapped to it, so ``t = k/T`` feeds exactly the official integer index);
* **input scaling**: the network sees ``scale_input(x_t, eta(t), kappa, latent)`` (latent
  ``x/sqrt(kappa^2 eta + 1)``, pixel ``x/(3 kappa sqrt(eta) + 1)``, ``ctlib.diffusion.scale_input``);
* **LR conditioning**: ``lq="lr"`` passes the raw LR image in [-1, 1] (official v1: the LR has the
  latent's size), ``lq="upsampled"`` passes the bicubic-upsampled LR (the kit's pixel models,
  ``lq_size == image_size``);
* **padding**: the LR is reflect-padded at the bottom/right to the multiple the network needs
  (v1: 64 LR pixels, as the official sampler's ``desired_min_size``) and :meth:`Conditioning.decode`
  crops the result back;
* **output**: the network predicts ``x0``; optionally clamped to [-1, 1] (official pixel path:
  clamp; latent path: no clamp);
* **first stage**: ``y`` is ``encode(bicubic_x4(lr))`` (torch bicubic, ``align_corners=False``, no
  antialias, as the official ``encode_first_stage``), ``decode`` maps the final state to an image
  (identity in pixel space).

The LR image is not part of the three-argument contract, so conditioning is a small object::

    cond = denoiser.condition(lr)            # lr: (B, 3, h, w) in [-1, 1]
    x = sample(cond, cond.y, schedule=denoiser.schedule, solver="euler", nfe=15)
    image = cond.decode(x)                   # (B, 3, 4h, 4w), cropped back

``cond(x_t, t, y)`` satisfies the contract; ``denoiser(x_t, t, lq)`` is the same with an explicit
network condition (what training uses).  Inputs are validated: channel counts, spatial sizes,
NaN/inf, and ``t`` in (0, 1].
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_device
from ..diffusion import scale_input
from ..schedule import ResShiftSchedule, Schedule
from .checkpoint import load_checkpoint, load_weights
from .configs import V1_UNET, V1_VQF4, build_unet, build_vq
from .fast import accelerate

__all__ = [
    "ResShiftDenoiser",
    "Conditioning",
    "build_official_denoiser",
    "denoiser_from_checkpoint",
    "time_to_index",
    "reflect_pad",
    "upsample_lr",
]

LQ_MODES = ("lr", "upsampled")


def time_to_index(t: torch.Tensor, T: int, snap: float = 1e-6) -> torch.Tensor:
    """Official network index ``T t - 1`` in float64; within ``snap`` of an integer it is that integer."""
    index = t.to(torch.float64) * T - 1.0
    nearest = torch.round(index)
    return torch.where((index - nearest).abs() < snap, nearest, index)


def reflect_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Reflect-pad ``x`` at the bottom by ``pad_h`` and at the right by ``pad_w`` rows/columns.

    Equals ``F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")`` (what the official sampler does) when
    the pad is smaller than the side; larger pads are done in several reflect steps.
    """
    while pad_h > 0 or pad_w > 0:
        step_h = min(pad_h, x.shape[-2] - 1)
        step_w = min(pad_w, x.shape[-1] - 1)
        if (pad_h and step_h <= 0) or (pad_w and step_w <= 0):
            raise ValueError(f"cannot reflect-pad an image with a side of 1 pixel (shape {tuple(x.shape)})")
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x


def upsample_lr(lr: torch.Tensor, sf: int) -> torch.Tensor:
    """The official bicubic x``sf`` upsampling of the LR image: ``F.interpolate(mode="bicubic",
    align_corners=False)`` without antialiasing (cubic coefficient -0.75, borders clamped)."""
    return F.interpolate(lr, scale_factor=sf, mode="bicubic", align_corners=False)


def _check_finite(x: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_image(x: Any, name: str, channels: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got {x.shape[1]} (shape {tuple(x.shape)})")


class ResShiftDenoiser(nn.Module):
    """Network (+ optional frozen first stage) -> x0 denoiser (see the module docstring).

    Parameters
    ----------
    network:
        Called as ``network(x_in, index, lq=lq)`` and returns ``x0_hat``; e.g. :class:`UNetModelSwin`.
        Its ``size_multiple`` attribute (if any) decides the padding; ``in_channels`` the state's
        channel count (default: that of the autoencoder's latent, or 3).
    schedule:
        Gives ``T``, ``kappa`` and ``eta(t)``.
    autoencoder:
        ``None`` for pixel space, or a module with ``encode``/``decode`` (a :class:`VQModel`); it is
        frozen (eval, no gradients).
    latent_scaling:
        Which official input normalisation to use (default: True iff there is an autoencoder).
    clamp_x0:
        Clamp x0_hat to [-1, 1] (default: True iff pixel space, as the official sampler).
    lq:
        ``"lr"`` (official: the raw LR image) or ``"upsampled"`` (the bicubic-upsampled LR).
    sf:
        Super-resolution factor (4).
    lr_multiple:
        Pad the LR to a multiple of this many pixels (default: what the network needs).
    scale_factor:
        Latent scale of the official diffusion (1.0 for v1): ``y = scale_factor * encode(...)``.
    residual:
        ``x0_hat = lq + network(...)``: a global residual on the upsampled LR (only with
        ``lq="upsampled"`` in pixel space, where ``lq`` is ``y``).  The kit's small pixel models use
        it (as EDSR-style SR networks do): with the official zero-initialised output layer a fresh
        network starts at the bicubic image instead of at 0.  The official model predicts x0
        directly (False).
    """

    def __init__(
        self,
        network: nn.Module | Callable[..., torch.Tensor],
        schedule: Schedule,
        *,
        autoencoder: nn.Module | None = None,
        latent_scaling: bool | None = None,
        clamp_x0: bool | None = None,
        lq: str = "lr",
        sf: int = 4,
        lr_multiple: int | None = None,
        scale_factor: float = 1.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if residual and (lq != "upsampled" or autoencoder is not None):
            raise ValueError("residual=True needs lq='upsampled' in pixel space (x0_hat = upsampled LR + output)")
        self.residual = bool(residual)
        if lq not in LQ_MODES:
            raise ValueError(f"lq must be one of {LQ_MODES}, got {lq!r}")
        if not isinstance(sf, int) or sf < 1:
            raise ValueError(f"sf must be a positive integer, got {sf!r}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a ctlib Schedule, got {type(schedule).__name__}")
        self.network = network
        self.autoencoder = autoencoder
        if isinstance(autoencoder, nn.Module):
            autoencoder.eval()
            autoencoder.requires_grad_(False)
        self.schedule = schedule
        self.latent_scaling = autoencoder is not None if latent_scaling is None else bool(latent_scaling)
        self.clamp_x0 = autoencoder is None if clamp_x0 is None else bool(clamp_x0)
        self.lq_mode, self.sf, self.scale_factor = lq, sf, float(scale_factor)
        self.first_stage_factor = int(getattr(autoencoder, "downsample_factor", 1)) if autoencoder is not None else 1
        default_channels = getattr(autoencoder, "embed_dim", 3) if autoencoder is not None else 3
        self.state_channels = int(getattr(network, "in_channels", default_channels))
        self.lr_channels = 3
        self.lr_multiple = self._lr_multiple(lr_multiple)

    def train(self, mode: bool = True) -> ResShiftDenoiser:
        """Set the network's mode; the frozen autoencoder always stays in eval mode."""
        super().train(mode)
        if isinstance(self.autoencoder, nn.Module):
            self.autoencoder.eval()
        return self

    # -- settings ---------------------------------------------------------------------------
    def _lr_multiple(self, requested: int | None) -> int:
        """LR multiple that makes the state size (LR * sf / first_stage_factor) a multiple of the
        network's ``size_multiple`` (and an integer)."""
        net_multiple = int(getattr(self.network, "size_multiple", 1))
        # state side = lr side * sf / f must be an integer multiple of net_multiple
        need = net_multiple * self.first_stage_factor
        auto = need // math.gcd(need, self.sf)
        if requested is None:
            return auto
        if not isinstance(requested, int) or requested < 1 or requested % auto:
            raise ValueError(f"lr_multiple must be a positive multiple of {auto} for this network, got {requested!r}")
        return requested

    @property
    def space(self) -> str:
        return "pixel" if self.autoencoder is None else "latent"

    def settings(self) -> dict[str, Any]:
        """The wrapper settings stored in checkpoints (``save_checkpoint(..., denoiser=...)``)."""
        return {
            "latent_scaling": self.latent_scaling,
            "clamp_x0": self.clamp_x0,
            "lq": self.lq_mode,
            "sf": self.sf,
            "lr_multiple": self.lr_multiple,
            "scale_factor": self.scale_factor,
            "residual": self.residual,
        }

    @property
    def network_dtype(self) -> torch.dtype | None:
        """The network's compute dtype (its ``dtype`` attribute or first parameter's dtype); None
        for a network without parameters (inputs then keep the state's dtype)."""
        dtype = getattr(self.network, "dtype", None)
        if isinstance(dtype, torch.dtype):
            return dtype
        params = list(self.network.parameters()) if isinstance(self.network, nn.Module) else []
        return params[0].dtype if params else None

    # -- first stage ------------------------------------------------------------------------
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Image in [-1, 1] -> state (``scale_factor * encode(image)``; identity in pixel space)."""
        if self.autoencoder is None:
            return image
        ae_dtype = getattr(self.autoencoder, "dtype", image.dtype)
        with torch.no_grad():
            z = self.autoencoder.encode(image.to(ae_dtype if isinstance(ae_dtype, torch.dtype) else image.dtype))
        return (z * self.scale_factor).to(image.dtype)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """State -> image (``decode(x / scale_factor)``, which quantises for a VQ model; identity in
        pixel space).  No cropping: use :meth:`Conditioning.decode` to undo the padding."""
        if self.autoencoder is None:
            return x
        ae_dtype = getattr(self.autoencoder, "dtype", x.dtype)
        with torch.no_grad():
            out = self.autoencoder.decode((x / self.scale_factor).to(ae_dtype if isinstance(ae_dtype, torch.dtype) else x.dtype))
        return out.to(x.dtype)

    # -- conditioning -----------------------------------------------------------------------
    def condition(self, lr: torch.Tensor) -> Conditioning:
        """Prepare the LR image ``(B, 3, h, w)`` in [-1, 1]: pad, upsample, encode.

        Returns a :class:`Conditioning` whose ``y`` is the state-space start ``y`` (padded size)
        and which is itself the denoiser ``cond(x_t, t, y)``.
        """
        _check_image(lr, "lr", self.lr_channels)
        _check_finite(lr, "lr")
        h, w = lr.shape[-2:]
        m = self.lr_multiple
        padded = reflect_pad(lr, -h % m, -w % m)
        upsampled = upsample_lr(padded, self.sf)
        y = self.encode(upsampled)
        lq = padded if self.lq_mode == "lr" else upsampled
        return Conditioning(denoiser=self, y=y, lq=lq, lr_size=(h, w), out_size=(h * self.sf, w * self.sf))

    # -- the denoiser -----------------------------------------------------------------------
    def check_time(self, t: Any, batch: int, device: torch.device) -> torch.Tensor:
        """``t`` as a float64 tensor (B,), validated to lie in (0, 1]."""
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            t = torch.full((batch,), float(t), dtype=torch.float64, device=device)
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"t must be a float tensor of shape ({batch},), got {type(t).__name__}")
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t must have shape ({batch},), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"t must be a floating-point tensor (continuous time in (0, 1]), got {t.dtype}")
        if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()) or bool((t > 1 + 1e-12).any()):
            raise ValueError(f"t must lie in (0, 1], got values in [{float(t.min()):.6g}, {float(t.max()):.6g}]")
        return t.to(device=device, dtype=torch.float64).clamp(max=1.0)

    def network_input(self, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the network receives for ``x_t`` at times ``t``: (scaled x_t, float index T t - 1)."""
        eta = self.schedule.eta(t)
        x_in = scale_input(x_t, eta, self.schedule.kappa, latent=self.latent_scaling)
        return x_in, time_to_index(t, self.schedule.T)

    def network_x0(self, x_t: torch.Tensor, t: torch.Tensor, lq: torch.Tensor,
                   network: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
        """The network's x0 prediction, unchecked and unclamped (what training differentiates):
        ``network(*network_input(x_t, t), lq=lq)`` (+ ``lq`` with ``residual``).  ``network``
        replaces ``self.network`` (e.g. its DistributedDataParallel wrapper)."""
        x_in, index = self.network_input(x_t, t)
        dtype = self.network_dtype or x_t.dtype
        net = self.network if network is None else network
        out = net(x_in.to(dtype), index.to(x_t.device), lq=lq.to(dtype)).to(x_t.dtype)
        return out + lq.to(out.dtype) if self.residual else out

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | float, lq: torch.Tensor) -> torch.Tensor:
        """x0_hat for state ``x_t`` (B, C, H, W) at times ``t`` (B,) given the network condition ``lq``
        (the padded LR, or its upsampled version, as :meth:`condition` prepares it)."""
        _check_image(x_t, "x_t", self.state_channels)
        _check_finite(x_t, "x_t")
        if not isinstance(lq, torch.Tensor) or lq.ndim != 4 or lq.shape[0] != x_t.shape[0]:
            raise ValueError(f"lq must be a (B, C, h, w) tensor with B = {x_t.shape[0]}, got {getattr(lq, 'shape', lq)}")
        t = self.check_time(t, x_t.shape[0], x_t.device)
        x0_hat = self.network_x0(x_t, t, lq)
        if x0_hat.shape != x_t.shape:
            raise ValueError(f"the network returned shape {tuple(x0_hat.shape)} for x_t of shape {tuple(x_t.shape)}")
        return x0_hat.clamp(-1.0, 1.0) if self.clamp_x0 else x0_hat


@dataclass(eq=False)
class Conditioning:
    """A denoiser bound to one batch of LR images (made by :meth:`ResShiftDenoiser.condition`).

    ``y``: the state-space ``y`` (padded); ``lq``: what the network is conditioned on;
    ``lr_size`` / ``out_size``: the unpadded LR and output sizes.
    """

    denoiser: ResShiftDenoiser
    y: torch.Tensor
    lq: torch.Tensor
    lr_size: tuple[int, int]
    out_size: tuple[int, int]

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor | float, y: torch.Tensor | None = None) -> torch.Tensor:
        """x0_hat = denoiser(x_t, t, y); ``y`` must be this conditioning's ``y`` (it is checked for
        shape and finiteness; the network itself is conditioned on ``lq``)."""
        _check_image(x_t, "x_t", self.denoiser.state_channels)
        if tuple(x_t.shape) != tuple(self.y.shape):
            raise ValueError(
                f"x_t must have the shape of cond.y {tuple(self.y.shape)} (the padded state), got {tuple(x_t.shape)}"
            )
        if y is not None:
            if not isinstance(y, torch.Tensor) or tuple(y.shape) != tuple(self.y.shape):
                raise ValueError(f"y must have shape {tuple(self.y.shape)}, got {getattr(y, 'shape', y)}")
            _check_finite(y, "y")
        return self.denoiser(x_t, t, self.lq)

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        """Remove the padding from an output-resolution image."""
        return image[..., : self.out_size[0], : self.out_size[1]]

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Final state -> image (B, 3, sf h, sf w) in the network's range, padding removed."""
        return self.crop(self.denoiser.decode(x))


# ---------------------------------------------------------------------------------------------
# builders
# ---------------------------------------------------------------------------------------------
def build_official_denoiser(
    unet_path: str | os.PathLike,
    autoencoder_path: str | os.PathLike,
    *,
    schedule: Schedule | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    unet_config: Mapping[str, Any] = V1_UNET,
    vq_config: Mapping[str, Any] = V1_VQF4,
    fast: bool = True,
) -> ResShiftDenoiser:
    """The official realsr x4 v1 model as a denoiser, from ``resshift_realsrx4_s15_v1.pth`` and
    ``autoencoder_vq_f4.pth`` (from the ResShift GitHub releases).

    Latent space (VQ-f4, unquantised latents, decode quantises), latent input scaling, no clamp,
    the raw LR as the network's ``lq``, LR padded to multiples of 64 (the official sampler's
    ``desired_min_size``; more if the network needs it), ``ResShiftSchedule()`` (T=15, kappa=2)
    unless another schedule is given.  ``unet_config`` / ``vq_config`` default to the v1 configs.
    ``fast`` (default True): the UNet and the autoencoder get the inference fast path
    (:func:`ctlib.nn.fast.accelerate`; same weights, same results to float rounding, used only
    without autograd); ``fast=False`` keeps the plain official port.
    """
    device = check_device(device)  # before reading 500 MB of weights
    network = load_weights(build_unet(unet_config), unet_path).to(device=device, dtype=dtype).eval()
    autoencoder = load_weights(build_vq(vq_config), autoencoder_path).to(device=device, dtype=dtype).eval()
    if fast:
        accelerate(network)
        accelerate(autoencoder)
    wrapper = ResShiftDenoiser(
        network, schedule or ResShiftSchedule(), autoencoder=autoencoder, latent_scaling=True, clamp_x0=False, lq="lr", sf=4
    )
    wrapper.lr_multiple = math.lcm(wrapper.lr_multiple, 64)
    return wrapper


def denoiser_from_checkpoint(
    path: str | os.PathLike,
    *,
    autoencoder: nn.Module | str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    fast: bool = True,
) -> ResShiftDenoiser:
    """A denoiser from the kit's own checkpoint (:func:`~ctlib.nn.checkpoint.save_checkpoint` with a
    schedule and, ideally, ``denoiser=wrapper.settings()``).

    ``autoencoder``: for latent models, a module or the path of the official VQ-f4 weights (or a
    kit checkpoint of a VQModel).  Without stored settings the pixel-space defaults apply
    (``lq="upsampled"`` when the network's ``lq_size`` equals its ``image_size``).
    ``fast`` (default True): the network and the autoencoder get the inference fast path
    (:func:`ctlib.nn.fast.accelerate`; same weights, same results to float rounding, used only
    without autograd); ``fast=False`` keeps the plain modules.
    """
    device = check_device(device)  # a device this machine lacks is named as such, not as a bad file
    ckpt = load_checkpoint(path, map_location=device)
    if ckpt.schedule is None:
        raise ValueError(f"{path} stores no schedule; save it with save_checkpoint(..., schedule=...)")
    network = ckpt.model
    if dtype is not None:
        network = network.to(dtype=dtype)
    ae: nn.Module | None
    if autoencoder is None or isinstance(autoencoder, nn.Module):
        ae = autoencoder
    else:
        try:
            ae = load_checkpoint(autoencoder, map_location=device).model
        except ValueError:
            ae = load_weights(build_vq(V1_VQF4), autoencoder)
    if ae is not None:
        ae = ae.to(device=device, dtype=dtype) if dtype is not None else ae.to(device)
    if fast:
        accelerate(network)
        if isinstance(ae, nn.Module):
            accelerate(ae)
    settings: Mapping[str, Any] = ckpt.denoiser or {}
    if not settings:
        same = getattr(network, "lq_size", None) == getattr(network, "image_size", None)
        settings = {"lq": "upsampled" if (ae is None and same) else "lr"}
    return ResShiftDenoiser(network, ckpt.schedule, autoencoder=ae, **dict(settings))
