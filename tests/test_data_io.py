"""Image I/O: every kind of file into float RGB, folder loading with skip reports, PNG writing."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ctlib.data.io import (
    ImageReadError,
    list_images,
    load_images,
    read_image,
    read_image_tensor,
    to_numpy,
    to_tensor,
    to_uint8,
    write_png,
)

RNG = np.random.default_rng(7)


# ---------------------------------------------------------------- an independent PNG encoder


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _png16(arr: np.ndarray, filters: list[int], exif: bytes | None = None) -> bytes:
    """16-bit PNG (colour type 2 or 6) with the given filter type per row (cycled)."""
    h, w, c = arr.shape
    rows = arr.astype(">u2").reshape(h, w * c).view(np.uint8).reshape(h, -1)
    bpp = 2 * c
    out = bytearray()
    prev = np.zeros(rows.shape[1], dtype=np.int64)
    for y in range(h):
        cur = rows[y].astype(np.int64)
        f = filters[y % len(filters)]
        enc = []
        for i in range(len(cur)):
            left = int(cur[i - bpp]) if i >= bpp else 0
            up = int(prev[i])
            ul = int(prev[i - bpp]) if i >= bpp else 0
            pred = [0, left, up, (left + up) // 2, _paeth(left, up, ul)][f]
            enc.append((int(cur[i]) - pred) % 256)
        out.append(f)
        out.extend(enc)
        prev = cur

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ctype = 2 if c == 3 else 6
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))
    if exif is not None:
        body += chunk(b"eXIf", exif)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b"")


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png_all_filters_full_precision(tmp_path, channels):
    arr = RNG.integers(0, 65536, size=(9, 7, channels), dtype=np.int64).astype(np.uint16)
    p = tmp_path / "x.png"
    p.write_bytes(_png16(arr, filters=[0, 1, 2, 3, 4]))
    rgb, alpha = read_image(p, return_alpha=True)
    np.testing.assert_array_equal(np.round(rgb * 65535).astype(np.int64), arr[..., :3])
    if channels == 4:
        np.testing.assert_array_equal(np.round(alpha * 65535).astype(np.int64), arr[..., 3])
    else:
        assert alpha is None
    # Pillow alone would have cut it to 8 bits: our values carry the low byte
    assert np.any(arr[..., :3] % 257 != 0)


def _orient_expected(a: np.ndarray, k: int) -> np.ndarray:
    """EXIF orientation k, written from the specification's wording."""
    return {
        1: a,
        2: np.fliplr(a),  # mirror horizontal
        3: np.rot90(a, 2),  # rotate 180
        4: np.flipud(a),  # mirror vertical
        5: np.rot90(np.fliplr(a), 1),  # mirror horizontal, rotate 270 CW
        6: np.rot90(a, -1),  # rotate 90 CW
        7: np.rot90(np.fliplr(a), -1),  # mirror horizontal, rotate 90 CW
        8: np.rot90(a, 1),  # rotate 270 CW
    }[k]


@pytest.mark.parametrize("k", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, k):
    a = RNG.integers(0, 256, size=(3, 5, 3), dtype=np.int64).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = k
    p8 = tmp_path / "o8.png"
    Image.fromarray(a).save(p8, exif=exif.tobytes())
    np.testing.assert_array_equal(to_uint8(read_image(p8)), _orient_expected(a, k))
    # the 16-bit colour path honours the tag as well
    a16 = a.astype(np.uint16) * 257
    p16 = tmp_path / "o16.png"
    raw = exif.tobytes()
    p16.write_bytes(_png16(a16, filters=[0], exif=raw[6:] if raw.startswith(b"Exif\x00\x00") else raw))
    np.testing.assert_array_equal(to_uint8(read_image(p16)), _orient_expected(a, k))


def test_modes_convert_to_rgb(tmp_path):
    # grayscale 8-bit
    g = RNG.integers(0, 256, size=(4, 6), dtype=np.int64).astype(np.uint8)
    Image.fromarray(g, mode="L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (4, 6, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.repeat(g[..., None], 3, 2) / 255.0, atol=1e-7)
    # 16-bit grayscale keeps its low byte
    g16 = RNG.integers(0, 65536, size=(4, 6), dtype=np.int64).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    np.testing.assert_allclose(read_image(tmp_path / "g16.png")[..., 1], g16 / 65535.0, atol=1e-7)
    # palette with transparency -> RGB + alpha
    pal = Image.new("P", (3, 2))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    rgb, alpha = read_image(tmp_path / "p.png", return_alpha=True)
    np.testing.assert_array_equal(rgb[0, 1], [0, 1, 0])
    np.testing.assert_array_equal(rgb[0, 0], [1, 0, 0])
    assert alpha[0, 0] == 0 and alpha[0, 1] == 1
    # CMYK (lossless TIFF): naive conversion, pure cyan -> (0, 1, 1)
    Image.new("CMYK", (2, 2), (255, 0, 0, 0)).save(tmp_path / "c.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "c.tif")[0, 0], [0, 1, 1])
    # RGBA: alpha dropped from the colour, colour values kept as stored
    rgba = RNG.integers(0, 256, size=(5, 4, 4), dtype=np.int64).astype(np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    rgb, alpha = read_image(tmp_path / "a.png", return_alpha=True)
    np.testing.assert_array_equal(to_uint8(rgb), rgba[..., :3])
    np.testing.assert_allclose(alpha, rgba[..., 3] / 255.0, atol=1e-7)


def test_bad_folder_reports_skips_and_converts_the_rest(tmp_path):
    """The acceptance folder: a text file, a truncated PNG, a 16-bit PNG, an RGBA PNG, a 1x1."""
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "text_named.png").write_text("also not an image, despite the name")
    good = RNG.integers(0, 256, size=(40, 40, 3), dtype=np.int64).astype(np.uint8)
    Image.fromarray(good).save(tmp_path / "full.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "full.png").read_bytes()[:200])
    (tmp_path / "full.png").unlink()
    rgb16 = RNG.integers(0, 65536, size=(33, 35, 3), dtype=np.int64).astype(np.uint16)
    write_png(tmp_path / "deep16.png", rgb16, bits=16)
    rgba = RNG.integers(0, 256, size=(34, 36, 4), dtype=np.int64).astype(np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    Image.new("RGB", (1, 1), (10, 20, 30)).save(tmp_path / "tiny.png")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = load_images(tmp_path)
    msgs = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(msgs) == 1, msgs  # exactly one warning ...
    for name in ("truncated.png", "text_named.png", "notes.txt"):  # ... that lists every skipped file
        assert name in msgs[0]
    assert sorted(p.name for p, _ in res.skipped) == ["text_named.png", "truncated.png"]
    assert [p.name for p in res.ignored] == ["notes.txt"]
    assert res.names == ["deep16.png", "rgba.png", "tiny.png"]
    imgs = dict(zip(res.names, res.images))
    np.testing.assert_array_equal(np.round(imgs["deep16.png"] * 65535).astype(np.uint16), rgb16)
    np.testing.assert_array_equal(to_uint8(imgs["rgba.png"]), rgba[..., :3])
    np.testing.assert_allclose(res.alphas[1], rgba[..., 3] / 255.0, atol=1e-7)
    assert imgs["tiny.png"].shape == (1, 1, 3)  # a 1x1 image loads
    np.testing.assert_array_equal(to_uint8(imgs["tiny.png"])[0, 0], [10, 20, 30])
    for img in res.images:
        assert img.dtype == np.float32 and img.min() >= 0 and img.max() <= 1


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")
    (tmp_path / "t.jpg").write_bytes(b"\xff\xd8\xff\xe0 nonsense")
    with pytest.raises(ImageReadError, match="t.jpg"):
        read_image(tmp_path / "t.jpg")
    bad16 = _png16(np.zeros((4, 4, 3), dtype=np.uint16), filters=[0])
    (tmp_path / "crc.png").write_bytes(bad16[:-20] + b"\x00" * 20)  # break the last chunks
    with pytest.raises(ImageReadError):
        read_image(tmp_path / "crc.png")


def test_write_png_roundtrips(tmp_path):
    x8 = RNG.integers(0, 256, size=(6, 5, 3), dtype=np.int64) / 255.0
    write_png(tmp_path / "a.png", x8)
    np.testing.assert_allclose(read_image(tmp_path / "a.png"), x8, atol=1e-7)
    x16 = RNG.integers(0, 65536, size=(6, 5, 3), dtype=np.int64) / 65535.0
    write_png(tmp_path / "b.png", x16, bits=16)
    np.testing.assert_allclose(read_image(tmp_path / "b.png"), x16, atol=1e-7)
    # CHW tensors, clamping, grayscale
    t = torch.tensor(x8.transpose(2, 0, 1) * 1.5 - 0.2, dtype=torch.float32)
    write_png(tmp_path / "c.png", t)
    np.testing.assert_allclose(read_image(tmp_path / "c.png"), np.clip(x8 * 1.5 - 0.2, 0, 1), atol=0.5 / 255 + 1e-6)
    write_png(tmp_path / "g.png", x16[..., :1], bits=16)
    np.testing.assert_allclose(read_image(tmp_path / "g.png")[..., 2], x16[..., 0], atol=1e-7)
    with pytest.raises(ValueError, match="NaN"):
        write_png(tmp_path / "n.png", np.full((2, 2, 3), np.nan))
    with pytest.raises(ValueError, match="bits"):
        write_png(tmp_path / "n.png", x8, bits=12)


def test_tensor_helpers_and_listing(tmp_path):
    a = RNG.random((4, 5, 3)).astype(np.float32)
    t = to_tensor(a)
    assert t.shape == (3, 4, 5) and t.dtype == torch.float32
    np.testing.assert_array_equal(to_numpy(t), a)
    np.testing.assert_array_equal(to_numpy(t[None]), a)
    u8 = (a * 255).astype(np.uint8)
    torch.testing.assert_close(to_tensor(u8), torch.from_numpy(u8.transpose(2, 0, 1)).float() / 255)
    (tmp_path / "sub").mkdir()
    write_png(tmp_path / "B.PNG", a)
    write_png(tmp_path / "sub" / "a.png", a)
    (tmp_path / "x.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["B.PNG"]
    assert [p.name for p in list_images(tmp_path, recursive=True)] == ["B.PNG", "a.png"]
    assert read_image_tensor(tmp_path / "B.PNG").shape == (3, 4, 5)
    with pytest.raises(FileNotFoundError):
        list_images(Path(tmp_path) / "nope")
