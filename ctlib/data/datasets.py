"""Datasets and test-set tools: image folders (ImageNet layout), the bundled photos, test pairs.

Randomness. A dataset item never touches a global RNG: item ``i`` of epoch ``e`` draws from a
``torch.Generator`` seeded with a hash of ``(seed, e, i)``, so results do not depend on the
number of DataLoader workers or on the order items are fetched. Call ``set_epoch(e)`` to get
new crops each epoch.

Image sizes. Every image loads (a 1 x 1 image included), but the crop datasets need both sides
of an image to be at least ``min_side`` pixels (default 32; smaller images would be mostly
mirror padding). With ``scan=True`` (default) the folder dataset reads every header once at
construction and leaves out, with one warning that names them, the files it cannot open and
the images that are too small; with ``scan=False`` a too-small image raises ``ValueError``
when it is fetched.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .degradation import degrade
from .degradation_params import RESSHIFT_TEST, DegradationConfig, get_preset
from .imresize import imresize
from .io import IMAGE_EXTENSIONS, ImageReadError, list_images, read_image, to_tensor, write_png

__all__ = [
    "MIN_SIDE",
    "item_generator",
    "pad_reflect_to",
    "resize_short_side_center_crop",
    "bicubic_lr",
    "quantize_8bit",
    "quantize_u8",
    "ImageFolderDataset",
    "check_training_images",
    "PairedTestSet",
    "load_paired_folder",
    "select_resshift",
    "BuiltTestSet",
    "build_test_set",
]

#: Smallest side (pixels) the crop datasets accept by default.
MIN_SIDE = 32


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A CPU torch.Generator seeded from (seed, epoch, index) through numpy's SeedSequence."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _randint(g: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high] (inclusive)."""
    return int(torch.randint(low, high + 1, (1,), generator=g))


def pad_reflect_to(img: torch.Tensor, size: int) -> torch.Tensor:
    """Pad a (C, H, W) image at the bottom and right by reflection (OpenCV's BORDER_REFLECT_101)
    until both sides are at least ``size``, repeating when one reflection is not enough (the
    official loop)."""
    h, w = img.shape[-2:]
    while h < size or w < size:
        ph, pw = min(max(0, size - h), h - 1), min(max(0, size - w), w - 1)
        if ph == 0 and pw == 0:
            raise ValueError(f"cannot reflect-pad an image of size {h}x{w} (each side needs >= 2 pixels)")
        img = F.pad(img[None], (0, pw, 0, ph), mode="reflect")[0]
        h, w = img.shape[-2:]
    return img


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 256 levels of an 8-bit image (what PNG stores)."""
    return torch.clamp(torch.round(x * 255.0), 0, 255) / 255.0


def quantize_u8(x: torch.Tensor) -> torch.Tensor:
    """The uint8 CPU tensor of an image in [0, 1] (clamped, rounded): the pixels a PNG would store."""
    return torch.round(x.detach().float().clamp(0, 1) * 255).to(torch.uint8).cpu()


def resize_short_side_center_crop(img: torch.Tensor, size: int = 256) -> torch.Tensor:
    """Resize (C, H, W) so the shorter side is ``size`` (MATLAB bicubic, antialiased), then take
    the centre ``size`` x ``size`` crop. The longer side becomes ``round(long * size / short)``.

    ResShift's test set used albumentations' SmallestMaxSize (OpenCV bilinear, no antialiasing)
    for this step; we use the antialiased bicubic resize, which does not alias when shrinking.
    """
    h, w = img.shape[-2:]
    s = size / min(h, w)
    nh = size if h <= w else max(size, round(h * s))
    nw = size if w < h else max(size, round(w * s))
    if (nh, nw) != (h, w):
        img = imresize(img, size=(nh, nw))
    top, left = (nh - size) // 2, (nw - size) // 2
    return img[..., top : top + size, left : left + size]


def bicubic_lr(hr: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """The bicubic LR of the report's test set: MATLAB imresize by 1/scale, clamped, 8-bit levels."""
    return quantize_8bit(imresize(hr, 1.0 / scale))


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the header, without decoding."""
    with Image.open(path) as im:
        w, h = im.size
    return h, w


def _too_small(h: int, w: int, min_side: int) -> bool:
    return min(h, w) < min_side


def _small_message(path: Path | str, h: int, w: int, min_side: int) -> str:
    return (
        f"{path}: image is {w}x{h}; this dataset crops patches and needs both sides >= {min_side} px "
        f"(pass min_side= to change the limit)"
    )


def check_training_images(
    paths: Sequence[str | os.PathLike], min_side: int, *, workers: int | None = None
) -> list[tuple[Path, str]]:
    """Decode every file the way training reads it (:func:`~ctlib.data.io.read_image`) and check that
    both sides are at least ``min_side`` pixels; returns ``(path, reason)`` for every bad file, in the
    given order (empty when all are good).  Run before the first training step, so that one corrupt
    or too-small image cannot stop a run halfway (or its resume at the same step).  The files are
    decoded in ``workers`` threads (default: the CPU count; Pillow decodes without the GIL): about
    5 ms per 0.25-megapixel photo and core."""
    from concurrent.futures import ThreadPoolExecutor

    def problem(path: Path) -> str | None:
        try:
            img = read_image(path)
        except (OSError, ValueError) as err:  # FileNotFoundError, ImageReadError
            return str(err).replace(f"{path}: ", "", 1)
        h, w = img.shape[:2]
        if _too_small(h, w, min_side):
            return f"image is {w}x{h}; training crops need both sides >= {min_side} px"
        return None

    files = [Path(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        reasons = list(pool.map(problem, files))
    return [(p, why) for p, why in zip(files, reasons) if why is not None]


class ImageFolderDataset(torch.utils.data.Dataset):
    """HR training crops from a folder of images (e.g. ImageNet ``train/`` with its class folders).

    Each item is a float32 (3, gt_size, gt_size) tensor in [0, 1], made the official way:
    horizontal flip with probability 1/2, reflect-pad (bottom/right) to ``crop_pad_size`` (300),
    a random ``crop_pad_size`` crop, then a random ``gt_size`` (256) crop of it. (The official
    trainer degrades the 300-pixel crop and then takes paired 256/64 crops; here the HR is
    cropped first and degraded afterwards, e.g. with :func:`ctlib.data.degrade` on the batch.)

    ``rescale_gt=True`` switches to what ResShift's ``realsr_swinunet_realesrgan256.yaml``
    actually sets: a random square crop of the shorter side, resized to ``gt_size`` with area
    averaging.

    Args:
        root: the folder; searched recursively by default.
        extensions: file extensions to take (case-insensitive).
        seed: base seed; items are reproducible for a given (seed, epoch, index).
        min_side: images with a side below this are rejected (see the module docstring).
        scan: read every header at construction (skip unreadable / too-small files with one
            warning); False defers the checks to ``__getitem__`` (faster start on huge folders).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        gt_size: int = 256,
        crop_pad_size: int = 300,
        hflip: bool = True,
        rescale_gt: bool = False,
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
        recursive: bool = True,
        seed: int = 0,
        min_side: int = MIN_SIDE,
        scan: bool = True,
    ) -> None:
        if gt_size < 1 or crop_pad_size < gt_size:
            raise ValueError(f"need 1 <= gt_size <= crop_pad_size, got gt_size={gt_size}, crop_pad_size={crop_pad_size}")
        if min_side < 2:
            raise ValueError(f"min_side must be >= 2 (reflect padding needs two pixels), got {min_side}")
        self.root = Path(root)
        self.gt_size, self.crop_pad_size = int(gt_size), int(crop_pad_size)
        self.hflip, self.rescale_gt = bool(hflip), bool(rescale_gt)
        self.seed, self.epoch, self.min_side = int(seed), 0, int(min_side)
        files = list_images(self.root, extensions=extensions, recursive=recursive)
        self.rejected: list[tuple[Path, str]] = []
        if scan:
            kept = []
            for p in files:
                try:
                    h, w = _image_size(p)
                except Exception as e:  # noqa: BLE001 - any header failure means "unreadable"
                    self.rejected.append((p, f"not a readable image ({type(e).__name__}: {e})"))
                    continue
                if _too_small(h, w, self.min_side):
                    self.rejected.append((p, _small_message(p.name, h, w, self.min_side)))
                    continue
                kept.append(p)
            files = kept
            if self.rejected:
                lines = "\n".join(f"  {p}: {why}" for p, why in self.rejected)
                warnings.warn(
                    f"ImageFolderDataset({str(self.root)!r}): left out {len(self.rejected)} file(s):\n{lines}",
                    UserWarning,
                    stacklevel=2,
                )
        if not files:
            raise ValueError(f"no usable images under {self.root} (extensions {tuple(extensions)})")
        self.paths: list[Path] = files

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Change the crops/flips drawn by every item (call once per epoch)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        img = to_tensor(read_image(path))  # type: ignore[arg-type]
        h, w = img.shape[-2:]
        if _too_small(h, w, self.min_side):
            raise ValueError(_small_message(path, h, w, self.min_side))
        g = item_generator(self.seed, self.epoch, index)
        return crop_official(img, g, gt_size=self.gt_size, crop_pad_size=self.crop_pad_size, hflip=self.hflip,
                             rescale_gt=self.rescale_gt)


def crop_official(
    img: torch.Tensor,
    generator: torch.Generator,
    *,
    gt_size: int = 256,
    crop_pad_size: int = 300,
    hflip: bool = True,
    rescale_gt: bool = False,
) -> torch.Tensor:
    """The official training crop of one (C, H, W) image (see :class:`ImageFolderDataset`)."""
    flip = torch.rand(1, generator=generator).item() < 0.5
    if hflip and flip:
        img = img.flip(-1)
    h, w = img.shape[-2:]
    size = max(min(h, w), gt_size) if rescale_gt else crop_pad_size
    img = pad_reflect_to(img, size)
    h, w = img.shape[-2:]
    top, left = _randint(generator, 0, h - size), _randint(generator, 0, w - size)
    img = img[:, top : top + size, left : left + size]
    if rescale_gt:
        if size != gt_size:
            img = F.interpolate(img[None], size=(gt_size, gt_size), mode="area")[0]
        return img.contiguous()
    if size > gt_size:
        top, left = _randint(generator, 0, size - gt_size), _randint(generator, 0, size - gt_size)
        img = img[:, top : top + gt_size, left : left + gt_size]
    return img.contiguous()


# --------------------------------------------------------------------------------------------
# paired test sets
# --------------------------------------------------------------------------------------------


@dataclass
class PairedTestSet:
    """HR / LR pairs, the one test-set type of the kit: ``hr[i]`` (3, H, W) and ``lr[i]`` (3, H/4, W/4),
    float32 in [0, 1].  ``hr`` / ``lr`` are stacked tensors (N, 3, H, W) when all images have one size
    (the bundled photos) or lists (a folder of images of different sizes); indexing and iterating
    work the same on both.  ``description`` / ``notes``: what the images are and what was done to
    them (crops, rejections), for a table's header."""

    hr: torch.Tensor | list[torch.Tensor]
    lr: torch.Tensor | list[torch.Tensor]
    names: list[str]
    description: str = ""
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def _map(self, f) -> tuple:
        if isinstance(self.hr, torch.Tensor):
            return f(self.hr), f(self.lr)
        return [f(t) for t in self.hr], [f(t) for t in self.lr]

    def to(self, device: torch.device | str) -> PairedTestSet:
        hr, lr = self._map(lambda t: t.to(device))
        return PairedTestSet(hr, lr, list(self.names), self.description, list(self.notes))

    def subset(self, n: int) -> PairedTestSet:
        """The first ``n`` pairs."""
        return PairedTestSet(self.hr[:n], self.lr[:n], self.names[:n], self.description, list(self.notes))

    def fingerprint(self) -> str:
        """sha256 over names and 8-bit pixels of HR and LR: a cache is only reused on the same images."""
        h = hashlib.sha256()
        for name, hr, lr in zip(self.names, self.hr, self.lr):
            h.update(name.encode())
            for t in (hr, lr):
                h.update(str(tuple(t.shape)).encode())
                h.update(quantize_u8(t).numpy().tobytes())
        return h.hexdigest()

    def batches(self, batch_size: int) -> list[list[int]]:
        """Indices grouped by image size (in index order), in chunks of at most ``batch_size``."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, t in enumerate(self.hr):
            groups.setdefault(tuple(t.shape), []).append(i)
        out = []
        for idx in groups.values():
            out += [idx[k : k + batch_size] for k in range(0, len(idx), batch_size)]
        return out


def load_paired_folder(folder: str | os.PathLike, *, limit: int | None = None) -> PairedTestSet:
    """Read a folder written by :func:`build_test_set` (``hr/`` and ``lr/`` PNGs of equal names)."""
    root = Path(folder)
    hr_dir, lr_dir = root / "hr", root / "lr"
    if not hr_dir.is_dir() or not lr_dir.is_dir():
        raise FileNotFoundError(f"{root} must contain hr/ and lr/ folders (as build_test_set writes)")
    names = [p.name for p in list_images(hr_dir, extensions=[".png"])]
    missing = [n for n in names if not (lr_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} HR images have no LR partner in {lr_dir}, e.g. {missing[:3]}")
    if not names:
        raise ValueError(f"no PNG images in {hr_dir}")
    names = names[:limit] if limit is not None else names
    hr = torch.stack([to_tensor(read_image(hr_dir / n)) for n in names])  # type: ignore[arg-type]
    lr = torch.stack([to_tensor(read_image(lr_dir / n)) for n in names])  # type: ignore[arg-type]
    return PairedTestSet(hr, lr, names)


def _glob_sorted(src: Path, extensions: Sequence[str]) -> list[Path]:
    """ResShift's file list: for each extension in turn, sorted(str) of a recursive glob."""
    files: list[Path] = []
    for ext in extensions:
        e = ext.lstrip(".")
        files.extend(Path(p) for p in sorted(str(p) for p in src.glob(f"**/*.{e}") if p.is_file()))
    return files


def select_resshift(files: Sequence[Path], n: int, seed: int = 10000) -> list[Path]:
    """Pick ``n`` files the way ResShift's ``prepare_testing_imagenet.py`` does.

    It calls ``random.seed(seed)``, shuffles a list of the same length (which it then never
    uses: only the random-number draws matter) and takes ``random.sample(files, n)``. With
    ``seed=10000`` and ``n=3000`` on an ImageNet ``val`` folder this gives ResShift's
    ImageNet-Test images, in its order.
    """
    if n > len(files):
        raise ValueError(f"asked for n={n} images but only {len(files)} were found")
    rng = random.Random(seed)
    rng.shuffle(list(range(len(files))))
    return rng.sample(list(files), n)


@dataclass
class BuiltTestSet:
    """What :func:`build_test_set` wrote."""

    out: Path
    names: list[str]
    sources: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_test_set(
    src: str | os.PathLike,
    out: str | os.PathLike,
    n: int = 1000,
    lr: str = "bicubic",
    seed: int = 10000,
    overwrite: bool = False,
    *,
    size: int = 256,
    scale: int = 4,
    extensions: Sequence[str] = ("png", "JPEG"),
    degradation: DegradationConfig | str = RESSHIFT_TEST,
    progress: bool = False,
) -> BuiltTestSet:
    """Build an HR/LR test set from a folder of photos (e.g. ImageNet ``val``).

    Steps: list ``src`` recursively (per extension, sorted, case-sensitive as ResShift's glob);
    pick ``n`` files with :func:`select_resshift` (``seed``); resize each so its shorter side is
    ``size`` (MATLAB bicubic) and centre-crop ``size`` x ``size``; round to 8 bit -> HR; make the
    LR from that HR by ``lr="bicubic"`` (MATLAB imresize by 1/``scale``, the report's test set)
    or ``lr="degradation"`` (the ResShift testing degradation, one generator per image seeded
    from (seed, index)); write ``out/hr/NAME.png``, ``out/lr/NAME.png``, ``out/manifest.csv``
    and ``out/build_info.json``.

    The report used 1000 ImageNet images with bicubic LR (its selection is not published);
    ResShift's ImageNet-Test is ``n=3000, seed=10000, lr="degradation"`` on ImageNet ``val``
    (same images; the LR differ because ResShift drew its degradations from global RNGs).

    Raises:
        FileNotFoundError: ``src`` is not a folder.
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ValueError: no images in ``src``, fewer than ``n``, or a bad argument.
    """
    src_p, out_p = Path(src), Path(out)
    if lr not in ("bicubic", "degradation"):
        raise ValueError(f"lr must be 'bicubic' or 'degradation', got {lr!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if size % scale:
        raise ValueError(f"size ({size}) must be a multiple of scale ({scale})")
    if not src_p.is_dir():
        raise FileNotFoundError(f"src folder not found: {src_p}")
    if out_p.exists() and not overwrite:
        raise FileExistsError(
            f"output folder {out_p} already exists; refusing to overwrite it (pass overwrite=True to "
            f"replace its hr/, lr/, manifest.csv and build_info.json)"
        )
    files = _glob_sorted(src_p, extensions)
    if not files:
        raise ValueError(
            f"input folder {src_p} holds no images with extensions {tuple(extensions)} "
            f"(searched recursively; pass extensions=... for other file types)"
        )
    if n > len(files):
        raise ValueError(f"input folder {src_p} holds {len(files)} images, fewer than n={n}")
    chosen = select_resshift(files, n, seed)
    cfg = get_preset(degradation) if lr == "degradation" else None
    if cfg is not None and cfg.scale != scale:
        raise ValueError(f"the degradation config has scale {cfg.scale}, but scale={scale}")
    stems = [p.stem for p in chosen]
    unique = len(set(stems)) == len(stems)
    if out_p.exists():
        for sub in ("hr", "lr"):
            if (out_p / sub).exists():
                shutil.rmtree(out_p / sub)
        for fname in ("manifest.csv", "build_info.json"):
            (out_p / fname).unlink(missing_ok=True)
    (out_p / "hr").mkdir(parents=True, exist_ok=True)
    (out_p / "lr").mkdir(parents=True, exist_ok=True)
    iterator: Iterable[tuple[int, Path]] = enumerate(chosen)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(chosen), desc="build_test_set")
    rows, names, sources, skipped = [], [], [], []
    for i, path in iterator:
        try:
            img = read_image(path)
        except ImageReadError as e:
            skipped.append((path, str(e).replace(f"{path}: ", "", 1)))
            continue
        hr = quantize_8bit(resize_short_side_center_crop(to_tensor(img).double(), size)).float()  # type: ignore[arg-type]
        if lr == "bicubic":
            lr_img = bicubic_lr(hr.double(), scale).float()
        else:
            lr_img = degrade(hr[None], item_generator(seed, 0, i), cfg)[0]  # type: ignore[arg-type,index]
        rel = path.relative_to(src_p)
        name = (path.stem if unique else "__".join(rel.with_suffix("").parts)) + ".png"
        hr_file = write_png(out_p / "hr" / name, hr)
        lr_file = write_png(out_p / "lr" / name, lr_img)
        rows.append({"index": i, "name": name, "source": rel.as_posix(),
                     "hr_sha256": _sha256(hr_file), "lr_sha256": _sha256(lr_file)})
        names.append(name)
        sources.append(path)
    with open(out_p / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["index", "name", "source", "hr_sha256", "lr_sha256"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    info = {
        "src": str(src_p.resolve()), "n_requested": n, "n_written": len(names), "seed": seed, "lr": lr,
        "size": size, "scale": scale, "extensions": list(extensions), "files_found": len(files),
        "selection": "random.Random(seed): shuffle a list of len(files), then sample(files, n) (ResShift)",
        "hr": f"shortest side -> {size} (MATLAB bicubic, antialiased), centre crop, 8-bit",
        "lr_method": (f"MATLAB bicubic 1/{scale} of the 8-bit HR, clamped, 8-bit" if lr == "bicubic" else
                      "Real-ESRGAN degradation (config below), generator per image = item_generator(seed, 0, index)"),
        "degradation": cfg.to_dict() if cfg is not None else None,
        "skipped": [[str(p), why] for p, why in skipped],
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "pillow": Image.__version__},
    }
    (out_p / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if skipped:
        lines = "\n".join(f"  {p}: {why}" for p, why in skipped)
        warnings.warn(f"build_test_set: skipped {len(skipped)} unreadable file(s):\n{lines}", UserWarning, stacklevel=2)
    return BuiltTestSet(out=out_p, names=names, sources=sources, skipped=skipped)
