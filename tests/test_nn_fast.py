"""The inference fast path (ctlib.nn.fast.accelerate) against the plain port and the golden fixtures.

Speed is measured by benchmarks/networks.py, never here: these tests check that the fast path
computes the same function (fixture tolerances: 1e-5 in float32, 1e-9 / 1e-10 in float64), keeps
the weights and state-dict keys, is what the loaders use by default, and stays out of training.
"""

from __future__ import annotations

import copy
import functools
import warnings

import pytest
import torch

from ctlib.nn import fast as fast_mod
from ctlib.nn import winograd
from ctlib.nn.checkpoint import save_checkpoint
from ctlib.nn.configs import V1_UNET, V1_VQF4, build_unet, build_vq
from ctlib.nn.denoiser import ResShiftDenoiser, build_official_denoiser, denoiser_from_checkpoint
from ctlib.nn.fast import accelerate, is_accelerated, plain
from ctlib.nn.swin import BasicLayer
from ctlib.nn.unet import UNetModelSwin, Upsample
from ctlib.nn.vq import VQModel
from ctlib.schedule import ResShiftSchedule

from .conftest import FIXTURES, ROOT

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

ATOL = {torch.float32: 1e-5, torch.float64: 1e-9}  # the UNet fixture tolerances
PIXEL_CHECKPOINT = ROOT / "data" / "checkpoints" / "continuous_finetune.pt"


@functools.cache
def _unet_fixture() -> dict:
    return torch.load(FIXTURES / "unet_small.pt", weights_only=True)


@functools.cache
def _vq_fixture() -> dict:
    return torch.load(FIXTURES / "vqgan_small.pt", weights_only=True)


def _small_unet(dtype: torch.dtype = torch.float32) -> UNetModelSwin:
    d = _unet_fixture()
    model = UNetModelSwin(**{k: v for k, v in d["config"].items() if k != "forward_call"})
    model.load_state_dict(d["state_dict"], strict=True)
    return model.to(dtype).eval()


def _small_vq(dtype: torch.dtype = torch.float32) -> VQModel:
    d = _vq_fixture()
    model = VQModel(**{k: v for k, v in d["config"].items() if k != "calls"})
    model.load_state_dict(d["state_dict"], strict=True)
    return model.to(dtype).eval()


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Fixture-style random weights (activations O(1), no zero-initialised layer)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.copy_(noise / p[0].numel() ** 0.5 if p.ndim > 1 else (1 + 0.1 * noise if name.endswith("weight") else 0.05 * noise))
    return model


def _unet_out(model, x, t, lq):
    with torch.no_grad():
        return model(x, t, lq=lq)


# -- the UNet ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [None, False])
def test_small_unet_fast_matches_fixture_and_plain(dtype, channels_last):
    d = _unet_fixture()
    suffix = "" if dtype == torch.float32 else "_float64"
    model = _small_unet(dtype)
    fast = accelerate(copy.deepcopy(model), channels_last=channels_last)
    for inputs, key in (("inputs", "output"), ("inputs_nonsquare", "output_nonsquare")):
        i = d[inputs]
        args = (i["x"].to(dtype), i["timesteps"], i["lq"].to(dtype))
        out = _unet_out(fast, *args)
        assert out.dtype == dtype
        torch.testing.assert_close(out, d[key + suffix].to(dtype), rtol=0, atol=ATOL[dtype])
        torch.testing.assert_close(out, _unet_out(model, *args), rtol=0, atol=ATOL[dtype])


@functools.cache
def _v1_shaped() -> UNetModelSwin:
    """The v1 architecture (4 levels, 2 ResBlocks, Swin at every level and in the middle, official
    mask, window 8, MLP ratio 4) at a small width."""
    config = {**V1_UNET, "model_channels": 32, "swin_embed_dim": 32, "num_head_channels": 8}
    return _randomize(build_unet(config), seed=5).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_v1_shaped_unet_fast_matches_plain(dtype):
    model = copy.deepcopy(_v1_shaped()).to(dtype)
    fast = accelerate(copy.deepcopy(model))
    gen = torch.Generator().manual_seed(6)
    # batch 2 (per-window masks with B > 1) and a non-square map (masks for a new size)
    x = torch.randn(2, 3, 64, 128, generator=gen, dtype=dtype)
    lq = torch.rand(2, 3, 64, 128, generator=gen, dtype=dtype) * 2 - 1
    t = torch.tensor([0.0, 13.5])
    ref = _unet_out(model, x, t, lq)
    assert ref.abs().max() > 0.1  # random weights: a non-trivial output
    torch.testing.assert_close(_unet_out(fast, x, t, lq), ref, rtol=0, atol=ATOL[dtype])
    torch.testing.assert_close(_unet_out(fast, x[:1], t[:1], lq[:1]), ref[:1], rtol=0, atol=ATOL[dtype])


@pytest.mark.skipif(not PIXEL_CHECKPOINT.is_file(), reason="shipped checkpoint missing")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shipped_pixel_network_fast_matches_plain(dtype):
    from ctlib.nn import load_checkpoint

    model = load_checkpoint(PIXEL_CHECKPOINT).model.to(dtype).eval()
    fast = accelerate(copy.deepcopy(model))
    assert fast.input_blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)  # narrow: channels-last
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 64, 128, generator=gen, dtype=dtype)
    lq = torch.rand(2, 3, 64, 128, generator=gen, dtype=dtype) * 2 - 1
    t = torch.tensor([2.0, 11.25])
    torch.testing.assert_close(_unet_out(fast, x, t, lq), _unet_out(model, x, t, lq), rtol=0, atol=ATOL[dtype])


# -- the VQ-f4 autoencoder ---------------------------------------------------------------------
@pytest.mark.parametrize(("dtype", "key", "atol"),
                         [(torch.float32, "outputs_float32", 1e-5), (torch.float64, "outputs_float64", 1e-10)])
def test_vq_fast_matches_fixture_and_plain(dtype, key, atol):
    d = _vq_fixture()
    ref = d[key]
    model = _small_vq(dtype)
    fast = accelerate(copy.deepcopy(model))
    x, z = d["inputs"]["x"].to(dtype), d["inputs"]["z_rand"].to(dtype)
    with torch.no_grad():
        h = fast.encode(x)
        ours = {"h": h, "dec": fast.decode(h), "dec_no_quant": fast.decode(h, force_not_quantize=True),
                "forward": fast(x), "dec_rand": fast.decode(z)}
        plain_dec = model.decode(z)
        assert torch.equal(fast.quantize(h)[2][2], ref["indices"])  # identical code choices
    for name, value in ours.items():
        torch.testing.assert_close(value, ref[name].to(dtype), rtol=0, atol=atol, msg=name)
    torch.testing.assert_close(ours["dec_rand"], plain_dec, rtol=0, atol=atol)


@functools.cache
def _vq_f4_random() -> VQModel:
    """The official VQ-f4 architecture (128-256-512 channels) with fixture-style random weights."""
    return _randomize(build_vq(V1_VQF4), seed=11).eval()


@pytest.mark.skipif(not winograd._ONEDNN, reason="oneDNN not available")
def test_vq_f4_runs_winograd_on_its_wide_layers_only_and_matches_float64(monkeypatch):
    """By default an autoencoder packs only its Winograd convolutions: the 256- and 512-channel 3x3
    ones (default layout: MIN_RATIO_DEFAULT_LAYOUT) and the two upsamplings; the 128-channel level
    and the 1x1 / strided convolutions run on oneDNN's default kernels, whose rounding the plain port
    shares.  Decoder and encoder stay within the float32 fixture tolerance of float64 and of plain."""
    model = _vq_f4_random()
    fast = accelerate(copy.deepcopy(model))
    seen = []
    for name in ("conv3x3", "upsampled_conv3x3"):
        original = getattr(winograd, name)
        monkeypatch.setattr(winograd, name, functools.partial(
            lambda f, tag, x, *a, **k: seen.append((tag, x.shape[1], a[2], x.shape[2])) or f(x, *a, **k), original, name))
    gen = torch.Generator().manual_seed(12)
    z = torch.randn(1, model.embed_dim, 16, 16, generator=gen)
    image = torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
    with torch.no_grad():
        dec, enc = fast.decode(z), fast.encode(image)
        model64 = copy.deepcopy(model).double()
        dec64, enc64 = model64.decode(z.double()), model64.encode(image.double())
        dec_plain, enc_plain = model.decode(z), model.encode(image)
    assert dec.is_contiguous() and enc.is_contiguous()
    assert dec64.abs().max() > 1 and enc64.abs().max() > 1  # O(1) outputs: the tolerance means something
    for ours, ref64, ref in ((dec, dec64, dec_plain), (enc, enc64, enc_plain)):
        torch.testing.assert_close(ours.double(), ref64, rtol=0, atol=ATOL[torch.float32])
        torch.testing.assert_close(ours, ref, rtol=0, atol=ATOL[torch.float32])
    # never the 128-channel level, nor 256 -> 128 (ratio 85: wide enough only on channels-last)
    assert {c for _, c_in, c_out, _ in seen for c in (c_in, c_out)} == {256, 512}
    assert ("upsampled_conv3x3", 512, 512, 16) in seen and ("upsampled_conv3x3", 256, 256, 32) in seen
    assert sum(tag == "conv3x3" for tag, *_ in seen) >= 20
    packed = {key for m in fast.modules() for key in m.__dict__.get(fast_mod._CACHE, {})}
    assert packed == {"packed_winograd", "upsampled_winograd"}  # no direct weight is packed
    # prepack=False: no Winograd, no packed weight, the plain numbers up to oneDNN's rounding
    seen.clear()
    unpacked = accelerate(copy.deepcopy(model), prepack=False)
    with torch.no_grad():
        torch.testing.assert_close(unpacked.decode(z), dec_plain, rtol=0, atol=ATOL[torch.float32])
    assert not seen and fast_mod.cache_bytes(unpacked) < fast_mod.cache_bytes(fast) / 10


# -- weights, keys, undo, training ---------------------------------------------------------------
def test_accelerate_keeps_weights_and_keys_and_saved_weights_load_in_a_plain_model(tmp_path):
    model = _small_unet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = accelerate(model, channels_last=True)
    assert fast is model and is_accelerated(model)
    after = fast.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    path = save_checkpoint(tmp_path / "fast.pt", fast)
    reloaded = UNetModelSwin(**fast.config)
    reloaded.load_state_dict(torch.load(path, weights_only=True)["state_dict"], strict=True)
    d = _unet_fixture()["inputs"]
    torch.testing.assert_close(_unet_out(reloaded.eval(), d["x"], d["timesteps"], d["lq"]),
                               _unet_out(_small_unet(), d["x"], d["timesteps"], d["lq"]), rtol=0, atol=0)
    plain(model)
    assert not is_accelerated(model) and "forward" not in model.input_blocks[1][0].__dict__
    assert all(p.is_contiguous() for p in model.parameters())
    torch.testing.assert_close(_unet_out(model, d["x"], d["timesteps"], d["lq"]),
                               _unet_out(_small_unet(), d["x"], d["timesteps"], d["lq"]), rtol=0, atol=0)


def test_with_autograd_the_plain_forward_runs_bit_for_bit():
    d = _unet_fixture()["inputs"]
    model = _small_unet()
    fast = accelerate(copy.deepcopy(model), channels_last=False)
    fast.train(), model.train()
    out_fast = fast(d["x"], d["timesteps"], lq=d["lq"])
    out_plain = model(d["x"], d["timesteps"], lq=d["lq"])
    torch.testing.assert_close(out_fast, out_plain, rtol=0, atol=0)
    out_fast.square().mean().backward()
    out_plain.square().mean().backward()
    for (name, a), b in zip(fast.named_parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0, msg=name)


def test_caches_follow_the_weights():
    """Packed convolution weights, sub-pixel and merged kernels and attention biases are rebuilt
    when a parameter changes in place (an optimiser step, load_state_dict) or is replaced."""
    model = copy.deepcopy(_v1_shaped())
    fast = accelerate(copy.deepcopy(model))
    gen = torch.Generator().manual_seed(8)
    x, lq = torch.randn(1, 3, 64, 64, generator=gen), torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
    t = torch.tensor([3.0])
    before = _unet_out(fast, x, t, lq)  # fills the caches
    assert fast_mod.cache_bytes(fast) > 0
    with torch.no_grad():
        for (name, p), q in zip(model.named_parameters(), fast.parameters(), strict=True):
            change = -3.0 * p if name.endswith("relative_position_bias_table") else 0.01 * torch.randn(p.shape, generator=gen)
            p.add_(change), q.add_(change)
    ref = _unet_out(model, x, t, lq)
    assert (ref - before).abs().max() > 1e-2
    torch.testing.assert_close(_unet_out(fast, x, t, lq), ref, rtol=0, atol=1e-5)
    state = _randomize(copy.deepcopy(model), seed=9).state_dict()
    model.load_state_dict(state)
    fast.load_state_dict(state)
    torch.testing.assert_close(_unet_out(fast, x, t, lq), _unet_out(model, x, t, lq), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
def test_upsample_conv_as_phase_kernels_matches_interpolate_then_conv(dtype, channels_last):
    gen = torch.Generator().manual_seed(10)
    up = _randomize(Upsample(16, use_conv=True, out_channels=24), seed=11).to(dtype)
    fast = accelerate(copy.deepcopy(up), channels_last=channels_last, prepack=True)
    x = torch.randn(2, 16, 5, 7, generator=gen, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref, out = up(x), fast(x)
    assert out.shape == (2, 24, 10, 14)
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    torch.testing.assert_close(out, ref, rtol=0, atol=ATOL[dtype])


def test_v1_shaped_unet_merges_the_patch_embedding_where_it_saves_work():
    model = _v1_shaped()
    pairs = [(seq[0].channels, seq[0].out_channels, fast_mod._merge_ok(seq[0], seq[1]))
             for seq in [*model.input_blocks, model.middle_block, *model.output_blocks] if len(seq) > 1
             and isinstance(seq[1], BasicLayer)]
    # embed dim 32: every ResBlock + Swin pair merges (fewer multiply-adds: a narrower last conv, or
    # the 1x1 skip and embedding as one product) except level 0's first, 32 -> 32 with an identity
    # skip, where merging would cost exactly as much
    assert pairs == [(32, 32, False), (32, 64, True), (64, 64, True), (64, 128, True), (128, 128, True),
                     (256, 128, True), (192, 64, True), (128, 64, True), (96, 32, True)]


def test_fast_output_layout_copies_and_fallbacks():
    """Channels-last runs inside only; a deep copy starts with empty caches and computes the same;
    with oneDNN switched off every operation falls back to its plain ATen kernel."""
    model = copy.deepcopy(_v1_shaped())
    fast = accelerate(copy.deepcopy(model))
    gen = torch.Generator().manual_seed(12)
    x, lq = torch.randn(1, 3, 64, 64, generator=gen), torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
    t = torch.tensor([5.0])
    ref, out = _unet_out(model, x, t, lq), _unet_out(fast, x, t, lq)
    assert out.is_contiguous()
    clone = copy.deepcopy(fast)
    assert is_accelerated(clone) and fast_mod.cache_bytes(clone) == 0
    torch.testing.assert_close(_unet_out(clone, x, t, lq), out, rtol=0, atol=0)
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        torch.testing.assert_close(_unet_out(fast, x, t, lq), ref, rtol=0, atol=1e-5)
    finally:
        torch.backends.mkldnn.enabled = enabled
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    plain(fast)
    assert fast_mod.cache_bytes(fast) == 0
    assert not any(k.startswith("_ctlib") for m in fast.modules() for k in m.__dict__)
    torch.testing.assert_close(_unet_out(fast, x, t, lq), ref, rtol=0, atol=0)


def test_autoencoder_prepacking_is_opt_in():
    d = _vq_fixture()
    model = _small_vq()
    z = d["inputs"]["z_rand"]
    default, packed = accelerate(copy.deepcopy(model)), accelerate(copy.deepcopy(model), prepack=True)
    with torch.no_grad():
        ref, out_default, out_packed = model.decode(z), default.decode(z), packed.decode(z)
    def packed_convs(m):
        return sum("packed" in module.__dict__.get("_ctlib_fast_cache", {}) for module in m.modules())

    assert packed_convs(default) == 0 < packed_convs(packed)  # nothing packed by default
    assert out_default.is_contiguous() and out_packed.is_contiguous()
    torch.testing.assert_close(out_default, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(out_packed, ref, rtol=0, atol=1e-5)


def test_compile_falls_back_to_the_eager_fast_path(monkeypatch):
    def broken(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(fast_mod.torch, "compile", broken)
    d = _unet_fixture()["inputs"]
    model = accelerate(_small_unet(), compile=True)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        out = _unet_out(model, d["x"], d["timesteps"], d["lq"])
    torch.testing.assert_close(out, _unet_fixture()["output"], rtol=0, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, then silently eager
        _unet_out(model, d["x"], d["timesteps"], d["lq"])


def test_accelerate_rejects_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        accelerate(lambda x: x)
    with pytest.raises(ValueError, match="cuda_autocast"):
        accelerate(_small_unet(), cuda_autocast=torch.float64)
    for kw in ({"prepack": "no"}, {"prepack": 0}, {"channels_last": "yes"}):
        with pytest.raises(TypeError, match=f"{next(iter(kw))} must be None, True or False"):
            accelerate(_small_unet(), **kw)


# -- the loaders use it by default ---------------------------------------------------------------
def test_denoiser_from_checkpoint_is_fast_by_default_and_can_be_switched_off(tmp_path):
    net = _small_unet()
    schedule = ResShiftSchedule()
    wrapper = ResShiftDenoiser(net, schedule, lq="upsampled")
    path = save_checkpoint(tmp_path / "pixel.pt", net, schedule=schedule, denoiser=wrapper.settings())
    fast, slow = denoiser_from_checkpoint(path), denoiser_from_checkpoint(path, fast=False)
    assert is_accelerated(fast.network) and not is_accelerated(slow.network)
    lr = torch.rand(2, 3, 8, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    a, b = slow.condition(lr), fast.condition(lr)
    t = torch.tensor([0.7, 0.2])
    with torch.no_grad():
        torch.testing.assert_close(b(b.y, t, b.y), a(a.y, t, a.y), rtol=0, atol=1e-5)


def test_build_official_denoiser_is_fast_by_default(tmp_path):
    unet, vq = _unet_fixture(), _vq_fixture()
    torch.save(unet["state_dict"], tmp_path / "unet.pth")
    torch.save(vq["state_dict"], tmp_path / "vq.pth")
    kw = {"unet_config": {k: v for k, v in unet["config"].items() if k != "forward_call"},
          "vq_config": {k: v for k, v in vq["config"].items() if k != "calls"}}
    fast = build_official_denoiser(tmp_path / "unet.pth", tmp_path / "vq.pth", **kw)
    slow = build_official_denoiser(tmp_path / "unet.pth", tmp_path / "vq.pth", fast=False, **kw)
    assert is_accelerated(fast.network) and is_accelerated(fast.autoencoder)
    assert not is_accelerated(slow.network) and not is_accelerated(slow.autoencoder)
    with torch.no_grad():
        out = fast.network(unet["inputs"]["x"], unet["inputs"]["timesteps"], lq=unet["inputs"]["lq"])
        dec = fast.autoencoder.decode(vq["inputs"]["z_rand"])
    torch.testing.assert_close(out, unet["output"], rtol=0, atol=1e-5)
    torch.testing.assert_close(dec, vq["outputs_float32"]["dec_rand"], rtol=0, atol=1e-5)


# --- Winograd F(2x2, 3x3) (ctlib.nn.winograd) --------------------------------------------------

def _correlate_1d(d: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The 2 outputs of a 3-tap correlation of 4 inputs, written out (the definition)."""
    return torch.stack([d[0] * g[0] + d[1] * g[1] + d[2] * g[2], d[1] * g[0] + d[2] * g[1] + d[3] * g[2]])


def test_winograd_constants_give_the_3_tap_correlation():
    """The 1-D identity behind F(2x2, 3x3): A^T [(G g) * (B^T d)] = correlation of d with g."""
    b_t, g_m, a_t = (torch.tensor(m, dtype=torch.float64) for m in (winograd.B_T, winograd.G, winograd.A_T))
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        d, g = torch.randn(4, generator=gen, dtype=torch.float64), torch.randn(3, generator=gen, dtype=torch.float64)
        torch.testing.assert_close(a_t @ ((g_m @ g) * (b_t @ d)), _correlate_1d(d, g), rtol=0, atol=1e-14)
    # and the 2-D transformed weight: U_k = G g G^T, k = 4 r + s
    w = torch.randn(3, 2, 3, 3, generator=gen)
    u = winograd.transformed_weight(w)
    assert u.shape == (16, 3, 2) and u.dtype == w.dtype
    torch.testing.assert_close(u[4 * 1 + 2, 2, 1], (g_m @ w[2, 1].double() @ g_m.T)[1, 2].float())


def _winograd_case(shape, c_out, gen, bias=True):
    B, C, H, W = shape
    x = torch.randn(shape, generator=gen).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c_out, C, 3, 3, generator=gen) / (9 * C) ** 0.5
    b = torch.randn(c_out, generator=gen) * 0.1 if bias else None
    return x, w, b


@pytest.mark.skipif(not winograd._ONEDNN, reason="oneDNN not available")
@pytest.mark.parametrize(("shape", "c_out", "bias", "residual"),
                         [((1, 160, 8, 8), 160, True, False), ((2, 160, 16, 12), 192, False, True),
                          ((1, 320, 32, 32), 160, True, True), ((3, 192, 80, 64), 160, True, False)])
def test_winograd_convolution_matches_a_float64_convolution(shape, c_out, bias, residual):
    gen = torch.Generator().manual_seed(1)
    x, w, b = _winograd_case(shape, c_out, gen, bias)
    other = torch.randn(shape[0], c_out, *shape[2:], generator=gen) if residual else None
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    assert winograd.applies(x, w, geometry)
    packed, bias16 = winograd.pack(w, b, tuple(x.shape))
    with torch.no_grad():
        out = winograd.conv3x3(x, packed, bias16, c_out, None if other is None else other.clone())
    ref = torch.nn.functional.conv2d(x.double(), w.double(), None if b is None else b.double(), padding=1)
    if other is not None:
        ref = ref + other.double()
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert ref.abs().max() > 1  # O(1) activations: the tolerance means something
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=ATOL[torch.float32])
    # no less accurate than the direct convolution it replaces (here it is 2-3x more accurate)
    direct = torch.nn.functional.conv2d(x, w, b, padding=1) + (0 if other is None else other)
    assert (out.double() - ref).abs().max() <= 1.5 * (direct.double() - ref).abs().max()
    # a default-layout input: read through the transposed copy, the same numbers in its layout
    with torch.no_grad():
        out_nchw = winograd.conv3x3(x.contiguous(), packed, bias16, c_out, None if other is None else other.clone())
    assert out_nchw.is_contiguous() and torch.equal(out_nchw, out)


@pytest.mark.skipif(not winograd._ONEDNN, reason="oneDNN not available")
@pytest.mark.parametrize(("shape", "c_out"), [((1, 320, 16, 16), 320), ((2, 160, 8, 12), 192), ((1, 192, 40, 32), 160)])
def test_winograd_upsampled_convolution_matches_interpolate_then_convolve(shape, c_out):
    """nearest-x2 upsampling then a 3x3 convolution, as 9 Winograd products per 2 x 2 output block
    (the last shape goes in bands), against float64 and no less accurate than the direct path."""
    gen = torch.Generator().manual_seed(3)
    x, w, b = _winograd_case(shape, c_out, gen)
    assert winograd.applies_upsampled(x, w)
    packed, bias9 = winograd.pack_upsampled(w, b, tuple(x.shape))
    with torch.no_grad():
        out = winograd.upsampled_conv3x3(x, packed, bias9, c_out)
    up = torch.nn.functional.interpolate
    ref = torch.nn.functional.conv2d(up(x.double(), scale_factor=2, mode="nearest"), w.double(), b.double(), padding=1)
    direct = torch.nn.functional.conv2d(up(x, scale_factor=2, mode="nearest"), w, b, padding=1)
    assert out.shape == ref.shape and out.is_contiguous(memory_format=torch.channels_last)
    assert ref.abs().max() > 1
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=ATOL[torch.float32])
    assert (out.double() - ref).abs().max() <= 1.5 * (direct.double() - ref).abs().max()
    assert not winograd.applies_upsampled(x[:, :64], w[:, :64])  # narrow
    # a default-layout input: the same numbers in its layout, where wide enough for that layout
    with torch.no_grad():
        out_nchw = winograd.upsampled_conv3x3(x.contiguous(), packed, bias9, c_out)
    assert out_nchw.is_contiguous() and torch.equal(out_nchw, out)
    ratio = shape[1] * c_out / (shape[1] + c_out)
    assert winograd.applies_upsampled(x.contiguous(), w) == (ratio >= winograd.MIN_RATIO_DEFAULT_LAYOUT)


def test_winograd_applies_only_where_it_pays_and_computes_the_same_thing():
    gen = torch.Generator().manual_seed(2)
    x, w, _ = _winograd_case((1, 160, 16, 16), 160, gen)
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    assert winograd.applies(x, w, geometry) == winograd._ONEDNN
    assert not winograd.applies(x.contiguous(), w, geometry)  # default layout: wider layers only
    x256, w256, _ = _winograd_case((1, 256, 16, 16), 256, gen)  # ratio 128
    assert winograd.applies(x256.contiguous(), w256, geometry) == winograd._ONEDNN
    assert not winograd.applies(x256.contiguous(), w256[:128], geometry)  # 256 -> 128: ratio 85
    assert winograd.applies(x256, w256[:128], geometry) == winograd._ONEDNN  # ... enough on channels-last
    assert not winograd.applies(x.double(), w.double(), geometry)  # float64 runs direct
    assert not winograd.applies(x[:, :, :15, :15].contiguous(memory_format=torch.channels_last), w, geometry)  # odd
    assert not winograd.applies(x[:, :, :6, :6].contiguous(memory_format=torch.channels_last), w, geometry)  # tiny
    assert not winograd.applies(x[:, :64], w[:, :64], geometry)  # narrow
    assert not winograd.applies(x, w, ((1, 1), (2, 2), (1, 1), 1))  # strided
    assert not winograd.applies(x, w[:, :, :1, :1], ((0, 0), (1, 1), (1, 1), 1))  # 1x1
    # enough output blocks per thread: an 8 x 8 map (16 blocks) on one thread, not on two
    assert winograd.MIN_TILES_PER_THREAD == 16
    assert winograd.enough_tiles(16, threads=1) and not winograd.enough_tiles(15, threads=1)
    assert not winograd.enough_tiles(16, threads=2) and winograd.enough_tiles(32, threads=2)
    x8 = x[:, :, :8, :8].contiguous(memory_format=torch.channels_last)
    assert torch.get_num_threads() == 1 and winograd.applies(x8, w, geometry) == winograd._ONEDNN
    try:
        torch.set_num_threads(2)
        assert not winograd.applies(x8, w, geometry)
        assert winograd.applies(x, w, geometry) == winograd._ONEDNN  # 64 blocks
        assert winograd.applies_upsampled(x8, w) == winograd._ONEDNN  # 64 blocks of the upsampled map
    finally:
        torch.set_num_threads(1)
    # bands of at most MAX_TILES output blocks, whole tile rows, equal sizes
    for B, H, W in [(1, 32, 32), (2, 64, 64), (1, 80, 64), (1, 8, 2 * winograd.MAX_TILES + 2), (1, 16, 16)]:
        rows = winograd.tile_rows(B, H, W)
        assert (H // 2) % rows == 0 and (rows * (W // 2) <= winograd.MAX_TILES or rows == 1)
        assert rows == H // 2 or (rows + 1) * (W // 2) > winograd.MAX_TILES or (H // 2) % (rows + 1) != 0


@functools.cache
def _v1_shaped_wide() -> UNetModelSwin:
    """The v1 architecture at a width whose levels 2-4 (192-384 channels) run by Winograd."""
    config = {**V1_UNET, "model_channels": 96, "swin_embed_dim": 32, "num_head_channels": 8}
    return _randomize(build_unet(config), seed=7).eval()


@pytest.mark.skipif(not winograd._ONEDNN, reason="oneDNN not available")
def test_v1_shaped_unet_with_wide_layers_runs_winograd_and_matches_plain(monkeypatch):
    model = _v1_shaped_wide()
    fast = accelerate(copy.deepcopy(model))
    calls = []
    conv3x3 = winograd.conv3x3
    monkeypatch.setattr(winograd, "conv3x3", lambda x, *a, **k: calls.append(tuple(x.shape)) or conv3x3(x, *a, **k))
    upsampled, up_conv3x3 = [], winograd.upsampled_conv3x3
    monkeypatch.setattr(winograd, "upsampled_conv3x3",
                        lambda x, *a, **k: upsampled.append(tuple(x.shape)) or up_conv3x3(x, *a, **k))
    gen = torch.Generator().manual_seed(8)
    x, lq = torch.randn(1, 3, 64, 64, generator=gen), torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
    t = torch.tensor([9.0])
    ref = _unet_out(model, x, t, lq)
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(_unet_out(fast, x, t, lq), ref, rtol=0, atol=ATOL[torch.float32])
    assert len(calls) >= 10 and {s[2] for s in calls} == {8, 16, 32}  # the 192- and 384-channel levels
    assert {s[2] for s in upsampled} == {8, 16, 32}  # the three upsamplings
    # two threads: the 8 x 8 maps (16 output blocks) run direct (winograd.enough_tiles), with the
    # same result, and the cache swaps their Winograd weights (16/9 of a kernel) for direct ones
    one_thread_bytes = fast_mod.cache_bytes(fast)
    calls.clear()
    try:
        torch.set_num_threads(2)
        torch.testing.assert_close(_unet_out(fast, x, t, lq), ref, rtol=0, atol=ATOL[torch.float32])
    finally:
        torch.set_num_threads(1)
    assert {s[2] for s in calls} == {16, 32}
    assert fast_mod.cache_bytes(fast) < one_thread_bytes
