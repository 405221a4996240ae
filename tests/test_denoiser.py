"""Denoiser: shapes, fold layout, fractional steps, any hop, input checks, linear memory."""

from __future__ import annotations

import math
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from wavediff.nn import Denoiser, DenoiserConfig
from wavediff.nn.denoiser import ConditionUpsampler, ResidualBlock, _gated_tanh, upsample_strides


def small(**kw) -> DenoiserConfig:
    base = dict(residual_layers=4, residual_channels=8, dilation_cycle=2, cond_channels=6, max_steps=20)
    base.update(kw)
    return DenoiserConfig(**base)


def randomise_output(model: Denoiser, seed: int = 0) -> Denoiser:
    """Give the zero-initialised output layer random weights so outputs depend on everything."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = model.output_projection.weight
        w.copy_(torch.randn(w.shape, generator=g) * 0.3)
        model.output_projection.bias.copy_(torch.randn(model.output_projection.bias.shape, generator=g) * 0.1)
    return model


def inputs(cfg: DenoiserConfig, batch: int = 2, frames: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    length = frames * cfg.upsample_factor
    x = torch.randn(batch, cfg.in_channels, length, generator=g)
    cond = None if cfg.cond_channels is None else torch.randn(batch, cfg.cond_channels, frames, generator=g)
    t = torch.randint(0, cfg.max_steps, (batch,), generator=g)
    return x, t, cond


# ---------------------------------------------------------------- shapes and layouts


@pytest.mark.parametrize("fold", [1, 2, 4])
def test_waveform_shapes_and_dtype(fold):
    torch.manual_seed(0)
    cfg = small(fold=fold)
    model = randomise_output(Denoiser(cfg))
    x, t, cond = inputs(cfg)
    out = model(x, t, cond)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.abs().max() > 0
    # the upsampler brings frames to the folded rate
    assert math.prod(model.cond_upsampler.strides) == cfg.upsample_factor // fold
    out64 = model.double()(x.double(), t, cond.double())
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out, atol=1e-5, rtol=1e-4)


def test_bfloat16_model_keeps_float32_step_table():
    cfg = small(fold=2)
    model = randomise_output(Denoiser(cfg))
    x, _, cond = inputs(cfg)
    t = torch.tensor([3.25, 11.0])
    ref = model(x, t, cond)
    model = model.to(torch.bfloat16)
    assert model.diffusion_embedding.embedding.dtype == torch.float32
    assert model.diffusion_embedding.projection1.weight.dtype == torch.bfloat16
    out = model(x.bfloat16(), t, cond.bfloat16())
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


@pytest.mark.parametrize("learned_variance", [False, True])
def test_fold_sample_layout(learned_variance):
    """Sample n*F+k is channel k, time n on the way in and on the way back out."""
    fold = 4
    cfg = small(fold=fold, learned_variance=learned_variance)
    model = Denoiser(cfg)
    seen = {}
    # the input projection copies input channel k to residual channel k: the first layer sees the layout
    model.residual_layers[0].register_forward_pre_hook(lambda m, args: seen.update(inp=args[0].clone()))
    heads = 2 if learned_variance else 1
    with torch.no_grad():
        model.input_projection.weight.zero_()
        model.input_projection.weight[:fold, :, 0] = torch.eye(fold)
        model.input_projection.bias.zero_()
        model.output_projection.bias.copy_(torch.arange(heads * fold, dtype=torch.float32))
    x, t, cond = inputs(cfg, batch=1, frames=2)
    x = x.abs()  # through the input projection's ReLU unchanged
    out = model(x, t, cond)
    assert out.shape == (1, heads, x.shape[-1])
    n = x.shape[-1] // fold
    for k in range(fold):
        assert torch.equal(seen["inp"][0, k], x[0, 0, k::fold])
        for h in range(heads):  # output channel h*F+k lands on samples k, k+F, k+2F, ...
            assert torch.equal(out[0, h, k::fold], torch.full((n,), float(h * fold + k)))


def test_learned_variance_heads():
    cfg = small(learned_variance=True)
    model = randomise_output(Denoiser(cfg))
    x, t, cond = inputs(cfg)
    out = model(x, t, cond)
    assert out.shape == (2, 2, x.shape[-1])
    assert cfg.out_channels == 2


def test_mel_frame_mode():
    cfg = DenoiserConfig(in_channels=80, upsample_factor=1, cond_channels=192, residual_layers=3,
                         residual_channels=16, max_steps=100)
    model = randomise_output(Denoiser(cfg))
    assert model.cond_upsampler.strides == () and len(list(model.cond_upsampler.parameters())) == 0
    x, t, cond = inputs(cfg, frames=37)
    assert x.shape == (2, 80, 37) and cond.shape == (2, 192, 37)
    assert model(x, t, cond).shape == (2, 80, 37)
    lv = Denoiser(DenoiserConfig(**{**cfg.to_dict(), "learned_variance": True}))
    assert lv(x, t, cond).shape == (2, 160, 37)


def test_unconditional():
    cfg = small(cond_channels=None, fold=2)
    model = randomise_output(Denoiser(cfg))
    assert model.cond_upsampler is None
    assert not any("conditioner" in k or "upsampler" in k for k in model.state_dict())
    x = torch.randn(2, 1, 1000)
    assert model(x, torch.tensor([0, 19])).shape == x.shape
    with pytest.raises(ValueError, match="unconditional"):
        model(x, torch.tensor([0, 1]), torch.randn(2, 6, 4))


def test_zero_init_output_is_exactly_zero():
    cfg = small()
    x, t, cond = inputs(cfg)
    out = Denoiser(cfg)(x, t, cond)
    assert torch.count_nonzero(out) == 0


def test_num_parameters():
    model = Denoiser(DenoiserConfig())
    assert model.num_parameters() == sum(p.numel() for p in model.parameters()) == 2_619_971


# ---------------------------------------------------------------- steps


def test_fractional_step_embedding_is_lerp_of_rows():
    emb = Denoiser(small()).diffusion_embedding
    table = emb.embedding
    t = torch.tensor([2.25, 7.5, 0.0, 19.0])
    rows = emb.table_rows(t)
    expected = torch.stack([
        table[2] + 0.25 * (table[3] - table[2]),
        0.5 * (table[7] + table[8]),
        table[0],
        table[19],
    ])
    torch.testing.assert_close(rows, expected, atol=1e-6, rtol=0)
    # a whole float step gives exactly the integer row, through the whole network too
    cfg = small()
    model = randomise_output(Denoiser(cfg))
    x, _, cond = inputs(cfg)
    assert torch.equal(model(x, torch.tensor([4.0, 11.0]), cond), model(x, torch.tensor([4, 11]), cond))
    # a scalar step broadcasts over the batch
    assert torch.equal(model(x, torch.tensor(5), cond), model(x, torch.tensor([5, 5]), cond))


def test_sin_cos_table_matches_lmnt_formula():
    emb = Denoiser(small(max_steps=50)).diffusion_embedding
    steps = torch.arange(50).unsqueeze(1)
    dims = torch.arange(64).unsqueeze(0)
    table = steps * 10.0 ** (dims * 4.0 / 63.0)
    assert torch.equal(emb.embedding, torch.cat([torch.sin(table), torch.cos(table)], dim=1))


# ---------------------------------------------------------------- hops


@pytest.mark.parametrize("hop", [256, 300, 275, 441, 1])
def test_any_hop(hop):
    cfg = small(upsample_factor=hop, fold=1)
    model = randomise_output(Denoiser(cfg))
    x, t, cond = inputs(cfg, frames=3)
    assert model(x, t, cond).shape == (2, 1, 3 * hop)
    assert math.prod(model.cond_upsampler.strides) == hop
    assert all(s <= 16 for s in model.cond_upsampler.strides)


def test_upsample_strides():
    assert upsample_strides(256) == (16, 16)
    assert upsample_strides(300) == (10, 6, 5)
    assert upsample_strides(275) == (11, 5, 5)
    assert upsample_strides(1) == ()
    assert upsample_strides(34) == (17, 2)  # a prime above 16 gets its own stage


def test_upsampler_is_local_in_time():
    """Frame j influences only the samples around [j*hop, (j+1)*hop), for odd strides too."""
    up = ConditionUpsampler(275)
    cond = torch.zeros(1, 4, 6)
    base = up(cond)
    cond[0, :, 3] = 1.0
    changed = (up(cond) - base).abs().sum(1)[0].nonzero().flatten()
    assert base.shape == (1, 4, 6 * 275)
    assert changed.min() >= 2 * 275 and changed.max() < 5 * 275


# ---------------------------------------------------------------- errors


def test_input_errors():
    cfg = small(fold=2)
    model = Denoiser(cfg)
    x, t, cond = inputs(cfg, frames=3)
    with pytest.raises(ValueError, match=r"3 frames.*768 samples.*length 767"):
        model(x[..., :-1], t, cond)
    with pytest.raises(ValueError, match="768"):
        model(x, t, cond[..., :2])
    with pytest.raises(ValueError, match="batch"):
        model(x[:, 0], t, cond)  # rank 2
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(2, 2, 768), t, cond)
    with pytest.raises(ValueError, match="cond"):
        model(x, t, None)
    with pytest.raises(ValueError, match="cond"):
        model(x, t, torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="multiple of fold"):
        Denoiser(small(fold=2, cond_channels=None))(torch.randn(1, 1, 101), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\[0, 19\]"):
        model(x, torch.tensor([0, 20]), cond)
    with pytest.raises(ValueError, match=r"\[0, 19\]"):
        model(x, torch.tensor([-0.5, 3.0]), cond)
    with pytest.raises(ValueError, match=r"\[0, 19\]"):
        model(x, torch.tensor([19.25, 3.0]), cond)
    with pytest.raises(ValueError, match=r"\[0, 19\]"):
        model(x, torch.tensor([float("nan"), 3.0]), cond)
    with pytest.raises(ValueError, match="t must be"):
        model(x, torch.tensor([1, 2, 3]), cond)


def test_config_validation_and_round_trip():
    cfg = small(fold=4, learned_variance=True)
    assert DenoiserConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="Unknown denoiser config keys"):
        DenoiserConfig.from_dict({**cfg.to_dict(), "hop": 256})
    with pytest.raises(ValueError, match="in_channels"):
        DenoiserConfig(in_channels=80, fold=2)
    with pytest.raises(ValueError, match="divide"):
        DenoiserConfig(fold=3, upsample_factor=256)
    for bad in [0, -1, 2.0, True, "8"]:
        with pytest.raises(ValueError, match="residual_channels"):
            DenoiserConfig(residual_channels=bad)
    with pytest.raises(ValueError, match="cond_channels"):
        DenoiserConfig(cond_channels=0)
    with pytest.raises(ValueError, match="embedding_dim"):
        DenoiserConfig(embedding_dim=7)
    with pytest.raises(ValueError, match="DenoiserConfig"):
        Denoiser(cfg.to_dict())


def test_cpu_sampling_gate_is_the_training_gate():
    """Without gradients the CPU gate is σ(g)(2σ(2f) - 1) in float32: the same as σ(g)·tanh(f)."""
    y = torch.randn(2, 300, 32, dtype=torch.float64) * 4
    with torch.no_grad():
        fast = _gated_tanh(y.float())
        fast_bf16 = _gated_tanh(y.bfloat16())
    ref = torch.sigmoid(y[..., :16]) * torch.tanh(y[..., 16:])  # float64, the grad-enabled formula
    assert fast.dtype == torch.float32 and fast_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(fast.double(), ref, atol=5e-7, rtol=0)
    torch.testing.assert_close(fast_bf16.double(), ref, atol=1e-2, rtol=0)
    cfg = small()
    model = randomise_output(Denoiser(cfg))
    x, t, cond = inputs(cfg)
    with torch.no_grad():
        sampled = model(x, t, cond)
    torch.testing.assert_close(sampled, model(x, t, cond), atol=1e-6, rtol=0)


# ---------------------------------------------------------------- memory


def test_skip_sum_matches_stacked_reference(monkeypatch):
    """The in-place running skip sum equals lmnt's stack-and-sum, and forward never stacks."""
    cfg = small(residual_layers=5)
    model = randomise_output(Denoiser(cfg))
    x, t, cond = inputs(cfg)
    skips = []
    for layer in model.residual_layers:
        layer.register_forward_hook(lambda m, args, out: skips.append(out[1].detach().clone()) or None)

    def no_stack(*args, **kwargs):
        raise AssertionError("forward must not stack the skip outputs")

    monkeypatch.setattr(torch, "stack", no_stack)
    out = model(x, t, cond)
    monkeypatch.undo()

    h = torch.sum(torch.stack(skips), dim=0) / math.sqrt(len(skips))
    ref = model.output_projection(torch.relu(model.skip_projection(h)))
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)


class PeakLiveBytes(TorchDispatchMode):
    """Peak total size of the storages of all live tensors produced by aten ops."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage ptr -> [live tensors, bytes]
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr == 0:
            return
        if ptr in self.live:
            self.live[ptr][0] += 1
        else:
            self.live[ptr] = [1, storage.nbytes()]
            self.current += storage.nbytes()
            self.peak = max(self.peak, self.current)
        weakref.finalize(t, self._release, ptr)

    def _release(self, ptr: int) -> None:
        entry = self.live[ptr]
        entry[0] -= 1
        if entry[0] == 0:
            self.current -= entry[1]
            del self.live[ptr]


def test_memory_does_not_grow_with_layers():
    """lmnt keeps every layer's skip output alive (a [layers, B, C, L] stack); we must not."""
    length, channels = 2**15, 16
    activation = channels * length * 4  # bytes of one [1, C, L] float32 activation
    peaks = {}
    for layers in (2, 16):
        cfg = small(residual_layers=layers, residual_channels=channels, cond_channels=4, upsample_factor=256)
        model = Denoiser(cfg)
        x, t, cond = inputs(cfg, batch=1, frames=length // 256)
        with torch.no_grad(), PeakLiveBytes() as meter:
            model(x, t, cond)
        peaks[layers] = meter.peak
    assert peaks[16] <= peaks[2] * 1.05
    assert peaks[16] < 10 * activation  # a stack of 16 skips alone would be 16 activations


@pytest.mark.parametrize("factor", [256, 300, 275, 7, 1])
def test_upsampler_matches_conv_transpose(factor):
    """The time-major overlap-add form of each stage equals lmnt's ConvTranspose2d (+ crop, leaky ReLU),
    values and gradients, in float64."""
    torch.manual_seed(factor)
    up = ConditionUpsampler(factor).double()
    for stage in up.stages:
        stage.weight.data.normal_()
        stage.bias.data.normal_()
    mel = torch.randn(2, 80, 9, dtype=torch.float64)

    def reference(cond):
        x = cond.unsqueeze(1)
        for stride, stage in zip(up.strides, up.stages):
            x = F.leaky_relu(stage(x)[..., :x.shape[-1] * stride], 0.4)
        return x.squeeze(1)

    if factor == 1:  # frame-rate conditioning: the identity, no parameters
        torch.testing.assert_close(up(mel), mel, rtol=0, atol=0)
        return
    r = torch.randn(2, 80, 9 * factor, dtype=torch.float64)
    want = reference(mel)
    (want * r).sum().backward()
    want_grads = [p.grad.clone() for p in up.parameters()]
    up.zero_grad()
    got = up(mel)
    (got * r).sum().backward()
    assert got.shape == (2, 80, 9 * factor)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for g, w in zip([p.grad for p in up.parameters()], want_grads):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)
    assert got.transpose(1, 2).is_contiguous()  # stored time-major, as the stack reads it


# ---------------------------------------------------------------- sampling path (no gradients, CPU)


def _layer_forward_reference(monkeypatch):
    """Run the layers through ``ResidualBlock.forward`` when sampling too: the path before the in-place one."""
    monkeypatch.setattr(ResidualBlock, "_sample", lambda self, x, cond, step, work, projected=None: self.forward(x, cond, step, projected))


@pytest.mark.parametrize("kw, frames", [
    (dict(fold=4), 5),
    (dict(fold=1, residual_channels=16), 5),
    (dict(cond_channels=None, fold=2), 5),
    (dict(learned_variance=True), 5),
    (dict(in_channels=80, upsample_factor=1, cond_channels=12, residual_channels=16), 5),
    (dict(in_channels=80, upsample_factor=1, cond_channels=12, residual_channels=16), 1),  # [B, C, 1] layouts
])
def test_sampling_path_matches_layer_forward(kw, frames, monkeypatch):
    """The in-place sampling layers (which share buffers) give forward's values, in float32 and under bf16
    autocast, and leave the inputs alone."""
    cfg = small(**kw)
    model = randomise_output(Denoiser(cfg))
    x, t, cond = inputs(cfg, batch=1 if frames == 1 else 2, frames=frames)
    x0, cond0 = x.clone(), None if cond is None else cond.clone()
    outs = {}
    for name in ("in place", "forward"):
        if name == "forward":
            _layer_forward_reference(monkeypatch)
        with torch.no_grad():
            outs[name] = model(x, t, cond)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                outs[name + " bf16"] = model(x, t, cond)
    monkeypatch.undo()
    assert torch.equal(x, x0) and (cond is None or torch.equal(cond, cond0))
    torch.testing.assert_close(outs["in place"], outs["forward"], atol=1e-5, rtol=0)
    scale = outs["forward"].abs().max()
    assert outs["in place bf16"].dtype == torch.bfloat16
    assert (outs["in place bf16"].float() - outs["forward bf16"].float()).abs().max() <= 1e-2 * scale
    with torch.enable_grad():  # and the training path (tanh gate) agrees, and trains (one frame at batch 1 too)
        out = model(x, t, cond)
        torch.testing.assert_close(outs["in place"], out, atol=1e-5, rtol=0)
        out.pow(2).sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- prepared condition (sampling runs)


@pytest.mark.parametrize("kw, frames", [
    (dict(fold=4), 5),  # waveform: upsampler, fold
    (dict(fold=1, upsample_factor=10), 3),  # an upsampler of two stages
    (dict(in_channels=80, upsample_factor=1, cond_channels=12, residual_channels=16), 5),  # mel: no upsampler
])
def test_prepared_condition_gives_forward_values(kw, frames):
    """prepare_condition's output in place of cond gives the same ε, against a float64 forward with the raw
    cond: on the in-place sampling path, on the gradient path, and under bf16 autocast; cond is untouched."""
    cfg = small(**kw)
    model = randomise_output(Denoiser(cfg))
    x, t, cond = inputs(cfg, batch=2, frames=frames)
    cond0 = cond.clone()
    with torch.no_grad():
        want = model.double()(x.double(), t, cond.double()).float()
        model.float()
        prepared = model.prepare_condition(cond)
        assert torch.equal(cond, cond0)
        assert prepared.shape == (2, frames) and prepared.terms.dtype == torch.float32
        assert prepared.terms.nbytes == model.condition_bytes(2, frames)
        assert prepared.terms.shape == (cfg.residual_layers, 2, frames * cfg.upsample_factor // cfg.fold,
                                        2 * cfg.residual_channels)
        got = model(x, t, prepared)  # the in-place sampling layers
        raw = model(x, t, cond)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got_bf16 = model(x, t, prepared)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=0)
    torch.testing.assert_close(got, raw, atol=2e-5, rtol=0)
    assert (got_bf16.float() - want).abs().max() <= 2e-2 * want.abs().max()
    with torch.enable_grad():  # forward's layers (the path on a GPU), with gradients to x
        xg = x.clone().requires_grad_()
        out = model(xg, t, prepared)
        torch.testing.assert_close(out, want, atol=2e-5, rtol=0)
        out.sum().backward()
        assert torch.isfinite(xg.grad).all() and xg.grad.abs().max() > 0


def test_prepared_condition_input_checks():
    cfg = small(fold=2)
    model = Denoiser(cfg)
    x, t, cond = inputs(cfg, batch=2, frames=3)
    with pytest.raises(ValueError, match=r"cond must be \[batch, 6, frames\]"):
        model.prepare_condition(cond[:, :5])
    with pytest.raises(ValueError, match="unconditional"):
        Denoiser(small(cond_channels=None)).prepare_condition(cond)
    prepared = model.prepare_condition(cond)
    with pytest.raises(ValueError, match="cond batch 2 does not match x batch 1"):
        model(x[:1], t[:1], prepared)
    with pytest.raises(ValueError, match="cond has 3 frames"):
        model(x[..., : 2 * cfg.upsample_factor], t, prepared)
    with pytest.raises(ValueError, match="another size"):
        Denoiser(small(fold=2, residual_channels=4))(x, t, prepared)
    assert Denoiser(small(cond_channels=None)).condition_bytes(2, 3) == 0
