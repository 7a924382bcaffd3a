"""Training pairs: random HR crops of photos and their x4 LR images, every draw from a generator.

:class:`PairSource` is what the training loop (:func:`ctlib.train.run_training`) draws its batches
from: a crop per item (uniform, the official recipe, or with scale augmentation), then the LR image
by MATLAB bicubic, the Real-ESRGAN degradation, or a mix of the two (:data:`DEGRADATIONS`).
"""

from __future__ import annotations

from typing import Any

import torch

from .._checks import check_int, check_positive
from .datasets import bicubic_lr, crop_official, quantize_8bit
from .degradation import degrade
from .degradation_params import REALESRGAN_TRAIN
from .imresize import imresize
from .io import read_image_tensor

__all__ = ["DEGRADATIONS", "PairSource"]

DEGRADATIONS = ("bicubic", "realesrgan", "mix")


class PairSource:
    """``source(n, generator) -> (hr, lr)``: ``n`` random HR crops (float32 in [0, 1], sides
    ``crop_size``) and their LR images (sides ``crop_size / 4``).

    ``images``: a list of (3, H, W) tensors (uint8 or float in [0, 1]; e.g. the bundled training
    photos) or a dataset/sequence of file paths read on demand (e.g. an ImageNet folder).  A crop is
    a uniform photo, a uniform position and a horizontal flip with probability 1/2; with
    ``official_crop`` it is the official recipe (reflect-pad to 300, random 256 crop, flip).
    ``min_scale`` < 1 adds scale augmentation: each crop is cut from a region ``crop_size / s``
    pixels wide (``s ~ U(min_scale, 1)``, capped by the photo's shorter side) and shrunk to
    ``crop_size`` by MATLAB bicubic (antialiased) to 8-bit levels, the way the test photos were made
    from larger originals.  Multi-megapixel photos are far smoother per pixel than web-size ones
    (bicubic x4 scores a median 35.0 dB on native-scale 64 x 64 crops of the bundled training
    photos, 27.8 dB on the test photos' tiles), yet on the bundled photos the augmentation did not
    improve the model (notebook 05 section 2d), so the profiles leave it off (``min_scale = 1``).
    ``degradation``: ``"bicubic"`` (MATLAB imresize x1/4, 8-bit levels: the report's test LR),
    ``"realesrgan"`` (the official training degradation), or ``"mix"`` (each batch item is
    Real-ESRGAN-degraded with probability ``mix_prob``, else bicubic).  Every draw comes from the
    generator passed in.
    """

    def __init__(self, images: Any, crop_size: int = 256, degradation: str = "bicubic", *,
                 mix_prob: float = 0.5, official_crop: bool = False, min_scale: float = 1.0) -> None:
        if degradation not in DEGRADATIONS:
            raise ValueError(f"degradation must be one of {', '.join(DEGRADATIONS)}, got {degradation!r}")
        crop_size = check_int(crop_size, "crop_size", minimum=4)
        if crop_size % 4:
            raise ValueError(f"crop_size must be a multiple of 4 (x4 super-resolution), got {crop_size}")
        if len(images) == 0:
            raise ValueError("no training images: the image list or folder is empty")
        self.images, self.crop_size, self.degradation = images, crop_size, degradation
        self.mix_prob, self.official_crop = float(mix_prob), bool(official_crop)
        self.min_scale = check_positive(min_scale, "min_scale")
        if self.min_scale > 1:
            raise ValueError(f"min_scale must be in (0, 1] (1: no rescaling), got {min_scale!r}")
        if self.official_crop and self.min_scale < 1:
            raise ValueError("min_scale < 1 does not apply to the official crop (it has its own recipe)")

    def _image(self, k: int) -> torch.Tensor:
        img = self.images[k]
        if not isinstance(img, torch.Tensor):  # a path (or a dataset item that is a path)
            img = read_image_tensor(img)
        return img.float() / 255.0 if img.dtype == torch.uint8 else img.float()

    def _crop(self, img: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.official_crop:
            return crop_official(img, generator, gt_size=self.crop_size)
        size = self.crop_size
        h, w = img.shape[-2:]
        if min(h, w) < size:
            raise ValueError(f"a training image of {h}x{w} is smaller than the crop size {size}")
        region = size
        if self.min_scale < 1:  # s ~ U(min_scale, 1): a region of size / s pixels, shrunk to size
            s = self.min_scale + (1 - self.min_scale) * float(torch.rand(1, generator=generator))
            region = min(round(size / s), h, w)
        top = int(torch.randint(h - region + 1, (1,), generator=generator))
        left = int(torch.randint(w - region + 1, (1,), generator=generator))
        crop = img[:, top:top + region, left:left + region]
        if region != size:
            crop = quantize_8bit(imresize(crop, size=(size, size)).clamp(0, 1))
        return crop.flip(-1) if float(torch.rand(1, generator=generator)) < 0.5 else crop

    def __call__(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.images), (n,), generator=generator).tolist()
        hr = torch.stack([self._crop(self._image(k), generator) for k in idx]).contiguous()
        if self.degradation == "bicubic":
            return hr, bicubic_lr(hr)
        if self.degradation == "realesrgan":
            return hr, degrade(hr, generator, REALESRGAN_TRAIN)
        use_real = (torch.rand(n, generator=generator) < self.mix_prob).tolist()
        lr = bicubic_lr(hr)
        if any(use_real):
            sel = [i for i, u in enumerate(use_real) if u]
            lr[sel] = degrade(hr[sel], generator, REALESRGAN_TRAIN)
        return hr, lr
