"""A tiny synthetic speech-like corpus in LJSpeech layout, for tests and smoke runs.

The signals are voiced "syllables": a sum of harmonics of a gliding, vibrato-modulated f0 with a
spectral tilt, under a syllable-rate amplitude envelope, plus a little breath noise and short
silences at both ends. They exercise the same code paths as real speech (harmonic structure, silent
frames at the clamp floor, varying loudness) while costing nothing to generate. Only numpy and
``wavediff.audio.save_audio`` are used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from wavediff.audio import save_audio

__all__ = ["speech_like", "make_test_corpus"]

PathLike = Union[str, "os.PathLike[str]"]

_WORDS = (
    "the", "quick", "voice", "reads", "a", "short", "line", "of", "plain", "text", "for",
    "testing", "every", "sound", "clearly", "and", "slowly", "today",
)


# --------------------------------------------------------------------------------------------------
# Signal
# --------------------------------------------------------------------------------------------------


def speech_like(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A speech-like float32 signal [num_samples] with peak about 0.5.

    Harmonics (up to 4 kHz, amplitude 1/k) of an f0 that glides between two values in 90-240 Hz
    with a 5 Hz vibrato; a 3-6 Hz syllable envelope; -40 dB-ish noise; 50 ms silence at each end.
    """
    if num_samples <= 0 or sample_rate <= 0:
        raise ValueError(
            f"speech_like needs positive num_samples and sample_rate, got {num_samples} and "
            f"{sample_rate}."
        )
    t = np.arange(num_samples, dtype=np.float64) / sample_rate  # [T] seconds
    duration = max(num_samples / sample_rate, 1e-6)
    # ---- pitch contour ----
    f_start, f_end = rng.uniform(90.0, 240.0, size=2)
    f0 = f_start + (f_end - f_start) * (t / duration)  # [T] glide
    f0 = f0 * (1.0 + 0.02 * np.sin(2.0 * np.pi * 5.0 * t))  # vibrato
    phase = 2.0 * np.pi * np.cumsum(f0) / sample_rate  # [T]
    # ---- harmonics with spectral tilt, below 4 kHz and Nyquist ----
    ceiling = min(4000.0, 0.45 * sample_rate)
    voiced = np.zeros(num_samples, dtype=np.float64)
    for k in range(1, int(ceiling // 90.0) + 1):
        audible = (k * f0) < ceiling  # [T]
        voiced += audible * np.sin(k * phase + rng.uniform(0.0, 2.0 * np.pi)) / k
    # ---- syllable envelope and end silences ----
    syllable_rate = rng.uniform(3.0, 6.0)
    envelope = 0.5 - 0.5 * np.cos(2.0 * np.pi * syllable_rate * t)  # [T] in [0, 1]
    edge = int(0.05 * sample_rate)
    envelope[:edge] = 0.0
    envelope[max(num_samples - edge, 0) :] = 0.0
    noise = 0.01 * rng.standard_normal(num_samples)
    y = envelope * voiced + envelope * noise
    peak = float(np.max(np.abs(y)))
    if peak > 0.0:
        y = 0.5 * y / peak
    return y.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------------


def _sentence(rng: np.random.Generator) -> str:
    words = rng.choice(len(_WORDS), size=int(rng.integers(3, 8)))
    text = " ".join(_WORDS[i] for i in words)
    return text[0].upper() + text[1:] + "."


def make_test_corpus(
    root: PathLike,
    num_utts: int = 6,
    sample_rate: int = 22050,
    seconds: tuple[float, float] = (0.5, 1.5),
    seed: int = 0,
) -> Path:
    """Write ``num_utts`` speech-like utterances in LJSpeech layout under ``root``; return root.

    Layout: ``root/metadata.csv`` (``id|text|normalised text``, ids ``SYN-0001`` ...) and
    ``root/wavs/{id}.wav`` (16-bit PCM at ``sample_rate``), durations uniform in ``seconds``.
    The same arguments always give the same files.
    """
    lo, hi = seconds
    if num_utts <= 0:
        raise ValueError(f"num_utts must be positive, got {num_utts}.")
    if not 0.0 < lo <= hi:
        raise ValueError(f"seconds must be (min, max) with 0 < min <= max, got {seconds!r}.")
    root_path = Path(root)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(num_utts):
        utt_id = f"SYN-{i + 1:04d}"
        num_samples = max(1, int(round(rng.uniform(lo, hi) * sample_rate)))
        save_audio(root_path / "wavs" / f"{utt_id}.wav", speech_like(num_samples, sample_rate, rng),
                   sample_rate)
        text = _sentence(rng)
        lines.append(f"{utt_id}|{text}|{text.lower()}")
    (root_path / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root_path
