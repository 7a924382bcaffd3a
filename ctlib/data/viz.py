"""Notebook helpers: a grid of degraded samples (used by notebook 05)."""

from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure

from .degradation import degrade
from .degradation_params import REALESRGAN_TRAIN, DegradationConfig, DegradationParams, get_preset

__all__ = ["describe_degradation", "plot_degradation_grid"]


def describe_degradation(params: DegradationParams, i: int) -> str:
    """A short human-readable summary of the draws applied to image ``i`` of a batch."""
    if not 0 <= i < params.batch_size:
        raise ValueError(f"i must be in [0, {params.batch_size}), got {i}")

    def kernel(kd) -> str:  # noqa: ANN001
        if kd.kind == "sinc":
            return f"sinc{kd.size} wc={kd.omega_c:.2f}"
        if kd.kind in ("iso", "generalized_iso", "plateau_iso"):
            shape = f"s={kd.sigma_x:.2f}"
        else:
            shape = f"s={kd.sigma_x:.2f}/{kd.sigma_y:.2f}"
        beta = "" if math.isnan(kd.beta) else f" b={kd.beta:.2f}"
        return f"{kd.kind}{kd.size} {shape}{beta}"

    def stage(st, label: str) -> str:  # noqa: ANN001
        blur = kernel(st.kernel_draws[i]) if st.blur else "no blur"
        rs = f"{st.resize} x{st.resize_scale:.2f} {st.resize_mode}"
        if st.noise == "gaussian":
            nz = f"gauss {float(st.gaussian_sigma[i]):.1f}"
        else:
            nz = f"poisson {float(st.poisson_scale[i]):.2f}"
        nz += " gray" if bool(st.gray_noise[i]) else ""
        return f"{label}: {blur} | {rs} | {nz} | q{float(st.jpeg_quality[i]):.0f}"

    lines = [stage(params.first, "1st")]
    lines.append(stage(params.second, "2nd") if params.second_order else "2nd: off")
    fs = params.final_sinc_draws[i]
    sinc = f"sinc{fs.size} wc={fs.omega_c:.2f}" if fs.kind == "sinc" else "no sinc"
    order = "resize+sinc, jpeg" if params.final_order == "resize_sinc_then_jpeg" else "jpeg, resize+sinc"
    lines.append(f"final: {order} | {params.final_resize_mode} | {sinc} | q{float(params.final_jpeg_quality[i]):.0f}")
    return "\n".join(lines)


def plot_degradation_grid(
    hr: torch.Tensor,
    generator: torch.Generator,
    config: DegradationConfig | str = REALESRGAN_TRAIN,
    *,
    samples: int = 3,
    names: list[str] | None = None,
    annotate: bool = True,
    panel_inches: float = 2.6,
) -> Figure:
    """A figure with one row per HR image: the HR, then ``samples`` independent degradations.

    Each column is one call of :func:`ctlib.data.degrade` on the whole batch (so its batch-level
    choices are shared along a column, as in training). LR images are shown upscaled with
    nearest-neighbour pixels at the HR's display size.

    Args:
        hr: (B, 3, H, W) in [0, 1], H and W multiples of the config's scale.
        generator: source of every random draw (same seed -> same figure).
        config: a DegradationConfig or preset name.
        samples: degraded versions per image.
        names: row labels (default: image index).
        annotate: print the drawn parameters under each LR.

    Returns:
        A matplotlib Figure (not registered with pyplot: display it by returning it from a
        notebook cell, or save it with ``fig.savefig``).
    """
    if hr.ndim != 4:
        raise ValueError(f"hr must be (B, 3, H, W), got {tuple(hr.shape)}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    cfg = get_preset(config)
    b = hr.shape[0]
    if names is not None and len(names) != b:
        raise ValueError(f"names must have one entry per image ({b}), got {len(names)}")
    columns = [degrade(hr, generator, cfg, return_params=True) for _ in range(samples)]
    text_h = 1.3 if annotate else 0.0
    fig = Figure(figsize=(panel_inches * (samples + 1), (panel_inches + text_h) * b), layout="constrained")
    axes = fig.subplots(b, samples + 1, squeeze=False)
    for r in range(b):
        ax = axes[r][0]
        ax.imshow(hr[r].detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set_title(f"HR {names[r] if names else r} ({hr.shape[-1]}x{hr.shape[-2]})", fontsize=8)
        for c, (lr, params) in enumerate(columns, start=1):
            ax = axes[r][c]
            ax.imshow(lr[r].detach().cpu().permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title(f"LR sample {c} ({lr.shape[-1]}x{lr.shape[-2]})", fontsize=8)
            if annotate:
                ax.set_xlabel(describe_degradation(params, r).replace(" | ", "\n  "), fontsize=8, loc="left")
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    return fig
