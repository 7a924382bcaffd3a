"""LPIPS through the ``lpips`` package (AlexNet by default, VGG as an option), local weights only.

:func:`lpips_distance` scores RGB images with the package's v0.1 learned linear layers;
:func:`lpips_model`, :func:`lpips_available`, :func:`lpips_backbone_location` and
:func:`clear_lpips_cache` expose the model, where its backbone weights are looked for, and the
cache. The torchvision backbone weights are never downloaded: when the file is missing the result
says "unavailable (needs FILE in DIR)" and holds NaNs, never an invented number.

Inputs and backbone weights
---------------------------
Inputs are RGB; the network sees values in [-1, 1]. :func:`lpips_distance` accepts [0, 1]
images (the default, converted explicitly with ``2 x - 1``), [-1, 1] images
(``value_range=(-1, 1)``) or uint8 images. The ``lpips`` package's own linear-layer weights
(v0.1) ship inside the pip package. The backbone (torchvision ImageNet weights) does not; it is
looked for, in this order, at

1. the ``backbone_path`` argument,
2. the environment variable ``CTLIB_LPIPS_BACKBONE_ALEX`` / ``CTLIB_LPIPS_BACKBONE_VGG``,
3. the environment variable ``CTLIB_LPIPS_BACKBONE`` (one path, used for whichever net is asked
   for; a file of the other architecture makes LPIPS unavailable with a message saying so),
4. torchvision's own file in ``torch.hub.get_dir()/checkpoints``
   (``$TORCH_HOME/hub/checkpoints``): ``alexnet-owt-7be5be79.pth`` or ``vgg16-397923af.pth``.

A file may hold a full torchvision state dict or only its ``features.*`` entries. The model is
built once per (net, weights file, device) and cached. Nothing is ever downloaded.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctlib._checks import check_int

from .distortion import MetricResult, _unavailable, _unit_float_pair

__all__ = [
    "lpips_backbone_filename",
    "lpips_backbone_location",
    "lpips_available",
    "lpips_model",
    "lpips_distance",
    "clear_lpips_cache",
]

# --------------------------------------------------------------------------------------------
# Constants (documented in the module docstring)
# --------------------------------------------------------------------------------------------

#: Smallest side for which the LPIPS backbones give a feature map at every tapped layer.
LPIPS_MIN_SIDE: dict[str, int] = {"alex": 31, "vgg": 16}
#: torchvision's file names for the ImageNet weights of the LPIPS backbones.
LPIPS_BACKBONE_FILES: dict[str, str] = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
_TV_ARCH: dict[str, str] = {"alex": "alexnet", "vgg": "vgg16"}


# --------------------------------------------------------------------------------------------
# LPIPS (lpips package), with local backbone weights only
# --------------------------------------------------------------------------------------------


class _WeightsError(Exception):
    """A weights file is missing or unusable; carries the (file, folder) that would fix it."""

    def __init__(self, reason: str, needs: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.needs = tuple(needs)


def _check_net(net: str) -> str:
    if net not in LPIPS_BACKBONE_FILES:
        raise ValueError(f"net must be one of {sorted(LPIPS_BACKBONE_FILES)}, got {net!r}")
    return net


def lpips_backbone_filename(net: str = "alex") -> str:
    """torchvision's file name for the ImageNet weights of the LPIPS backbone ``net``."""
    return LPIPS_BACKBONE_FILES[_check_net(net)]


def _hub_checkpoints_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def lpips_backbone_location(net: str = "alex", backbone_path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Where the backbone weights of ``net`` are looked for, and which rule chose that place.

    Order: ``backbone_path``; ``$CTLIB_LPIPS_BACKBONE_ALEX`` / ``_VGG``; ``$CTLIB_LPIPS_BACKBONE``;
    ``torch.hub.get_dir()/checkpoints/<torchvision file name>``. The file need not exist.
    """
    _check_net(net)
    if backbone_path is not None:
        return Path(backbone_path).expanduser(), "the backbone_path argument"
    for var in (f"CTLIB_LPIPS_BACKBONE_{net.upper()}", "CTLIB_LPIPS_BACKBONE"):
        value = os.environ.get(var, "").strip()
        if value:
            return Path(value).expanduser(), f"${var}"
    return _hub_checkpoints_dir() / LPIPS_BACKBONE_FILES[net], "the torch hub checkpoints folder"


def _find_backbone(net: str, backbone_path: str | os.PathLike | None) -> Path:
    path, source = lpips_backbone_location(net, backbone_path)
    if path.is_file():
        return path
    arch = _TV_ARCH[net]
    if source == "the torch hub checkpoints folder":
        reason = (
            f"LPIPS ({net}) needs torchvision's ImageNet {arch} weights {path.name} in {path.parent} "
            "(torch.hub.get_dir()/checkpoints; TORCH_HOME moves it), or a path to that file in "
            f"$CTLIB_LPIPS_BACKBONE_{net.upper()} or $CTLIB_LPIPS_BACKBONE; it is never downloaded automatically"
        )
    else:
        reason = f"LPIPS ({net}): {source} points to {path}, which is not a file"
    raise _WeightsError(reason, [(path.name, str(path.parent))])


def _load_features_state(path: Path, net: str) -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of a torchvision checkpoint, keys without the prefix."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable file: report, never crash
        raise _WeightsError(f"LPIPS ({net}): cannot read {path}: {exc}") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise _WeightsError(f"LPIPS ({net}): {path} does not hold a state dict")
    features = {}
    for key, value in state.items():
        k = str(key)
        for prefix in ("module.", "_orig_mod."):
            k = k[len(prefix):] if k.startswith(prefix) else k
        if k.startswith("features.") and isinstance(value, torch.Tensor):
            features[k[len("features."):]] = value
    if not features:
        raise _WeightsError(
            f"LPIPS ({net}): {path} holds no 'features.*' tensors (expected torchvision {_TV_ARCH[net]} weights)"
        )
    return features


def _load_backbone_into(model: torch.nn.Module, features: Mapping[str, torch.Tensor], net: str, origin: str) -> None:
    """Copy torchvision ``features.<i>`` tensors into the lpips slices (module ``<i>`` of a slice)."""
    with torch.no_grad():
        for slice_module in model.net.children():
            for index, module in slice_module.named_children():
                for pname, param in module.named_parameters(recurse=False):
                    src = features.get(f"{index}.{pname}")
                    if src is None or tuple(src.shape) != tuple(param.shape):
                        got = "missing" if src is None else f"shape {tuple(src.shape)}"
                        raise _WeightsError(
                            f"LPIPS ({net}): {origin} does not hold torchvision {_TV_ARCH[net]} weights "
                            f"(features.{index}.{pname}: expected shape {tuple(param.shape)}, {got})"
                        )
                    param.copy_(src.to(param.dtype))


def _new_lpips_module(net: str) -> torch.nn.Module:
    """lpips.LPIPS with the package's v0.1 linear layers and a not-yet-loaded backbone."""
    import lpips as lpips_pkg

    # pnet_rand=True builds the torchvision backbone with weights=None (no download); its
    # default init draws from the global RNG, which fork_rng restores afterwards.
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        model = lpips_pkg.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False)
    return model.eval().requires_grad_(False)


def _randomise_backbone(model: torch.nn.Module, seed: int) -> None:
    """He-normal conv weights, zero biases, drawn from ``torch.Generator().manual_seed(seed)``."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.net.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                std = math.sqrt(2.0 / fan_in)
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
                if module.bias is not None:
                    module.bias.zero_()


_LPIPS_CACHE: dict[tuple[str, str, str], torch.nn.Module] = {}


def clear_lpips_cache() -> None:
    """Forget every cached LPIPS model (lpips and piq)."""
    _LPIPS_CACHE.clear()


def _cached(key_net: str, key_source: str, device: torch.device, build: Any) -> torch.nn.Module:
    cpu_key = (key_net, key_source, "cpu")
    if cpu_key not in _LPIPS_CACHE:
        _LPIPS_CACHE[cpu_key] = build()
    key = (key_net, key_source, str(device))
    if key not in _LPIPS_CACHE:
        _LPIPS_CACHE[key] = copy.deepcopy(_LPIPS_CACHE[cpu_key]).to(device)
    return _LPIPS_CACHE[key]


def _resolve_device(device: str | torch.device | None, like: Any) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(like, torch.Tensor):
        return like.device
    return torch.device("cpu")


def lpips_model(
    net: str = "alex",
    *,
    backbone_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    random_backbone_seed: int | None = None,
) -> torch.nn.Module:
    """The cached ``lpips.LPIPS`` model for ``net`` ('alex' or 'vgg'), in eval mode.

    Args:
        net: backbone, ``"alex"`` (default, the SR field's usual choice) or ``"vgg"`` (what the
            official ResShift trainer validates with).
        backbone_path: local torchvision weights file (see the module docstring for the search
            order when None).
        device: where the model lives (default CPU).
        random_backbone_seed: build a backbone with random He-normal weights from this seed
            instead of loading a file. For testing the plumbing only: the values mean nothing.

    Raises:
        RuntimeError: the backbone weights are missing or unusable; the message names the file
            and folder needed. (:func:`lpips_distance` turns this into an unavailable result.)
    """
    try:
        return _lpips_model(net, backbone_path, _resolve_device(device, None), random_backbone_seed)
    except _WeightsError as exc:
        raise RuntimeError(exc.reason) from None


def _lpips_model(
    net: str, backbone_path: Any, device: torch.device, random_backbone_seed: int | None
) -> torch.nn.Module:
    _check_net(net)
    if random_backbone_seed is not None:
        seed = check_int(random_backbone_seed, "random_backbone_seed", minimum=0)

        def build_random() -> torch.nn.Module:
            model = _new_lpips_module(net)
            _randomise_backbone(model, seed)
            return model

        return _cached(f"lpips-{net}", f"random:{seed}", device, build_random)

    path = _find_backbone(net, backbone_path)
    source = str(path.resolve())

    def build() -> torch.nn.Module:
        features = _load_features_state(path, net)
        model = _new_lpips_module(net)
        _load_backbone_into(model, features, net, str(path))
        return model

    return _cached(f"lpips-{net}", source, device, build)


def lpips_available(net: str = "alex", *, backbone_path: str | os.PathLike | None = None) -> tuple[bool, str]:
    """Whether LPIPS with ``net`` can run here, and why not.

    Loads (and caches) the CPU model when the weights file exists, so a file of the wrong
    architecture is reported too. Never downloads anything.

    Returns:
        ``(True, description)`` or ``(False, reason)``; the reason names the file and folder.
    """
    try:
        _lpips_model(net, backbone_path, torch.device("cpu"), None)
    except _WeightsError as exc:
        return False, exc.reason
    path, _ = lpips_backbone_location(net, backbone_path)
    return True, f"LPIPS ({net}) v0.1 with backbone weights {path}"



def lpips_distance(
    sr: np.ndarray | torch.Tensor,
    hr: np.ndarray | torch.Tensor,
    *,
    net: str = "alex",
    value_range: tuple[float, float] = (0.0, 1.0),
    batch_size: int = 16,
    device: str | torch.device | None = None,
    backbone_path: str | os.PathLike | None = None,
    random_backbone_seed: int | None = None,
) -> MetricResult:
    """Per-image LPIPS (``lpips`` package, v0.1, learned linear layers) of RGB images.

    Args:
        sr, hr: RGB images or batches (numpy channels-last or torch channels-first), float in
            ``value_range`` or uint8. They are converted explicitly to [-1, 1] for the network.
        net: ``"alex"`` (default) or ``"vgg"``.
        value_range: ``(0, 1)`` (default) or ``(-1, 1)``; ignored for uint8 input.
        batch_size: images per forward pass.
        device: where to run (default: the device of ``sr`` if it is a tensor, else CPU).
        backbone_path: local torchvision backbone weights (see the module docstring).
        random_backbone_seed: use a random backbone (plumbing tests only; see :func:`lpips_model`).

    Returns:
        A :class:`MetricResult` with values ``(N,)`` (lower is better); when the backbone weights
        are missing it is unavailable, with NaN values and a reason naming the file and folder.
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    x, y = _unit_float_pair(sr, hr, value_range, need_rgb=True, what="LPIPS")
    name = f"LPIPS ({_check_net(net)})"
    n, _, h, w = x.shape
    if min(h, w) < LPIPS_MIN_SIDE[net]:
        return _unavailable(
            name, n, False, f"LPIPS ({net}) needs sides >= {LPIPS_MIN_SIDE[net]} px, got {h}x{w}"
        )
    dev = _resolve_device(device, sr)
    try:
        model = _lpips_model(net, backbone_path, dev, random_backbone_seed)
    except _WeightsError as exc:
        return _unavailable(name, n, False, exc.reason, exc.needs)
    values = _batched(lambda a, b: model(a * 2.0 - 1.0, b * 2.0 - 1.0), x, y, batch_size, dev)
    note = None
    if random_backbone_seed is not None:
        name = f"LPIPS ({net}, random backbone)"
        note = "random backbone weights: checks the plumbing only, the values mean nothing"
    return MetricResult(name=name, values=values, higher_is_better=False, note=note)


def _batched(fn: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            a = x[i : i + batch_size].to(device=device, dtype=torch.float32)
            b = y[i : i + batch_size].to(device=device, dtype=torch.float32)
            out.append(fn(a, b).reshape(-1).to(device="cpu", dtype=torch.float64))
    return torch.cat(out).numpy()
