r"""Loading official weights and saving / loading the kit's own checkpoints.

Official files (``resshift_realsrx4_s15_v1.pth``, ``autoencoder_vq_f4.pth``) are plain state dicts,
possibly wrapped (``{'state_dict': ...}``) and possibly with ``module.`` (DataParallel / DDP) or
``_orig_mod.`` (``torch.compile``) key prefixes.  :func:`extract_state_dict` unwraps all of these,
including EMA containers (``'ema'``, ``'ema_state_dict'``, ``'model_ema'``; ``prefer_ema=True`` picks
them first) and ``torch.optim.swa_utils.AveragedModel`` state dicts.  :func:`load_weights` loads
strictly and, on a mismatch, raises :class:`CheckpointMismatchError` naming the file and listing the
first missing, unexpected and wrongly shaped keys.  The Swin buffers ``attn_mask`` (never used,
quirk Q2) and ``relative_position_index`` (a constant of the window size) are accepted whether or
not the file has them, and the model keeps its own values.

The kit's checkpoint format (one ``torch.save`` file, loadable with ``weights_only=True``)::

    {"format": "ctlib-checkpoint", "version": 1,
     "model_class": "UNetModelSwin" | "VQModel",
     "config": {...constructor arguments...},
     "state_dict": {...},
     "schedule": schedule.to_dict() or None,
     "denoiser": wrapper settings (see ctlib.nn.denoiser) or None,
     "meta": {...training metadata: iterations, seed, losses, versions...}}

so that the file alone rebuilds the model (:func:`load_checkpoint`).  Files are written to a
temporary file in the same folder and renamed, so a crash never leaves a half-written checkpoint
(:func:`atomic_torch_save`); a file is always read on the CPU and then moved, so a device this
machine lacks is reported as such, never as a corrupt file.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._checks import check_device
from ..files import atomic_write, file_sha256, repo_path
from ..schedule import Schedule, schedule_from_dict
from .unet import UNetModelSwin
from .vq import VQModel

__all__ = [
    "CheckpointMismatchError",
    "model_fingerprint",
    "DERIVED_BUFFERS",
    "extract_state_dict",
    "strip_prefixes",
    "load_weights",
    "save_checkpoint",
    "load_checkpoint",
    "LoadedCheckpoint",
    "MODEL_CLASSES",
    "atomic_torch_save",
]

FORMAT = "ctlib-checkpoint"
VERSION = 1
PREFIXES = ("module.", "_orig_mod.")
# Buffers that are constants of the architecture: accepted if present, never required.
DERIVED_BUFFERS = ("attn_mask", "relative_position_index")
MODEL_CLASSES: dict[str, type[nn.Module]] = {"UNetModelSwin": UNetModelSwin, "VQModel": VQModel}
_IGNORED_KEYS = ("n_averaged",)  # AveragedModel's counter
_EMA_KEYS = ("ema", "ema_state_dict", "model_ema", "ema_model", "state_dict_ema")
_PLAIN_KEYS = ("state_dict", "model", "model_state_dict", "net", "params", "module")


class CheckpointMismatchError(ValueError):
    """The weights in a file do not fit the model; the message lists the offending keys."""


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def extract_state_dict(obj: Any, *, prefer_ema: bool = False) -> dict[str, torch.Tensor]:
    """Find the state dict inside a loaded checkpoint object and strip wrapper prefixes.

    Accepts a bare state dict, or a dict holding one under ``state_dict`` / ``model`` / ``ema`` /
    ... (searched recursively, EMA keys first when ``prefer_ema``).  Raises ValueError when no
    state dict is found.
    """
    if _is_state_dict(obj):
        return strip_prefixes(obj)
    if isinstance(obj, Mapping):
        order = _EMA_KEYS + _PLAIN_KEYS if prefer_ema else _PLAIN_KEYS + _EMA_KEYS
        for key in order:
            if key in obj:
                try:
                    return extract_state_dict(obj[key], prefer_ema=prefer_ema)
                except ValueError:
                    continue
        keys = [k for k in obj if isinstance(k, str)][:10]
        raise ValueError(f"no state dict found in the checkpoint; its top-level keys are {keys}")
    raise ValueError(f"no state dict found in the checkpoint (got an object of type {type(obj).__name__})")


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove leading ``module.`` / ``_orig_mod.`` (in any combination) from every key and drop
    ``AveragedModel``'s ``n_averaged`` counter."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix):], True
        if key in _IGNORED_KEYS:
            continue
        out[key] = value
    return out


def _is_derived(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in DERIVED_BUFFERS


def _listing(title: str, items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit]) + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
    return f"  {len(items)} {title}: {shown}"


def load_weights(
    model: nn.Module,
    source: str | os.PathLike | Mapping[str, Any],
    *,
    prefer_ema: bool = False,
    map_location: str | torch.device = "cpu",
) -> nn.Module:
    """Load weights (a file path, a loaded checkpoint object or a state dict) into ``model`` strictly.

    Prefixes and wrappers are handled by :func:`extract_state_dict`; Swin ``attn_mask`` /
    ``relative_position_index`` buffers may be present or absent.  Any other missing or unexpected
    key, or a wrongly shaped tensor, raises :class:`CheckpointMismatchError`.  Returns ``model``.
    """
    name = "<state dict>"
    obj: Any = source
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        obj = _read_file(source, map_location)
    try:
        state = extract_state_dict(obj, prefer_ema=prefer_ema)
    except ValueError as err:
        raise CheckpointMismatchError(f"{name}: {err}") from None

    own = model.state_dict()
    missing = [k for k in own if k not in state and not _is_derived(k)]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} (file {tuple(state[k].shape)} vs model {tuple(own[k].shape)})"
        for k in own
        if k in state and not _is_derived(k) and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        lines = [f"checkpoint {name} does not match {type(model).__name__}:"]
        if missing:
            lines.append(_listing("missing keys", missing))
        if unexpected:
            lines.append(_listing("unexpected keys", unexpected))
        if wrong:
            lines.append(_listing("wrongly shaped keys", wrong))
        raise CheckpointMismatchError("\n".join(lines))
    kept = {k: v for k, v in state.items() if not _is_derived(k)}
    result = model.load_state_dict(kept, strict=False)
    leftover = [k for k in result.missing_keys if not _is_derived(k)]
    if leftover or result.unexpected_keys:  # pragma: no cover - guarded by the checks above
        raise CheckpointMismatchError(f"checkpoint {name}: could not load {leftover + result.unexpected_keys}")
    return model


# ---------------------------------------------------------------------------------------------
# the kit's own format
# ---------------------------------------------------------------------------------------------
@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` returns: the rebuilt model and everything stored with it."""

    model: nn.Module
    config: dict[str, Any]
    schedule: Schedule | None = None
    denoiser: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    path: str = ""


def _plain(value: Any, where: str) -> Any:
    """Check that ``value`` is made of types ``torch.load(weights_only=True)`` accepts."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{where} holds a {type(value).__name__}; checkpoints only store None, bool, int, float, str, "
        "tensors, lists and dicts"
    )


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    schedule: Schedule | None = None,
    meta: Mapping[str, Any] | None = None,
    denoiser: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` (a :class:`UNetModelSwin` or :class:`VQModel`) with its config, the schedule's
    ``to_dict()``, optional denoiser-wrapper settings and ``meta`` to ``path`` atomically.

    Tensors are saved on the CPU.  Returns the path.
    """
    cls = type(model).__name__
    if cls not in MODEL_CLASSES or not hasattr(model, "config"):
        raise TypeError(f"model must be one of {sorted(MODEL_CLASSES)} (with a .config), got {cls}")
    if schedule is not None and not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a ctlib Schedule, got {type(schedule).__name__}")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_class": cls,
        "config": _plain(model.config, "config"),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "schedule": None if schedule is None else _plain(schedule.to_dict(), "schedule"),
        "denoiser": None if denoiser is None else _plain(dict(denoiser), "denoiser"),
        "meta": _plain(dict(meta or {}), "meta"),
    }
    return atomic_torch_save(payload, path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (a hidden temporary file in the same folder, synced,
    then renamed; removed on any error or interruption), with a plain file's permissions."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def _read_file(path: str | os.PathLike, map_location: str | torch.device) -> Any:
    """``torch.load(path, weights_only=True)``, with a clear error for a missing file or one that is
    not a (complete, safe-to-load) PyTorch file: truncated, another format, or pickled code."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    device = check_device(map_location, "map_location")  # a bad device is not a bad file
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, struct.error) as err:
        raise ValueError(f"{path} could not be read as a PyTorch checkpoint: it is truncated, corrupt, not a "
                         f"torch.save file, or holds objects other than tensors and plain containers "
                         f"(torch.load with weights_only=True: {_error_name(err)})") from None
    return obj if device.type == "cpu" else _to_device(obj, device)


def _error_name(err: BaseException) -> str:
    """``RuntimeError``, ``_pickle.UnpicklingError``, ``struct.error``: a name that says where it came from."""
    kind = type(err)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"


def _to_device(obj: Any, device: torch.device) -> Any:
    """The tensors of a loaded checkpoint object moved to ``device`` (containers rebuilt)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model saved by :func:`save_checkpoint` (``torch.load(weights_only=True)``).

    The model is returned in eval mode on ``map_location``.
    """
    path = Path(path)
    device = check_device(map_location, "map_location")
    obj = _read_file(path, "cpu")
    if not isinstance(obj, Mapping) or obj.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a ctlib checkpoint (no format={FORMAT!r} entry); official weight files are "
            "loaded with load_weights(model, path) or build_official_denoiser(...)"
        )
    if obj.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported ctlib checkpoint version {obj.get('version')!r}")
    cls_name = obj.get("model_class")
    if cls_name not in MODEL_CLASSES:
        raise ValueError(f"{path}: unknown model_class {cls_name!r}; expected one of {sorted(MODEL_CLASSES)}")
    for key in ("config", "state_dict"):
        if not isinstance(obj.get(key), Mapping):
            raise ValueError(f"{path}: this ctlib checkpoint has no {key!r} entry (or not a dict), so the model "
                             "cannot be rebuilt; the file is incomplete or was edited -- save it again with "
                             "save_checkpoint")
    try:
        model = MODEL_CLASSES[cls_name](**obj["config"])
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: its 'config' does not build a {cls_name} ({type(err).__name__}: {err})") from None
    load_weights(model, obj["state_dict"])
    model.eval()
    schedule = schedule_from_dict(obj["schedule"]) if obj.get("schedule") else None
    return LoadedCheckpoint(
        model=model.to(device),
        config=dict(obj["config"]),
        schedule=schedule,
        denoiser=obj.get("denoiser"),
        meta=dict(obj.get("meta") or {}),
        path=str(path),
    )


def model_fingerprint(source: Any) -> str:
    """sha256 of a checkpoint file, or of a denoiser's weights, schedule and wrapper settings."""
    if isinstance(source, (str, Path)):
        return file_sha256(repo_path(source))
    h = hashlib.sha256()
    for k, v in source.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    schedule = getattr(source, "schedule", None)
    if schedule is not None and hasattr(schedule, "to_dict"):
        h.update(json.dumps(schedule.to_dict(), sort_keys=True, default=str).encode())
    if hasattr(source, "settings"):
        h.update(json.dumps(source.settings(), sort_keys=True, default=str).encode())
    return "model:" + h.hexdigest()
