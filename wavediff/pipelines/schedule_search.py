"""Search an N-step inference β schedule for a trained vocoder (WaveGrad/BDDM-style).

The objective is the multi-resolution STFT distance between held-out recordings and their
copy-synthesis with DiffWave's fast sampler, using the same noise for every candidate (common random
numbers, so differences are the schedule's, not the seed's). The search is a coarse grid over
geometric schedules (β_1, β_N) followed by coordinate search on each log β_n with shrinking factors.
A candidate must stay inside the trained noise range: β_1 ≥ the first training β and
∏(1 − β_n) ≥ the last training ᾱ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from wavediff.eval.spectral import mrstft_distance

__all__ = ["ScheduleSearchResult", "search_schedule", "geometric_betas"]


@dataclass
class ScheduleSearchResult:
    betas: list[float]
    score: float
    initial_betas: list[float]
    initial_score: float
    evaluations: int
    history: list[tuple[list[float], float]] = field(default_factory=list)


def geometric_betas(first: float, last: float, steps: int) -> list[float]:
    if steps == 1:
        return [last]
    r = (last / first) ** (1 / (steps - 1))
    return [first * r**i for i in range(steps)]


def _feasible(betas: Sequence[float], schedule) -> bool:
    if any(not (0 < b < 1) for b in betas):
        return False
    if any(b2 < b1 for b1, b2 in zip(betas, betas[1:])):
        return False
    if betas[0] < schedule.betas[0].item() - 1e-12:
        return False
    return math.prod(1 - b for b in betas) >= schedule.alpha_bars[-1].item()


@torch.no_grad()
def search_schedule(
    vocoder,
    clips: Sequence[torch.Tensor],
    steps: int,
    *,
    rounds: int = 3,
    seed: int = 0,
    init: Sequence[float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ScheduleSearchResult:
    """Best ``steps``-step β schedule for ``vocoder`` on ``clips`` (waveforms at its sample rate)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not clips:
        raise ValueError("the schedule search needs at least one held-out clip")
    hop = vocoder.hop_length
    frames = min(int(c.shape[-1]) // hop for c in clips)
    if frames < 16:
        raise ValueError("held-out clips are too short for the schedule search (need >= 16 frames each)")
    audio = torch.stack([c[: frames * hop].float() for c in clips]).to(vocoder.device)  # [B, L]
    mel = vocoder.mel(audio)[..., :frames]  # the diffwave preset has one extra (centred) frame
    schedule = vocoder.diffusion.schedule
    evaluations = 0
    history: list[tuple[list[float], float]] = []

    def score(betas: list[float]) -> float:
        nonlocal evaluations
        if not _feasible(betas, schedule):
            return math.inf
        evaluations += 1
        g = torch.Generator(device=vocoder.device).manual_seed(seed)
        wav = vocoder.vocode(mel, sampler="fast", betas=list(betas), generator=g)
        s = mrstft_distance(audio, wav).mean().item()
        history.append((list(betas), s))
        return s

    start = list(init) if init is not None else list(vocoder.config.inference.betas)
    if len(start) != steps:
        from .vocoder import default_fast_betas

        start = default_fast_betas(steps)
    first_train = schedule.betas[0].item()
    start = [max(start[0], first_train)] + start[1:]
    best, best_score = start, score(start)
    initial = (list(best), best_score)
    if progress:
        progress(f"start: distance {best_score:.4f}")
    # 1) grid over geometric schedules (progress after each first β: the grid is most of the search's time)
    first_betas = (first_train, 3 * first_train, 10 * first_train)
    for k, b1 in enumerate(first_betas):
        for bn in (0.1, 0.2, 0.35, 0.5, 0.7):
            cand = geometric_betas(b1, bn, steps)
            s = score(cand)
            if s < best_score:
                best, best_score = cand, s
        if progress:
            progress(f"grid {k + 1}/{len(first_betas)}: best {best_score:.4f}")
    # 2) coordinate search on log β
    for r, factor in enumerate((2.0, 1.5, 1.2, 1.1)[:rounds]):
        improved = True
        while improved:
            improved = False
            for i in range(steps):
                for f in (factor, 1 / factor):
                    cand = list(best)
                    cand[i] = min(cand[i] * f, 0.999)
                    s = score(cand)
                    if s < best_score - 1e-6:
                        best, best_score, improved = cand, s, True
        if progress:
            progress(f"round {r + 1} (factor {factor}): best {best_score:.4f}")
    return ScheduleSearchResult(best, best_score, initial[0], initial[1], evaluations, history)


def tune_checkpoint(
    checkpoint,
    data_dir,
    steps: int,
    *,
    clips: int = 8,
    seconds: float = 2.0,
    rounds: int = 3,
    seed: int = 0,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ScheduleSearchResult:
    """``wavediff tune-schedule``: search on held-out clips of ``data_dir`` and store the winner.

    Clips come from the corpus's validation split (the same seeded split training uses), falling
    back to the whole corpus for tiny folders; each is the loudest ``seconds`` of its utterance."""
    from wavediff.audio import load_audio
    from wavediff.checkpoint import update_config
    from wavediff.data import scan_corpus, split_corpus

    from .files import load_vocoder

    vocoder = load_vocoder(checkpoint, device)
    utterances = scan_corpus(data_dir)
    try:
        pool = split_corpus(utterances, val=min(clips, max(1, len(utterances) - 1)), test=0, seed=1234).val
    except ValueError:
        pool = utterances
    length = int(seconds * vocoder.sample_rate)
    audio = []
    for utt in pool[:clips]:
        try:
            wav, _ = load_audio(utt.path, sample_rate=vocoder.sample_rate)
        except ValueError as e:
            if progress:
                progress(f"skipping {utt.id}: {e}")
            continue
        if len(wav) < length:
            continue
        energy = torch.from_numpy(wav).pow(2).unfold(0, length, vocoder.hop_length).mean(1)
        start = int(energy.argmax()) * vocoder.hop_length
        audio.append(torch.from_numpy(wav[start : start + length]))
    if not audio:
        raise ValueError(f"no held-out clip of {seconds} s could be read from {data_dir}")
    result = search_schedule(vocoder, audio, steps, rounds=rounds, seed=seed, progress=progress)
    update_config(checkpoint, "inference", {"sampler": "fast", "betas": result.betas})
    return result
