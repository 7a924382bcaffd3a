"""Command line: ``python -m ctlib <command> ...``.

Commands
--------
reproduce   run the kit's notebooks headless with papermill, in order, into ``results/<profile>/``
train       discrete pretraining or continuous fine-tuning (also under ``torchrun``)
evaluate    one solver row on a folder of HR images -> JSON (:mod:`ctlib.evaluate`)
upscale     x4 super-resolution of your own images, any size (:mod:`ctlib.upscale`)
assignments build the course notebooks (student, instructor, nbgrader) and grade submissions (:mod:`ctlib.assignments`)
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from .profiles import DEFAULT_PROFILE, PROFILES, check_profile

REPO_ROOT = Path(__file__).resolve().parent.parent
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

    from ._checks import atomic_write

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


#: The kernel logs only errors: its "running over TCP without encryption" warning (the kernel and
#: papermill talk over loopback) would otherwise interleave with the progress bars.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
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
    from ._checks import check_output_dir

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
    from .evaluate import print_table_from

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
    rp.add_argument("--notebooks", default=str(REPO_ROOT / "notebooks"), help="folder holding NN_*.ipynb")
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

    from .evaluate import add_evaluate_parser
    from .upscale import add_upscale_parser

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
