"""Networks of the kit: the official-compatible Swin-UNet and VQ-f4 autoencoder, checkpoints, and the
wrapper that turns a network (+ autoencoder) into a denoiser ``denoiser(x_t, t, y) -> x0_hat``.

* :class:`UNetModelSwin` (``ctlib.nn.unet``) and its Swin layers (``ctlib.nn.swin``);
* :class:`VQModel` (``ctlib.nn.vq``), the official ``VQModelTorch``;
* named configs ``V1_UNET``, ``V1_VQF4``, ``BUNDLED_PIXEL`` and ``build_unet`` / ``build_vq``
  (``ctlib.nn.configs``);
* ``load_weights`` (official files), ``save_checkpoint`` / ``load_checkpoint`` (the kit's format)
  (``ctlib.nn.checkpoint``);
* :class:`ResShiftDenoiser`, ``build_official_denoiser``, ``denoiser_from_checkpoint``
  (``ctlib.nn.denoiser``; both loaders give the networks the fast path unless ``fast=False``);
* ``accelerate`` / ``plain`` / ``is_accelerated`` (``ctlib.nn.fast``): the inference fast path,
  same weights and keys, same results to float rounding, used only without autograd.
"""

from .checkpoint import (
    CheckpointMismatchError,
    LoadedCheckpoint,
    extract_state_dict,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from .configs import BUNDLED_PIXEL, V1_UNET, V1_VQF4, build_unet, build_vq
from .denoiser import Conditioning, ResShiftDenoiser, build_official_denoiser, denoiser_from_checkpoint
from .fast import accelerate, is_accelerated, plain
from .swin import BasicLayer, SwinTransformerBlock, WindowAttention, shifted_window_mask
from .unet import UNetModelSwin, timestep_embedding
from .vq import IdentityFirstStage, VQModel, VQModelTorch

__all__ = [
    "UNetModelSwin",
    "timestep_embedding",
    "BasicLayer",
    "SwinTransformerBlock",
    "WindowAttention",
    "shifted_window_mask",
    "VQModel",
    "VQModelTorch",
    "IdentityFirstStage",
    "V1_UNET",
    "V1_VQF4",
    "BUNDLED_PIXEL",
    "build_unet",
    "build_vq",
    "CheckpointMismatchError",
    "LoadedCheckpoint",
    "extract_state_dict",
    "load_weights",
    "save_checkpoint",
    "load_checkpoint",
    "ResShiftDenoiser",
    "Conditioning",
    "build_official_denoiser",
    "denoiser_from_checkpoint",
    "accelerate",
    "plain",
    "is_accelerated",
]
