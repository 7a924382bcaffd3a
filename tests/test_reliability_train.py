"""Issue 18, the train command: nothing lost, nothing silently wrong, no traceback (items 1, 8, 9, 14,
15, 17).  A tiny network on 32 x 32 random pairs, or the smoke profile on a folder of 64 x 64 photos."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from ctlib.cli import main
from ctlib.data import write_png
from ctlib.schedule import ResShiftSchedule
from ctlib.train import (
    RunFolderError,
    TrainingDataError,
    TrainingInterrupted,
    atomic_save,
    read_log,
    run_training,
    train,
)

from .test_train import random_pairs, state, tiny_config, tiny_wrapper

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_resume_without_last_pt_keeps_the_finished_run(tmp_path):
    """Item 1: --resume on a finished run whose last.pt was deleted started a new run over model.pt,
    log.csv and train_config.json."""
    out = tmp_path / "run"
    train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=2), out, progress=False)
    (out / "last.pt").unlink()
    before = _files(out)
    for resume in (True, False):
        with pytest.raises(RunFolderError, match="holds a finished run") as info:
            train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=2), out, resume=resume,
                  progress=False)
        assert ("no last.pt to resume from" in str(info.value)) == resume and "--init" in str(info.value)
    assert _files(out) == before
    train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=1), out, overwrite=True,
          progress=False)
    assert state(out / "last.pt")["step"] == 1


def test_resume_refusal_through_the_cli_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--profile", "smoke", "--mode", "discrete", "--out", str(out), "--iterations", "1",
            "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    (out / "last.pt").unlink()
    before = _files(out)
    assert main([*argv, "--resume"]) == 2
    assert "no last.pt to resume from" in capsys.readouterr().err
    assert _files(out) == before


def test_a_run_that_stopped_before_its_first_checkpoint_does_not_block_the_rerun(tmp_path):
    """Item 17: a failed train left train_config.json and log.csv, and the corrected rerun was refused
    ("already holds a training run")."""

    def failing(n, g):
        raise OSError("image vanished")

    out = tmp_path / "run"
    with pytest.raises(OSError, match="vanished"):
        train(tiny_wrapper(), ResShiftSchedule(), failing, tiny_config(ckpt_every=10), out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["log.csv", "train_config.json"]
    train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=2), out, progress=False)
    assert read_log(out / "log.csv")["step"].tolist() == [1, 2]


def test_log_has_no_repeated_step_after_a_kill_between_logging_and_saving(tmp_path):
    """Item 8: a row was appended before the checkpoint was saved, so kill -9 during the save and
    --resume logged the step twice."""
    out = tmp_path / "run"
    train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=2), out, progress=False)
    at_step_2 = (out / "last.pt").read_bytes()
    train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=4), out, resume=True,
          progress=False)
    # the state of a kill at step 4: rows 3 and 4 logged, last.pt still the one of step 2, a 0-byte temporary
    (out / "last.pt").write_bytes(at_step_2)
    (out / "model.pt").unlink()
    (out / "last.pt.tmp").write_bytes(b"")
    (out / ".last.pt.abc123.tmp").write_bytes(b"")
    assert read_log(out / "log.csv")["step"].tolist() == [1, 2, 3, 4]
    train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=4), out, resume=True,
          progress=False)
    assert read_log(out / "log.csv")["step"].tolist() == [1, 2, 3, 4]
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "log.csv", "model.pt", "train_config.json"]


def test_resume_with_fewer_iterations_than_reached_is_refused_and_a_finished_resume_keeps_its_loss(tmp_path):
    """Item 9: --resume with --iterations below the saved step stored last_loss NaN and an iterations
    smaller than the step reached."""
    from ctlib.nn.checkpoint import load_checkpoint

    out = tmp_path / "run"
    first = train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=3), out, progress=False)
    before = _files(out)
    with pytest.raises(RunFolderError, match="reached step 3, beyond iterations=2; resume with iterations >= 3"):
        train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=2), out, resume=True,
              progress=False)
    assert _files(out) == before
    again = train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=3), out, resume=True,
                  progress=False)
    assert again["steps"] == 3 and again["last_loss"] == first["last_loss"]
    meta = load_checkpoint(out / "model.pt").meta
    assert meta["last_loss"] == first["last_loss"] and meta["train"]["iterations"] >= meta["steps"] == 3


def test_ctrl_c_names_the_checkpoint_and_resume_continues(tmp_path):
    """Interruptions: Ctrl-C inside the loop says where the last checkpoint is; --resume continues
    with a consistent log."""
    calls = []

    def interrupted(n, g):
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return random_pairs(n, g)

    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="at step 2: the last checkpoint .step 2.") as info:
        train(tiny_wrapper(), ResShiftSchedule(), interrupted, tiny_config(), out, progress=False)
    assert info.value.saved_step == 2 and isinstance(info.value, KeyboardInterrupt)
    train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(), out, resume=True, progress=False)
    assert read_log(out / "log.csv")["step"].tolist() == [1, 2, 3, 4]


def test_atomic_save_leaves_no_temporary_on_failure(tmp_path):
    """Item 17: a save interrupted half-way left a 0-byte last.pt.tmp."""
    atomic_save({"a": torch.zeros(2)}, tmp_path / "last.pt")
    good = (tmp_path / "last.pt").read_bytes()
    for error in (TypeError, KeyboardInterrupt):
        class Bad:
            def __reduce__(self, error=error):
                raise error("cannot pickle")

        with pytest.raises(error):
            atomic_save({"a": Bad()}, tmp_path / "last.pt")
    assert os.listdir(tmp_path) == ["last.pt"] and (tmp_path / "last.pt").read_bytes() == good


def _photo_folder(folder, n: int = 4, size: int = 64) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        write_png(folder / f"p{i:02d}.png", rng.random((size, size, 3)))


def test_every_training_image_is_checked_before_the_first_step(tmp_path, capsys):
    """Item 14: a corrupt image crashed training at the step that drew it (and --resume again), an image
    smaller than the crop mid-run; now all bad files are listed up front and nothing is written."""
    data = tmp_path / "data"
    _photo_folder(data)
    (data / "sub").mkdir()
    good = (data / "p00.png").read_bytes()
    (data / "sub" / "cut.png").write_bytes(good[: len(good) // 2])
    (data / "text.jpg").write_text("not a photo")
    write_png(data / "small.png", np.zeros((40, 80, 3)))
    out = tmp_path / "run"
    with pytest.raises(TrainingDataError) as info:
        run_training("smoke", "discrete", out, data_dir=data, device="cpu", progress=False)
    assert sorted(p.name for p, _ in info.value.bad) == ["cut.png", "small.png", "text.jpg"]
    assert "80x40; training crops need both sides >= 64 px" in str(info.value)
    assert not out.exists()
    rc = main(["train", "--profile", "smoke", "--mode", "discrete", "--data", str(data), "--out", str(out),
               "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "3 training image(s)" in err and "cut.png" in err and "text.jpg" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_or_nonsense_device_and_unwritable_out_are_usage_errors(tmp_path, capsys):
    """Item 15: train --device cuda without a GPU and --device nonsense gave raw torch errors; an
    output folder that cannot be created gave a traceback."""
    base = ["train", "--profile", "smoke", "--mode", "discrete", "--iterations", "1", "--no-progress"]
    for device, message in (("cuda", "no usable CUDA GPU"), ("nonsense", "--device must be 'cpu', 'cuda'")):
        assert main([*base, "--out", str(tmp_path / device), "--device", device]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / device).exists()
    (tmp_path / "afile").write_text("x")
    assert main([*base, "--out", str(tmp_path / "afile" / "run"), "--device", "cpu"]) == 2
    assert "is an existing file, not a folder" in capsys.readouterr().err


def test_init_from_the_run_folder_being_written_is_refused(tmp_path):
    """One rule for every command that writes: never read a file it is about to write."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.pt").write_bytes(b"a finished run's model")
    with pytest.raises(RunFolderError, match="is a file of the run folder"):
        run_training("smoke", "continuous", out, init=out / "model.pt", overwrite=True, device="cpu", progress=False)
    assert (out / "model.pt").read_bytes() == b"a finished run's model"


def test_settings_are_checked_before_the_data(tmp_path, monkeypatch):
    """Validation before work: a bad setting is reported before any data file is decoded."""
    import ctlib.data.datasets as datasets

    def forbidden(*args, **kwargs):
        raise AssertionError("the data were checked before the settings")

    monkeypatch.setattr(datasets, "check_training_images", forbidden)
    data = tmp_path / "data"
    _photo_folder(data, n=1)
    for bad, message in (({"kappa": -1.0}, "kappa must be"), ({"min_scale": 2.0}, "min_scale must be in"),
                         ({"crop_size": 30}, "multiple of 4"), ({"schedule": "linear"}, "unknown schedule")):
        with pytest.raises(ValueError, match=message):
            run_training("smoke", "discrete", tmp_path / "run", data_dir=data, device="cpu", progress=False, **bad)
    assert not (tmp_path / "run").exists()


def test_overwrite_removes_the_replaced_runs_checkpoints_at_once(tmp_path):
    """A run replaced with --overwrite and interrupted before its first checkpoint must not leave the old
    last.pt next to the new log (a --resume would continue the old run under the new log)."""
    out = tmp_path / "run"
    train(tiny_wrapper(), ResShiftSchedule(), random_pairs, tiny_config(iterations=2), out, progress=False)

    def interrupted(n, g):
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match="no checkpoint was written yet"):
        train(tiny_wrapper(), ResShiftSchedule(), interrupted, tiny_config(ckpt_every=10), out, overwrite=True,
              progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["log.csv", "train_config.json"]
