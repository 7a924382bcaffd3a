"""Run profiles: one name, used by the CLI and by the notebooks' papermill parameters.

=======  =====================================================================================
smoke    seconds to a minute on 2 CPU cores: what CI executes
cpu      the embedded default: shipped checkpoints, bundled photos, minutes on 2 cores
gpu      trains the bundled-data models from scratch on one GPU in minutes
paper    the report's setup: official ResShift weights + VQ-f4 + an ImageNet folder the user
         supplies; 50K fine-tuning iterations; 1000 test images
=======  =====================================================================================
"""

from __future__ import annotations

PROFILES: dict[str, str] = {
    "smoke": "seconds to a minute on 2 CPU cores (what CI executes)",
    "cpu": "the embedded default: shipped checkpoints and bundled photos, minutes on 2 CPU cores",
    "gpu": "trains the bundled-data models from scratch on one GPU in minutes",
    "paper": "the report's setup: official weights, VQ-f4 latent space, the user's ImageNet folder",
}
DEFAULT_PROFILE = "cpu"


def check_profile(name: str) -> str:
    """Return ``name`` if it is a known profile, else raise ValueError listing the known ones."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")
    return name
