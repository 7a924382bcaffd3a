"""The degradation grid for notebook 05: layout, content and seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ctlib.data.degradation import degrade
from ctlib.data.degradation_params import sample_degradation
from ctlib.data.viz import describe_degradation, plot_degradation_grid


def test_grid_layout_and_content():
    hr = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    fig = plot_degradation_grid(hr, torch.Generator().manual_seed(1), "train", samples=2, names=["a", "b"])
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    assert len(axes) == 2 * 3
    shown = [ax.get_images()[0].get_array() for ax in axes]
    np.testing.assert_allclose(shown[0], hr[0].permute(1, 2, 0).numpy())
    # the LR columns are exactly what degrade() gives with the same generator sequence
    g = torch.Generator().manual_seed(1)
    first = degrade(hr, g, "train")
    np.testing.assert_allclose(shown[1], first[0].permute(1, 2, 0).numpy())
    np.testing.assert_allclose(shown[4], first[1].permute(1, 2, 0).numpy())
    assert shown[1].shape == (16, 16, 3)
    assert "1st:" in axes[1].get_xlabel() and "final:" in axes[1].get_xlabel()
    with pytest.raises(ValueError, match="names"):
        plot_degradation_grid(hr, torch.Generator(), names=["only one"])


def test_describe_names_the_drawn_kernel():
    p = sample_degradation(3, torch.Generator().manual_seed(2))
    for i in range(3):
        text = describe_degradation(p, i)
        kd = p.first.kernel_draws[i]
        assert f"{kd.kind}{kd.size}" in text.splitlines()[0]
        assert f"q{float(p.first.jpeg_quality[i]):.0f}" in text.splitlines()[0]
    with pytest.raises(ValueError):
        describe_degradation(p, 3)
