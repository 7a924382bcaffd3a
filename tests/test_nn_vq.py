"""The VQ autoencoder port against the official golden outputs (tests/fixtures/resshift_reference)."""

from __future__ import annotations

import functools
import json

import pytest
import torch

from ctlib.nn.configs import V1_VQF4, build_vq, to_plain
from ctlib.nn.vq import VQModel

from .conftest import FIXTURES

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@functools.cache
def _fixture() -> dict:
    return torch.load(FIXTURES / "vqgan_small.pt", weights_only=True)


def _model(dtype: torch.dtype = torch.float32) -> VQModel:
    d = _fixture()
    model = VQModel(**{k: v for k, v in d["config"].items() if k != "calls"})
    model.load_state_dict(d["state_dict"], strict=True)
    return model.to(dtype).eval()


def _outputs(model: VQModel, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    inputs = _fixture()["inputs"]
    x, z_rand = inputs["x"].to(dtype), inputs["z_rand"].to(dtype)
    with torch.no_grad():
        h = model.encode(x)
        z_q, emb_loss, (p, e, indices) = model.quantize(h)
        assert p is None and e is None  # the official (perplexity, min_encodings, indices) triple
        z_rand_q, _, (_, _, z_rand_indices) = model.quantize(z_rand)
        return {
            "h": h,
            "z_q": z_q,
            "emb_loss": emb_loss,
            "indices": indices,
            "dec": model.decode(h),
            "dec_no_quant": model.decode(h, force_not_quantize=True),
            "forward": model(x),
            "z_rand_q": z_rand_q,
            "z_rand_indices": z_rand_indices,
            "dec_rand": model.decode(z_rand),
        }


@pytest.mark.parametrize(
    ("dtype", "key", "atol"), [(torch.float32, "outputs_float32", 1e-5), (torch.float64, "outputs_float64", 1e-10)]
)
def test_matches_official_outputs(dtype, key, atol):
    ref = _fixture()[key]
    ours = _outputs(_model(dtype), dtype)
    assert set(ours) == set(ref)
    for name, value in ours.items():
        if name.endswith("indices"):
            assert value.dtype == torch.int64
            assert torch.equal(value, ref[name]), name  # identical code choices
        else:
            assert value.dtype == dtype, name
            torch.testing.assert_close(value, ref[name].to(dtype), rtol=0, atol=atol, msg=name)


def test_quantize_is_nearest_codebook_vector_by_brute_force():
    model = _model(torch.float64)
    z = _fixture()["inputs"]["z_rand"].double()
    z_q, loss, (_, _, idx) = model.quantize(z)
    codes = model.quantize.embedding.weight
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    brute = torch.cdist(flat, codes).argmin(dim=1)
    assert torch.equal(idx, brute)
    torch.testing.assert_close(z_q.permute(0, 2, 3, 1).reshape(-1, 3), codes[brute], rtol=0, atol=1e-12)
    torch.testing.assert_close(loss, 1.25 * torch.mean((z_q - z) ** 2), rtol=1e-12, atol=0)
    # quantised latents are fixed points of decode's quantisation
    with torch.no_grad():
        torch.testing.assert_close(model.decode(z_q), model.decode(z_q, force_not_quantize=True), rtol=0, atol=1e-12)


def test_decode_code_matches_decode():
    model = _model(torch.float64)
    z = _fixture()["inputs"]["z_rand"].double()
    with torch.no_grad():
        _, _, (_, _, idx) = model.quantize(z)
        torch.testing.assert_close(model.decode_code(idx, (2, 8, 8, 3)), model.decode(z), rtol=0, atol=1e-12)


def test_f4_config_keys_shapes_order_and_parameter_count():
    ref = json.loads((FIXTURES / "vqgan_f4_keys.json").read_text())
    assert to_plain(V1_VQF4) == ref["source"]["constructor_params"]
    model = build_vq(V1_VQF4, device="meta")
    entries = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()]
    assert entries == [e[:3] for e in ref["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == 55_322_782 == ref["num_parameters"]
    assert model.downsample_factor == 4


def test_bad_inputs_raise_clear_errors():
    model = _model()
    with pytest.raises(ValueError, match="3, H, W"):
        model.encode(torch.zeros(1, 4, 32, 32))
    with pytest.raises(ValueError, match="multiples of 4"):
        model.encode(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match="h must have shape"):
        model.decode(torch.zeros(1, 5, 8, 8))
