r"""The ResShift forward process, its discrete posterior, the score and the probability-flow ODE.

Notation (docs/maths.md §1): HR image ``x0``, upsampled LR image ``y`` (in the state space),
residual ``e0 = y - x0``, noise scale ``kappa``, shift level ``eta`` (``eta(t)`` from a schedule).

* forward marginal   ``q(x_t | x0, y) = N(x0 + eta e0, kappa^2 eta I)``
* prior              ``x_T = y + kappa sqrt(eta_T) eps``
* posterior          ``q(x_{t-1} | x_t, x0, y) = N((eta_{t-1}/eta_t) x_t + (alpha_t/eta_t) x0,
  kappa^2 (eta_{t-1}/eta_t) alpha_t I)``
* score from x0_hat  ``score = -(x - (1 - eta) x0_hat - eta y) / (kappa^2 eta)``
* PF-ODE             ``dx/dt = alpha(t) [ (y - x0_hat) + (x - (1 - eta) x0_hat - eta y) / (2 eta) ]``
  = the report's equation (1) with ``e0 -> y - x0_hat`` and the score above (kappa^2 eta, erratum 1)
* reverse SDE        ``dx = alpha [ (y - x0_hat) + (x - (1 - eta) x0_hat - eta y) / eta ] dt
  + kappa sqrt(alpha) dw`` (time running backwards)
* exact step         holding x0_hat fixed, ``x_b = x0_hat + eta_b (y - x0_hat)
  + sqrt(eta_b/eta_a) (x_a - x0_hat - eta_a (y - x0_hat))``

``eta`` (and ``alpha``) may be Python floats or tensors of shape ``(B,)`` (one value per batch item);
they broadcast over the remaining axes.  Every random draw takes a ``torch.Generator``.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_positive, check_same_shape

Scalar = float | torch.Tensor

__all__ = [
    "as_batch",
    "q_sample",
    "prior_sample",
    "posterior_mean_variance",
    "score_from_x0",
    "x0_from_score",
    "pf_drift_eta",
    "pf_drift",
    "reverse_sde_drift_eta",
    "pf_exact_step",
    "pf_final_step",
    "scale_input",
    "randn_like",
    "forward_chain",
]


def as_batch(v: Scalar, x: torch.Tensor, name: str = "eta") -> Scalar:
    """Return ``v`` ready to broadcast against ``x`` of shape (B, ...): floats pass through; a tensor of
    shape (), (1,) or (B,) becomes (B, 1, ..., 1) in ``x``'s dtype and device."""
    if not isinstance(v, torch.Tensor):
        return float(v)
    v = v.to(device=x.device, dtype=x.dtype)
    if v.ndim == 0 or v.numel() == 1:
        return v.reshape([1] * x.ndim)
    if v.ndim != 1 or v.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} must be a float or a tensor of shape (B,) = ({x.shape[0]},), got shape {tuple(v.shape)}"
        )
    return v.reshape([-1] + [1] * (x.ndim - 1))


def _check_eta(eta: Scalar, name: str = "eta", *, allow_zero: bool = True) -> None:
    if isinstance(eta, torch.Tensor):
        lo = float(eta.min()) if eta.numel() else 0.0
        if not bool(torch.isfinite(eta).all()) or lo < 0 or (lo == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{name} must be finite and {bound}, got min {lo:.6g}")
    else:
        check_positive(eta, name, allow_zero=allow_zero)


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator`` on the generator's device."""
    if generator is None:
        return torch.randn_like(x)
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return noise.to(x.device)


def q_sample(
    x0: torch.Tensor,
    y: torch.Tensor,
    eta: Scalar,
    kappa: float,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample the forward marginal ``x_t = x0 + eta (y - x0) + kappa sqrt(eta) noise``."""
    check_same_shape(x0, y, "x0", "y")
    kappa = check_positive(kappa, "kappa")
    _check_eta(eta)
    if noise is None:
        noise = randn_like(x0, generator)
    check_same_shape(noise, x0, "noise", "x0")
    eta_b = as_batch(eta, x0)
    sqrt_eta = eta_b.sqrt() if isinstance(eta_b, torch.Tensor) else math.sqrt(eta_b)
    return x0 + eta_b * (y - x0) + kappa * sqrt_eta * noise


def prior_sample(
    y: torch.Tensor,
    eta_T: float,
    kappa: float,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample the prior ``x_T = y + kappa sqrt(eta_T) eps`` (the marginal at t = 1 with x0 unknown)."""
    kappa = check_positive(kappa, "kappa")
    eta_T = check_positive(eta_T, "eta_T")
    if noise is None:
        noise = randn_like(y, generator)
    check_same_shape(noise, y, "noise", "y")
    return y + kappa * math.sqrt(eta_T) * noise


def posterior_mean_variance(
    x_t: torch.Tensor, x0: torch.Tensor, eta_t: Scalar, eta_prev: Scalar, kappa: float
) -> tuple[torch.Tensor, Scalar]:
    """Mean and variance of ``q(x_{t-1} | x_t, x0, y)``, with ``alpha_t = eta_t - eta_prev``:
    mean ``(eta_prev/eta_t) x_t + (alpha_t/eta_t) x0``, variance ``kappa^2 (eta_prev/eta_t) alpha_t``."""
    check_same_shape(x_t, x0, "x_t", "x0")
    kappa = check_positive(kappa, "kappa")
    _check_eta(eta_t, "eta_t", allow_zero=False)
    _check_eta(eta_prev, "eta_prev")
    eta_t_b, eta_prev_b = as_batch(eta_t, x_t, "eta_t"), as_batch(eta_prev, x_t, "eta_prev")
    alpha_t = eta_t_b - eta_prev_b
    mean = (eta_prev_b / eta_t_b) * x_t + (alpha_t / eta_t_b) * x0
    variance = kappa**2 * (eta_prev_b / eta_t_b) * alpha_t
    return mean, variance


def score_from_x0(x: torch.Tensor, x0_hat: torch.Tensor, y: torch.Tensor, eta: Scalar, kappa: float):
    """``score = -(x - (1 - eta) x0_hat - eta y) / (kappa^2 eta)`` (the kappa^2 eta denominator)."""
    check_same_shape(x, x0_hat, "x", "x0_hat")
    check_same_shape(x, y, "x", "y")
    _check_eta(eta, allow_zero=False)
    eta_b = as_batch(eta, x)
    return -(x - (1 - eta_b) * x0_hat - eta_b * y) / (kappa**2 * eta_b)


def x0_from_score(x: torch.Tensor, score: torch.Tensor, y: torch.Tensor, eta: Scalar, kappa: float):
    """Invert :func:`score_from_x0`: ``x0_hat = (x + kappa^2 eta score - eta y) / (1 - eta)`` (eta < 1)."""
    check_same_shape(x, score, "x", "score")
    check_same_shape(x, y, "x", "y")
    _check_eta(eta, allow_zero=False)
    eta_max = float(eta.max()) if isinstance(eta, torch.Tensor) else float(eta)
    if eta_max >= 1:
        raise ValueError(f"eta must be < 1 to recover x0 from the score, got {eta_max}")
    eta_b = as_batch(eta, x)
    return (x + kappa**2 * eta_b * score - eta_b * y) / (1 - eta_b)


def pf_drift_eta(x: torch.Tensor, x0_hat: torch.Tensor, y: torch.Tensor, eta: Scalar) -> torch.Tensor:
    """Probability-flow ODE in eta: ``dx/d eta = (y - x0_hat) + (x - (1 - eta) x0_hat - eta y) / (2 eta)``.

    No schedule appears: the schedule only decides which eta values a solver visits.
    """
    eta_b = as_batch(eta, x)
    return (y - x0_hat) + (x - (1 - eta_b) * x0_hat - eta_b * y) / (2 * eta_b)


def pf_drift(
    x: torch.Tensor, x0_hat: torch.Tensor, y: torch.Tensor, eta: Scalar, alpha: Scalar
) -> torch.Tensor:
    """Probability-flow ODE in t: ``dx/dt = alpha(t) dx/d eta`` (see :func:`pf_drift_eta`)."""
    return as_batch(alpha, x, "alpha") * pf_drift_eta(x, x0_hat, y, eta)


def reverse_sde_drift_eta(x: torch.Tensor, x0_hat: torch.Tensor, y: torch.Tensor, eta: Scalar):
    """Reverse-SDE drift per unit eta: ``f - g^2 score`` with ``f = y - x0_hat``, ``g^2 = kappa^2``:
    ``(y - x0_hat) + (x - (1 - eta) x0_hat - eta y) / eta``; the diffusion per unit eta is ``kappa``."""
    eta_b = as_batch(eta, x)
    return (y - x0_hat) + (x - (1 - eta_b) * x0_hat - eta_b * y) / eta_b


def pf_exact_step(
    x_a: torch.Tensor, x0_hat: torch.Tensor, y: torch.Tensor, eta_a: Scalar, eta_b: Scalar
) -> torch.Tensor:
    """Solve the PF-ODE exactly from eta_a to eta_b with x0_hat held fixed (first-order exponential
    integrator, the deterministic counterpart of ResShift):
    ``x_b = x0_hat + eta_b (y - x0_hat) + sqrt(eta_b/eta_a) (x_a - x0_hat - eta_a (y - x0_hat))``."""
    ea, eb = as_batch(eta_a, x_a, "eta_a"), as_batch(eta_b, x_a, "eta_b")
    ratio = (eb / ea) ** 0.5
    e0_hat = y - x0_hat
    return x0_hat + eb * e0_hat + ratio * (x_a - x0_hat - ea * e0_hat)


def pf_final_step(x_a: torch.Tensor, x0_hat: torch.Tensor, y: torch.Tensor, eta_a: Scalar) -> torch.Tensor:
    r"""The step into eta = 0 that is second-order consistent: Euler on dx/d eta from eta_a to 0,

    ``x_0 = x_a - eta_a pf_drift_eta(x_a, x0_hat, y, eta_a) = (x_a + (1 + eta_a) x0_hat - eta_a y) / 2``,

    i.e. x0_hat plus *half* of the state's residual ``x_a - x0_hat - eta_a (y - x0_hat)``.  Why half: along
    a smooth solution write ``x = x0_hat + eta (y - x0_hat) + eta g + O(eta^2)``; the ODE then forces
    ``d x0_hat / d eta = -g/2`` at eta = 0, so ``x(0) = x0_hat(0) = x0_hat(eta_a) + eta_a g/2 + O(eta_a^2)``,
    which is this step.  Holding x0_hat fixed (``pf_exact_step`` to 0, which returns x0_hat) is off by
    ``O(eta_a)`` instead.  On the official schedule ``alpha(1/T) / T = eta_1``, so the report's Euler
    step in t from t = 1/T into 0 is this same step.
    """
    ea = as_batch(eta_a, x_a, "eta_a")
    return x_a - ea * pf_drift_eta(x_a, x0_hat, y, ea)


def scale_input(x_t: torch.Tensor, eta: Scalar, kappa: float, latent: bool = True) -> torch.Tensor:
    """The official network-input normalisation (``normalize_input``; x_t itself is never rescaled):
    latent ``x_t / sqrt(kappa^2 eta + 1)``, pixel ``x_t / (3 kappa sqrt(eta) + 1)``."""
    eta_b = as_batch(eta, x_t)
    if latent:
        return x_t / (kappa**2 * eta_b + 1) ** 0.5
    return x_t / (3 * kappa * eta_b**0.5 + 1)


def forward_chain(
    x0: torch.Tensor,
    y: torch.Tensor,
    etas,
    kappa: float,
    generator: torch.Generator | None = None,
    return_all: bool = False,
) -> torch.Tensor:
    """Simulate the discrete forward chain ``x_k = x_{k-1} + alpha_k e0 + kappa sqrt(alpha_k) eps_k``
    with ``alpha_k = eta_k - eta_{k-1}`` (``eta_0 = 0``, ``x_0 = x0``) along the increasing levels
    ``etas``.  With the official etas this is ResShift's chain; with ``schedule.eta`` on a finer time
    grid it is the Euler-Maruyama discretisation of the forward SDE ``dx = alpha e0 dt + kappa
    sqrt(alpha) dw`` (exact in law for this SDE, whose coefficients do not depend on x).

    Returns the last state, or with ``return_all`` a tensor (K+1, ...) holding x_0 .. x_K.
    """
    check_same_shape(x0, y, "x0", "y")
    kappa = check_positive(kappa, "kappa")
    etas = torch.as_tensor(etas, dtype=torch.float64).flatten().tolist()
    prev, e0, x = 0.0, y - x0, x0
    states = [x0]
    for k, eta_k in enumerate(etas):
        alpha_k = eta_k - prev
        if alpha_k < 0:
            raise ValueError(f"etas must be non-decreasing, got eta[{k}] = {eta_k} < {prev}")
        x = x + alpha_k * e0 + kappa * math.sqrt(alpha_k) * randn_like(x0, generator)
        prev = eta_k
        if return_all:
            states.append(x)
    return torch.stack(states) if return_all else x
