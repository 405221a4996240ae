"""Text encoder, duration predictor and the length utilities."""

from __future__ import annotations

import math

import pytest
import torch

from wavediff.nn import (
    DurationPredictor,
    EncoderConfig,
    TextEncoder,
    alignment_path,
    duration_loss,
    durations_to_frames,
    expand,
    sequence_mask,
)
from wavediff.nn.encoder import MultiHeadSelfAttention, RotaryEmbedding, apply_rotary


def small(**kw) -> EncoderConfig:
    base = dict(n_symbols=40, dim=32, n_layers=2, n_heads=2, ffn_dim=64, n_mels=12)
    base.update(kw)
    return EncoderConfig(**base)


def model(seed: int = 0, **kw) -> TextEncoder:
    torch.manual_seed(seed)
    enc = TextEncoder(small(**kw)).eval()
    if enc.prenet is not None:  # give the zero-initialised prenet projection weights, so it matters
        with torch.no_grad():
            enc.prenet.proj.weight.normal_(0.0, 0.1)
    return enc


# ------------------------------------------------------------------ config


def test_config_round_trip_and_validation():
    cfg = small(prenet=False, dropout=0)
    assert EncoderConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["dropout"] == 0.0 and cfg.head_dim == 16
    assert EncoderConfig(n_symbols=10).to_dict()["dim"] == 192
    with pytest.raises(ValueError, match="multiple of n_heads"):
        small(dim=30, n_heads=4)
    with pytest.raises(ValueError, match="must be even"):
        small(dim=30, n_heads=2)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        small(kernel_size=4)
    with pytest.raises(ValueError, match="dropout"):
        small(dropout=1.0)
    with pytest.raises(ValueError, match="n_symbols must be a positive int"):
        small(n_symbols=0)
    with pytest.raises(ValueError, match="prenet must be a bool"):
        small(prenet=1)
    with pytest.raises(ValueError, match="Unknown encoder config keys"):
        EncoderConfig.from_dict({"n_symbols": 3, "window": 4})
    with pytest.raises(ValueError, match="needs n_symbols"):
        EncoderConfig.from_dict({"dim": 8})
    with pytest.raises(ValueError, match="EncoderConfig"):
        TextEncoder({"n_symbols": 3})


# ------------------------------------------------------------------ encoder


@pytest.mark.parametrize("prenet", [True, False])
def test_encoder_shapes_and_masks(prenet):
    enc = model(prenet=prenet)
    tokens = torch.randint(0, 40, (3, 9))
    lengths = torch.tensor([9, 4, 1])
    h, mu, mask = enc(tokens, lengths)
    assert h.shape == (3, 32, 9) and mu.shape == (3, 12, 9) and mask.shape == (3, 1, 9)
    assert h.dtype == mu.dtype == mask.dtype == torch.float32
    assert torch.equal(mask[:, 0], sequence_mask(lengths, 9).float())
    assert torch.equal(h * mask, h) and torch.equal(mu * mask, mu)  # zero past the length
    assert h[0].abs().sum(0).min() > 0 and mu[0].abs().sum(0).min() > 0  # every real position is non-zero
    # final LayerNorm: every real position is normalised over channels
    valid = h.transpose(1, 2)[mask[:, 0].bool()]  # [tokens, C]
    torch.testing.assert_close(valid.mean(1), torch.zeros(len(valid)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("prenet", [True, False])
def test_padding_never_changes_valid_outputs(prenet):
    enc = model(prenet=prenet)
    g = torch.Generator().manual_seed(1)
    seq = torch.randint(0, 40, (1, 7), generator=g)
    h_alone, mu_alone, _ = enc(seq, torch.tensor([7]))
    # the same sequence padded to 15 with two different junk fills (one out of the table's range)
    junk_a = torch.cat([seq, torch.randint(0, 40, (1, 8), generator=g)], 1)
    junk_b = torch.cat([seq, torch.full((1, 8), 999)], 1)
    other = torch.randint(0, 40, (1, 15), generator=g)  # a longer neighbour in the batch
    h_a, mu_a, _ = enc(torch.cat([junk_a, other]), torch.tensor([7, 15]))
    h_b, mu_b, _ = enc(torch.cat([junk_b, other]), torch.tensor([7, 15]))
    assert torch.equal(h_a, h_b) and torch.equal(mu_a, mu_b)  # junk has no effect at all
    torch.testing.assert_close(h_a[:1, :, :7], h_alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mu_a[:1, :, :7], mu_alone, rtol=1e-5, atol=1e-5)
    assert h_a[0, :, 7:].abs().max() == 0
    # the neighbour is unaffected by sharing a batch
    h_other, _, _ = enc(other, torch.tensor([15]))
    torch.testing.assert_close(h_a[1:], h_other, rtol=1e-5, atol=1e-5)


def test_rotary_scores_depend_only_on_offsets():
    """q_i . k_j after RoPE is the same for (i, j) and (i + s, j + s), far beyond any training length."""
    g = torch.Generator().manual_seed(2)
    rope = RotaryEmbedding(16)
    q, k = torch.randn(16, generator=g), torch.randn(16, generator=g)
    pairs = torch.tensor([[3, 0], [0, 3], [5, 5], [40, 1]])
    for shift in (0, 100, 3000):
        pos = (pairs + shift).flatten()
        cos, sin = rope(pos)
        rq = apply_rotary(q.expand(len(pos), 16), cos, sin)[0::2]
        rk = apply_rotary(k.expand(len(pos), 16), cos, sin)[1::2]
        scores = (rq * rk).sum(1)
        if shift == 0:
            ref = scores
            assert torch.allclose(scores[2], q @ k, atol=1e-5)  # offset 0: plain dot product
            assert not torch.allclose(scores[0], scores[1])  # +3 and -3 differ (direction matters)
        else:
            torch.testing.assert_close(scores, ref, rtol=1e-3, atol=2e-3)
    # rotation keeps norms (no length-dependent scale)
    cos, sin = rope(torch.arange(5000))
    rotated = apply_rotary(q.expand(5000, 16), cos, sin)
    torch.testing.assert_close(rotated.norm(dim=1), q.norm().expand(5000), rtol=1e-5, atol=1e-5)


def test_attention_output_is_the_same_at_any_absolute_position():
    """Attention over positions 1000..1019 (recomputed by hand) equals the module's output at 0..19."""
    torch.manual_seed(3)
    attn = MultiHeadSelfAttention(32, 2).eval()
    x = torch.randn(1, 20, 32)
    out = attn(x, torch.ones(1, 20, dtype=torch.bool))
    # the same queries/keys placed at positions 1000..1019: compute by rotating with shifted positions
    b, n, c = x.shape
    qkv = attn.qkv(x).view(b, n, 3, 2, 16).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    cos, sin = attn.rotary(torch.arange(1000, 1020))
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    y = torch.softmax(q @ k.transpose(-1, -2) / 4.0, -1) @ v
    shifted = attn.out(y.transpose(1, 2).reshape(b, n, c))
    torch.testing.assert_close(shifted, out, rtol=1e-3, atol=1e-4)


def test_encoder_runs_far_beyond_short_training_lengths():
    enc = model(prenet=True)
    # a few steps on short sequences, then a sequence 100x longer
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    enc.train()
    for _ in range(3):
        tokens = torch.randint(0, 40, (4, 12))
        _, mu, _ = enc(tokens, torch.full((4,), 12))
        loss = mu.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    enc.eval()
    tokens = torch.randint(0, 40, (1, 1200))
    with torch.no_grad():
        h, mu, _ = enc(tokens, torch.tensor([1200]))
    assert torch.isfinite(h).all() and torch.isfinite(mu).all()
    # the statistics of h far out look like those near the start (no drift with position)
    early, late = h[0, :, :100], h[0, :, -100:]
    assert abs(early.std().item() - late.std().item()) < 0.2 * early.std().item()


def test_gradients_reach_every_parameter():
    torch.manual_seed(4)
    enc = TextEncoder(small(prenet=True, dropout=0.0))
    tokens = torch.randint(0, 40, (2, 6))
    h, mu, mask = enc(tokens, torch.tensor([6, 3]))
    (h.pow(2).mean() + mu.pow(2).mean()).backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        behind_zero_proj = name.startswith("prenet.") and not name.startswith("prenet.proj")
        if not behind_zero_proj:  # the prenet starts as identity, so its inner layers wait one step
            assert p.grad.abs().sum() > 0, name
    # only the embedding rows of tokens that were used get gradient
    used = torch.zeros(40, dtype=torch.bool)
    used[tokens[0]] = True
    used[tokens[1, :3]] = True
    assert (enc.embedding.weight.grad.abs().sum(1) > 0).eq(used).all()


def test_bfloat16_encoder_runs_close_to_float32():
    enc = model()
    tokens = torch.randint(0, 40, (2, 10))
    lengths = torch.tensor([10, 6])
    h, mu, _ = enc(tokens, lengths)
    h16, mu16, mask16 = enc.to(torch.bfloat16)(tokens, lengths)
    assert h16.dtype == mu16.dtype == mask16.dtype == torch.bfloat16
    assert (h16.float() - h).abs().max() < 0.1 * h.abs().max()


def test_encoder_rejects_bad_inputs():
    enc = model()
    with pytest.raises(ValueError, match=r"Token ids must lie in \[0, 39\]"):
        enc(torch.tensor([[1, 40]]), torch.tensor([2]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 2\]"):
        enc(torch.tensor([[1, 2]]), torch.tensor([3]))
    with pytest.raises(ValueError, match=r"lengths must lie"):
        enc(torch.tensor([[1, 2]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="integer tensor"):
        enc(torch.tensor([[1.0, 2.0]]), torch.tensor([2]))
    with pytest.raises(ValueError, match=r"tokens must be \[batch, length\]"):
        enc(torch.tensor([1, 2]), torch.tensor([2]))
    with pytest.raises(ValueError, match="lengths must be an integer tensor of shape"):
        enc(torch.tensor([[1, 2]]), torch.tensor([2, 2]))


# ------------------------------------------------------------------ durations


def test_duration_predictor_shapes_masking_and_padding_invariance():
    torch.manual_seed(5)
    dp = DurationPredictor(32, filter_channels=16).eval()
    h = torch.randn(2, 32, 8)
    mask = sequence_mask(torch.tensor([8, 5]), 8)
    out = dp(h, mask.unsqueeze(1).float())
    assert out.shape == (2, 8) and out[1, 5:].abs().max() == 0
    junk = h.clone()
    junk[1, :, 5:] = 1e4
    torch.testing.assert_close(dp(junk, mask), out, rtol=0, atol=0)  # bool [B, N] mask works too
    torch.testing.assert_close(dp(h[1:, :, :5], torch.ones(1, 5)), out[1:, :5], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"h must be \[batch, 32, tokens\]"):
        dp(torch.randn(2, 31, 8), mask)
    with pytest.raises(ValueError, match="mask must be"):
        dp(h, mask[:, :7])


def test_duration_predictor_learns_durations():
    torch.manual_seed(6)
    dp = DurationPredictor(8, filter_channels=32, dropout=0.0)
    tokens = torch.randint(0, 4, (16, 10))
    h = torch.nn.functional.one_hot(tokens, 8).float().transpose(1, 2)  # [B, 8, N]
    durations = torch.tensor([1, 3, 7, 12])[tokens]  # each symbol has its own duration
    mask = torch.ones(16, 1, 10)
    opt = torch.optim.Adam(dp.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss = duration_loss(dp(h, mask), durations, mask)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01 * first
    frames, total = durations_to_frames(dp(h, mask).detach(), mask)
    assert (frames - durations).abs().max() <= 1  # ceil of a near-exact prediction


def test_duration_loss_is_masked_mse_on_log_durations():
    pred = torch.tensor([[0.0, 1.0, 2.0], [0.5, 9.0, 9.0]])
    durations = torch.tensor([[1, 2, 0], [4, 7, 7]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    expected = (0.0**2 + (1.0 - math.log(2)) ** 2 + (2.0 - 0.0) ** 2 + (0.5 - math.log(4)) ** 2) / 4
    assert duration_loss(pred, durations, mask).item() == pytest.approx(expected, rel=1e-6)
    assert duration_loss(pred, durations.float(), mask.bool().unsqueeze(1)).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match=">= 0"):
        duration_loss(pred, -durations, mask)
    with pytest.raises(ValueError, match="both be"):
        duration_loss(pred, durations[:, :2], mask)


def test_durations_to_frames_uses_ceil_and_length_scale():
    log_dur = torch.log(torch.tensor([[1.0, 2.2, 0.3, 5.0], [3.0, 0.01, 7.0, 7.0]]))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    d, n = durations_to_frames(log_dur, mask)
    assert d.dtype == n.dtype == torch.long
    assert d.tolist() == [[1, 3, 1, 5], [3, 1, 0, 0]]  # every real token gets >= 1 frame
    assert n.tolist() == [10, 4]
    d2, n2 = durations_to_frames(log_dur, mask.unsqueeze(1), length_scale=2.0)
    assert d2.tolist() == [[2, 5, 1, 10], [6, 1, 0, 0]] and n2.tolist() == [18, 7]
    with pytest.raises(ValueError, match="length_scale"):
        durations_to_frames(log_dur, mask, length_scale=0.0)


def test_expand_equals_path_matmul_and_repeats_columns():
    g = torch.Generator().manual_seed(7)
    h = torch.randn(3, 5, 4, generator=g)
    durations = torch.tensor([[2, 0, 3, 1], [1, 1, 1, 0], [4, 2, 0, 0]])
    path = alignment_path(durations)
    assert path.shape == (3, 4, 6) and path.dtype == torch.float32
    assert path.sum(1).max() == 1 and torch.equal(path.sum(2).long(), durations)
    out = expand(h, durations)
    assert out.shape == (3, 5, 6)
    torch.testing.assert_close(out, h @ path, rtol=0, atol=0)
    assert torch.equal(out[0], torch.repeat_interleave(h[0], durations[0], dim=1))
    assert torch.equal(out[1, :, 3:], torch.zeros(5, 3))  # past the item's total
    # fixed T, float durations, and the durations_to_frames pipeline
    out9 = expand(h, durations.float(), max_frames=9)
    assert out9.shape == (3, 5, 9) and torch.equal(out9[:, :, :6], out) and out9[:, :, 6:].abs().max() == 0
    assert torch.equal(alignment_path(durations, max_frames=9)[:, :, :6], path)
    d, frames = durations_to_frames(torch.zeros(3, 4), sequence_mask(torch.tensor([4, 2, 3])))
    assert expand(h, d).shape[2] == int(frames.max()) == 4
    with pytest.raises(ValueError, match="shorter than the longest item"):
        expand(h, durations, max_frames=5)
    with pytest.raises(ValueError, match="whole numbers"):
        expand(h, durations + 0.5)
    with pytest.raises(ValueError, match=">= 0"):
        alignment_path(-durations)
    with pytest.raises(ValueError, match=r"durations must be \[3, 4\]"):
        expand(h, durations[:, :3])


def test_expand_backpropagates_like_the_path_matmul():
    h = torch.randn(2, 3, 4, requires_grad=True)
    durations = torch.tensor([[1, 2, 0, 3], [2, 2, 2, 2]])
    weights = torch.randn(2, 3, 8)
    (expand(h, durations) * weights).sum().backward()
    grad = h.grad.clone()
    h.grad = None
    ((h @ alignment_path(durations)) * weights).sum().backward()
    torch.testing.assert_close(grad, h.grad)
