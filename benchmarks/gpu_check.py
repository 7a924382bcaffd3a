"""The GPU check: every CUDA path of the kit on one GPU in under 8 minutes, into one JSON file.

Five steps, each a child process with its own timeout (and all of them within ``--budget`` seconds);
a step that fails, crashes or times out is recorded and the others still run:

* ``train``     ``python -m ctlib train --profile gpu`` (bfloat16 autocast: train's default on CUDA)
                for 250 iterations into a temporary run folder: iterations/s, loss at the first and
                last logged steps, the end-of-run validation PSNR-Y, model.pt written;
* ``torchrun``  the same through ``torchrun --standalone --nproc_per_node=1 -m ctlib train`` (150
                iterations; one process, so train runs without a process group: this checks the
                launcher path, not multi-GPU DDP); skipped if torchrun cannot be found;
* ``evaluate``  ``python -m ctlib evaluate --device cuda`` of the shipped continuous model on the
                first 4 bundled test photos: PSNR-Y / SSIM-Y of the bicubic, x0_hat and Euler
                (rho -8, nfe 8) rows;
* ``upscale``   ``python -m ctlib upscale --device cuda`` (the shipped defaults) of one bundled
                photo, given twice under two names: seconds per image, cold (first) and warm;
* ``networks``  the inference fast path (``ctlib.nn.fast.accelerate``) against the plain port on
                CUDA: the v1 UNet (batch 1, 64 x 64 latent), the bundled pixel UNet (the shipped
                weights, batch 8, 256 x 256) and the VQ-f4 decoder (64 x 64 latent): median forward
                ms of plain, fast and (UNets only: the only networks whose fast path has
                ``cuda_autocast``) fast under bf16 / fp16 autocast, with the max |difference| to the
                plain float32 output (and, on CUDA, of plain against fast with TF32 off, which is
                what the float32 tolerance is checked on; an autocast difference over 10 % of the
                output's range is a warning, a non-finite output a failure).

The JSON (gpu_check.json in benchmarks/results/ by default, ``--out`` to change) holds the
environment and, per step, the command, exit status, wall time, status (ok / failed / skipped), the
reason of a failure, the key numbers and the tail of its output; a summary table is printed at the
end.  Exit status: 0 every step ok (or skipped), 1 some step failed, 2 a usage error.

``--device cpu --tiny`` runs the very same steps on the CPU with tiny sizes (a few iterations, 1-2
images, small crops) in a couple of minutes: ``tests/test_gpu_check.py`` runs it.  For tests, the
environment variable ``CTLIB_GPU_CHECK_FAIL=step[,step...]`` appends an argument the step's command
rejects, so that step fails for real.  ``--threads N`` sets the steps' CPU threads (default 1 with
``--device cpu --tiny``: much faster on a busy machine).  Nothing is written into ``data/``; the run folders and
outputs go to a temporary folder (``--workdir``; removed afterwards unless ``--keep``).

    bash benchmarks/gpu_check.sh                           # on the GPU machine: under 8 minutes
    bash benchmarks/gpu_check.sh --device cpu --tiny --out /tmp/gpu_check_cpu.json
    python benchmarks/gpu_check.py --steps evaluate upscale --keep --workdir /tmp/gc
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gpu_check.json"
CHECKPOINT = ROOT / "data" / "checkpoints" / "continuous_finetune.pt"
TEST_PHOTOS = ROOT / "data" / "photos" / "test"
UPSCALE_PHOTO = "00_astronaut.png"
STEPS = ("train", "torchrun", "evaluate", "upscale", "networks")
FAIL_ENV = "CTLIB_GPU_CHECK_FAIL"
FORCED_FAILURE_ARG = "--gpu-check-forced-failure"
TAIL = 3000  # characters of stdout / stderr kept per step
KILL_GRACE_S = 5  # seconds between SIGTERM and SIGKILL of a step that timed out

#: per-step timeouts in seconds: the GPU ones sum to the 450 s budget (with the 5 s grace of each kill:
#: under 8 minutes in the worst case)
TIMEOUTS = {"train": 150, "torchrun": 110, "evaluate": 60, "upscale": 45, "networks": 85}
TINY_TIMEOUTS = {"train": 240, "torchrun": 240, "evaluate": 180, "upscale": 180, "networks": 240}
#: sizes of the real (GPU) run and of the tiny (CPU test) run
SIZES: dict[str, dict[str, Any]] = {
    "full": {"train_iterations": 250, "torchrun_iterations": 150, "train_args": ["--ckpt-every", "100"],
             "eval_images": 4,
             "eval_args": ["--nfe", "8", "--rho", "-8", "--batch-size", "4"], "upscale_copies": 2,
             "upscale_crop": None, "upscale_args": [], "repeats": 10, "warmup": 3,
             "v1": (1, 64), "pixel": (8, 256), "vq_latent": 64},
    "tiny": {"train_iterations": 2, "torchrun_iterations": 2,
             "train_args": ["--batch-size", "1", "--micro-batch", "1", "--crop-size", "64",
                            "--ckpt-every", "1"],
             "eval_images": 2, "eval_args": ["--nfe", "3", "--rho", "-8", "--batch-size", "2", "--crop", "64"],
             "upscale_copies": 1, "upscale_crop": 48, "upscale_args": ["--nfe", "2", "--tile", "32", "--overlap", "16"],
             "repeats": 1, "warmup": 1, "v1": (1, 64), "pixel": (1, 64), "vq_latent": 8},
}
#: the fast path against the plain port: largest |difference| relative to the largest |output|
FP32_REL_TOL = 1e-3  # float32 (TF32 off on CUDA): rounding is ~1e-6; more is a bug
AUTOCAST_REL_TOL = 0.1  # bf16 / fp16 autocast: beyond it a warning (not a failure: not calibrated on a GPU yet)
PSNR_RANGE = (10.0, 60.0)  # dB: a scored row outside it is not a sane number


# ---------------------------------------------------------------------------------------------
# running one step
# ---------------------------------------------------------------------------------------------
@dataclass
class Step:
    name: str
    description: str
    command: list[str] | None  # None: skipped (``skip_reason``)
    check: Callable[[subprocess.CompletedProcess], tuple[dict[str, Any], list[str], str]] | None = None
    timeout_s: float = 60.0
    skip_reason: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


def _tail(text: str | bytes | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[-TAIL:]


def _child_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if threads is not None:  # torch's CPU threads in the steps (OpenMP reads it at start-up)
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop(FAIL_ENV, None)
    return env


def run_step(step: Step, threads: int | None, deadline: float) -> dict[str, Any]:
    """Run ``step.command`` (its own process group, killed on timeout); return the step's record."""
    record: dict[str, Any] = {"name": step.name, "description": step.description,
                              "command": step.command, "command_line": shlex.join(step.command or []),
                              "status": None, "returncode": None, "seconds": 0.0, "timeout_s": None,
                              "reason": None, "metrics": {}, "summary": "", "stdout_tail": "", "stderr_tail": ""}
    if step.command is None:
        record.update(status="skipped", reason=step.skip_reason, summary=f"skipped: {step.skip_reason}")
        return record
    forced = step.name in {s.strip() for s in os.environ.get(FAIL_ENV, "").split(",") if s.strip()}
    if forced:
        record["forced_failure"] = True
        record["command"] = step.command = [*step.command, FORCED_FAILURE_ARG]
        record["command_line"] = shlex.join(step.command)
    timeout = min(step.timeout_s, deadline - time.monotonic())
    record["timeout_s"] = round(timeout, 1)
    if timeout < 1:
        record.update(status="failed", reason="no time left in the --budget", summary="failed: no time left")
        return record
    print(f"[{step.name}] {record['command_line']}", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(step.command, cwd=ROOT, env=_child_env(threads), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the step's own process group (torchrun's workers too)
            out, err = proc.communicate(timeout=KILL_GRACE_S)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    seconds = time.perf_counter() - start
    out_s, err_s = _tail(out), _tail(err)
    record.update(returncode=proc.returncode, seconds=round(seconds, 2), stdout_tail=out_s, stderr_tail=err_s)
    done = subprocess.CompletedProcess(step.command, proc.returncode, out.decode("utf-8", "replace") if out else "",
                                       err.decode("utf-8", "replace") if err else "")
    metrics, problems, summary = {}, [], ""
    if step.check is not None:
        try:
            metrics, problems, summary = step.check(done)
        except Exception as exc:  # a check that cannot read the step's output is a failed step
            problems = [f"could not read the step's results: {type(exc).__name__}: {exc}"]
    record["metrics"] = metrics
    if timed_out:
        problems.insert(0, f"timed out after {timeout:.0f} s (killed)")
    elif proc.returncode != 0:
        last = (err_s.strip().splitlines() or out_s.strip().splitlines() or [""])[-1]
        problems.insert(0, f"exit status {proc.returncode}: {last[:300]}")
    record["status"] = "failed" if problems else "ok"
    record["reason"] = "; ".join(problems) if problems else None
    record["summary"] = summary if not problems else f"{problems[0][:80]}" + (f" | {summary}" if summary else "")
    print(f"[{step.name}] {record['status']} in {seconds:.1f} s" + (f": {record['reason']}" if problems else ""),
          flush=True)
    return record


# ---------------------------------------------------------------------------------------------
# what each step's output means
# ---------------------------------------------------------------------------------------------
def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _fmt(x: Any, spec: str = ".4g") -> str:
    return format(x, spec) if _finite(x) else str(x)


def check_train(run_dir: Path, iterations: int, device: str) -> Callable:
    def check(done: subprocess.CompletedProcess) -> tuple[dict, list[str], str]:
        m: dict[str, Any] = {"iterations_requested": iterations, "run_dir_files": [],
                             "amp": "bfloat16 autocast (train's default on CUDA)" if device.startswith("cuda")
                             else "off (train never autocasts on the CPU)"}
        problems: list[str] = []
        if run_dir.is_dir():
            m["run_dir_files"] = sorted(p.name for p in run_dir.iterdir())
        said = re.search(r"trained (\d+) steps in ([\d.]+) s, last loss (\S+)", done.stdout)
        if said:
            m["steps"], m["train_seconds"], m["last_loss"] = int(said[1]), float(said[2]), float(said[3])
        log = run_dir / "log.csv"
        rows = []
        if log.is_file():
            with open(log, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step")]
        if rows:
            first, last = rows[0], rows[-1]
            m["logged_steps"] = [int(r["step"]) for r in rows]
            m["loss_first"], m["loss_first_step"] = float(first["loss"]), int(first["step"])
            m["loss_last"], m["loss_last_step"] = float(last["loss"]), int(last["step"])
            s0, s1, t0, t1 = int(first["step"]), int(last["step"]), float(first["seconds"]), float(last["seconds"])
            # between the first and last logged steps when there are two (start-up excluded), else overall
            m["iterations_per_s"] = round((s1 - s0) / (t1 - t0), 3) if s1 > s0 and t1 > t0 else (
                round(s1 / t1, 3) if t1 > 0 else None)
            m["iterations_per_s_overall"] = round(s1 / t1, 3) if t1 > 0 else None
            vals = [json.loads(r["val"]) for r in rows if r.get("val")]
            if vals:
                m["val_last"] = vals[-1]
        if done.returncode == 0:
            if not said:
                problems.append("no 'trained N steps' line in the output")
            elif m["steps"] != iterations:
                problems.append(f"trained {m['steps']} steps, not {iterations}")
            if not rows:
                problems.append(f"no rows in {log}")
            elif not (_finite(m["loss_first"]) and _finite(m["loss_last"]) and m["loss_last"] >= 0):
                problems.append(f"non-finite loss ({m['loss_first']}, {m['loss_last']})")
            if not (run_dir / "model.pt").is_file():
                problems.append("model.pt was not written")
            for k, v in (m.get("val_last") or {}).items():
                if not _finite(v):
                    problems.append(f"validation {k} = {v}")
        summary = ""
        if rows:
            summary = (f"{_fmt(m['iterations_per_s'], '.3g')} it/s, loss {_fmt(m['loss_first'])} (step "
                       f"{m['loss_first_step']}) -> {_fmt(m['loss_last'])} (step {m['loss_last_step']})")
            if m.get("val_last"):
                summary += f", val PSNR-Y x0_hat {_fmt(m['val_last'].get('psnr_y_x0_hat_t1'), '.2f')} dB"
        return m, problems, summary
    return check


def check_evaluate(out_json: Path, images: int) -> Callable:
    def check(done: subprocess.CompletedProcess) -> tuple[dict, list[str], str]:
        problems: list[str] = []
        if not out_json.is_file():
            return {}, ([] if done.returncode else [f"{out_json} was not written"]), ""
        doc = json.loads(out_json.read_text())
        rows = [{"label": r["label"], "solver": r["solver"], "nfe": r["nfe"], "rho": r.get("rho"),
                 "status": r["status"], "reason": r.get("reason"), "n_images": r["n_images"],
                 "seconds": r["seconds"], "psnr_y": r["mean"].get("psnr_y"), "ssim_y": r["mean"].get("ssim_y")}
                for r in doc["rows"]]
        m = {"images": doc.get("images"), "rows": rows,
             "unavailable_metrics": sorted(k for k, v in doc.get("metrics", {}).items() if not v.get("available"))}
        if len(doc.get("images") or []) != images:
            problems.append(f"{len(doc.get('images') or [])} images evaluated, not {images}")
        if len(rows) < 3:
            problems.append(f"{len(rows)} rows, expected bicubic, x0_hat and the solver's")
        for r in rows:
            if r["status"] != "ok":
                problems.append(f"row {r['label']}: {r['status']} ({r['reason']})")
            elif not (_finite(r["psnr_y"]) and PSNR_RANGE[0] <= r["psnr_y"] <= PSNR_RANGE[1]):
                problems.append(f"row {r['label']}: PSNR-Y {r['psnr_y']} outside {PSNR_RANGE}")
            elif not (_finite(r["ssim_y"]) and 0 < r["ssim_y"] <= 1):
                problems.append(f"row {r['label']}: SSIM-Y {r['ssim_y']} outside (0, 1]")
        summary = ", ".join(f"{r['solver']}{'' if r['nfe'] in (0, 1) else ' nfe ' + str(r['nfe'])} "
                            f"{_fmt(r['psnr_y'], '.2f')} dB" for r in rows) + f" (PSNR-Y, {len(m['images'] or [])} img)"
        return m, problems, summary
    return check


def check_upscale(inputs: list[Path], out_dir: Path) -> Callable:
    def check(done: subprocess.CompletedProcess) -> tuple[dict, list[str], str]:
        from PIL import Image

        problems: list[str] = []
        timed = {}
        for line in done.stdout.splitlines():
            hit = re.match(r"\s*(\S+)\s+(\d+)x(\d+)\s+([\d.]+)\s+([\d.]+)\s*$", line)
            if hit:
                timed[Path(hit[1]).name] = {"size": [int(hit[2]), int(hit[3])], "seconds": float(hit[4]),
                                            "s_per_mp": float(hit[5])}
        images = []
        for src in inputs:
            out = out_dir / f"{src.stem}_x4.png"
            with Image.open(src) as im:
                in_size = list(im.size)
            rec: dict[str, Any] = {"input": src.name, "input_size": in_size, "output": out.name,
                                   **timed.get(out.name, {})}
            if out.is_file():
                with Image.open(out) as im:
                    rec["output_size"] = list(im.size)
                if rec["output_size"] != [4 * v for v in in_size]:
                    problems.append(f"{out.name} is {rec['output_size']}, not 4 x {in_size}")
            elif done.returncode == 0:
                problems.append(f"{out.name} was not written")
            if done.returncode == 0 and not _finite(rec.get("seconds")):
                problems.append(f"no time printed for {out.name}")
            images.append(rec)
        secs = [r["seconds"] for r in images if _finite(r.get("seconds"))]
        m: dict[str, Any] = {"images": images}
        summary = ""
        if secs:
            m["seconds_first"] = secs[0]
            m["seconds_per_image"] = secs[-1]  # warm (the second copy) when there are two
            size = images[-1].get("output_size") or images[-1].get("size")
            summary = f"{size[0]}x{size[1]} out: {secs[-1]:.2f} s/image" if size else f"{secs[-1]:.2f} s/image"
            if len(secs) > 1:
                summary += f" (first, cold: {secs[0]:.2f} s)"
        return m, problems, summary
    return check


def check_networks(out_json: Path) -> Callable:
    def check(done: subprocess.CompletedProcess) -> tuple[dict, list[str], str]:
        if not out_json.is_file():
            return {}, ([] if done.returncode else [f"{out_json} was not written"]), ""
        doc = json.loads(out_json.read_text())
        problems = list(doc.get("problems", []))
        parts = []
        for case in doc.get("cases", []):
            v = case.get("variants", {})
            if "plain" in v and "fast" in v:
                part = (f"{case['name']} {v['plain']['ms']:.4g}->{v['fast']['ms']:.4g} ms "
                        f"|d| {case.get('max_abs_diff_checked', v['fast']['max_abs_diff']):.1e}")
                for k in ("fast_bf16", "fast_fp16"):
                    if k in v:
                        part += f", {k[5:]} {v[k]['ms']:.4g} ms"
                parts.append(part)
        warnings = doc.get("warnings") or []
        return doc, problems, "; ".join(parts) + (f"; {len(warnings)} warning(s)" if warnings else "")
    return check


# ---------------------------------------------------------------------------------------------
# step 5 in its own process: the network fast path
# ---------------------------------------------------------------------------------------------
def networks_main(out_path: Path, device_name: str, tiny: bool) -> int:
    """Plain against fast (and fast under autocast on CUDA) for the v1 UNet, the bundled pixel UNet
    and the VQ-f4 decoder; writes ``out_path``; returns 1 if a case failed or is out of tolerance."""
    import copy
    import statistics

    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from networks import randomize_  # benchmarks/networks.py: the golden fixtures' weight scaling

    from ctlib.nn import load_checkpoint
    from ctlib.nn.configs import V1_UNET, V1_VQF4, build_unet, build_vq
    from ctlib.nn.fast import accelerate, is_accelerated
    from ctlib.nn.fast import plain as plain_path

    sizes = SIZES["tiny" if tiny else "full"]
    device = torch.device(device_name)
    cuda = device.type == "cuda"
    doc: dict[str, Any] = {"device": device_name, "torch": torch.__version__, "repeats": sizes["repeats"],
                           "warmup": sizes["warmup"], "tolerances": {"fp32_rel": FP32_REL_TOL,
                                                                     "autocast_rel": AUTOCAST_REL_TOL},
                           "cases": [], "problems": [], "warnings": []}
    if cuda:
        if not torch.cuda.is_available():
            doc["problems"].append("--device cuda but torch.cuda.is_available() is False")
            out_path.write_text(json.dumps(doc, indent=1) + "\n")
            return 1
        props = torch.cuda.get_device_properties(device)
        doc["gpu"] = {"name": props.name, "capability": f"{props.major}.{props.minor}",
                      "memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda,
                      "cudnn": torch.backends.cudnn.version(), "bf16_supported": torch.cuda.is_bf16_supported(),
                      "tf32_cudnn_default": torch.backends.cudnn.allow_tf32,
                      "tf32_matmul_default": torch.backends.cuda.matmul.allow_tf32}
    else:
        doc["threads"] = torch.get_num_threads()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    def unet_inputs(batch: int, side: int, seed: int) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, 3, side, side, generator=gen)
        lq = torch.rand(batch, 3, side, side, generator=gen) * 2 - 1
        return x.to(device), torch.full((batch,), 7.0, device=device), lq.to(device)

    def v1_case() -> tuple:
        batch, side = sizes["v1"]
        x, t, lq = unet_inputs(batch, side, 1)
        model = randomize_(build_unet(V1_UNET)).eval()
        return model, (lambda m: m(x, t, lq=lq)), [batch, 3, side, side], True

    def pixel_case() -> tuple:
        batch, side = sizes["pixel"]
        x, t, lq = unet_inputs(batch, side, 2)
        model = load_checkpoint(CHECKPOINT).model.eval()
        return model, (lambda m: m(x, t, lq=lq)), [batch, 3, side, side], True

    def vq_case() -> tuple:
        side = sizes["vq_latent"]
        model = randomize_(build_vq(V1_VQF4)).eval()
        z = torch.randn(1, model.embed_dim, side, side, generator=torch.Generator().manual_seed(3)).to(device)
        return model, (lambda m: m.decode(z)), list(z.shape), False

    cases = {"v1_unet": v1_case, "bundled_pixel": pixel_case, "vq_f4_decode": vq_case}
    failed = False
    for name, build in cases.items():
        case: dict[str, Any] = {"name": name}
        doc["cases"].append(case)
        try:
            t_build = time.perf_counter()
            plain, call, shape, is_unet = build()
            plain = plain_path(plain).to(device)  # the plain port, whatever the loader did
            assert not is_accelerated(plain)
            case.update(input=shape, parameters=sum(p.numel() for p in plain.parameters()))
            variants = {"plain": plain, "fast": accelerate(copy.deepcopy(plain))}
            if cuda and is_unet:
                if torch.cuda.is_bf16_supported():
                    variants["fast_bf16"] = accelerate(copy.deepcopy(plain), cuda_autocast=torch.bfloat16)
                else:
                    case["autocast_bf16"] = "not timed: this GPU has no bfloat16"
                variants["fast_fp16"] = accelerate(copy.deepcopy(plain), cuda_autocast=torch.float16)
            elif cuda:
                case["autocast"] = "not timed: accelerate's cuda_autocast applies to UNetModelSwin only"
            else:
                case["autocast"] = "not timed: CPU inputs are never autocast (ctlib.nn.fast)"
            case["build_seconds"] = round(time.perf_counter() - t_build, 2)
            res: dict[str, dict[str, Any]] = {k: {"ms_all": []} for k in variants}
            outs = {}
            with torch.inference_mode():
                for k, model in variants.items():  # first call: the output, peak memory, warm-up
                    if cuda:
                        torch.cuda.reset_peak_memory_stats(device)
                    sync()
                    t0 = time.perf_counter()
                    outs[k] = call(model).float()
                    sync()
                    res[k]["first_call_ms"] = round(1000 * (time.perf_counter() - t0), 2)
                    if cuda:
                        # every variant's weights are resident: compare the peaks, not their sizes
                        res[k]["peak_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
                    for _ in range(sizes["warmup"] - 1):
                        call(model)
                    sync()
                names = list(variants)
                for r in range(sizes["repeats"]):  # interleaved, the order rotating: the same load for all
                    for k in names[r % len(names):] + names[:r % len(names)]:
                        sync()
                        t0 = time.perf_counter()
                        call(variants[k])
                        sync()
                        res[k]["ms_all"].append(round(1000 * (time.perf_counter() - t0), 3))
                ref = outs["plain"]
                scale = float(ref.abs().max())
                case["max_abs_output"] = scale
                for k in variants:
                    res[k]["ms"] = round(statistics.median(res[k]["ms_all"]), 3)
                    res[k]["speedup_vs_plain"] = round(res["plain"]["ms"] / res[k]["ms"], 3)
                    res[k]["finite"] = bool(torch.isfinite(outs[k]).all())
                    res[k]["max_abs_diff"] = float((outs[k] - ref).abs().max()) if k != "plain" else 0.0
                checked = res["fast"]["max_abs_diff"]
                if cuda:  # float32 exactness without TF32 (the defaults round convolutions to TF32)
                    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
                    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
                    try:
                        checked = float((call(variants["fast"]).float() - call(plain).float()).abs().max())
                    finally:
                        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
                    case["max_abs_diff_fp32_no_tf32"] = checked
                case["max_abs_diff_checked"] = checked
            case["variants"] = res
            for k, r_ in res.items():
                if not r_["finite"]:
                    doc["problems"].append(f"{name} {k}: non-finite output")
            if not (math.isfinite(checked) and checked <= FP32_REL_TOL * max(scale, 1e-12)):
                doc["problems"].append(f"{name}: fast vs plain |diff| {checked:.3g} > {FP32_REL_TOL} x max|out| "
                                       f"{scale:.3g}")
            for k in ("fast_bf16", "fast_fp16"):
                d = res.get(k, {}).get("max_abs_diff")
                if d is not None and not (math.isfinite(d) and d <= AUTOCAST_REL_TOL * scale):
                    doc["warnings"].append(f"{name} {k}: |diff| {d:.3g} > {AUTOCAST_REL_TOL} x max|out| {scale:.3g}")
            ms = {k: r_["ms"] for k, r_ in res.items()}
            print(f"  {name}: " + ", ".join(f"{k} {v:.3g} ms" for k, v in ms.items())
                  + f", |fast - plain| {checked:.2e}", flush=True)
        except Exception as exc:  # one broken case must not hide the others
            case["error"] = f"{type(exc).__name__}: {exc}"
            doc["problems"].append(f"{name}: {case['error']}")
            failed = True
        finally:
            plain = variants = outs = ref = None  # noqa: F841 - free the GPU memory before the next case
            if cuda:
                torch.cuda.empty_cache()
    out_path.write_text(json.dumps(doc, indent=1) + "\n")
    return 1 if failed or doc["problems"] else 0


# ---------------------------------------------------------------------------------------------
# the steps and the report
# ---------------------------------------------------------------------------------------------
def _torchrun() -> list[str] | None:
    """The torchrun of this interpreter's environment (or on PATH); None if there is none."""
    beside = Path(sys.executable).with_name("torchrun")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("torchrun")
    return [found] if found else None


def build_steps(args: argparse.Namespace, work: Path) -> list[Step]:
    size = SIZES["tiny" if args.tiny else "full"]
    timeouts = TINY_TIMEOUTS if args.tiny else TIMEOUTS
    py = [sys.executable]
    dev = args.device
    steps: list[Step] = []

    def train_args(out: Path, iterations: int) -> list[str]:
        return ["-m", "ctlib", "train", "--profile", "gpu", "--mode", "continuous", "--device", dev,
                "--iterations", str(iterations), "--val-every", str(iterations),  # validation once, at the end
                *size["train_args"], "--out", str(out), "--no-progress"]

    it = args.train_iterations or size["train_iterations"]
    steps.append(Step("train", f"python -m ctlib train --profile gpu, {it} iterations", py + train_args(
        work / "train", it), check_train(work / "train", it, dev), timeouts["train"]))
    it2 = args.torchrun_iterations or size["torchrun_iterations"]
    launcher = _torchrun()
    desc = f"torchrun --standalone --nproc_per_node=1 -m ctlib train --profile gpu, {it2} iterations"
    if launcher is None:
        steps.append(Step("torchrun", desc, None, skip_reason="torchrun was not found (beside python or on PATH)"))
    else:
        cmd = [*launcher, "--standalone", "--nproc_per_node=1", *train_args(work / "train_torchrun", it2)]
        steps.append(Step("torchrun", desc, cmd, check_train(work / "train_torchrun", it2, dev), timeouts["torchrun"]))
    ev_out = work / "evaluate.json"
    steps.append(Step("evaluate", f"python -m ctlib evaluate on {size['eval_images']} bundled test photos", py + [
        "-m", "ctlib", "evaluate", "--hr", str(TEST_PHOTOS), "--checkpoint", str(CHECKPOINT), "--solver", "euler",
        *size["eval_args"], "--limit", str(size["eval_images"]), "--device", dev, "--out", str(ev_out),
        "--no-progress"], check_evaluate(ev_out, size["eval_images"]), timeouts["evaluate"]))
    up_in = [work / "upscale_in" / f"{Path(UPSCALE_PHOTO).stem}{'' if i == 0 else '_copy'}.png"
             for i in range(size["upscale_copies"])]
    steps.append(Step("upscale", f"python -m ctlib upscale of {UPSCALE_PHOTO}" + (
        f" (a {size['upscale_crop']} px crop)" if size["upscale_crop"] else "") + (
        f", {len(up_in)} copies (cold, warm)" if len(up_in) > 1 else ""), py + [
        "-m", "ctlib", "upscale", *map(str, up_in), "--checkpoint", str(CHECKPOINT), *size["upscale_args"],
        "--device", dev, "--out", str(work / "upscaled"), "--no-progress"],
        check_upscale(up_in, work / "upscaled"), timeouts["upscale"]))
    net_out = work / "networks.json"
    steps.append(Step("networks", "plain vs fast forward (ctlib.nn.fast.accelerate): v1 UNet, pixel UNet, VQ-f4 "
                      "decoder", py + [str(Path(__file__).resolve()), "--networks-only", str(net_out), "--device", dev,
                                       *(["--tiny"] if args.tiny else [])],
                      check_networks(net_out), timeouts["networks"]))
    return [s for s in steps if s.name in args.steps]


def prepare_inputs(work: Path, tiny: bool) -> None:
    """The upscale step's inputs: the bundled photo (a centre crop in tiny mode), copied under its names."""
    from PIL import Image

    size = SIZES["tiny" if tiny else "full"]
    (work / "upscale_in").mkdir(parents=True, exist_ok=True)
    with Image.open(TEST_PHOTOS / UPSCALE_PHOTO) as im:
        im = im.convert("RGB")
        if size["upscale_crop"]:
            c, (w, h) = size["upscale_crop"], im.size
            im = im.crop(((w - c) // 2, (h - c) // 2, (w - c) // 2 + c, (h - c) // 2 + c))
        for i in range(size["upscale_copies"]):
            im.save(work / "upscale_in" / f"{Path(UPSCALE_PHOTO).stem}{'' if i == 0 else '_copy'}.png")


def environment(device: str) -> dict[str, Any]:
    from importlib import metadata

    env: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable,
                           "machine": platform.machine(), "host": platform.node(), "cpu_count": os.cpu_count(),
                           "load_average_at_start": [round(v, 2) for v in os.getloadavg()]
                           if hasattr(os, "getloadavg") else None}
    for pkg in ("torch", "torchvision"):
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            env[pkg] = None
    try:
        env["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                           timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["git_commit"] = None
    if shutil.which("nvidia-smi"):
        try:
            env["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            env["nvidia_smi"] = f"failed: {exc}"
    return env


def summary_table(records: list[dict[str, Any]]) -> str:
    lines = [f"{'step':<9} {'status':<8} {'seconds':>8}  key numbers", "-" * 100]
    for r in records:
        lines.append(f"{r['name']:<9} {r['status']:<8} {r['seconds']:8.1f}  {r['summary']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny: the self-test)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a few iterations, 1-2 images, small crops")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON report (default: gpu_check.json "
                                                                      "in benchmarks/results/)")
    parser.add_argument("--steps", nargs="+", default=list(STEPS), metavar="STEP",
                        help=f"run only these steps, in the usual order ({', '.join(STEPS)})")
    parser.add_argument("--workdir", type=Path, help="folder for run folders and outputs (default: a new temporary "
                                                     "folder, removed at the end unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--budget", type=float, help="seconds for all steps together (default 450; tiny 900)")
    parser.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every step's timeout")
    parser.add_argument("--train-iterations", type=int, help="train step iterations (default 250; tiny 2)")
    parser.add_argument("--torchrun-iterations", type=int, help="torchrun step iterations (default 150; tiny 2)")
    parser.add_argument("--threads", type=int, help="CPU threads of every step (OMP_NUM_THREADS; default: torch's "
                                                    "choice, 1 with --device cpu --tiny: far faster on a busy machine)")
    parser.add_argument("--networks-only", type=Path, help=argparse.SUPPRESS)  # step 5's child process
    args = parser.parse_args(argv)
    if args.device not in ("cpu", "cuda") and not re.fullmatch(r"cuda:\d+", args.device):
        parser.error(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    if args.networks_only is not None:
        return networks_main(args.networks_only, args.device, args.tiny)
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
    for name in ("train_iterations", "torchrun_iterations"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    threads = args.threads if args.threads is not None else (1 if args.tiny and args.device == "cpu" else None)
    if args.timeout_scale <= 0:
        parser.error("--timeout-scale must be > 0")
    budget = args.budget if args.budget is not None else (900.0 if args.tiny else 450.0)
    out = args.out.resolve()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"--out {args.out}: {exc}")
    data_dir = (ROOT / "data").resolve()
    if out.is_relative_to(data_dir):
        parser.error("--out must not be inside data/ (the kit's shipped files)")

    temporary = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="ctlib_gpu_check_")) if temporary else args.workdir.resolve()
    if work.is_relative_to(data_dir):
        parser.error("--workdir must not be inside data/")
    work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    deadline = start + budget
    report: dict[str, Any] = {
        "check": "ctlib GPU check (benchmarks/gpu_check.py)", "device": args.device, "tiny": args.tiny,
        "started": datetime.now(UTC).isoformat(timespec="seconds"), "budget_s": budget, "threads": threads,
        "workdir": str(work) + ("" if args.keep or not temporary else " (removed)"),
        "environment": environment(args.device), "steps": [],
    }
    print(f"GPU check on {args.device}{' (tiny)' if args.tiny else ''}: steps {', '.join(args.steps)}; "
          f"budget {budget:.0f} s; work folder {work}", flush=True)
    try:
        if "upscale" in args.steps:
            prepare_inputs(work, args.tiny)
        for step in build_steps(args, work):
            step.timeout_s *= args.timeout_scale
            report["steps"].append(run_step(step, threads, deadline))
    finally:
        report["total_seconds"] = round(time.monotonic() - start, 1)
        counts = {s: sum(r["status"] == s for r in report["steps"]) for s in ("ok", "failed", "skipped")}
        report["counts"] = counts
        report["ok"] = counts["failed"] == 0 and len(report["steps"]) == len(args.steps)
        out.write_text(json.dumps(report, indent=1) + "\n")
        if temporary and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(summary_table(report["steps"]))
    print(f"\n{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped in "
          f"{report['total_seconds']:.1f} s; wrote {out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
