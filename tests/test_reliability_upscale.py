"""Issue 18, the upscale command: an input is never an output, its own outputs are never inputs,
one bad image never ends the batch, usage errors before any work, Ctrl-C leaves complete files
(items 2, 5, 7, 13, 15, 17)."""

from __future__ import annotations

import errno
import importlib

import numpy as np
import pytest
import tifffile
import torch

from ctlib.data.io import read_image, write_png

from .test_reliability_io import _bomb_png, _png16_adam7
from .test_upscale import _fast, _photo_lr, _run, checkpoint  # noqa: F401 - checkpoint is a fixture

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py
up = importlib.import_module("ctlib.upscale")  # the module (ctlib.upscale is also the name of the function)


def test_an_input_is_never_an_output(tmp_path, checkpoint, capsys):  # noqa: F811
    """Item 2: with scan.png and scan_x4.png among the inputs, --overwrite replaced the user's scan_x4.png
    with the output of scan.png, then upscaled that into scan_x4_x4.png."""
    write_png(tmp_path / "scan.png", _photo_lr(12, 12))
    write_png(tmp_path / "scan_x4.png", _photo_lr(16, 12))  # the user's own file of that name
    mine = (tmp_path / "scan_x4.png").read_bytes()
    rc = _run([str(tmp_path / "scan.png"), str(tmp_path / "scan_x4.png"), "--out", str(tmp_path), "--overwrite",
               *_fast(checkpoint)])
    err = capsys.readouterr().err
    assert rc == 1 and "scan.png: its output" in err and "is one of the inputs" in err
    assert (tmp_path / "scan_x4.png").read_bytes() == mine
    assert read_image(tmp_path / "scan_x4_x4.png").shape == (64, 48, 3)  # the user's file, upscaled once


def test_a_folder_upscaled_into_itself_twice_never_takes_its_outputs(tmp_path, checkpoint, capsys):  # noqa: F811
    """Item 5: `upscale DIR --out DIR` run twice upscaled its own outputs (x16, then x64 with --overwrite)."""
    write_png(tmp_path / "a.png", _photo_lr(12, 12))
    assert _run([str(tmp_path), "--out", str(tmp_path), *_fast(checkpoint)]) == 0
    assert up.is_upscale_output(tmp_path / "a_x4.png") and not up.is_upscale_output(tmp_path / "a.png")
    capsys.readouterr()
    assert _run([str(tmp_path), "--out", str(tmp_path), *_fast(checkpoint)]) == 1  # a_x4.png exists
    captured = capsys.readouterr()
    assert "skipped 1 file(s) that are outputs of an earlier upscale" in captured.out and "--overwrite" in captured.err
    assert _run([str(tmp_path), "--out", str(tmp_path), "--overwrite", *_fast(checkpoint)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_x4.png"]
    # named explicitly, an output is refused (and listed), not upscaled again
    assert _run([str(tmp_path / "a_x4.png"), "--out", str(tmp_path / "again"), *_fast(checkpoint)]) == 1
    assert "is an output of ctlib upscale" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_a_decompression_bomb_fails_alone(tmp_path, checkpoint, capsys):  # noqa: F811
    """Item 13: one image over Pillow's limit aborted the whole batch; the good files were never written."""
    src = tmp_path / "in"
    src.mkdir()
    write_png(src / "a.png", _photo_lr(12, 12))
    (src / "bomb.png").write_bytes(_bomb_png(30000, 30000))
    write_png(src / "c.png", _photo_lr(12, 12))
    rc = _run([str(src), "--out", str(tmp_path / "out"), *_fast(checkpoint)])
    err = capsys.readouterr().err
    assert rc == 1 and "bomb.png" in err and "decompression" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x4.png", "c_x4.png"]


def test_sixteen_bit_tiff_and_interlaced_png_come_out_16_bit(tmp_path, checkpoint):  # noqa: F811
    """Item 7: 16-bit RGB TIFF was read and written at 8 bits; an interlaced 16-bit PNG was read at 8 bits
    and written with a 16-bit label."""
    deep = np.round(_photo_lr(12, 12).astype(np.float64) * 65535).astype(np.uint16) | 1  # odd: not 8-bit codes
    tifffile.imwrite(tmp_path / "t.tif", deep, photometric="rgb")
    (tmp_path / "i.png").write_bytes(_png16_adam7(deep))
    for name in ("t.tif", "i.png"):
        loaded = up.read_for_upscale(tmp_path / name)
        assert loaded.bits == 16
        np.testing.assert_array_equal(np.round(loaded.rgb * 65535).astype(np.uint16), deep)
    assert _run([str(tmp_path / "t.tif"), str(tmp_path / "i.png"), "--out", str(tmp_path / "o"), *_fast(checkpoint)]) == 0
    for name in ("t_x4.png", "i_x4.png"):
        assert up.read_for_upscale(tmp_path / "o" / name).bits == 16


def test_usage_and_environment_errors_come_before_any_work(tmp_path, checkpoint, capsys, monkeypatch):  # noqa: F811
    """Item 15: an output folder that cannot be created gave a traceback and exit 1 (the code of 'some
    images failed'); now 2, before the model is loaded or any image read."""
    write_png(tmp_path / "a.png", _photo_lr(12, 12))
    (tmp_path / "afile").write_text("x")
    assert _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "afile" / "sub"), *_fast(checkpoint)]) == 2
    assert "cannot be created" in capsys.readouterr().err

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("ctlib.files.tempfile.mkstemp", read_only)
    assert _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "ro"), *_fast(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "is not writable" in err and "Read-only file system" in err
    monkeypatch.undo()
    if not torch.cuda.is_available():
        assert _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), *_fast(checkpoint), "--device", "cuda"]) == 2
        assert "no usable CUDA GPU" in capsys.readouterr().err
    assert _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), *_fast(checkpoint), "--device", "gpu"]) == 2
    assert "--device must be 'cpu'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "ro").exists()


def test_no_output_folder_when_every_input_fails(tmp_path, checkpoint, capsys):  # noqa: F811
    """Item 17: upscale created an empty output folder when every input failed."""
    write_png(tmp_path / "tiny.png", np.full((3, 3, 3), 0.5))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    assert _run([str(tmp_path / "tiny.png"), str(tmp_path / "bad.png"), "--out", str(tmp_path / "o"),
                 *_fast(checkpoint)]) == 1
    assert "FAILED 2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_ctrl_c_leaves_complete_files_and_lists_the_rest(tmp_path, checkpoint, capsys, monkeypatch):  # noqa: F811
    """Interruptions: Ctrl-C during the second image leaves the first complete, no temporary file, a
    clean notice (no traceback) and exit 130."""
    for name in ("a", "b", "c"):
        write_png(tmp_path / f"{name}.png", _photo_lr(12, 12))
    real = up.read_for_upscale

    def interrupt_at_b(path):
        if path.name == "b.png":
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(up, "read_for_upscale", interrupt_at_b)
    out = tmp_path / "o"
    assert _run([str(tmp_path / "*.png"), "--out", str(out), *_fast(checkpoint)]) == 130
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C)" in err and "not done (2)" in err and "b.png" in err and "c.png" in err
    assert [p.name for p in out.iterdir()] == ["a_x4.png"] and read_image(out / "a_x4.png").shape == (48, 48, 3)
