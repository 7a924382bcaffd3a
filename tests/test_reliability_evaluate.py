"""Issue 18, the evaluate command: --out is checked (and never replaced without --overwrite) before any
work, bad --limit / --crop / --device are usage errors, one bad image never ends the run, Ctrl-C writes
nothing half-done (items 3, 4, 6, 13, 16, 17)."""

from __future__ import annotations

import errno
import json

import pytest
import torch

from ctlib import data
from ctlib import evaluate as ev

from .test_evaluate import _cli, hr_folder, tiny_checkpoint  # noqa: F401 - fixtures
from .test_reliability_io import _bomb_png

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if any image is read or any row computed."""

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr("ctlib.data.evalsets.folder_eval_set", forbidden)
    monkeypatch.setattr(ev, "evaluate_row", forbidden)


def _args(hr, ckpt, out, *extra) -> list[str]:
    return ["--hr", str(hr), "--checkpoint", str(ckpt), "--nfe", "2", "--out", str(out), "--no-progress",
            "--lpips-net", "none", *extra]


def test_existing_out_is_never_replaced_without_overwrite(tmp_path, hr_folder, tiny_checkpoint, capsys):  # noqa: F811
    """Item 3: evaluate --out FILE replaced an existing file without warning."""
    out = tmp_path / "row.json"
    out.write_text("my notes\n")
    assert _cli(_args(hr_folder, tiny_checkpoint, out)) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "my notes\n"
    assert _cli(_args(hr_folder, tiny_checkpoint, out, "--overwrite", "--limit", "1")) == 0
    assert json.loads(out.read_text())["images"] == ["img0.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr", "row.json"]  # no temporary file left


def test_unusable_out_is_refused_before_any_work(tmp_path, hr_folder, tiny_checkpoint, capsys, no_work,  # noqa: F811
                                                 monkeypatch):
    """Item 4: --out was checked after the whole evaluation: a folder, a read-only place or a path under
    a regular file threw the results away with a traceback."""
    (tmp_path / "afile").write_text("x")
    for out, message in ((tmp_path, "is a folder"), (tmp_path / "afile" / "row.json", "is an existing file, not a folder"),
                         (hr_folder / "img0.png", "already exists")):
        assert _cli(_args(hr_folder, tiny_checkpoint, out)) == 2
        assert message in capsys.readouterr().err
    assert _cli(_args(hr_folder, tiny_checkpoint, hr_folder / "new.png")) == 2
    assert "would be one of the HR images it reads" in capsys.readouterr().err
    assert _cli(_args(hr_folder, tiny_checkpoint, tiny_checkpoint, "--overwrite")) == 2
    assert "is the --checkpoint file it reads" in capsys.readouterr().err

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("ctlib.files.tempfile.mkstemp", read_only)
    assert _cli(_args(hr_folder, tiny_checkpoint, tmp_path / "ro" / "row.json")) == 2
    assert "is not writable" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1"])
def test_limit_below_one_is_a_usage_error(tmp_path, hr_folder, tiny_checkpoint, capsys, value, no_work):  # noqa: F811
    """Item 6: --limit 0 or -1 scored one image and exited 0."""
    assert _cli(_args(hr_folder, tiny_checkpoint, tmp_path / "r.json", "--limit", value)) == 2
    assert f"--limit must be an integer >= 1, got {value}" in capsys.readouterr().err


def test_folder_eval_set_checks_limit_and_crop(hr_folder):  # noqa: F811
    with pytest.raises(ValueError, match="limit must be an integer >= 1"):
        data.folder_eval_set(hr_folder, limit=0)
    with pytest.raises(ValueError, match="crop must be an integer >= 16"):
        data.folder_eval_set(hr_folder, crop=12)
    assert [tuple(t.shape) for t in data.folder_eval_set(hr_folder, crop=16).hr] == [(3, 16, 16)] * 3


@pytest.mark.parametrize(("value", "message"), [("0", ">= 16"), ("-5", ">= 16"), ("7", ">= 16"), ("12", ">= 16"),
                                                ("18", "multiple of 4")])
def test_bad_crop_is_a_usage_error(tmp_path, hr_folder, tiny_checkpoint, capsys, value, message, no_work):  # noqa: F811
    """Item 17: --crop 0 / -5 / 7 gave internal errors and 12 was scored despite the 16 px minimum."""
    assert _cli(_args(hr_folder, tiny_checkpoint, tmp_path / "r.json", "--crop", value)) == 2
    err = capsys.readouterr().err
    assert "crop must be" in err and message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(("device", "message"), [("cuda", "no usable CUDA GPU"), ("nonsense", "--device must be")])
def test_missing_device_is_named_not_blamed_on_the_checkpoint(tmp_path, hr_folder, tiny_checkpoint, capsys,  # noqa: F811
                                                               device, message, no_work):
    """Item 16: --device cuda without CUDA (or nonsense) reported the valid checkpoint as corrupt."""
    assert _cli(_args(hr_folder, tiny_checkpoint, tmp_path / "r.json", "--device", device)) == 2
    err = capsys.readouterr().err
    assert message in err and "could not be read" not in err


def test_a_decompression_bomb_is_skipped_and_the_rest_scored(tmp_path, hr_folder, tiny_checkpoint, capsys):  # noqa: F811
    """Item 13: one image over Pillow's limit aborted the whole evaluation."""
    (hr_folder / "bomb.png").write_bytes(_bomb_png(30000, 30000))
    out = tmp_path / "r.json"
    assert _cli(_args(hr_folder, tiny_checkpoint, out, "--solver", "euler")) == 0
    doc = json.loads(out.read_text())
    assert doc["images"] == ["img0.png", "img1.png", "img2.png"]
    assert any("bomb.png" in n and "decompression" in n for n in doc["notes"])
    assert "note: skipped unreadable bomb.png" in capsys.readouterr().err


def test_ctrl_c_writes_nothing(tmp_path, hr_folder, tiny_checkpoint, capsys, monkeypatch):  # noqa: F811
    calls = []
    real = ev.evaluate_row

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "evaluate_row", interrupted)
    out = tmp_path / "r.json"
    assert _cli(_args(hr_folder, tiny_checkpoint, out)) == 130
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C) after 1 of 3 rows; nothing was written" in err and "Traceback" not in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["hr"]
