"""Files: the repository's root, paths relative to it, file hashes, JSON numbers (NaN as null), output-location checks that
the commands run before any work, and atomic writes (a reader never sees a half-written file and a
failed write leaves the old file untouched)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["REPO_ROOT", "repo_path", "file_sha256", "json_value", "from_json_value", "write_json", "check_output_dir", "check_output_file", "atomic_write"]

#: The checkout's root folder (where data/, notebooks/ and docs/ are).
REPO_ROOT = Path(__file__).resolve().parent.parent


def repo_path(path: str | os.PathLike) -> Path:
    """``path`` as given when it is absolute or exists from the working directory, else relative to
    :data:`REPO_ROOT` (so ``data/checkpoints/...`` is found from a notebook's folder too)."""
    p = Path(path)
    return p if p.is_absolute() or p.exists() else REPO_ROOT / p


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def json_value(x: Any) -> Any:
    """A float for JSON: NaN -> None (null), infinities -> "inf" / "-inf"; anything else as it is."""
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    return x


def from_json_value(x: Any) -> float:
    """The float of a JSON value written by :func:`json_value` (null or "" -> NaN)."""
    if x is None or x == "":
        return math.nan
    return float(x)  # also "inf" / "-inf"


def _existing_ancestor(path: Path, name: str) -> Path:
    """The nearest existing folder at or above ``path``; ValueError if that is not a folder."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{name} {path} cannot be created: {probe} is an existing file, not a folder")
    return probe


def _check_writable(folder: Path, target: Path, name: str) -> None:
    """Create (and remove) a temporary file in ``folder``: the one honest test that it takes files
    (``os.access`` says yes to root on a read-only filesystem)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ctlib-write-test-", dir=folder)
    except OSError as err:
        raise ValueError(f"{name} {target} is not writable: cannot create files in {folder} "
                         f"({err.strerror or err}); choose another location") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_dir(path: str | os.PathLike, name: str = "--out") -> Path:
    """Check that the folder ``path`` exists and takes files, or can be created (nothing is created).
    Raises ValueError naming the problem: an existing file, a path under a file, a read-only place."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{name} {out} is an existing file, not a folder")
    _check_writable(_existing_ancestor(out, name), out, name)
    return out


def check_output_file(path: str | os.PathLike, name: str = "--out", *, overwrite: bool = False) -> Path:
    """Check that the file ``path`` can be written: not a folder, not existing unless ``overwrite``,
    its folder existing and writable or creatable.  Raises ValueError (nothing is created)."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{name} {out} is a folder; give the path of a file")
    if out.exists() and not overwrite:
        raise ValueError(f"{name} {out} already exists; pass --overwrite to replace it, or choose another name")
    _check_writable(_existing_ancestor(out.parent, name), out, name)
    return out


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None], *, mode: int = 0o666) -> Path:
    """Write a file atomically: ``write(f)`` fills a hidden temporary file in the same folder (created
    if missing), which is flushed, synced and renamed over ``path``; on any error or interruption the
    temporary file is removed and ``path`` is untouched.  The file gets ``mode`` less the umask (the
    permissions of a plain ``open``, not ``mkstemp``'s 0600)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, doc: Any, *, indent: int = 2, sort_keys: bool = False) -> Path:
    """Write ``doc`` as indented JSON with one trailing newline, atomically (:func:`atomic_write`:
    the folder is created, an old file is replaced only by a complete new one)."""
    text = (json.dumps(doc, indent=indent, sort_keys=sort_keys) + "\n").encode("utf-8")
    return atomic_write(path, lambda f: f.write(text))
