"""Issue 18, image reading: 16-bit stays 16-bit (item 7) and an image over Pillow's decompression-bomb
limit is one unreadable file, not the end of a batch (item 13)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import tifffile

from ctlib.data.io import ImageReadError, load_images, read_image, write_png

from .test_data_io import _paeth

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _chunk(t: bytes, d: bytes) -> bytes:
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def _filtered(rows: np.ndarray, bpp: int, first_filter: int) -> bytes:
    """PNG row filtering of (h, stride) uint8 rows, filter types cycling from ``first_filter``."""
    out, prev = bytearray(), np.zeros(rows.shape[1], dtype=np.int64)
    for y, row in enumerate(rows.astype(np.int64)):
        f = (first_filter + y) % 5
        out.append(f)
        for i in range(len(row)):
            left, up = int(row[i - bpp]) if i >= bpp else 0, int(prev[i])
            ul = int(prev[i - bpp]) if i >= bpp else 0
            out.append((int(row[i]) - [0, left, up, (left + up) // 2, _paeth(left, up, ul)][f]) % 256)
        prev = row
    return bytes(out)


def _png16_adam7(arr: np.ndarray) -> bytes:
    """An Adam7-interlaced 16-bit PNG (gray, gray + alpha, RGB or RGBA) written independently of ctlib."""
    h, w, c = arr.shape
    data = b""
    for k, (x0, y0, dx, dy) in enumerate(ADAM7):
        sub = arr[y0::dy, x0::dx]
        if sub.size:
            rows = np.ascontiguousarray(sub, dtype=">u2").reshape(sub.shape[0], -1).view(np.uint8)
            data += _filtered(rows, 2 * c, k)
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 1))
            + _chunk(b"IDAT", zlib.compress(data)) + _chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_adam7_interlaced_16_bit_png_keeps_16_bits(tmp_path, channels):
    """Item 7: an interlaced 16-bit PNG was read at 8 bits (Pillow)."""
    arr = np.random.default_rng(channels).integers(0, 65536, size=(13, 11, channels)).astype(np.uint16)
    p = tmp_path / "deep.png"
    p.write_bytes(_png16_adam7(arr))
    rgb, alpha = read_image(p, return_alpha=True)
    want = np.repeat(arr[..., :1], 3, axis=2) if channels == 1 else arr[..., :3]
    np.testing.assert_array_equal(np.round(rgb * 65535).astype(np.int64), want)
    if channels == 4:
        np.testing.assert_array_equal(np.round(alpha * 65535).astype(np.int64), arr[..., 3])


@pytest.mark.parametrize("planar", [False, True])
def test_16_bit_colour_tiff_keeps_16_bits(tmp_path, planar):
    """Item 7: a 16-bit RGB TIFF was read (and so written back) at 8 bits."""
    arr = np.random.default_rng(1).integers(0, 65536, size=(6, 5, 4)).astype(np.uint16)
    stored = np.moveaxis(arr[..., :3], -1, 0) if planar else arr[..., :3]  # separate planes: (3, H, W)
    tifffile.imwrite(tmp_path / "rgb.tif", stored, photometric="rgb", compression="zlib",
                     planarconfig="separate" if planar else "contig")
    rgb = read_image(tmp_path / "rgb.tif")
    np.testing.assert_array_equal(np.round(rgb * 65535).astype(np.int64), arr[..., :3])
    tifffile.imwrite(tmp_path / "rgba.tif", arr, photometric="rgb", extrasamples=["unassalpha"])
    rgb, alpha = read_image(tmp_path / "rgba.tif", return_alpha=True)
    np.testing.assert_array_equal(np.round(alpha * 65535).astype(np.int64), arr[..., 3])


def _bomb_png(width: int, height: int) -> bytes:
    """A valid-looking PNG header claiming a huge 8-bit RGB image (its data is a few bytes)."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [30000, 14000])  # over 2x the limit (Pillow's error), over 1x (its warning)
def test_decompression_bomb_is_one_unreadable_file(tmp_path, side):
    """Item 13: a PNG header claiming 30000 x 30000 raised Pillow's DecompressionBombError through every
    batch (a 14000 x 14000 one passed with a warning and was decoded)."""
    (tmp_path / "bomb.png").write_bytes(_bomb_png(side, side))
    with pytest.raises(ImageReadError, match="bomb.png: .*decompression.bomb.*MAX_IMAGE_PIXELS"):
        read_image(tmp_path / "bomb.png")
    write_png(tmp_path / "good.png", np.full((4, 4, 3), 0.5))
    with pytest.warns(UserWarning, match="bomb.png"):
        loaded = load_images(tmp_path)
    assert loaded.names == ["good.png"] and [p.name for p, _ in loaded.skipped] == ["bomb.png"]


def test_16_bit_png_bomb_is_refused_before_decoding(tmp_path):
    header = struct.pack(">IIBBBBB", 20000, 20000, 16, 2, 0, 0, 0)
    (tmp_path / "deep.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b""))
    with pytest.raises(ImageReadError, match="claims 20000 x 20000 pixels"):
        read_image(tmp_path / "deep.png")
