"""Run profiles: every number of every profile, in one place.

=======  =====================================================================================
smoke    seconds to a minute on 2 CPU cores: what CI executes
cpu      the embedded default: shipped checkpoints, bundled photos, minutes on 2 cores
gpu      trains the bundled-data models from scratch on one GPU in minutes
paper    the report's setup: official ResShift weights + VQ-f4 + an ImageNet folder the user
         supplies; 50K fine-tuning iterations; 1000 test images
=======  =====================================================================================

What each part of the kit reads here: ``train`` its recipe per profile and mode
(:data:`TRAIN_PROFILES`), the table (``ctlib.table``, notebook 06) its evaluation set and sweep
(:data:`EVAL_PROFILES`) and checkpoints (:data:`DEFAULT_CHECKPOINTS`, :data:`RECORD_DIR`),
``upscale`` its model, sampler and tiling (:data:`UPSCALE_DEFAULTS`), notebooks 05 and 07 their
demonstration sizes (:data:`FINETUNE_DEMO`, :data:`UPSCALE_DEMO`).  The CLI's defaults are these
values; a command-line option overrides them for one run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROFILES", "DEFAULT_PROFILE", "check_profile", "SHIPPED_CHECKPOINTS", "DEV_CHECKPOINTS",
           "DEFAULT_CHECKPOINTS", "RECORD_DIR", "TINY_PIXEL_OVERRIDES", "TRAIN_PROFILES", "EVAL_PROFILES",
           "UPSCALE_DEFAULTS", "FINETUNE_DEMO", "UPSCALE_DEMO"]

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


# ---------------------------------------------------------------------------------------------
# models and results of record (paths relative to the repository root)
# ---------------------------------------------------------------------------------------------
#: The shipped pixel-space models (relative to the repository root).
SHIPPED_CHECKPOINTS: dict[str, str] = {
    "baseline": "data/checkpoints/baseline_discrete.pt",
    "continuous": "data/checkpoints/continuous_finetune.pt",
}
#: A snapshot of the baseline training, used for both roles while the shipped models are trained.
DEV_CHECKPOINTS: dict[str, str] = {"baseline": "runs/dev_baseline.pt", "continuous": "runs/dev_baseline.pt"}
#: The checkpoints the ``smoke`` / ``cpu`` / ``gpu`` profiles use.
DEFAULT_CHECKPOINTS: dict[str, str] = SHIPPED_CHECKPOINTS
#: The committed results of record of the ``cpu`` profile (relative to the repository root).
RECORD_DIR = "data/results/cpu"
#: Evaluation settings per profile.  ``n_images``: None = all; ``crop``: centre crop side (None = full
#: images); ``sweep_nfes``: the nfe values of the few-step sweep (nfe = 15 comes from the table);
#: ``rows``: "table" (the report's rows + exp1/exp2m/exp3m) or "smoke" (5 rows); ``grid_images``: images shown
#: in the crop figure.
EVAL_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"n_images": 2, "crop": 64, "batch_size": 2, "rows": "smoke", "sweep_nfes": (3,), "grid_images": (0, 1),
              "source": "bundled"},
    "cpu": {"n_images": None, "crop": 128, "batch_size": 13, "rows": "table", "sweep_nfes": (3, 5, 8, 10),
            "grid_images": (0, 5, 12, 21), "source": "bundled"},
    "gpu": {"n_images": None, "crop": None, "batch_size": 26, "rows": "table", "sweep_nfes": (3, 5, 8, 10),
            "grid_images": (0, 5, 12, 21), "source": "bundled"},
    "paper": {"n_images": None, "crop": None, "batch_size": 8, "rows": "table", "sweep_nfes": (3, 5, 8, 10),
              "grid_images": (0, 1, 2, 3), "source": "folder"},
}


# ---------------------------------------------------------------------------------------------
# training: one name -> network, data and recipe (``python -m ctlib train --profile NAME --mode M``)
# ---------------------------------------------------------------------------------------------
#: A minimal pixel UNet for the smoke profile and tests (the bundled architecture, two levels).
TINY_PIXEL_OVERRIDES = {"image_size": 64, "lq_size": 64, "channel_mult": [1, 1], "num_res_blocks": [1, 1],
                        "attention_resolutions": [32], "swin_embed_dim": 32, "num_head_channels": 16}

TRAIN_PROFILES: dict[str, dict[str, Any]] = {
    # seconds on 2 CPU cores: the wiring, not a model
    "smoke": {"net": "tiny", "crop_size": 64, "iterations": 4, "batch_size": 4, "micro_batch": 2, "lr": 2e-4,
              "warmup": 0, "ema_decay": 0.9, "degradation": "bicubic", "kappa": 2.0, "log_every": 1, "ckpt_every": 2,
              "val_every": 0},
    # the shipped bundled models on 2 CPU cores (as one process or as two one-thread torchrun processes;
    # torchrun holds up better on a busy machine, benchmarks/training.py), both with the official kappa = 2
    # (smaller ones measured, notebook 05) and bicubic LR (the test degradation, same).  The discrete
    # baseline, `--mode discrete`: 64 x 64 crops of batch 16 (about 0.55 s per iteration, 3600 iterations,
    # ~33 min).  Its continuous fine-tune, `--mode continuous --init <baseline>/model.pt`, uses
    # `by_mode["continuous"]`: whole 256 x 256 photos, the test size (the samplers of a model trained only on
    # 64 x 64 crops over-disperse at 256, notebook 05 section 2c), batch 2 (~1.1 s per iteration, 1000
    # iterations, ~19 min).
    "cpu": {"net": "bundled", "crop_size": 64, "iterations": 3600, "batch_size": 16, "micro_batch": 16, "lr": 5e-4,
            "warmup": 100, "ema_decay": 0.995, "grad_clip": 1.0, "degradation": "bicubic", "kappa": 2.0,
            "log_every": 5, "ckpt_every": 50, "val_every": 100,
            "by_mode": {"continuous": {"crop_size": 256, "batch_size": 2, "micro_batch": 2, "iterations": 1000,
                                       "lr": 3e-4, "warmup": 20, "lr_decay": "cosine", "schedule": "fit"}}},
    # one GPU, minutes: the bundled models from scratch
    "gpu": {"net": "bundled", "crop_size": 256, "iterations": 20000, "batch_size": 32, "micro_batch": 32,
            "lr": 2e-4, "warmup": 500, "ema_decay": 0.999, "degradation": "bicubic", "kappa": 2.0, "log_every": 50,
            "ckpt_every": 1000, "val_every": 1000, "by_mode": {"continuous": {"schedule": "fit"}}},
    # the report's recipe (section 3.1 + the official config, docs/maths.md §11)
    "paper": {"net": "v1", "crop_size": 256, "iterations": 50000, "batch_size": 16, "micro_batch": 8, "lr": 5e-5,
              "warmup": 5000, "ema_decay": 0.999, "degradation": "realesrgan", "official_crop": True,
              "log_every": 100, "ckpt_every": 5000, "val_every": 5000, "by_mode": {"continuous": {"schedule": "report"}}},
}


# ---------------------------------------------------------------------------------------------
# upscaling (``python -m ctlib upscale``, ``ctlib.upscale``)
# ---------------------------------------------------------------------------------------------
#: The default model, sampler and tiling.  The sampler is from measurement: the cheapest setting of the
#: table of record (``data/results/cpu``) within 0.05 dB PSNR-Y and 0.002 SSIM-Y of its best nfe = 15 row
#: (``ctlib.conclusions.cheapest_match``; ``tests/test_upscale_defaults.py`` keeps them in step).  Tile
#: and overlap in LR pixels (the bundled model was trained on 64 x 64 LR crops).
UPSCALE_DEFAULTS: dict[str, Any] = {"checkpoint": SHIPPED_CHECKPOINTS["continuous"], "solver": "euler",
                                    "rho": -8.0, "nfe": 8, "tile": 64, "overlap": 16}


# ---------------------------------------------------------------------------------------------
# the notebooks' demonstrations
# ---------------------------------------------------------------------------------------------
#: Notebook 05's in-notebook fine-tune: the cpu profile's continuous recipe cut short (iterations, crop
#: side, test photos scored and their side); smoke only checks the wiring on small crops.
FINETUNE_DEMO: dict[str, dict[str, int]] = {
    "smoke": {"iterations": 2, "crop_size": 64, "photos": 1, "side": 64},
    "cpu": {"iterations": 10, "crop_size": 256, "photos": 2, "side": 256},
}
FINETUNE_DEMO["gpu"] = FINETUNE_DEMO["paper"] = FINETUNE_DEMO["cpu"]
#: Notebook 07: HR crop side of the photos / of the large image (LR = side / 4); tile and overlap (LR
#: pixels); nfe values of the solver study and the side of its HR crop.
UPSCALE_DEMO: dict[str, dict[str, Any]] = {
    "cpu": {"photos": 3, "side": 256, "large": 320, "tile": 48, "overlap": 16, "nfes": (1, 3, 5, 15), "study": 128},
    "smoke": {"photos": 1, "side": 128, "large": 192, "tile": 32, "overlap": 8, "nfes": (1, 3), "study": 64},
}
UPSCALE_DEMO["gpu"] = UPSCALE_DEMO["cpu"]
UPSCALE_DEMO["paper"] = {**UPSCALE_DEMO["cpu"], "large": 384, "tile": 64}  # the official model needs tiles of 64k
