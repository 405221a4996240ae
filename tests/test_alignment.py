"""Monotonic alignment search against brute force and Glow-TTS's loop; the Gaussian score."""

from __future__ import annotations

import itertools
import math
import time

import pytest
import torch

from wavediff.nn import (
    alignment_path,
    log_likelihood_gaussian,
    monotonic_alignment_search,
    path_to_durations,
    sequence_mask,
)
from wavediff.nn.alignment import _backtrack, _backtrack_chunked, _forward_pass, _forward_pass_chunked

# ------------------------------------------------------------------ references


def brute_force_path(ll: torch.Tensor) -> torch.Tensor:
    """ll [N, T] -> best monotonic path [N, T] by enumerating every duration split (d_n >= 1, sum T)."""
    n, t = ll.shape
    best_score, best_durations = -math.inf, None
    for cuts in itertools.combinations(range(1, t), n - 1):  # token boundaries
        bounds = (0,) + cuts + (t,)
        score = sum(ll[i, bounds[i] : bounds[i + 1]].sum().item() for i in range(n))
        if score > best_score:
            best_score, best_durations = score, [bounds[i + 1] - bounds[i] for i in range(n)]
    return alignment_path(torch.tensor([best_durations]))[0]


def glow_tts_loop(ll: torch.Tensor) -> torch.Tensor:
    """ll [N, T] -> path [N, T]: Glow-TTS's Cython ``maximum_path_each`` transcribed line by line."""
    value = ll.double().tolist()
    t_x, t_y = ll.shape
    neg = -1e9
    for y in range(t_y):
        for x in range(max(0, t_x + y - t_y), min(t_x, y + 1)):
            v_cur = neg if x == y else value[x][y - 1]
            if x == 0:
                v_prev = 0.0 if y == 0 else neg
            else:
                v_prev = value[x - 1][y - 1]
            value[x][y] = max(v_cur, v_prev) + value[x][y]
    path = torch.zeros(t_x, t_y)
    index = t_x - 1
    for y in range(t_y - 1, -1, -1):
        path[index, y] = 1
        if index != 0 and (index == y or value[index][y - 1] < value[index - 1][y - 1]):
            index -= 1
    return path


def padded_batch(sizes: list[tuple[int, int]], seed: int, junk: float = 1e3):
    """Random float64 scores per (N, T), padded with large junk that a wrong mask would pick up."""
    g = torch.Generator().manual_seed(seed)
    n_max, t_max = max(n for n, _ in sizes), max(t for _, t in sizes)
    ll = torch.full((len(sizes), n_max, t_max), junk, dtype=torch.float64)
    for b, (n, t) in enumerate(sizes):
        ll[b, :n, :t] = torch.randn(n, t, generator=g, dtype=torch.float64) * 3.0
    n_len = torch.tensor([n for n, _ in sizes])
    t_len = torch.tensor([t for _, t in sizes])
    return ll, sequence_mask(n_len, n_max), sequence_mask(t_len, t_max)


def check_path_properties(path: torch.Tensor, n_len: torch.Tensor, t_len: torch.Tensor) -> None:
    for b in range(path.shape[0]):
        n, t = int(n_len[b]), int(t_len[b])
        p = path[b]
        assert set(p.unique().tolist()) <= {0.0, 1.0}
        assert p[n:].sum() == 0 and p[:, t:].sum() == 0, "path leaks outside the masks"
        inner = p[:n, :t]
        assert torch.equal(inner.sum(0), torch.ones(t)), "each frame must go to exactly one token"
        assert (inner.sum(1) >= 1).all(), "every token needs at least one frame"
        token = inner.argmax(0)  # [t]
        steps = token[1:] - token[:-1]
        assert ((steps == 0) | (steps == 1)).all(), "monotonic, one token at a time"
        assert token[0] == 0 and token[-1] == n - 1


# ------------------------------------------------------------------ agreement


@pytest.mark.parametrize("method", ["frames", "chunks"])
def test_mas_matches_brute_force_on_every_small_shape(method):
    sizes = [(n, t) for n in range(1, 5) for t in range(n, 9)]
    ll, text_mask, mel_mask = padded_batch(sizes, seed=0)
    path = monotonic_alignment_search(ll, text_mask, mel_mask, method=method)
    assert path.shape == ll.shape and path.dtype == torch.float64
    for b, (n, t) in enumerate(sizes):
        expected = brute_force_path(ll[b, :n, :t])
        assert torch.equal(path[b, :n, :t], expected.double()), f"N={n}, T={t}"
        assert path[b].sum() == t


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mas_matches_brute_force_random_padded_batches(seed):
    """Default method (frames on CPU)."""
    g = torch.Generator().manual_seed(seed)
    sizes = []
    for _ in range(6):
        n = int(torch.randint(1, 5, (1,), generator=g))
        sizes.append((n, int(torch.randint(n, 9, (1,), generator=g))))
    ll, text_mask, mel_mask = padded_batch(sizes, seed=seed)
    path = monotonic_alignment_search(ll, text_mask, mel_mask)
    for b, (n, t) in enumerate(sizes):
        assert torch.equal(path[b, :n, :t], brute_force_path(ll[b, :n, :t]).double())


@pytest.mark.parametrize("method", ["frames", "chunks"])
def test_mas_matches_glow_tts_loop_on_medium_batches(method):
    g = torch.Generator().manual_seed(4)
    sizes = []
    for _ in range(8):
        n = int(torch.randint(1, 13, (1,), generator=g))
        sizes.append((n, int(torch.randint(n, 41, (1,), generator=g))))
    ll, text_mask, mel_mask = padded_batch(sizes, seed=4)
    path = monotonic_alignment_search(ll, text_mask, mel_mask, method=method)
    for b, (n, t) in enumerate(sizes):
        assert torch.equal(path[b, :n, :t], glow_tts_loop(ll[b, :n, :t]).double()), f"N={n}, T={t}"


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_chunked_passes_equal_frame_passes(chunk):
    """Both halves of the chunked (GPU) method against the frame loops, any chunk length."""
    g = torch.Generator().manual_seed(10 + chunk)
    for _ in range(4):
        batch = int(torch.randint(1, 5, (1,), generator=g))
        n_len = torch.randint(1, 16, (batch,), generator=g)
        t_len = n_len + torch.randint(0, 30, (batch,), generator=g)
        scores = torch.randn(int(t_len.max()), batch, int(n_len.max()), generator=g, dtype=torch.float64)
        came = _forward_pass(scores)
        assert torch.equal(_forward_pass_chunked(scores, chunk), came)
        assert torch.equal(_backtrack_chunked(came, n_len, t_len, chunk), _backtrack(came, n_len, t_len))


def test_mas_methods_agree_on_a_large_float32_batch():
    g = torch.Generator().manual_seed(11)
    n_len = torch.randint(30, 81, (5,), generator=g)
    t_len = n_len + torch.randint(0, 300, (5,), generator=g)
    ll = torch.randn(5, int(n_len.max()), int(t_len.max()), generator=g)
    masks = sequence_mask(n_len), sequence_mask(t_len)
    frames = monotonic_alignment_search(ll, *masks, method="frames")
    assert torch.equal(monotonic_alignment_search(ll, *masks, method="chunks"), frames)
    assert torch.equal(monotonic_alignment_search(ll, *masks), frames)  # auto = frames on CPU
    with pytest.raises(ValueError, match="method must be"):
        monotonic_alignment_search(ll, *masks, method="cuda")


def test_mas_properties_on_large_random_batch_and_beats_uniform_split():
    g = torch.Generator().manual_seed(5)
    batch = 6
    n_len = torch.randint(20, 61, (batch,), generator=g)
    t_len = n_len + torch.randint(0, 240, (batch,), generator=g)
    n_len[0], t_len[0] = 60, 60  # diagonal: one frame per token
    n_len[1], t_len[1] = 1, 300  # one token gets everything
    ll = torch.randn(batch, int(n_len.max()), int(t_len.max()), generator=g)
    path = monotonic_alignment_search(ll, sequence_mask(n_len), sequence_mask(t_len))
    assert path.dtype == torch.float32
    check_path_properties(path, n_len, t_len)
    assert torch.equal(path[0, :60, :60], torch.eye(60))
    # the optimum scores at least as well as an even split of the frames
    for b in range(batch):
        n, t = int(n_len[b]), int(t_len[b])
        even = torch.full((n,), t // n)
        even[: t - int(even.sum())] += 1
        uniform = alignment_path(even[None])[0]
        assert (path[b, :n, :t] * ll[b, :n, :t]).sum() >= (uniform * ll[b, :n, :t]).sum() - 1e-3


def test_mas_recovers_planted_alignment_and_durations_round_trip():
    """Frames drawn near their token's mean: MAS finds the planted durations through the Gaussian score."""
    g = torch.Generator().manual_seed(6)
    durations = torch.tensor([[3, 1, 4, 2, 5], [2, 2, 1, 0, 0]])
    n_len = torch.tensor([5, 3])
    mu = torch.randn(2, 8, 5, generator=g) * 3.0  # [B, M, N]
    mel = mu @ alignment_path(durations)  # [B, M, T]
    mel = mel + 0.1 * torch.randn(mel.shape, generator=g)
    t_len = durations.sum(1)
    ll = log_likelihood_gaussian(mu, mel)
    path = monotonic_alignment_search(ll, sequence_mask(n_len), sequence_mask(t_len))
    assert torch.equal(path_to_durations(path), durations)
    assert torch.equal(alignment_path(path_to_durations(path), max_frames=path.shape[2]), path)


# ------------------------------------------------------------------ masks and errors


def test_mas_accepts_float_and_channel_masks_and_ignores_nan_padding():
    ll, text_mask, mel_mask = padded_batch([(3, 7), (2, 4)], seed=7)
    ref = monotonic_alignment_search(ll, text_mask, mel_mask)
    ll_nan = ll.clone()
    ll_nan[1, 2:, :] = float("nan")
    ll_nan[1, :, 4:] = float("inf")
    out = monotonic_alignment_search(ll_nan, text_mask.float().unsqueeze(1), mel_mask.double())
    assert torch.equal(out, ref)


def test_mas_keeps_no_graph_and_runs_on_grad_inputs():
    ll = torch.randn(2, 3, 5, requires_grad=True)
    mask_n, mask_t = torch.ones(2, 3, dtype=torch.bool), torch.ones(2, 5, dtype=torch.bool)
    path = monotonic_alignment_search(ll, mask_n, mask_t)
    assert not path.requires_grad
    (path * ll).sum().backward()  # the usual use: score the chosen path
    torch.testing.assert_close(ll.grad, path)


def test_mas_rejects_bad_inputs():
    ll = torch.randn(1, 4, 3)
    with pytest.raises(ValueError, match="at least one frame per token"):
        monotonic_alignment_search(ll, torch.ones(1, 4), torch.ones(1, 3))
    with pytest.raises(ValueError, match="prefix mask"):
        monotonic_alignment_search(torch.randn(1, 2, 3), torch.tensor([[0, 1]]), torch.ones(1, 3))
    with pytest.raises(ValueError, match="at least one token"):
        monotonic_alignment_search(torch.randn(1, 2, 3), torch.zeros(1, 2), torch.ones(1, 3))
    with pytest.raises(ValueError, match="text_mask must be"):
        monotonic_alignment_search(torch.randn(1, 2, 3), torch.ones(1, 3), torch.ones(1, 3))
    bad = torch.randn(1, 2, 3)
    bad[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        monotonic_alignment_search(bad, torch.ones(1, 2), torch.ones(1, 3))
    with pytest.raises(ValueError, match="floating"):
        monotonic_alignment_search(torch.zeros(1, 2, 3, dtype=torch.long), torch.ones(1, 2), torch.ones(1, 3))


def test_sequence_mask_and_path_to_durations():
    assert sequence_mask(torch.tensor([2, 0, 3]), 4).tolist() == [
        [True, True, False, False],
        [False, False, False, False],
        [True, True, True, False],
    ]
    assert sequence_mask(torch.tensor([1, 2])).shape == (2, 2)
    with pytest.raises(ValueError, match="integer"):
        sequence_mask(torch.tensor([1.0]))
    assert path_to_durations(alignment_path(torch.tensor([[2, 0, 3]]))).tolist() == [[2, 0, 3]]


# ------------------------------------------------------------------ Gaussian score


def test_log_likelihood_gaussian_matches_direct_sum():
    g = torch.Generator().manual_seed(8)
    mu = torch.randn(3, 80, 7, generator=g, dtype=torch.float64)
    mel = torch.randn(3, 80, 11, generator=g, dtype=torch.float64) * 2.0
    out = log_likelihood_gaussian(mu, mel)
    diff = mel.unsqueeze(2) - mu.unsqueeze(3)  # [B, M, N, T]
    direct = (-0.5 * diff**2 - 0.5 * math.log(2 * math.pi)).sum(1)  # [B, N, T]
    assert out.shape == (3, 7, 11)
    torch.testing.assert_close(out, direct, rtol=1e-12, atol=1e-9)
    normal = torch.distributions.Normal(mu[0, :, 2], 1.0).log_prob(mel[0, :, 5]).sum()
    assert out[0, 2, 5].item() == pytest.approx(normal.item(), rel=1e-12)
    # float32: same to float32 accuracy on log-mel-sized values
    out32 = log_likelihood_gaussian(mu.float() - 5.0, mel.float() - 5.0)
    torch.testing.assert_close(out32.double(), direct, rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="agree in batch and n_mels"):
        log_likelihood_gaussian(mu, mel[:, :40])


# ------------------------------------------------------------------ speed (reported, not asserted)


def test_mas_timing_ljspeech_batch(capsys):
    g = torch.Generator().manual_seed(9)
    batch, n_max, t_max = 16, 150, 800
    n_len = torch.randint(60, n_max + 1, (batch,), generator=g)
    t_len = torch.randint(400, t_max + 1, (batch,), generator=g)
    n_len[0], t_len[0] = n_max, t_max
    ll = torch.randn(batch, n_max, t_max, generator=g)
    text_mask, mel_mask = sequence_mask(n_len), sequence_mask(t_len)
    monotonic_alignment_search(ll, text_mask, mel_mask)  # warm-up
    start = time.perf_counter()
    path = monotonic_alignment_search(ll, text_mask, mel_mask)
    elapsed = time.perf_counter() - start
    assert torch.equal(path.sum((1, 2)), t_len.float())
    with capsys.disabled():
        print(f"\nMAS B={batch} N={n_max} T={t_max} on CPU ({torch.get_num_threads()} threads): {elapsed * 1e3:.0f} ms")
