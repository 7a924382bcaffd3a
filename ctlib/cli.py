"""Command line: ``python -m ctlib <command> ...``.

Commands
--------
reproduce   run the kit's notebooks headless with papermill, in order, into ``results/<profile>/``
train       discrete pretraining or continuous fine-tuning (also under ``torchrun``)
evaluate    one solver row on a folder of HR images -> JSON (:func:`cmd_evaluate`, rows: :mod:`ctlib.evaluate`)
upscale     x4 super-resolution of your own images, any size (:func:`cmd_upscale`; :mod:`ctlib.upscale`)
assignments build the course notebooks (student, instructor, nbgrader) and grade submissions (:mod:`ctlib.assignments`)
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

from .profiles import DEFAULT_PROFILE, PROFILES, check_profile

#: Exit codes of every command (README "Exit codes and file safety").
EXIT_OK = 0  # everything done
EXIT_FAILED = 1  # some inputs failed (listed), or the work itself failed (a notebook, a diverged run)
EXIT_USAGE = 2  # a bad argument, an unusable output location, a missing device: found before any work
EXIT_INTERRUPTED = 130  # Ctrl-C: what was finished is complete, anything partial is marked so
NOTEBOOK_RE = re.compile(r"^(\d\d)_.*\.ipynb$")


def find_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """The ordered notebooks ``NN_name.ipynb`` in ``folder`` (optionally only those whose NN is in ``only``)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder not found: {folder}")
    found = sorted(p for p in folder.iterdir() if NOTEBOOK_RE.match(p.name))
    if only:
        wanted = {s.zfill(2) for s in only}
        unknown = wanted - {NOTEBOOK_RE.match(p.name).group(1) for p in found}
        if unknown:
            raise ValueError(f"no notebook numbered {', '.join(sorted(unknown))} in {folder}")
        found = [p for p in found if NOTEBOOK_RE.match(p.name).group(1) in wanted]
    if not found:
        raise FileNotFoundError(f"no notebooks named NN_*.ipynb in {folder}")
    return found


def fresh_output_dir(base: Path) -> Path:
    """``base`` if it does not exist or is empty, else the first free ``base_2``, ``base_3``, ...
    (a new run never overwrites an old one)."""
    if not base.exists() or (base.is_dir() and not any(base.iterdir())):
        return base
    if base.exists() and not base.is_dir():
        raise NotADirectoryError(f"output path exists and is not a folder: {base}")
    i = 2
    while (candidate := base.with_name(f"{base.name}_{i}")).exists():
        i += 1
    return candidate


class NotebooksInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_notebooks`: ``done`` (executed notebooks, complete) and ``partial``
    (the notebook that was running, renamed ``*.INTERRUPTED.ipynb`` and marked partial; None when
    nothing of it had been written)."""

    def __init__(self, done: list[tuple[Path, float]], partial: Path | None) -> None:
        self.done, self.partial = done, partial
        super().__init__(f"interrupted after {len(done)} notebook(s)")


def mark_interrupted(path: Path) -> Path:
    """Make the executed notebook ``path`` say that it is partial, where papermill leaves it looking
    complete after Ctrl-C (every cell 'completed', ``exception`` None): the notebook's papermill
    ``exception`` is True, the cell that was running is 'failed' with a KeyboardInterrupt error output,
    the cells after it are 'pending', ``metadata.ctlib.partial`` says why, a first markdown cell says
    so to a reader, and the file is renamed ``<name>.INTERRUPTED.ipynb``.  Returns the new path."""
    import nbformat

    from .files import atomic_write

    nb = nbformat.read(path, as_version=4)
    started = [i for i, c in enumerate(nb.cells) if (c.metadata.get("papermill") or {}).get("start_time")]
    running = started[-1] if started else -1
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.setdefault("papermill", {})
        if i == running:
            meta.update(status="failed", exception=True)
            if cell.cell_type == "code":
                cell.setdefault("outputs", []).append(nbformat.v4.new_output(
                    "error", ename="KeyboardInterrupt", evalue="interrupted by the user (Ctrl-C): this cell did not finish",
                    traceback=[]))
        elif i > running:
            meta.update(status="pending", exception=None)
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
    nb.metadata.setdefault("papermill", {})["exception"] = True
    where = f"cell {running + 1} of {len(nb.cells)}" if running >= 0 else "before its first cell"
    nb.metadata["ctlib"] = {"partial": True, "reason": f"interrupted (Ctrl-C) in {where}"}
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(
        f"**PARTIAL OUTPUT: this run was interrupted (Ctrl-C) in {where}; the cells after it did not run.**"))
    target = path.with_name(f"{path.stem}.INTERRUPTED.ipynb")
    text = nbformat.writes(nb).encode("utf-8")
    atomic_write(target, lambda f: f.write(text))
    path.unlink()
    return target


#: The kernel's own log is silenced below CRITICAL: its "running over TCP without encryption" warning
#: (the kernel and papermill talk over loopback) would interleave with the progress bars, and on Ctrl-C
#: the kernel, shut down mid-cell, logs "KeyboardInterrupt caught in kernel" and a ZMQ traceback at
#: ERROR level.  A cell's own error still reaches the user: papermill reports it and the notebook keeps it.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
#: Set while ``reproduce`` runs a notebook: long loops inside it (the table's rows,
#: :func:`ctlib.evaluate.run_rows`) then draw their progress bar on the terminal as well.
TERMINAL_PROGRESS_ENV = "CTLIB_TERMINAL_PROGRESS"


class _terminal_progress:
    """Context manager: ``CTLIB_TERMINAL_PROGRESS=1`` for the kernels started inside it (they inherit
    the environment, and their ``sys.__stderr__`` is this terminal)."""

    def __enter__(self) -> None:
        import os

        self._old = os.environ.get(TERMINAL_PROGRESS_ENV)
        os.environ[TERMINAL_PROGRESS_ENV] = "1"

    def __exit__(self, *exc: object) -> None:
        import os

        if self._old is None:
            os.environ.pop(TERMINAL_PROGRESS_ENV, None)
        else:
            os.environ[TERMINAL_PROGRESS_ENV] = self._old


def run_notebooks(
    notebooks: list[Path], out_dir: Path, profile: str, progress: bool = True
) -> list[tuple[Path, float]]:
    """Execute each notebook with papermill (kernel ``python3``, working directory = its folder),
    passing ``profile`` (and ``results_dir`` = ``out_dir``) to the notebooks that declare them.
    Returns (executed notebook, seconds) pairs; raises on the first failing notebook, and
    :class:`NotebooksInterrupted` on Ctrl-C (the running notebook marked partial: :func:`mark_interrupted`).
    Progress: a bar over the notebooks, papermill's bar over each notebook's cells, and inside a long
    cell the table's rows (:data:`TERMINAL_PROGRESS_ENV`)."""
    import papermill as pm
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    bar = tqdm(notebooks, desc=f"reproduce [{profile}]", unit="notebook", disable=not progress)
    for nb in bar:
        bar.set_postfix_str(nb.name)
        declared = pm.inspect_notebook(str(nb))
        # recompute: the main job really recomputes (notebook 06 otherwise reads the results of record)
        params = {"profile": profile, "results_dir": str(out_dir.resolve()), "recompute": True}
        params = {k: v for k, v in params.items() if k in declared}
        target = out_dir / nb.name
        start = time.perf_counter()
        try:
            with _terminal_progress():
                pm.execute_notebook(
                    str(nb), str(target), parameters=params, kernel_name="python3", cwd=str(nb.parent),
                    progress_bar=progress, extra_arguments=KERNEL_ARGUMENTS,
                )
        except KeyboardInterrupt:
            bar.close()
            raise NotebooksInterrupted(done, mark_interrupted(target) if target.exists() else None) from None
        done.append((target, time.perf_counter() - start))
    return done


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .files import check_output_dir

    profile = check_profile(args.profile)
    notebooks = find_notebooks(Path(args.notebooks), args.only)
    out_dir = check_output_dir(fresh_output_dir(Path(args.out) if args.out else Path("results") / profile))
    print(f"profile {profile}: {PROFILES[profile]}")
    print(f"running {len(notebooks)} notebooks into {out_dir}/")
    start = time.perf_counter()
    try:
        done = run_notebooks(notebooks, out_dir, profile, progress=not args.no_progress)
    except NotebooksInterrupted as stop:
        for path, seconds in stop.done:
            print(f"  {path}  ({seconds:.1f} s, complete)")
        where = f"; the notebook that was running is marked partial: {stop.partial}" if stop.partial else ""
        print(f"interrupted (Ctrl-C): partial output is in {out_dir}/{where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # papermill's PapermillExecutionError names the cell and the error
        if type(err).__name__ != "PapermillExecutionError":
            raise
        print(f"error: a notebook failed; its partial output is in {out_dir}/\n{err}", file=sys.stderr)
        return EXIT_FAILED
    for path, seconds in done:
        print(f"  {path}  ({seconds:.1f} s)")
    from .table import print_table_from

    if (out_dir / "table.md").exists() or any(out_dir.glob("*/table.md")):
        print_table_from(out_dir)
    print(f"done in {time.perf_counter() - start:.1f} s; executed notebooks are in {out_dir}/")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train import RunFolderError, TrainingDataError, TrainingDiverged, TrainingInterrupted, run_training

    try:
        summary = run_training(
            args.profile, args.mode, args.out, init=args.init, official_unet=args.official_unet,
            official_vq=args.official_vq, data_dir=args.data, device=args.device, resume=args.resume,
            overwrite=args.overwrite, progress=not args.no_progress, seed=args.seed, iterations=args.iterations,
            batch_size=args.batch_size, micro_batch=args.micro_batch, lr=args.lr, degradation=args.degradation,
            crop_size=args.crop_size, warmup=args.warmup, ema_decay=args.ema_decay, val_every=args.val_every,
            ckpt_every=args.ckpt_every, grad_clip=args.grad_clip, kappa=args.kappa,
            lr_decay=args.lr_decay, min_scale=args.min_scale, schedule=args.schedule,
        )
    except TrainingInterrupted as err:
        print(f"interrupted: {err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (TrainingDataError, TrainingDiverged) as err:  # bad data files (all listed) or a diverged run
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except RunFolderError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if "model" in summary:
        print(f"trained {summary['steps']} steps in {summary['seconds']:.1f} s, last loss {summary['last_loss']:.4g}")
        print(f"model: {summary['model']}   log: {Path(summary['out_dir']) / 'log.csv'}")
    return 0


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------
def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``evaluate`` to the CLI's subparsers (``python -m ctlib evaluate --help``)."""
    from .data.evalsets import MIN_HR_SIDE, SCALE
    from .evaluate import ROW_SOLVERS

    p = subparsers.add_parser(
        "evaluate",
        help="one solver row (and the x0_hat / bicubic references) on a folder of HR images -> JSON",
        description="Evaluate one solver on every image of a folder (LR by MATLAB bicubic x1/4; sides cropped "
                    "to a multiple of 4; images under 16 px rejected) and write per-image and mean PSNR-Y, "
                    "SSIM-Y, PSNR-RGB, HaarPSI, LPIPS (or 'unavailable' with the file it needs) and the "
                    "report's piq metrics as JSON. Exit status: 0 all rows scored, 1 the solver row failed "
                    "(its reason is printed; the JSON is written), 2 a usage or environment error found before "
                    "any image is read (bad argument, --out existing without --overwrite or not writable, "
                    "checkpoint or device missing), 130 interrupted (nothing written).",
    )
    p.add_argument("--hr", required=True, help="folder of HR images")
    p.add_argument("--checkpoint", required=True, help="kit checkpoint (or official UNet weights with --autoencoder)")
    p.add_argument("--autoencoder", help="autoencoder_vq_f4.pth for latent (official) models")
    p.add_argument("--solver", default="euler", help=f"one of {', '.join(s for s in ROW_SOLVERS if s != 'bicubic')}")
    p.add_argument("--rho", type=float, default=1.0, help="time-grid rho (default 1)")
    p.add_argument("--nfe", type=int, default=15, help="network evaluations (resshift: T)")
    p.add_argument("--out", required=True, help="output JSON file (never replaced without --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of every image's x_T (default 0); same seed, thread count, device and torch build: "
                        "same numbers (README, 'What is reproducible')")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--limit", type=int, help="only the first N images (N >= 1)")
    p.add_argument("--crop", type=int, help=f"centre-crop every image to at most CROP x CROP (a multiple of {SCALE}, "
                                            f">= {MIN_HR_SIDE})")
    p.add_argument("--lpips-net", default="alex", choices=("alex", "vgg", "none"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)
    return p


def _row_json(r: Any) -> dict[str, Any]:
    """A row with its per-image values, for the evaluate command's JSON."""
    from .evaluate import METRIC_KEYS
    from .files import json_value
    from .table import row_record

    rec = row_record(r)
    rec["per_image"] = [
        {"name": name, **{k: json_value(float(r.per_image[k][i])) for k in METRIC_KEYS if k in r.per_image}}
        for i, name in enumerate(r.names)
    ] if r.ok else []
    return rec


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``python -m ctlib evaluate``: returns 0 on success, 1 when the solver row failed, 2 on bad input
    (every argument, the device and --out are checked before any image is read), 130 on Ctrl-C."""

    from ._checks import check_device, check_int
    from .data.evalsets import check_crop, folder_eval_set
    from .evaluate import HIGHER_IS_BETTER, METRIC_KEYS, METRIC_TITLES, ROW_SOLVERS, RowSpec, evaluate_row
    from .files import check_output_file, repo_path, write_json
    from .nn.checkpoint import model_fingerprint
    from .pipeline import check_sampler, load_model
    from .table import format_table, row_record

    solver = args.solver
    if solver not in ROW_SOLVERS or solver == "bicubic":
        print(f"error: unknown solver {solver!r}; known: {', '.join(s for s in ROW_SOLVERS if s != 'bicubic')}",
              file=sys.stderr)
        return 2
    try:
        # the cheap checks first: nothing is read or computed before they pass
        if args.limit is not None:
            check_int(args.limit, "--limit", minimum=1)
        if args.crop is not None:
            check_crop(args.crop)
        check_int(args.batch_size, "--batch-size", minimum=1)
        check_int(args.seed, "--seed", minimum=0)
        check_device(args.device, "--device")
        out = check_output_file(args.out, overwrite=args.overwrite)
        from .data.io import IMAGE_EXTENSIONS

        hr_dir = Path(args.hr)
        if out.suffix.lower() in IMAGE_EXTENSIONS and hr_dir.is_dir() and out.resolve().parent == hr_dir.resolve():
            raise ValueError(f"--out {out} would be one of the HR images it reads; choose another name or folder")
        for name, path in (("--checkpoint", args.checkpoint), ("--autoencoder", args.autoencoder)):
            if path is not None and out.resolve() == repo_path(path).resolve():
                raise ValueError(f"--out {out} is the {name} file it reads; choose another name")
        eval_set = folder_eval_set(args.hr, limit=args.limit, crop=args.crop)
        den = load_model(args.checkpoint, autoencoder=args.autoencoder, device=args.device)
        spec = RowSpec(solver, "model", int(args.nfe), float(args.rho), group="table")
        check_sampler(spec.solver, spec.nfe, spec.rho, int(den.schedule.T))
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in eval_set.notes:
        print(f"note: {note}", file=sys.stderr)
    specs = [RowSpec("bicubic", None, 0, group="reference"), RowSpec("x0_hat", "model", 1, group="reference")]
    if spec.key != specs[1].key:
        specs.append(spec)
    lpips_net = None if args.lpips_net == "none" else args.lpips_net
    from tqdm import tqdm

    rows = []
    bar = tqdm(total=sum(max(s.nfe, 1) for s in specs) * len(eval_set), desc="evaluate", unit="img-eval",
               disable=args.no_progress)
    try:
        with bar:
            for s in specs:
                rows.append(evaluate_row(s, None if s.solver == "bicubic" else den, eval_set, seed=args.seed,
                                         batch_size=args.batch_size, lpips_net=lpips_net, device=args.device,
                                         bar=bar))
    except KeyboardInterrupt:
        print(f"interrupted (Ctrl-C) after {len(rows)} of {len(specs)} rows; nothing was written ({out} "
              f"{'is unchanged' if out.exists() else 'was not created'})", file=sys.stderr)
        return 130
    metric_info: dict[str, Any] = {}
    for r in rows:
        for k, info in r.metric_info.items():
            metric_info.setdefault(k, info)
    doc = {
        "hr_dir": str(args.hr),
        "images": eval_set.names,
        "notes": eval_set.notes,
        "lr": "MATLAB bicubic x1/4 of the HR, 8-bit",
        "checkpoint": {"path": str(args.checkpoint), "sha256": model_fingerprint(args.checkpoint)},
        "seed": int(args.seed),
        "metrics": {k: {**metric_info.get(k, {}), "title": METRIC_TITLES[k], "higher_is_better": HIGHER_IS_BETTER[k],
                        "available": not (metric_info.get(k) or {}).get("reason")} for k in METRIC_KEYS},
        "rows": [_row_json(r) for r in rows],
    }
    write_json(out, doc, indent=1)  # atomic: all or nothing, never half a JSON file
    print(format_table([row_record(r) for r in rows]))
    for k, info in doc["metrics"].items():
        if not info["available"] and k != "ms_ssim":
            print(f"{METRIC_TITLES[k]}: {info.get('text') or info.get('reason')}")
    print(f"wrote {out}")
    failed = [r for r in rows if not r.ok]
    for r in failed:
        print(f"error: row {r.spec.title} failed: {r.reason}", file=sys.stderr)
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------
# upscale
# ---------------------------------------------------------------------------------------------
def add_upscale_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``upscale`` to the ``python -m ctlib`` subcommands; its handler is :func:`cmd_upscale`."""
    from .files import REPO_ROOT
    from .samplers import SOLVERS
    from .upscale import (
        DEFAULT_CHECKPOINT,
        DEFAULT_NFE,
        DEFAULT_OVERLAP,
        DEFAULT_RHO,
        DEFAULT_SOLVER,
        DEFAULT_TILE,
        default_sampler_note,
    )

    up = subparsers.add_parser(
        "upscale", help="upscale images x4 (files, folders, globs) into --out as <name>_x4.png",
        description="Upscale images x4 with the shipped model (or a checkpoint, or the official weights). "
                    "Exit status: 0 when every image was written, 1 when some failed (they are listed; the "
                    "others are written), 2 for a usage or environment error (bad setting, unusable --out, "
                    "model or device missing; found before any image is read), 130 when interrupted (the "
                    "images written are complete). Existing files are never replaced without --overwrite, "
                    "an input is never an output, and outputs of an earlier upscale (marked in their PNG "
                    "text) are never taken as inputs.",
    )
    up.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    up.add_argument("--out", required=True, help="output folder (created when the first image is written)")
    up.add_argument("--checkpoint", help=f"kit checkpoint (default {DEFAULT_CHECKPOINT.relative_to(REPO_ROOT)})")
    up.add_argument("--official-unet", help="resshift_realsrx4_s15_v1.pth (with --official-vq)")
    up.add_argument("--official-vq", help="autoencoder_vq_f4.pth (with --official-unet)")
    up.add_argument("--solver", default=DEFAULT_SOLVER, choices=SOLVERS, help=f"sampler ({default_sampler_note()})")
    up.add_argument("--nfe", type=int, default=DEFAULT_NFE, help=f"network evaluations per tile (default {DEFAULT_NFE})")
    up.add_argument("--rho", type=float, default=DEFAULT_RHO,
                    help=f"time-grid exponent (default {DEFAULT_RHO:g}; negative: the report's mirrored grid)")
    up.add_argument("--seed", type=int, default=0,
                    help="seed of all noise (default 0); the same seed, --threads, device and torch build give the "
                         "same bytes (other thread counts can flip a few 8-bit values: README, 'What is reproducible')")
    up.add_argument("--tile", type=int, default=DEFAULT_TILE,
                    help=f"tile side in LR pixels (default {DEFAULT_TILE}; 0: whole image at once)")
    up.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                    help=f"tile overlap in LR pixels (default {DEFAULT_OVERLAP})")
    up.add_argument("--batch", type=int, default=1, help="tiles per network batch (default 1)")
    up.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    up.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice; 1 is much faster on a busy machine)")
    up.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    up.add_argument("--no-progress", action="store_true", help="no progress bars")
    up.set_defaults(func=cmd_upscale)
    return up


def _model_arguments(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(source, autoencoder)`` for :func:`ctlib.pipeline.load_model` from --checkpoint or
    --official-unet + --official-vq (one or the other; the official model needs both files)."""
    if args.official_unet is None and args.official_vq is None:
        return args.checkpoint, None
    if args.checkpoint is not None:
        raise ValueError("give either --checkpoint or --official-unet + --official-vq, not both")
    if args.official_unet is None or args.official_vq is None:
        raise ValueError("the official model needs both --official-unet (resshift_realsrx4_s15_v1.pth) "
                         "and --official-vq (autoencoder_vq_f4.pth)")
    return args.official_unet, args.official_vq


def cmd_upscale(args: argparse.Namespace) -> int:
    """Run ``python -m ctlib upscale``.  Exit status: 0 every image written; 1 some failed (listed; the
    others are written); 2 a usage or environment error found before any image is read (bad setting,
    --out unusable, model or device missing); 130 interrupted (Ctrl-C: the images written so far are
    complete, the rest are listed, no partial file is left)."""
    import torch

    from ._checks import check_device, check_int
    from .files import check_output_dir
    from .pipeline import load_model
    from .samplers import solver_grid
    from .upscale import MIN_SIDE, UpscaleInterrupted, tile_layout, upscale_files

    try:
        out = check_output_dir(args.out)
        if args.tile < 0:
            raise ValueError(f"--tile must be >= 0 (0: no tiling), got {args.tile}")
        check_int(args.batch, "--batch", minimum=1)
        check_int(args.seed, "--seed", minimum=0)
        check_int(args.overlap, "--overlap", minimum=0)
        if args.threads is not None:
            check_int(args.threads, "--threads", minimum=1)
        check_device(args.device, "--device")
        source, autoencoder = _model_arguments(args)
        denoiser = load_model(source, autoencoder=autoencoder, device=args.device)
        # validate the sampling settings once, before any image is read
        solver_grid(args.solver, args.nfe, args.rho, denoiser.schedule.T)
        tile = args.tile or None
        if tile is not None:
            tile_layout(MIN_SIDE, MIN_SIDE, tile, args.overlap)
            if tile % denoiser.lr_multiple:
                raise ValueError(f"--tile must be a multiple of {denoiser.lr_multiple} for this model, got {tile}")
        if args.threads is not None:
            torch.set_num_threads(args.threads)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        report = upscale_files(
            args.inputs, out, denoiser, overwrite=args.overwrite, progress=not args.no_progress,
            solver=args.solver, nfe=args.nfe, rho=args.rho, seed=args.seed, tile=tile, overlap=args.overlap,
            batch=args.batch,
        )
    except UpscaleInterrupted as stop:
        report = stop.report
        print(report.summary())
        if report.failed:
            print(report.failures(), file=sys.stderr)
        print(f"interrupted (Ctrl-C): the {len(report.written)} image(s) above are complete; not done "
              f"({len(report.not_done)}): {', '.join(report.not_done)}; no partial file was left", file=sys.stderr)
        return 130
    print(report.summary())
    if not report.ok:
        print(report.failures(), file=sys.stderr)
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ctlib", description="Continuous-in-time ResShift kit")
    sub = ap.add_subparsers(dest="command", required=True)

    rp = sub.add_parser(
        "reproduce", help="run the notebooks headless (papermill) into results/<profile>/",
        description="Run the kit's notebooks headless, in order, into a new folder (never over an old run). "
                    "Exit status: 0 all ran, 1 a notebook failed (its partial output is in the folder), 2 a usage or "
                    "environment error (unknown profile, no notebooks, output folder not writable), 130 interrupted "
                    "(the running notebook is renamed NN_name.INTERRUPTED.ipynb and marked partial).",
    )
    rp.add_argument("--profile", default=DEFAULT_PROFILE, help=f"one of {', '.join(PROFILES)} (default {DEFAULT_PROFILE})")
    rp.add_argument("--out", default=None, help="output folder (default results/<profile>; a used folder gets a _2, _3 ... suffix)")
    rp.add_argument("--notebooks", default=str(Path(__file__).resolve().parent.parent / "notebooks"), help="folder holding NN_*.ipynb")
    rp.add_argument("--only", nargs="+", metavar="NN", help="run only these notebook numbers, e.g. --only 01 03")
    rp.add_argument("--no-progress", action="store_true", help="no progress bar")
    rp.set_defaults(func=cmd_reproduce)

    tp = sub.add_parser(
        "train", help="discrete pretraining or continuous fine-tuning (torchrun for DDP)",
        description="Train into a run folder. Settings, device, run folder and every data file are checked before "
                    "the first step. Exit status: 0 finished (model.pt written), 1 unusable data files (all listed; "
                    "nothing trained) or a diverged loss (the last good last.pt kept), 2 a usage or environment error "
                    "(bad setting, device missing, run folder refused or not writable), 130 interrupted (last.pt "
                    "kept: --resume continues).",
    )
    tp.add_argument("--profile", default=DEFAULT_PROFILE, help=f"one of {', '.join(PROFILES)}")
    tp.add_argument("--mode", choices=("discrete", "continuous"), default="continuous",
                    help="discrete: t = k/T (ResShift pretraining); continuous: t ~ U(1/T, 1) (the report)")
    tp.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, model.pt)")
    tp.add_argument("--init", help="start from this kit checkpoint (e.g. the shipped baseline)")
    tp.add_argument("--official-unet", help="resshift_realsrx4_s15_v1.pth (paper profile)")
    tp.add_argument("--official-vq", help="autoencoder_vq_f4.pth (paper profile)")
    tp.add_argument("--data", help="folder of HR images (recursive; default: the bundled photos)")
    tp.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    tp.add_argument("--resume", action="store_true", help="continue the run in --out")
    tp.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    tp.add_argument("--seed", type=int)
    tp.add_argument("--iterations", type=int)
    tp.add_argument("--batch-size", type=int)
    tp.add_argument("--micro-batch", type=int)
    tp.add_argument("--lr", type=float)
    tp.add_argument("--crop-size", type=int)
    tp.add_argument("--warmup", type=int)
    tp.add_argument("--lr-decay", choices=("constant", "cosine"),
                    help="after the warm-up: constant (official) or cosine to 0 at the last iteration")
    tp.add_argument("--min-scale", type=float,
                    help="scale augmentation: crops cut from regions up to crop/min_scale wide and shrunk to the "
                         "crop size (MATLAB bicubic); 1 = none (default: the profile's)")
    tp.add_argument("--ema-decay", type=float)
    tp.add_argument("--val-every", type=int)
    tp.add_argument("--ckpt-every", type=int)
    tp.add_argument("--grad-clip", type=float, help="clip the gradient norm to this value")
    tp.add_argument("--degradation", choices=("bicubic", "realesrgan", "mix"))
    tp.add_argument("--kappa", type=float,
                    help="noise scale of the ResShift schedule (bundled profiles; default: the profile's, or the "
                         "--init checkpoint's)")
    tp.add_argument("--schedule", choices=("resshift", "fit", "report"),  # ctlib.train.SCHEDULES (kept light: no torch)
                    help="eta(t) of the model: resshift (the official schedule, exact continuous extension), fit "
                         "(the scipy least-squares fit of eta(t) = a ((e^{lam t} - 1)/lam - t) to it, notebook 03) or "
                         "report (the report code's a = 1.1113, lam = 1.1268); default: the profile's")
    tp.add_argument("--no-progress", action="store_true")
    tp.set_defaults(func=cmd_train)

    add_evaluate_parser(sub)
    add_upscale_parser(sub)
    from .assignments.cli import register as add_assignments_parser

    add_assignments_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (:data:`EXIT_OK`, :data:`EXIT_FAILED`, :data:`EXIT_USAGE`,
    :data:`EXIT_INTERRUPTED`).  argparse itself exits with 2 on a malformed command line."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C) before any output was written", file=sys.stderr)
        return EXIT_INTERRUPTED
