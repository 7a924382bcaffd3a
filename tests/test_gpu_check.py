"""benchmarks/gpu_check.sh, tested without a GPU: its ``--device cpu --tiny`` mode runs the very same
steps (train, torchrun, evaluate, upscale, networks) on the CPU in a couple of minutes; a step made to
fail (``CTLIB_GPU_CHECK_FAIL``) or to time out is recorded as failed and makes the exit status 1."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ["train", "torchrun", "evaluate", "upscale", "networks"]


def _run(tmp_path, *args: str, env: dict[str, str] | None = None, timeout: float = 600):
    out = tmp_path / "gpu_check.json"
    cmd = ["bash", str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(out), "--workdir", str(tmp_path / "work"),
           *args]
    environ = {k: v for k, v in os.environ.items() if k != "CTLIB_GPU_CHECK_FAIL"}
    environ.update(PYTHON=sys.executable, **(env or {}))
    proc = subprocess.run(cmd, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=timeout)
    report = json.loads(out.read_text()) if out.is_file() else None
    return proc, report


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _torchrun_can_run() -> bool:
    """A torchrun beside this interpreter (or on PATH) and a torch build with torch.distributed (gloo)."""
    import torch

    beside = Path(sys.executable).with_name("torchrun")
    return (beside.is_file() or shutil.which("torchrun") is not None) and torch.distributed.is_available()


@pytest.mark.slow
def test_tiny_cpu_run_passes_every_step(tmp_path):
    proc, report = _run(tmp_path)
    assert report is not None, proc.stdout + proc.stderr
    by_name = {s["name"]: s for s in report["steps"]}
    assert list(by_name) == STEPS
    bad = {n: f"{s['reason']}\n{s['stderr_tail'][-1500:]}" for n, s in by_name.items() if s["status"] != "ok"}
    if not _torchrun_can_run():  # no torchrun or no torch.distributed here: the step cannot launch train
        assert by_name["torchrun"]["status"] in ("skipped", "failed")
        bad.pop("torchrun")
        assert not bad, bad
        pytest.skip("torchrun cannot run here (the step is skipped); the other steps passed")
    assert not bad, bad
    assert proc.returncode == 0 and report["ok"] and report["counts"] == {"ok": 5, "failed": 0, "skipped": 0}
    assert report["device"] == "cpu" and report["tiny"] is True and report["threads"] == 1
    for s in report["steps"]:
        assert s["returncode"] == 0 and s["seconds"] > 0 and s["command"] and s["command_line"] and s["summary"]
        assert s["seconds"] <= s["timeout_s"]

    for name in ("train", "torchrun"):
        m = by_name[name]["metrics"]
        assert m["steps"] == m["iterations_requested"] == 2
        assert _finite(m["iterations_per_s"]) and m["iterations_per_s"] > 0
        assert 0 <= m["loss_first"] < 1 and 0 <= m["loss_last"] < 1
        assert {"model.pt", "last.pt", "log.csv"} <= set(m["run_dir_files"])
        assert 10 < m["val_last"]["psnr_y_x0_hat_t1"] < 60  # the end-of-run validation ran
        assert m["amp"].startswith("off")
    assert by_name["torchrun"]["command"][1:3] == ["--standalone", "--nproc_per_node=1"]

    ev = by_name["evaluate"]["metrics"]
    assert len(ev["images"]) == 2
    assert [r["solver"] for r in ev["rows"]] == ["bicubic", "x0_hat", "euler"]
    for r in ev["rows"]:
        assert r["status"] == "ok" and r["n_images"] == 2
        assert 15 < r["psnr_y"] < 50 and 0 < r["ssim_y"] <= 1

    up = by_name["upscale"]["metrics"]
    assert len(up["images"]) == 1
    assert up["images"][0]["output_size"] == [4 * v for v in up["images"][0]["input_size"]] == [192, 192]
    assert 0 < up["seconds_per_image"] < 300

    net = by_name["networks"]["metrics"]
    assert [c["name"] for c in net["cases"]] == ["v1_unet", "bundled_pixel", "vq_f4_decode"]
    assert not net["problems"] and net["threads"] == 1  # --tiny on the CPU: one thread per step
    for c in net["cases"]:
        assert "error" not in c
        assert set(c["variants"]) == {"plain", "fast"}  # no autocast on the CPU
        for v in c["variants"].values():
            assert v["ms"] > 0 and v["finite"] and len(v["ms_all"]) == 1
        assert c["max_abs_output"] > 0.1
        assert c["variants"]["fast"]["max_abs_diff"] < 1e-4 * max(1.0, c["max_abs_output"])
    assert "step" in proc.stdout and "networks" in proc.stdout.splitlines()[-3]  # the summary table


def test_a_failing_step_is_recorded_and_fails_the_run(tmp_path):
    proc, report = _run(tmp_path, "--steps", "upscale", env={"CTLIB_GPU_CHECK_FAIL": "upscale"}, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [step] = report["steps"]
    assert step["name"] == "upscale" and step["status"] == "failed" and step["forced_failure"]
    assert step["returncode"] == 2 and "--gpu-check-forced-failure" in step["command_line"]
    assert "exit status 2" in step["reason"] and not report["ok"]
    assert report["counts"] == {"ok": 0, "failed": 1, "skipped": 0}
    assert "failed" in proc.stdout


def test_a_step_that_times_out_is_killed_and_recorded(tmp_path):
    proc, report = _run(tmp_path, "--steps", "networks", "--timeout-scale", "0.01", timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [step] = report["steps"]
    assert step["status"] == "failed" and "timed out" in step["reason"]
    assert step["seconds"] < 30


def test_bad_arguments_are_a_usage_error(tmp_path):
    proc, report = _run(tmp_path, "--steps", "nonsense", timeout=60)
    assert proc.returncode == 2 and report is None and "unknown step" in proc.stderr
