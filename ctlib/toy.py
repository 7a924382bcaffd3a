r"""An exactly solvable ResShift problem for checking samplers: Gaussian-mixture x0, fixed y.

``x0 ~ sum_k w_k N(mu_k, sigma_k^2 I)`` in ``d`` dimensions and a fixed conditioning ``y``.  Under the
forward marginal ``x_t | x0 ~ N((1 - eta) x0 + eta y, kappa^2 eta I)`` (eta = schedule.eta(t)) every
quantity a sampler needs is known in closed form:

* component k of the marginal: ``x_t | k ~ N(m_k, v_k I)`` with ``m_k = (1 - eta) mu_k + eta y`` and
  ``v_k = (1 - eta)^2 sigma_k^2 + kappa^2 eta``;
* the posterior mean (the ideal denoiser): ``E[x0 | x_t] = sum_k r_k(x_t) (mu_k + (1 - eta) sigma_k^2 / v_k
  (x_t - m_k))`` with responsibilities ``r_k ∝ w_k N(x_t; m_k, v_k I)`` (computed with logsumexp);
* the probability-flow ODE ``dx/d eta = (y - x0_hat) + (x - (1 - eta) x0_hat - eta y) / (2 eta)``, solved
  by :meth:`GaussianMixtureToy.exact_ode` with scipy's ``solve_ivp`` (DOP853, rtol 1e-10).

The ODE is singular at eta = 0.  :meth:`exact_ode` integrates in ``s = sqrt(eta)``, where it reads
``dx/ds = s (y - x0_hat) + (x - x0_hat)/s``; along a solution ``x - x0_hat = O(eta)`` (for sigma_k > 0
the solution is smooth in eta), so the right-hand side stays bounded and, unlike in eta, the ODE is
not stiff near 0 (its Jacobian is ``O(kappa^2 s / sigma_k^2)``).  The endpoint at eta = 0 is defined
as the limit ``lim_{eta -> 0} x(eta)``: we integrate to ``eta_min = 1e-12`` and finish with one exact
step with x0_hat held fixed (``x(0) = x0_hat(x(eta_min))``), which changes the result by ``O(eta_min)``.

Everything is float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ._checks import check_int, check_positive

__all__ = ["GaussianMixtureToy"]

_ETA_MIN = 1e-12  # where exact_ode stops before taking the eta -> 0 limit


class GaussianMixtureToy:
    """Gaussian-mixture x0 with a fixed y and a schedule: exact denoiser and exact PF-ODE solutions.

    Parameters: ``means`` (K, d), ``stds`` (K,) or a scalar (isotropic components), ``weights`` (K,)
    (normalised here), ``y`` (d,), ``schedule`` (any object with ``T``, ``kappa``, ``eta(t)``).
    """

    def __init__(self, means, stds, weights, y, schedule) -> None:
        means = torch.as_tensor(np.asarray(means, dtype=np.float64))
        if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"means must have shape (K, d), got {tuple(means.shape)}")
        K, d = means.shape
        stds = torch.as_tensor(np.asarray(stds, dtype=np.float64))
        if stds.ndim == 0:
            stds = stds.expand(K).clone()
        if stds.shape != (K,) or not bool((stds > 0).all()) or not bool(torch.isfinite(stds).all()):
            raise ValueError(f"stds must be a positive scalar or have shape (K,) = ({K},), got {stds.tolist()}")
        weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if weights.shape != (K,) or not bool((weights >= 0).all()) or float(weights.sum()) <= 0:
            raise ValueError(f"weights must be non-negative with shape (K,) = ({K},) and a positive sum")
        y = torch.as_tensor(np.asarray(y, dtype=np.float64))
        if y.shape != (d,):
            raise ValueError(f"y must have shape (d,) = ({d},), got {tuple(y.shape)}")
        for attr in ("T", "kappa", "eta"):
            if not hasattr(schedule, attr):
                raise TypeError(f"schedule must provide T, kappa and eta(t); missing {attr!r}")
        self.means, self.stds, self.weights, self.y = means, stds, weights / weights.sum(), y
        self.schedule = schedule
        self.kappa = check_positive(schedule.kappa, "schedule.kappa")
        self.K, self.d = K, d

    @classmethod
    def demo(cls, schedule=None, d: int = 2, seed: int = 0) -> GaussianMixtureToy:
        """The kit's standard toy: three components, stds 0.3 / 0.4 / 0.35, weights 0.3 / 0.4 / 0.3.

        ``d = 2``: means (-1, 0.5), (0.8, -0.6), (0.2, 1.0) and y = (0.1, -0.2) (the toy of the tests,
        the solver benchmark and notebook 04).  Other ``d``: means ~ N(0, 0.7^2 I) and y ~ N(0, 0.1^2 I)
        from ``numpy.random.default_rng(seed)``.  ``schedule`` defaults to the official
        ``ResShiftSchedule()``.
        """
        from .schedule import ResShiftSchedule

        d = check_int(d, "d", minimum=1)
        schedule = ResShiftSchedule() if schedule is None else schedule
        if d == 2:
            means, y = [[-1.0, 0.5], [0.8, -0.6], [0.2, 1.0]], [0.1, -0.2]
        else:
            rng = np.random.default_rng(seed)
            means, y = 0.7 * rng.standard_normal((3, d)), 0.1 * rng.standard_normal(d)
        return cls(means, [0.3, 0.4, 0.35], [0.3, 0.4, 0.3], y, schedule)

    # -- sampling -----------------------------------------------------------------------------
    def sample_x0(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of x0 from the mixture, shape (n, d)."""
        n = check_int(n, "n", minimum=1)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn((n, self.d), generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * z

    def y_batch(self, n: int) -> torch.Tensor:
        """y repeated n times, shape (n, d): the conditioning a sampler gets."""
        return self.y.expand(check_int(n, "n", minimum=1), self.d).clone()

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The samplers' start ``y + kappa sqrt(eta(1)) eps``, shape (n, d)."""
        n = check_int(n, "n", minimum=1)
        eta_T = float(self.schedule.eta(1.0))
        z = torch.randn((n, self.d), generator=generator, dtype=torch.float64)
        return self.y + self.kappa * math.sqrt(eta_T) * z

    def sample_xt(self, n: int, t: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of the true marginal at time t: ``x0 + eta (y - x0) + kappa sqrt(eta) eps`` (x0 from the mixture)."""
        eta = float(self.schedule.eta(float(t)))
        x0 = self.sample_x0(n, generator)
        z = torch.randn((n, self.d), generator=generator, dtype=torch.float64)
        return x0 + eta * (self.y - x0) + self.kappa * math.sqrt(eta) * z

    # -- the exact denoiser -------------------------------------------------------------------
    def posterior_mean(self, x_t: torch.Tensor, eta) -> torch.Tensor:
        """``E[x0 | x_t]`` under the mixture for x_t of shape (B, d); eta a float or a (B,) tensor > 0."""
        if not isinstance(x_t, torch.Tensor) or x_t.ndim != 2 or x_t.shape[1] != self.d:
            raise ValueError(f"x_t must be a tensor of shape (B, {self.d})")
        x = x_t.to(torch.float64)
        eta = torch.as_tensor(eta, dtype=torch.float64, device=x.device).reshape(-1, 1, 1)  # (B|1, 1, 1)
        if bool((eta <= 0).any()) or bool((eta > 1).any()):
            raise ValueError("eta must lie in (0, 1] for the posterior mean")
        mu, sig2, y = self.means.to(x.device), (self.stds**2).to(x.device), self.y.to(x.device)
        m = (1 - eta) * mu[None] + eta * y  # (B|1, K, d)
        v = (1 - eta[..., 0]) ** 2 * sig2[None] + self.kappa**2 * eta[..., 0]  # (B|1, K)
        diff = x[:, None, :] - m  # (B, K, d)
        logp = torch.log(self.weights.to(x.device))[None] - 0.5 * (diff**2).sum(-1) / v - 0.5 * self.d * torch.log(v)
        r = torch.softmax(logp, dim=1)  # (B, K)
        gain = (1 - eta[..., 0]) * sig2[None] / v  # (B|1, K)
        cond_mean = mu[None] + gain[..., None] * diff  # (B, K, d)
        return (r[..., None] * cond_mean).sum(1).to(x_t.dtype)

    def denoiser(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The ideal denoiser (the contract of docs/design.md §3): ``E[x0 | x_t]`` at ``eta = schedule.eta(t)``.

        ``y`` must have the shape of ``x_t``; its values are not read (the toy's y is fixed).
        """
        if tuple(y.shape) != tuple(x_t.shape):
            raise ValueError(f"y and x_t must have the same shape, got {tuple(y.shape)} and {tuple(x_t.shape)}")
        eta = self.schedule.eta(t.detach().to(torch.float64))
        return self.posterior_mean(x_t, eta)

    # -- densities for plots --------------------------------------------------------------------
    def x0_density(self, grid, dim: int = 0) -> np.ndarray:
        """Density of coordinate ``dim`` of x0 on ``grid`` (numpy, float64)."""
        return self.xt_density(grid, 0.0, dim)

    def xt_density(self, grid, eta: float, dim: int = 0) -> np.ndarray:
        """Density of coordinate ``dim`` of x_t at level ``eta`` (eta = 0 gives x0) on ``grid``."""
        if not 0 <= dim < self.d:
            raise ValueError(f"dim must be in [0, {self.d}), got {dim}")
        g = np.asarray(grid, dtype=np.float64)
        eta = float(eta)
        m = (1 - eta) * self.means[:, dim].numpy() + eta * float(self.y[dim])
        sd = np.sqrt((1 - eta) ** 2 * self.stds.numpy() ** 2 + self.kappa**2 * eta)
        z = (g[..., None] - m) / sd
        return (self.weights.numpy() * np.exp(-0.5 * z**2) / (sd * math.sqrt(2 * math.pi))).sum(-1)

    def density(self, points, eta: float = 0.0) -> np.ndarray:
        """Joint density of x_t at level ``eta`` (eta = 0: x0) at ``points`` (..., d); numpy float64."""
        x = np.asarray(points, dtype=np.float64)
        if x.shape[-1] != self.d:
            raise ValueError(f"points must have a last axis of size d = {self.d}, got shape {x.shape}")
        eta = float(eta)
        m = (1 - eta) * self.means.numpy() + eta * self.y.numpy()  # (K, d)
        var = (1 - eta) ** 2 * self.stds.numpy() ** 2 + self.kappa**2 * eta  # (K,)
        sq = ((x[..., None, :] - m) ** 2).sum(-1)  # (..., K)
        logp = np.log(self.weights.numpy()) - 0.5 * sq / var - 0.5 * self.d * np.log(2 * math.pi * var)
        top = logp.max(-1, keepdims=True)
        return np.exp(top[..., 0]) * np.exp(logp - top).sum(-1)

    def x0_cdf(self, grid, dim: int = 0) -> np.ndarray:
        """CDF of coordinate ``dim`` of x0 on ``grid``."""
        from scipy.special import ndtr

        g = np.asarray(grid, dtype=np.float64)
        z = (g[..., None] - self.means[:, dim].numpy()) / self.stds.numpy()
        return (self.weights.numpy() * ndtr(z)).sum(-1)

    def wasserstein1(self, samples: torch.Tensor, n_grid: int = 20001) -> float:
        """Mean over coordinates of the 1-D Wasserstein distance between the empirical marginal of
        ``samples`` (n, d) and the exact marginal of x0: ``W1 = int |F_n - F| dx`` (trapezoid rule on a
        fine grid covering both)."""
        s = np.sort(np.asarray(samples.detach().cpu(), dtype=np.float64), axis=0)
        if s.ndim != 2 or s.shape[1] != self.d:
            raise ValueError(f"samples must have shape (n, {self.d})")
        out = []
        for j in range(self.d):
            lo = min(s[0, j], float((self.means[:, j] - 8 * self.stds).min()))
            hi = max(s[-1, j], float((self.means[:, j] + 8 * self.stds).max()))
            g = np.linspace(lo, hi, n_grid)
            emp = np.searchsorted(s[:, j], g, side="right") / s.shape[0]
            out.append(np.trapezoid(np.abs(emp - self.x0_cdf(g, j)), g))
        return float(np.mean(out))

    # -- the exact probability-flow solution ---------------------------------------------------
    def exact_ode(
        self,
        x_T: torch.Tensor,
        t_end: float = 0.0,
        *,
        t_start: float = 1.0,
        t_eval: Sequence[float] | np.ndarray | None = None,
        rtol: float = 1e-10,
        atol: float = 1e-12,
    ) -> torch.Tensor:
        """Solve the PF-ODE exactly (scipy ``solve_ivp``, DOP853, in ``s = sqrt(eta)``) from ``x_T`` at
        ``t_start`` down to ``t_end`` (0 allowed: the limit, see the module docstring).

        Returns the state at ``t_end``, shape (n, d); with ``t_eval`` (decreasing times in
        [t_end, t_start]) returns the states there instead, shape (len(t_eval), n, d).
        """
        from scipy.integrate import solve_ivp

        if not isinstance(x_T, torch.Tensor) or x_T.ndim != 2 or x_T.shape[1] != self.d:
            raise ValueError(f"x_T must be a tensor of shape (n, {self.d})")
        if rtol > 1e-9:
            raise ValueError(f"rtol must be <= 1e-9 for an 'exact' solution, got {rtol}")
        t_start, t_end = float(t_start), float(t_end)
        if not 0 <= t_end < t_start <= 1:
            raise ValueError(f"need 0 <= t_end < t_start <= 1, got t_end={t_end}, t_start={t_start}")
        times = np.array([t_end]) if t_eval is None else np.asarray(t_eval, dtype=np.float64).ravel()
        if times.size == 0 or (np.diff(times) > 0).any() or times.min() < t_end or times.max() > t_start:
            raise ValueError("t_eval must be non-increasing times inside [t_end, t_start]")
        n, d = x_T.shape
        y = self.y

        def eta_of(t: np.ndarray) -> np.ndarray:
            return np.asarray(self.schedule.eta(np.asarray(t, dtype=np.float64)), dtype=np.float64)

        s_start = math.sqrt(float(eta_of(np.array(t_start))))
        s_min = math.sqrt(_ETA_MIN)
        s_eval = np.maximum(np.sqrt(eta_of(times)), s_min)

        def rhs(s: float, z: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(z.reshape(n, d))
            x0_hat = self.posterior_mean(x, s * s)
            return (s * (y - x0_hat) + (x - x0_hat) / s).numpy().ravel()

        s_stop = float(min(s_eval.min(), s_start))
        if s_stop >= s_start:  # every requested time is t_start itself
            sol_y = np.repeat(x_T.detach().cpu().double().numpy().reshape(-1, 1), len(s_eval), axis=1)
        else:
            sol = solve_ivp(rhs, (s_start, s_stop), x_T.detach().cpu().double().numpy().ravel(),
                            method="DOP853", t_eval=np.clip(s_eval, s_stop, s_start), rtol=rtol, atol=atol)
            if not sol.success:  # pragma: no cover - scipy failure
                raise RuntimeError(f"solve_ivp failed: {sol.message}")
            sol_y = sol.y
        states = torch.from_numpy(sol_y.T.reshape(len(s_eval), n, d).copy())
        at_zero = eta_of(times) <= _ETA_MIN
        for j in np.nonzero(at_zero)[0]:  # the eta -> 0 limit: one exact step with x0_hat fixed
            states[j] = self.posterior_mean(states[j], _ETA_MIN)
        states = states.to(dtype=x_T.dtype, device=x_T.device)
        return states[0] if t_eval is None else states
