"""Image I/O: any common format in, float RGB out; 8- or 16-bit PNG out.

Conventions (one for the whole kit):

* :func:`read_image` returns a **numpy float32 array, HWC, RGB, values in [0, 1]**
  (the layout of every image library and of matplotlib's ``imshow``).
* :func:`to_tensor` / :func:`read_image_tensor` give the **torch float32 CHW** layout the
  models use (a batch is BCHW); :func:`to_numpy` goes back.

What reading does to each kind of file (Pillow decodes; nothing else is needed):

* EXIF orientation is applied (the pixels come out the way a photo viewer shows them).
* Grayscale (``L``, ``1``, 16-bit ``I;16``, 32-bit ``I``/``F``) is repeated to three channels.
* Palette (``P``) images are expanded to RGB (or RGBA when the palette has transparency).
* Alpha (``RGBA``, ``LA``, ``PA``) is dropped from the RGB -- no compositing, the colour values
  are kept as stored -- and returned separately with ``return_alpha=True``.
* CMYK (and YCbCr, LAB, HSV) go through Pillow's conversion to RGB (no colour management;
  embedded ICC profiles are ignored).
* 16-bit images keep full precision: 16-bit grayscale through Pillow, 16-bit RGB/RGBA PNGs
  (plain or Adam7-interlaced) through a small built-in PNG decoder and colour TIFFs with more
  than 8 bits per sample through ``tifffile`` (Pillow would cut both to 8 bits). That decoder
  undoes PNG's row filters in Python, so a large 16-bit colour PNG written by other software
  takes a few seconds per megapixel (2.5 s measured); 8-bit files and the 16-bit files that
  :func:`write_png` writes are fast.
* Animated / multi-page files give their first frame.
* A truncated or corrupt file raises :class:`ImageReadError` (never a half-decoded image), and
  so does a file over Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, about
  179 megapixels), before anything is decoded.
* Any size loads, 1 x 1 included; datasets that need a crop size reject images that are too
  small (see :mod:`ctlib.data.datasets`).

:func:`load_images` reads a folder: unreadable files are skipped and files whose extension is
not an image extension are ignored, with **one** warning that lists them all (and both lists in
the result).
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "LoadedImages",
    "list_images",
    "read_image",
    "read_image_tensor",
    "load_images",
    "to_tensor",
    "to_numpy",
    "to_uint8",
    "write_png",
]

#: File extensions treated as images by the folder helpers (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pbm",
    ".pnm", ".tga", ".jfif",
)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageReadError(OSError):
    """A file could not be decoded as an image (missing, not an image, truncated, corrupt)."""


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _normalise_extensions(extensions: Iterable[str] | None) -> tuple[str, ...] | None:
    if extensions is None:
        return None
    if isinstance(extensions, str):
        extensions = [extensions]
    out = []
    for e in extensions:
        if not isinstance(e, str) or not e.strip("."):
            raise ValueError(f"extensions must be non-empty strings like '.png', got {e!r}")
        out.append(("." + e.lstrip(".")).lower())
    if not out:
        raise ValueError("extensions must not be empty (pass None to accept every file)")
    return tuple(out)


def _png_header(path: Path) -> tuple[int, int, int, int, int] | None:
    """(width, height, bit_depth, colour_type, interlace) of a PNG file, None if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    w, h, depth, ctype, _comp, _filt, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return w, h, depth, ctype, interlace


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter_rows(data: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    """Undo PNG row filtering; returns a (height, stride) uint8 array."""
    if len(data) < height * (stride + 1):
        raise ImageReadError("PNG image data is truncated")
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    pos = 0
    for y in range(height):
        ftype = data[pos]
        raw = np.frombuffer(data, dtype=np.uint8, count=stride, offset=pos + 1)
        pos += stride + 1
        if ftype == 0:
            row = raw.copy()
        elif ftype == 1:  # Sub: cumulative sum per byte lane, mod 256
            lanes = raw.reshape(-1, bpp)
            row = np.cumsum(lanes, axis=0, dtype=np.uint8).reshape(-1)
        elif ftype == 2:  # Up
            row = raw + prev
        elif ftype in (3, 4):  # Average / Paeth: sequential in x
            r = raw.tolist()
            up = prev.tolist()
            cur = [0] * stride
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                if ftype == 3:
                    pred = (left + up[i]) >> 1
                else:
                    pred = _paeth(left, up[i], up[i - bpp] if i >= bpp else 0)
                cur[i] = (r[i] + pred) & 0xFF
            row = np.asarray(cur, dtype=np.uint8)
        else:
            raise ImageReadError(f"invalid PNG filter type {ftype} in row {y}")
        out[y] = row
        prev = row
    return out


#: Adam7 passes: (first column, first row, column step, row step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _read_png16_colour(path: Path, width: int, height: int, colour_type: int, interlace: int = 0) -> np.ndarray:
    """Decode a 16-bit RGB (type 2) or RGBA (type 6) PNG at full precision, plain or Adam7-interlaced."""
    channels = 3 if colour_type == 2 else 4
    chunks = []
    with open(path, "rb") as f:
        f.read(8)
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise ImageReadError("PNG file is truncated (no IEND chunk)")
            length, ctype = struct.unpack(">I4s", head)
            body = f.read(length)
            crc = f.read(4)
            if len(body) < length or len(crc) < 4:
                raise ImageReadError("PNG file is truncated")
            if zlib.crc32(ctype + body) & 0xFFFFFFFF != struct.unpack(">I", crc)[0]:
                raise ImageReadError(f"PNG chunk {ctype!r} has a bad CRC (corrupt file)")
            if ctype == b"IDAT":
                chunks.append(body)
            elif ctype == b"IEND":
                break
    try:
        data = zlib.decompress(b"".join(chunks))
    except zlib.error as e:
        raise ImageReadError(f"PNG image data is corrupt: {e}") from None
    bpp = 2 * channels
    if interlace == 0:
        rows = _unfilter_rows(data, height, width * bpp, bpp)
        return rows.view(">u2").reshape(height, width, channels).astype(np.float32) / 65535.0
    if interlace != 1:
        raise ImageReadError(f"unknown PNG interlace method {interlace}")
    out = np.empty((height, width, channels), dtype=np.float32)
    pos = 0
    for x0, y0, dx, dy in _ADAM7:  # each pass is a small image of its own, filtered on its own
        pw, ph = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if pw <= 0 or ph <= 0:
            continue
        size = ph * (pw * bpp + 1)
        rows = _unfilter_rows(data[pos:pos + size], ph, pw * bpp, bpp)
        pos += size
        out[y0::dy, x0::dx] = rows.view(">u2").reshape(ph, pw, channels).astype(np.float32) / 65535.0
    return out


def _read_tiff_deep(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A colour TIFF with more than 8 bits per sample at full precision (Pillow cuts those to 8 bits)
    through ``tifffile`` (a dependency of scikit-image): (HWC RGB, HW alpha or None) in [0, 1]."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        a = page.asarray()
        planar = page.planarconfig == 2
    if planar and a.ndim == 3:
        a = np.moveaxis(a, 0, -1)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ImageReadError(f"unexpected 16-bit TIFF layout {a.shape}")
    if np.issubdtype(a.dtype, np.integer):
        f = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    else:
        f = np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
    return np.ascontiguousarray(f[:, :, :3]), (np.ascontiguousarray(f[:, :, 3]) if f.shape[2] > 3 else None)


def is_deep_colour_tiff(im: Image.Image) -> bool:
    """True for an open TIFF with 3 or more samples per pixel of more than 8 bits (BitsPerSample)."""
    if im.format != "TIFF":
        return False
    bits = im.tag_v2.get(0x0102, (8,))
    bits = tuple(bits) if isinstance(bits, (tuple, list)) else (bits,)
    return len(bits) >= 3 and max(bits) > 8


def _check_pixels(size: tuple[int, int]) -> None:
    """Refuse an image over Pillow's decompression-bomb limit before decoding it (a file that says it
    is 30000 x 30000 would otherwise take gigabytes, or abort a whole batch with Pillow's error)."""
    w, h = size
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and w * h > limit:
        raise ImageReadError(
            f"the image claims {w} x {h} pixels ({w * h / 1e6:.0f} megapixels), over Pillow's "
            f"decompression-bomb limit of {limit / 1e6:.0f} megapixels; if you trust the file, raise "
            "PIL.Image.MAX_IMAGE_PIXELS before reading it"
        )


def _pil_to_float(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Pillow image -> (HWC float32 RGB in [0,1], HW float32 alpha or None)."""
    alpha = None
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        if mode in ("La", "RGBa"):  # premultiplied: let Pillow un-premultiply
            im = im.convert("RGBA")
        alpha = np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0
        im = im.convert("RGB")
        mode = "RGB"
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        g = np.asarray(im).astype(np.float32) / 65535.0
        rgb = np.repeat(g[:, :, None], 3, axis=2)
    elif mode == "I":
        a = np.asarray(im)
        scale = 65535.0 if a.size and a.max() <= 65535 else float(2**31 - 1)
        g = np.clip(a.astype(np.float64) / scale, 0.0, 1.0).astype(np.float32)
        rgb = np.repeat(g[:, :, None], 3, axis=2)
    elif mode == "F":
        g = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
        rgb = np.repeat(g[:, :, None], 3, axis=2)
    else:
        if mode != "RGB":
            im = im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGBX ...
        rgb = np.asarray(im, dtype=np.float32) / 255.0
    return np.ascontiguousarray(rgb, dtype=np.float32), alpha


def read_image(
    path: str | os.PathLike, *, return_alpha: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray | None]:
    """Read an image file as float32 RGB, HWC, values in [0, 1].

    Args:
        path: the file.
        return_alpha: also return the alpha channel (float32 HW in [0, 1], or None when the
            file has none).

    Raises:
        FileNotFoundError: the file does not exist.
        ImageReadError: the file is not a readable image (truncated, corrupt, not an image).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    try:
        header = _png_header(p)
        if header is not None and header[2] == 16 and header[3] in (2, 6):
            w, h, _d, ctype, interlace = header
            _check_pixels((w, h))
            data = _read_png16_colour(p, w, h, ctype, interlace)
            rgb, alpha = np.ascontiguousarray(data[..., :3]), (data[..., 3].copy() if ctype == 6 else None)
            # PNG can carry an eXIf orientation; honour it through Pillow's parser
            with Image.open(p) as im:
                orientation = im.getexif().get(0x0112, 1)
            rgb, alpha = _apply_orientation(rgb, alpha, orientation)
        else:
            with warnings.catch_warnings():  # the size is checked below, with a message that says what to do
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(p)
            with im:
                _check_pixels(im.size)
                if is_deep_colour_tiff(im):
                    orientation = im.getexif().get(0x0112, 1)
                    rgb, alpha = _apply_orientation(*_read_tiff_deep(p), orientation)
                else:
                    im.seek(0)
                    im.load()
                    im = ImageOps.exif_transpose(im)
                    rgb, alpha = _pil_to_float(im)
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{p}: {e} (raise PIL.Image.MAX_IMAGE_PIXELS to read it if you trust the file)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, zlib.error) as e:
        if isinstance(e, ImageReadError):
            raise ImageReadError(f"{p}: {e}") from None
        raise ImageReadError(f"{p}: not a readable image ({type(e).__name__}: {e})") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ImageReadError(f"{p}: decoded to an unexpected shape {rgb.shape}")
    return (rgb, alpha) if return_alpha else rgb


def _apply_orientation(
    rgb: np.ndarray, alpha: np.ndarray | None, orientation: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply an EXIF orientation tag (1..8) to HWC / HW arrays."""

    def fix(a: np.ndarray) -> np.ndarray:
        if orientation == 2:
            a = a[:, ::-1]
        elif orientation == 3:
            a = a[::-1, ::-1]
        elif orientation == 4:
            a = a[::-1]
        elif orientation == 5:
            a = np.swapaxes(a, 0, 1)
        elif orientation == 6:
            a = np.swapaxes(a, 0, 1)[:, ::-1]
        elif orientation == 7:
            a = np.swapaxes(a, 0, 1)[::-1, ::-1]
        elif orientation == 8:
            a = np.swapaxes(a, 0, 1)[::-1]
        return np.ascontiguousarray(a)

    if orientation in (None, 1) or orientation not in range(1, 9):
        return rgb, alpha
    return fix(rgb), (fix(alpha) if alpha is not None else None)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HWC numpy image (float in [0,1] or uint8) -> float32 CHW tensor in [0, 1]."""
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"img must have shape (H, W) or (H, W, C), got {a.shape}")
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    else:
        a = a.astype(np.float32, copy=False)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """CHW (or BCHW with B = 1) tensor -> float32 HWC numpy array (values unchanged)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"t must be CHW or 1xCxHxW, got shape {tuple(t.shape)}")
        t = t[0]
    if t.ndim != 3:
        raise ValueError(f"t must be CHW, got shape {tuple(t.shape)}")
    return t.detach().to("cpu", torch.float32).permute(1, 2, 0).contiguous().numpy()


def read_image_tensor(path: str | os.PathLike) -> torch.Tensor:
    """:func:`read_image` as a float32 CHW tensor in [0, 1]."""
    return to_tensor(read_image(path))  # type: ignore[arg-type]


def list_images(
    folder: str | os.PathLike,
    *,
    extensions: Iterable[str] | None = IMAGE_EXTENSIONS,
    recursive: bool = False,
) -> list[Path]:
    """Sorted image files of a folder (extension match is case-insensitive; None = all files)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"folder not found: {root}")
    exts = _normalise_extensions(extensions)
    it = root.rglob("*") if recursive else root.iterdir()
    files = [p for p in it if p.is_file() and not p.name.startswith(".")]
    if exts is not None:
        files = [p for p in files if p.suffix.lower() in exts]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


@dataclass
class LoadedImages:
    """What :func:`load_images` returns.

    Attributes:
        images: float32 HWC RGB arrays in [0, 1], in file-name order.
        paths: the file each image came from.
        skipped: ``(path, reason)`` for every file that looked like an image but failed to read.
        ignored: files present in the folder whose extension is not an image extension.
        alphas: the alpha channel of each image (None where the file has none).
    """

    images: list[np.ndarray]
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    alphas: list[np.ndarray | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.paths]


def load_images(
    folder: str | os.PathLike,
    *,
    extensions: Iterable[str] | None = IMAGE_EXTENSIONS,
    recursive: bool = False,
    warn: bool = True,
) -> LoadedImages:
    """Read every image of a folder, skipping the ones that cannot be read.

    Unreadable files (truncated, corrupt, text with an image extension, ...) are skipped; files
    without an image extension are not opened. Both are reported in **one** ``UserWarning`` that
    lists them all (``warn=False`` silences it) and in ``result.skipped`` / ``result.ignored``.
    """
    root = Path(folder)
    candidates = list_images(root, extensions=extensions, recursive=recursive)
    everything = list_images(root, extensions=None, recursive=recursive)
    chosen = set(candidates)
    ignored = [p for p in everything if p not in chosen]
    images, paths, alphas, skipped = [], [], [], []
    for p in candidates:
        try:
            rgb, alpha = read_image(p, return_alpha=True)  # type: ignore[misc]
        except ImageReadError as e:
            skipped.append((p, str(e).replace(f"{p}: ", "", 1)))
            continue
        images.append(rgb)
        alphas.append(alpha)
        paths.append(p)
    if (skipped or ignored) and warn:
        parts = []
        if skipped:
            parts.append(f"skipped {len(skipped)} unreadable file(s):\n" + "\n".join(f"  {p}: {why}" for p, why in skipped))
        if ignored:
            parts.append(f"ignored {len(ignored)} file(s) without an image extension:\n"
                         + "\n".join(f"  {p}" for p in ignored))
        warnings.warn(f"load_images({str(root)!r}): " + "\n".join(parts), UserWarning, stacklevel=2)
    return LoadedImages(images=images, paths=paths, skipped=skipped, ignored=ignored, alphas=alphas)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _as_hwc_float(img: np.ndarray | torch.Tensor, name: str = "img") -> np.ndarray:
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim == 3:  # tensors are CHW by the kit's convention
            t = t.permute(1, 2, 0)
        a = t.numpy()
    else:
        a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"{name} must be HWC (numpy) or CHW (tensor) with 1, 3 or 4 channels, got {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 65535.0
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must be float in [0, 1], uint8 or uint16, got dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a.astype(np.float64)


def to_uint8(img: np.ndarray | torch.Tensor) -> np.ndarray:
    """Float image in [0, 1] -> uint8 HWC (clamped, rounded half to even: ``round(255 x)``)."""
    a = _as_hwc_float(img)
    return np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def write_png(
    path: str | os.PathLike, img: np.ndarray | torch.Tensor, *, bits: int = 8, text: dict[str, str] | None = None
) -> Path:
    """Write an image as PNG: float in [0, 1] (clamped), uint8 or uint16; HWC numpy or CHW tensor.

    ``bits=8`` writes through Pillow; ``bits=16`` writes 16-bit grayscale / RGB / RGBA with a
    small built-in encoder (Pillow cannot write 16-bit colour PNG). Values are clamped to
    [0, 1] and rounded to the nearest code.  ``text``: tEXt chunks (Latin-1 keyword -> value).
    The file is written atomically (a temporary file, then a rename: an interruption never
    leaves half a PNG under ``path``); parent folders are created.
    """
    from PIL import PngImagePlugin

    from ..files import atomic_write

    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    a = _as_hwc_float(img)
    out = Path(path)
    channels = a.shape[2]
    if bits == 8:
        u8 = np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
        im = Image.fromarray(u8[:, :, 0] if channels == 1 else u8, mode=mode)
        info = PngImagePlugin.PngInfo()
        for key, value in (text or {}).items():
            info.add_text(key, value)
        return atomic_write(out, lambda f: im.save(f, format="PNG", compress_level=9, pnginfo=info))
    u16 = np.clip(np.round(a * 65535.0), 0, 65535).astype(">u2")
    h, w = u16.shape[:2]
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = u16.reshape(h, w * channels)
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(h))
    png = (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
        + b"".join(_png_chunk(b"tEXt", k.encode("latin-1") + b"\x00" + v.encode("latin-1"))
                   for k, v in (text or {}).items())
        + _png_chunk(b"IDAT", zlib.compress(raw, 9))
        + _png_chunk(b"IEND", b"")
    )
    return atomic_write(out, lambda f: f.write(png))
