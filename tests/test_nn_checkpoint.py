"""Loading official-style weight files and the kit's own checkpoint format."""

from __future__ import annotations

import json
import os

import pytest
import torch

from ctlib.nn import checkpoint as ckpt_mod
from ctlib.nn.checkpoint import (
    CheckpointMismatchError,
    extract_state_dict,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from ctlib.nn.configs import V1_UNET, build_unet
from ctlib.nn.unet import UNetModelSwin
from ctlib.nn.vq import VQModel
from ctlib.schedule import ExpAlphaSchedule, ResShiftSchedule

from .conftest import FIXTURES

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def _unet_fixture() -> dict:
    return torch.load(FIXTURES / "unet_small.pt", weights_only=True)


def _small_unet() -> UNetModelSwin:
    return UNetModelSwin(**{k: v for k, v in _unet_fixture()["config"].items() if k != "forward_call"})


def _random_state_dict_from_listing(listing: list, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A state dict with the listed keys and shapes; float entries random, integer entries random too."""
    out = {}
    for key, shape, dtype, _kind in listing:
        if dtype == "int64":
            out[key] = torch.randint(0, 100, shape, generator=generator)
        else:
            out[key] = torch.randn(shape, generator=generator)
    return out


@pytest.mark.parametrize("prefix", ["", "module."])
def test_v1_listing_loads_strictly_with_and_without_prefixes(prefix):
    listing = json.loads((FIXTURES / "unet_v1_keys.json").read_text())["state_dict"]
    model = build_unet(V1_UNET, device="meta").to_empty(device="cpu")  # no init: fast
    gen = torch.Generator().manual_seed(0)
    state = _random_state_dict_from_listing(listing, gen)
    load_weights(model, {prefix + k: v for k, v in state.items()})
    own = model.state_dict()
    for key in ("time_embed.0.weight", "input_blocks.1.1.blocks.1.attn.relative_position_bias_table", "out.2.bias"):
        assert torch.equal(own[key], state[key])
    # torch's own strict loading accepts the same dict (keys, shapes and order are the official ones)
    model.load_state_dict(state, strict=True)


def test_small_unet_file_with_wrappers_and_prefixes(tmp_path):
    d = _unet_fixture()
    model_ref = _small_unet()
    model_ref.load_state_dict(d["state_dict"])
    prefixed = {"module." + k: v for k, v in d["state_dict"].items()}
    variants = {
        "plain.pth": d["state_dict"],
        "wrapped.pth": {"state_dict": prefixed, "iters_start": 3},
        "model.pth": {"model": {"_orig_mod." + k: v for k, v in d["state_dict"].items()}},
        "ema.pth": {"ema": prefixed, "state_dict": {k: torch.zeros_like(v) for k, v in d["state_dict"].items()}},
        "averaged.pth": {"n_averaged": torch.tensor(5), **prefixed},
    }
    for name, obj in variants.items():
        torch.save(obj, tmp_path / name)
        model = _small_unet()
        load_weights(model, tmp_path / name, prefer_ema=True)
        for key, value in model_ref.state_dict().items():
            assert torch.equal(model.state_dict()[key], value), (name, key)
    # without prefer_ema the plain state_dict wins
    model = _small_unet()
    load_weights(model, tmp_path / "ema.pth")
    assert float(model.state_dict()["out.2.weight"].abs().max()) == 0.0


def test_attn_mask_buffers_optional_and_ignored():
    d = _unet_fixture()
    model = _small_unet()
    without = {k: v for k, v in d["state_dict"].items() if not k.endswith("attn_mask")}
    load_weights(model, without)
    corrupt = {k: (torch.full_like(v, 7.0) if k.endswith("attn_mask") else v) for k, v in d["state_dict"].items()}
    load_weights(model, corrupt)
    for key, value in model.state_dict().items():
        if key.endswith("attn_mask"):
            assert torch.equal(value, d["state_dict"][key])  # the model keeps its own (official) values


def test_mismatch_error_names_file_and_keys(tmp_path):
    vq_state = torch.load(FIXTURES / "vqgan_small.pt", weights_only=True)["state_dict"]
    path = tmp_path / "autoencoder_by_mistake.pth"
    torch.save(vq_state, path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(_small_unet(), path)
    msg = str(info.value)
    assert str(path) in msg
    assert "missing keys: time_embed.0.weight" in msg
    assert "unexpected keys: encoder.conv_in.weight" in msg

    d = _unet_fixture()
    wide = UNetModelSwin(**{**{k: v for k, v in d["config"].items() if k != "forward_call"}, "model_channels": 64})
    torch.save(d["state_dict"], path)
    with pytest.raises(CheckpointMismatchError, match=r"wrongly shaped keys: time_embed\.0\.weight \(file \(128, 32\)"):
        load_weights(wide, path)

    torch.save({"optimizer": {"lr": 1.0}}, path)
    with pytest.raises(CheckpointMismatchError, match="no state dict found"):
        load_weights(_small_unet(), path)
    with pytest.raises(FileNotFoundError):
        load_weights(_small_unet(), tmp_path / "missing.pth")


def test_save_and_load_roundtrip(tmp_path):
    d = _unet_fixture()
    model = _small_unet()
    model.load_state_dict(d["state_dict"])
    schedule = ExpAlphaSchedule.report()
    meta = {"iterations": 123, "seed": 7, "loss_history": [0.5, 0.25], "note": "test"}
    settings = {"lq": "upsampled", "clamp_x0": True}
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, schedule=schedule, meta=meta, denoiser=settings)
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left

    raw = torch.load(path, weights_only=True)  # plain data only
    assert raw["model_class"] == "UNetModelSwin" and raw["meta"] == meta

    loaded = load_checkpoint(path)
    assert isinstance(loaded.model, UNetModelSwin) and not loaded.model.training
    assert loaded.meta == meta and loaded.denoiser == settings
    assert loaded.schedule.to_dict() == schedule.to_dict()
    inputs = d["inputs"]
    with torch.no_grad():
        out = loaded.model(inputs["x"], inputs["timesteps"], lq=inputs["lq"])
    torch.testing.assert_close(out, d["output"], rtol=0, atol=1e-5)

    vq = torch.load(FIXTURES / "vqgan_small.pt", weights_only=True)
    vq_model = VQModel(**{k: v for k, v in vq["config"].items() if k != "calls"})
    vq_model.load_state_dict(vq["state_dict"])
    loaded_vq = load_checkpoint(save_checkpoint(tmp_path / "vq.pt", vq_model, schedule=ResShiftSchedule()))
    with torch.no_grad():
        torch.testing.assert_close(loaded_vq.model.encode(vq["inputs"]["x"]), vq["outputs_float32"]["h"], rtol=0, atol=1e-5)


def test_save_is_atomic(tmp_path, monkeypatch):
    model = _small_unet()
    path = save_checkpoint(tmp_path / "model.pt", model, meta={"version": 1})

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, model, meta={"version": 2})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.pt"]
    assert load_checkpoint(path).meta == {"version": 1}  # the old file is intact


def test_save_and_load_reject_bad_arguments(tmp_path):
    model = _small_unet()
    with pytest.raises(TypeError, match="meta"):
        save_checkpoint(tmp_path / "m.pt", model, meta={"when": object()})
    with pytest.raises(TypeError, match="model must be"):
        save_checkpoint(tmp_path / "m.pt", torch.nn.Linear(2, 2))
    torch.save({"a": torch.zeros(1)}, tmp_path / "official.pth")
    with pytest.raises(ValueError, match="not a ctlib checkpoint"):
        load_checkpoint(tmp_path / "official.pth")


def test_unreadable_files_get_a_clear_message(tmp_path):
    """A text file, a truncated checkpoint, a 4-byte file and pickled code: one ValueError naming the file, from
    both loaders (kit checkpoints and official weight files)."""
    model = _small_unet()
    good = save_checkpoint(tmp_path / "good.pt", model)
    (tmp_path / "notes.pt").write_text("not a checkpoint\n")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    torch.save({"f": os.getcwd}, tmp_path / "code.pt")  # a function: refused by weights_only
    (tmp_path / "tiny.pt").write_bytes(b"junk")  # too short for the pickle header: struct.error
    for name in ("notes.pt", "cut.pt", "code.pt", "tiny.pt"):
        with pytest.raises(ValueError, match=f"{name} could not be read as a PyTorch checkpoint"):
            load_checkpoint(tmp_path / name)
        with pytest.raises(ValueError, match=f"{name} could not be read as a PyTorch checkpoint"):
            load_weights(_small_unet(), tmp_path / name)
    assert load_checkpoint(good).model is not None  # the good file is still read


def test_extract_state_dict_errors():
    with pytest.raises(ValueError, match="no state dict"):
        extract_state_dict([1, 2, 3])
    with pytest.raises(ValueError, match="top-level keys"):
        extract_state_dict({"epoch": 3})


def test_checkpoint_without_its_config_is_a_clear_error(tmp_path):
    """Issue 18 item 15: a kit checkpoint whose 'config' key is missing gave KeyError: 'config'."""
    path = save_checkpoint(tmp_path / "m.pt", _small_unet())
    raw = torch.load(path, weights_only=True)
    del raw["config"]
    torch.save(raw, tmp_path / "noconfig.pt")
    with pytest.raises(ValueError, match="noconfig.pt: this ctlib checkpoint has no 'config' entry"):
        load_checkpoint(tmp_path / "noconfig.pt")
    raw = torch.load(path, weights_only=True)
    raw["config"] = {"no_such_argument": 1}
    torch.save(raw, tmp_path / "badconfig.pt")
    with pytest.raises(ValueError, match="badconfig.pt: its 'config' does not build a UNetModelSwin"):
        load_checkpoint(tmp_path / "badconfig.pt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_device_is_not_reported_as_a_corrupt_file(tmp_path):
    """Issue 18 item 16: map_location='cuda' without CUDA (or a nonsense device) called a valid file
    'truncated, corrupt, not a torch.save file'."""
    path = save_checkpoint(tmp_path / "good.pt", _small_unet())
    for device, message in (("cuda", "no usable CUDA GPU"), ("nonsense", "must be 'cpu', 'cuda' or 'cuda:N'")):
        with pytest.raises(ValueError, match=message) as info:
            load_checkpoint(path, map_location=device)
        assert "could not be read" not in str(info.value)
    assert load_checkpoint(path, map_location="cpu").model is not None


def test_saved_checkpoints_get_a_plain_files_permissions(tmp_path):
    """Issue 18 item 17: model.pt was written 0600 (mkstemp's mode) while the other files were 0644."""
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "model.pt", _small_unet())
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct((tmp_path / "plain.txt").stat().st_mode & 0o777) == "0o644"
