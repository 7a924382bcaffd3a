"""The Real-ESRGAN degradation's parameters: configuration, presets, blur kernels, random draws.

:class:`DegradationConfig` holds every number of the pipeline (field names follow ResShift's /
Real-ESRGAN's YAML keys), with the presets :data:`REALESRGAN_TRAIN` and :data:`RESSHIFT_TEST`;
:func:`gaussian_kernel`, :func:`generalized_gaussian_kernel`, :func:`plateau_kernel`,
:func:`sinc_kernel` and :func:`pulse_kernel` build the blur kernels (float64, centred, summing to
one); :func:`sample_degradation` draws every random choice of one call of the pipeline
(:class:`DegradationParams`: kernels, resizes, noise levels, JPEG qualities, the final order)
from the ``torch.Generator`` passed in, with a fixed number of draws per batch, so the
generator's state afterwards does not depend on which branches were taken.
:mod:`ctlib.data.degradation` applies them (and re-exports every name here).

Kernel sizes follow ResShift's code: odd sizes ``3, 5, ..., blur_kernel_size - 2`` drawn
uniformly, each kernel zero-padded to ``blur_kernel_size`` (21 first order, 15 second order).
The sinc cut-off is U(pi/3, pi) for sizes below 13 and U(pi/5, pi) otherwise; the final sinc
uses U(pi/3, pi) with a size from the second-order range, and with probability
``1 - final_sinc_prob`` is the identity (a centred pulse). Generalized-Gaussian / plateau shape
``beta`` is U(lo, 1) or U(1, hi) with probability 1/2 each (the official rule).

Presets: :data:`REALESRGAN_TRAIN` (the official training configuration, the default) and
:data:`RESSHIFT_TEST` (ResShift's ``degradation_testing_realesrgan.yaml``, used to build its
ImageNet-Test: first order only, milder ranges; the final resize/sinc/JPEG still runs, with JPEG
quality in [80, 100] and the final sinc with probability 0.2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special

__all__ = [
    "KERNEL_TYPES",
    "RESIZE_MODES",
    "DegradationConfig",
    "REALESRGAN_TRAIN",
    "RESSHIFT_TEST",
    "PRESETS",
    "get_preset",
    "KernelDraw",
    "StageParams",
    "DegradationParams",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "plateau_kernel",
    "sinc_kernel",
    "pulse_kernel",
    "sample_degradation",
]

KERNEL_TYPES: tuple[str, ...] = (
    "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso",
)
RESIZE_MODES: tuple[str, ...] = ("area", "bilinear", "bicubic")
_RESIZE_TYPES = ("up", "down", "keep")
_F64 = torch.float64


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DegradationConfig:
    """All numbers of the pipeline; field names follow ResShift's / Real-ESRGAN's YAML keys.

    Ranges are ``(low, high)``; noise sigmas are on the 0..255 scale; probabilities of
    categorical choices are tuples that sum to 1 (``resize_prob`` is up / down / keep).
    """

    scale: int = 4
    # ---- first order
    blur_kernel_size: int = 21
    kernel_list: tuple[str, ...] = KERNEL_TYPES
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    # ---- second order
    second_order_prob: float = 0.5
    second_blur_prob: float = 0.8
    blur_kernel_size2: int = 15
    kernel_list2: tuple[str, ...] = KERNEL_TYPES
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    # ---- final stage
    final_sinc_prob: float = 0.8
    jpeg_backend: str = "torch"

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or self.scale < 1:
            raise ValueError(f"scale must be an integer >= 1, got {self.scale!r}")
        for name in ("blur_kernel_size", "blur_kernel_size2"):
            k = getattr(self, name)
            if isinstance(k, bool) or not isinstance(k, int) or k < 5 or k % 2 == 0:
                raise ValueError(f"{name} must be an odd integer >= 5, got {k!r}")
        for names, probs in (("kernel_list", "kernel_prob"), ("kernel_list2", "kernel_prob2")):
            kl, kp = getattr(self, names), getattr(self, probs)
            bad = [k for k in kl if k not in KERNEL_TYPES]
            if bad:
                raise ValueError(f"{names} has unknown kernel types {bad}; known: {KERNEL_TYPES}")
            if len(kl) != len(kp):
                raise ValueError(f"{names} and {probs} must have the same length, got {len(kl)} and {len(kp)}")
            _check_probs(kp, probs)
        for name in ("resize_prob", "resize_prob2"):
            p = getattr(self, name)
            if len(p) != 3:
                raise ValueError(f"{name} must be three probabilities (up, down, keep), got {p!r}")
            _check_probs(p, name)
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.endswith("_prob") or f.name.endswith("_prob2"):
                if not isinstance(v, tuple) and not (0.0 <= float(v) <= 1.0):
                    raise ValueError(f"{f.name} must be a probability in [0, 1], got {v!r}")
            if f.name.endswith("_range") or f.name.endswith("_range2") or f.name.startswith("blur_sigma"):
                if len(v) != 2 or not all(math.isfinite(float(x)) for x in v) or float(v[0]) > float(v[1]):
                    raise ValueError(f"{f.name} must be a (low, high) pair with low <= high, got {v!r}")
        for name in ("blur_sigma", "blur_sigma2", "resize_range", "resize_range2", "poisson_scale_range",
                     "poisson_scale_range2"):
            if float(getattr(self, name)[0]) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("jpeg_range", "jpeg_range2"):
            lo, hi = getattr(self, name)
            if not (1 <= lo <= hi <= 100):
                raise ValueError(f"{name} must lie in [1, 100], got {getattr(self, name)!r}")
        if self.jpeg_backend not in ("torch", "pillow"):
            raise ValueError(f"jpeg_backend must be 'torch' or 'pillow', got {self.jpeg_backend!r}")

    def replace(self, **changes: Any) -> DegradationConfig:
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DegradationConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown DegradationConfig keys: {sorted(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def _check_probs(p: tuple[float, ...], name: str) -> None:
    if any(float(x) < 0 for x in p) or not math.isclose(sum(float(x) for x in p), 1.0, abs_tol=1e-6):
        raise ValueError(f"{name} must be non-negative and sum to 1, got {p!r}")


#: The official Real-ESRGAN training configuration of ResShift (docs/maths.md §12).
REALESRGAN_TRAIN = DegradationConfig()

#: ResShift's testing configuration (``configs/degradation_testing_realesrgan.yaml``).
RESSHIFT_TEST = DegradationConfig(
    blur_kernel_size=13,
    kernel_prob=(0.6, 0.4, 0.0, 0.0, 0.0, 0.0),
    sinc_prob=0.1,
    blur_sigma=(0.2, 0.8),
    betag_range=(1.0, 1.5),
    betap_range=(1.0, 1.2),
    resize_prob=(0.2, 0.7, 0.1),
    resize_range=(0.5, 1.5),
    gaussian_noise_prob=0.5,
    noise_range=(1.0, 15.0),
    poisson_scale_range=(0.05, 0.3),
    gray_noise_prob=0.4,
    jpeg_range=(70.0, 95.0),
    second_order_prob=0.0,
    second_blur_prob=0.2,
    blur_kernel_size2=7,
    kernel_prob2=(0.6, 0.4, 0.0, 0.0, 0.0, 0.0),
    sinc_prob2=0.0,
    blur_sigma2=(0.2, 0.5),
    betag_range2=(0.5, 0.8),
    betap_range2=(1.0, 1.2),
    resize_prob2=(0.3, 0.4, 0.3),
    resize_range2=(0.8, 1.2),
    gaussian_noise_prob2=0.5,
    noise_range2=(1.0, 10.0),
    poisson_scale_range2=(0.05, 0.2),
    gray_noise_prob2=0.4,
    jpeg_range2=(80.0, 100.0),
    final_sinc_prob=0.2,
)

PRESETS: dict[str, DegradationConfig] = {
    "realesrgan_train": REALESRGAN_TRAIN,
    "resshift_test": RESSHIFT_TEST,
}
_ALIASES = {"train": "realesrgan_train", "test": "resshift_test"}


def get_preset(name: str | DegradationConfig) -> DegradationConfig:
    """``'realesrgan_train'`` (alias ``'train'``) or ``'resshift_test'`` (alias ``'test'``)."""
    if isinstance(name, DegradationConfig):
        return name
    key = _ALIASES.get(name, name)
    if key not in PRESETS:
        raise ValueError(f"unknown degradation preset {name!r}; choose one of {sorted(PRESETS)} (or train/test)")
    return PRESETS[key]


# --------------------------------------------------------------------------------------------
# kernels (float64, centred, sum to one)
# --------------------------------------------------------------------------------------------


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be an odd positive integer, got {size!r}")
    return size


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred pixel coordinates: x grows along columns, y along rows."""
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax, indexing="xy")
    return xx, yy


def _mahalanobis2(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """x^T Sigma^-1 x on the grid, Sigma = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T."""
    if not (sigma_x > 0 and sigma_y > 0):
        raise ValueError(f"sigma_x and sigma_y must be > 0, got {sigma_x!r}, {sigma_y!r}")
    xx, yy = _grid(_check_size(size))
    c, s = math.cos(theta), math.sin(theta)
    u = c * xx + s * yy  # coordinates along the principal axes (R^T x)
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalised(k: np.ndarray) -> torch.Tensor:
    # kernels are small: numpy avoids torch's per-op thread-pool overhead
    return torch.from_numpy(k / k.sum())


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> torch.Tensor:
    """Bivariate Gaussian exp(-q/2), q = x^T Sigma^-1 x; isotropic when ``sigma_y`` is None."""
    sy = sigma_x if sigma_y is None else sigma_y
    return _normalised(np.exp(-0.5 * _mahalanobis2(size, sigma_x, sy, theta if sigma_y is not None else 0.0)))


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0, beta: float = 1.0
) -> torch.Tensor:
    """Generalized Gaussian exp(-q^beta / 2); beta = 1 is the Gaussian."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    sy = sigma_x if sigma_y is None else sigma_y
    q = _mahalanobis2(size, sigma_x, sy, theta if sigma_y is not None else 0.0)
    return _normalised(np.exp(-0.5 * q**beta))


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0, beta: float = 1.0
) -> torch.Tensor:
    """Plateau-shaped kernel 1 / (1 + q^beta)."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    sy = sigma_x if sigma_y is None else sigma_y
    q = _mahalanobis2(size, sigma_x, sy, theta if sigma_y is not None else 0.0)
    return _normalised(1.0 / (q**beta + 1.0))


def sinc_kernel(size: int, omega_c: float) -> torch.Tensor:
    """Circularly symmetric low-pass (2-D sinc): omega_c J1(omega_c r) / (2 pi r), normalised.

    The centre takes the limit omega_c^2 / (4 pi). J1 is scipy's (float64-accurate).
    """
    if not (0 < omega_c <= math.pi + 1e-12):
        raise ValueError(f"omega_c must lie in (0, pi], got {omega_c!r}")
    xx, yy = _grid(_check_size(size))
    r = np.sqrt(xx**2 + yy**2)
    safe_r = np.where(r > 0, r, 1.0)
    k = omega_c * special.j1(omega_c * safe_r) / (2 * math.pi * safe_r)
    return _normalised(np.where(r > 0, k, omega_c**2 / (4 * math.pi)))


def pulse_kernel(size: int) -> torch.Tensor:
    """The identity filter (a centred one)."""
    k = torch.zeros(_check_size(size), _check_size(size), dtype=_F64)
    k[size // 2, size // 2] = 1.0
    return k


def _pad_to(k: torch.Tensor, size: int) -> torch.Tensor:
    p = (size - k.shape[-1]) // 2
    return F.pad(k, (p, p, p, p)) if p > 0 else k


# --------------------------------------------------------------------------------------------
# parameters drawn from the generator
# --------------------------------------------------------------------------------------------


@dataclass
class KernelDraw:
    """One drawn kernel: its type (a KERNEL_TYPES entry, 'sinc' or 'pulse'), size and shape."""

    kind: str
    size: int
    sigma_x: float = math.nan
    sigma_y: float = math.nan
    theta: float = math.nan
    beta: float = math.nan
    omega_c: float = math.nan


@dataclass
class StageParams:
    """Everything one degradation order needs, drawn for a batch of B images."""

    kernels: torch.Tensor  # (B, K, K) float64, each summing to 1
    kernel_draws: list[KernelDraw]
    blur: bool  # False: the blur is skipped (second order only)
    resize: str  # 'up' | 'down' | 'keep'
    resize_scale: float
    resize_mode: str
    noise: str  # 'gaussian' | 'poisson'
    gaussian_sigma: torch.Tensor  # (B,) on the 0..255 scale
    poisson_scale: torch.Tensor  # (B,)
    gray_noise: torch.Tensor  # (B,) bool
    jpeg_quality: torch.Tensor  # (B,) float64


@dataclass
class DegradationParams:
    """All random choices of one call of the pipeline (see :func:`sample_degradation`)."""

    config: DegradationConfig
    batch_size: int
    first: StageParams
    second_order: bool
    second: StageParams
    final_sinc: torch.Tensor  # (B, K2, K2)
    final_sinc_draws: list[KernelDraw]
    final_order: str  # 'resize_sinc_then_jpeg' | 'jpeg_then_resize_sinc'
    final_resize_mode: str
    final_jpeg_quality: torch.Tensor  # (B,)
    extra: dict[str, Any] = field(default_factory=dict)


class _Draws:
    """Scalar draws from a torch.Generator (uniforms in float64, on the generator's device)."""

    def __init__(self, generator: torch.Generator) -> None:
        self.g = generator

    def uniform(self, n: int | None = None) -> Any:
        u = torch.rand(1 if n is None else n, generator=self.g, dtype=_F64, device=self.g.device).cpu()
        return float(u[0]) if n is None else u

    def between(self, lo: float, hi: float, n: int | None = None) -> Any:
        u = self.uniform(n)
        return lo + (hi - lo) * u

    def choice(self, options: tuple[Any, ...] | list[Any], probs: tuple[float, ...] | None = None) -> Any:
        u = self.uniform()
        if probs is None:
            return options[min(int(u * len(options)), len(options) - 1)]
        acc = 0.0
        for opt, p in zip(options, probs):
            acc += p
            if u < acc:
                return opt
        return options[max(i for i, p in enumerate(probs) if p > 0)]


def _beta(d: _Draws, lo: float, hi: float) -> float:
    # the official rule (it assumes lo <= 1 <= hi): U(lo, 1) or U(1, hi), 1/2 each
    u_side, u_val = d.uniform(), d.uniform()
    return lo + (1.0 - lo) * u_val if u_side < 0.5 else 1.0 + (hi - 1.0) * u_val


def _draw_kernel(
    d: _Draws, full_size: int, kernel_list: tuple[str, ...], kernel_prob: tuple[float, ...], sinc_prob: float,
    sigma: tuple[float, float], betag: tuple[float, float], betap: tuple[float, float],
) -> tuple[torch.Tensor, KernelDraw]:
    sizes = list(range(3, full_size, 2))
    # fixed number of draws whatever the branch: size, sinc?, omega, type, sx, sy, theta, beta(2)
    size = d.choice(sizes)
    use_sinc = d.uniform() < sinc_prob
    u_omega = d.uniform()
    kind = d.choice(kernel_list, kernel_prob)
    sx = d.between(sigma[0], sigma[1])
    sy = d.between(sigma[0], sigma[1])
    theta = d.between(-math.pi, math.pi)
    if use_sinc:
        lo = math.pi / 3 if size < 13 else math.pi / 5
        omega = lo + (math.pi - lo) * u_omega
        d.uniform(2)  # keep the draw count fixed
        return _pad_to(sinc_kernel(size, omega), full_size), KernelDraw("sinc", size, omega_c=omega)
    beta_range = betag if kind.startswith("generalized") else betap
    beta = _beta(d, *beta_range)
    iso = kind.endswith("_iso") or kind == "iso"
    if iso:
        sy, theta = sx, 0.0
    if kind in ("iso", "aniso"):
        k = gaussian_kernel(size, sx, None if iso else sy, theta)
        beta = math.nan
    elif kind.startswith("generalized"):
        k = generalized_gaussian_kernel(size, sx, None if iso else sy, theta, beta)
    else:
        k = plateau_kernel(size, sx, None if iso else sy, theta, beta)
    return _pad_to(k, full_size), KernelDraw(kind, size, sx, sy, theta, beta)


def _draw_stage(d: _Draws, cfg: DegradationConfig, b: int, second: bool) -> StageParams:
    sfx = "2" if second else ""
    g = lambda name: getattr(cfg, name + sfx)  # noqa: E731
    ksize = cfg.blur_kernel_size2 if second else cfg.blur_kernel_size
    kernels, draws = [], []
    for _ in range(b):
        k, kd = _draw_kernel(
            d, ksize, g("kernel_list"), g("kernel_prob"), g("sinc_prob"), g("blur_sigma"), g("betag_range"),
            g("betap_range"),
        )
        kernels.append(k)
        draws.append(kd)
    blur = (d.uniform() < cfg.second_blur_prob) if second else True
    resize = d.choice(_RESIZE_TYPES, g("resize_prob"))
    lo, hi = g("resize_range")
    u = d.uniform()
    scale = 1.0 + (hi - 1.0) * u if resize == "up" else (lo + (1.0 - lo) * u if resize == "down" else 1.0)
    mode = d.choice(RESIZE_MODES)
    noise = "gaussian" if d.uniform() < g("gaussian_noise_prob") else "poisson"
    sigma = d.between(*g("noise_range"), n=b)
    pscale = d.between(*g("poisson_scale_range"), n=b)
    gray = d.uniform(b) < g("gray_noise_prob")
    jpeg = d.between(*g("jpeg_range"), n=b)
    return StageParams(
        kernels=torch.stack(kernels), kernel_draws=draws, blur=bool(blur), resize=resize, resize_scale=float(scale),
        resize_mode=mode, noise=noise, gaussian_sigma=sigma, poisson_scale=pscale, gray_noise=gray,
        jpeg_quality=jpeg,
    )


def sample_degradation(
    batch_size: int, generator: torch.Generator, config: DegradationConfig | str = REALESRGAN_TRAIN
) -> DegradationParams:
    """Draw every random choice of the pipeline for a batch (kernels, resizes, noise levels, ...).

    The number of draws is fixed for a given config and batch size.
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    cfg = get_preset(config)
    d = _Draws(generator)
    first = _draw_stage(d, cfg, batch_size, second=False)
    second_order = d.uniform() < cfg.second_order_prob
    second = _draw_stage(d, cfg, batch_size, second=True)
    sinc_sizes = list(range(3, cfg.blur_kernel_size2, 2))
    finals, final_draws = [], []
    for _ in range(batch_size):
        use = d.uniform() < cfg.final_sinc_prob
        size = d.choice(sinc_sizes)
        omega = d.between(math.pi / 3, math.pi)
        if use:
            finals.append(_pad_to(sinc_kernel(size, omega), cfg.blur_kernel_size2))
            final_draws.append(KernelDraw("sinc", size, omega_c=omega))
        else:
            finals.append(pulse_kernel(cfg.blur_kernel_size2))
            final_draws.append(KernelDraw("pulse", cfg.blur_kernel_size2))
    order = "resize_sinc_then_jpeg" if d.uniform() < 0.5 else "jpeg_then_resize_sinc"
    final_mode = d.choice(RESIZE_MODES)
    final_jpeg = d.between(*cfg.jpeg_range2, n=batch_size)
    return DegradationParams(
        config=cfg, batch_size=batch_size, first=first, second_order=bool(second_order), second=second,
        final_sinc=torch.stack(finals), final_sinc_draws=final_draws, final_order=order,
        final_resize_mode=final_mode, final_jpeg_quality=final_jpeg,
    )

