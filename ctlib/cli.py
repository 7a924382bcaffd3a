"""Command line: ``python -m ctlib <command> ...``.

Commands
--------
reproduce   run the kit's notebooks headless with papermill, in order, into ``results/<profile>/``
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from .profiles import DEFAULT_PROFILE, PROFILES, check_profile

REPO_ROOT = Path(__file__).resolve().parent.parent
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


def run_notebooks(
    notebooks: list[Path], out_dir: Path, profile: str, progress: bool = True
) -> list[tuple[Path, float]]:
    """Execute each notebook with papermill (kernel ``python3``, working directory = its folder),
    passing ``profile`` (and ``results_dir`` = ``out_dir``) to the notebooks that declare them.
    Returns (executed notebook, seconds) pairs; raises on the first failing notebook."""
    import papermill as pm
    from tqdm.auto import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    bar = tqdm(notebooks, desc=f"reproduce [{profile}]", unit="notebook", disable=not progress)
    for nb in bar:
        bar.set_postfix_str(nb.name)
        declared = pm.inspect_notebook(str(nb))
        params = {"profile": profile, "results_dir": str(out_dir.resolve())}
        params = {k: v for k, v in params.items() if k in declared}
        target = out_dir / nb.name
        start = time.perf_counter()
        pm.execute_notebook(
            str(nb), str(target), parameters=params, kernel_name="python3", cwd=str(nb.parent),
            progress_bar=False,
        )
        done.append((target, time.perf_counter() - start))
    return done


def cmd_reproduce(args: argparse.Namespace) -> int:
    profile = check_profile(args.profile)
    notebooks = find_notebooks(Path(args.notebooks), args.only)
    out_dir = fresh_output_dir(Path(args.out) if args.out else Path("results") / profile)
    print(f"profile {profile}: {PROFILES[profile]}")
    print(f"running {len(notebooks)} notebooks into {out_dir}/")
    start = time.perf_counter()
    try:
        done = run_notebooks(notebooks, out_dir, profile, progress=not args.no_progress)
    except Exception as err:  # papermill's PapermillExecutionError names the cell and the error
        if type(err).__name__ != "PapermillExecutionError":
            raise
        print(f"error: a notebook failed; its partial output is in {out_dir}/\n{err}", file=sys.stderr)
        return 1
    for path, seconds in done:
        print(f"  {path}  ({seconds:.1f} s)")
    print(f"done in {time.perf_counter() - start:.1f} s; executed notebooks are in {out_dir}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ctlib", description="Continuous-in-time ResShift kit")
    sub = ap.add_subparsers(dest="command", required=True)

    rp = sub.add_parser("reproduce", help="run the notebooks headless (papermill) into results/<profile>/")
    rp.add_argument("--profile", default=DEFAULT_PROFILE, help=f"one of {', '.join(PROFILES)} (default {DEFAULT_PROFILE})")
    rp.add_argument("--out", default=None, help="output folder (default results/<profile>; a used folder gets a _2, _3 ... suffix)")
    rp.add_argument("--notebooks", default=str(REPO_ROOT / "notebooks"), help="folder holding NN_*.ipynb")
    rp.add_argument("--only", nargs="+", metavar="NN", help="run only these notebook numbers, e.g. --only 01 03")
    rp.add_argument("--no-progress", action="store_true", help="no progress bar")
    rp.set_defaults(func=cmd_reproduce)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
