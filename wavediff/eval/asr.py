"""Intelligibility by speech recognition: an offline recogniser (pocketsphinx) and word error rate.

:class:`Recognizer` wraps pocketsphinx's bundled US-English model (acoustic model, 3-gram language
model, CMUdict); it runs offline at 16 kHz (input is resampled). Its absolute WER on read speech is
high (LibriSpeech-like recordings ≈ 0.3) - use it to compare systems on the same sentences, with the
recordings' own WER as the ceiling, not as an absolute intelligibility score.

:func:`wer` compares word sequences after :func:`normalize_words`: wavediff's text normalisation
(numbers, abbreviations, symbols spelled out: "5" == "five", "Dr." == "doctor"), lower case,
hyphens as spaces, punctuation dropped (apostrophes inside words kept: "don't").
"""
from __future__ import annotations

import re
import warnings
from typing import Iterable, NamedTuple

import numpy as np
import torch

from wavediff.eval.metrics import METRIC_RATE, as_mono, require, resample

__all__ = ["normalize_words", "WordErrors", "word_errors", "wer", "corpus_wer", "Recognizer", "transcribe"]

_MARKUP = re.compile(r"\[[^\]]*\]|<[^>]*>")  # [noise] <sil> ...: recogniser / annotation markup
_NOT_WORD = re.compile(r"[^a-z0-9']+")


# ---------------------------------------------------------------------------------- text
def normalize_words(text: str) -> list[str]:
    """Words for WER scoring: normalised (see the module docstring), lower case, no punctuation.

    Text with no words (empty, only punctuation) gives []."""
    from wavediff.text.normalize import TextFrontendWarning, normalize_text

    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}.")
    text = _MARKUP.sub(" ", text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TextFrontendWarning)
        try:
            text = normalize_text(text)
        except ValueError:  # nothing to say
            return []
    text = _NOT_WORD.sub(" ", text.lower().replace("-", " "))
    return [w.strip("'") for w in text.split() if w.strip("'")]


class WordErrors(NamedTuple):
    """Levenshtein alignment counts of a hypothesis against a reference word sequence."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


def word_errors(hypothesis: str | list[str], reference: str | list[str]) -> WordErrors:
    """Minimum-edit (S, D, I) counts; strings are normalised with :func:`normalize_words` first."""
    hyp = normalize_words(hypothesis) if isinstance(hypothesis, str) else list(hypothesis)
    ref = normalize_words(reference) if isinstance(reference, str) else list(reference)
    # cost[j] = (total, S, D, I) for ref[:i] vs hyp[:j]; ties prefer substitutions, then deletions
    prev = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i in range(1, len(ref) + 1):
        cur = [(i, 0, i, 0)]
        for j in range(1, len(hyp) + 1):
            same = ref[i - 1] == hyp[j - 1]
            d = prev[j - 1]
            sub = (d[0] + (not same), d[1] + (not same), d[2], d[3])
            dl = (prev[j][0] + 1, prev[j][1], prev[j][2] + 1, prev[j][3])
            ins = (cur[j - 1][0] + 1, cur[j - 1][1], cur[j - 1][2], cur[j - 1][3] + 1)
            cur.append(min(sub, dl, ins, key=lambda c: c[0]))
        prev = cur
    _, s, dele, ins = prev[-1]
    return WordErrors(s, dele, ins, len(ref))


def wer(hypothesis: str | list[str], reference: str | list[str]) -> float:
    """Word error rate (S + D + I) / N of one utterance; may exceed 1. An empty reference → ValueError."""
    counts = word_errors(hypothesis, reference)
    if counts.reference_words == 0:
        raise ValueError("the reference text has no words, so the word error rate is undefined.")
    return counts.errors / counts.reference_words


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> float:
    """Corpus WER over (hypothesis, reference) pairs: total errors / total reference words."""
    errors = words = 0
    for hyp, ref in pairs:
        c = word_errors(hyp, ref)
        errors, words = errors + c.errors, words + c.reference_words
    if words == 0:
        raise ValueError("the reference texts have no words, so the word error rate is undefined.")
    return errors / words


# ---------------------------------------------------------------------------------- recogniser
class Recognizer:
    """Offline English speech recogniser (pocketsphinx with its bundled en-US model).

    ``Recognizer()(wav, sr) -> str`` (lower-case words, no punctuation; "" when nothing is heard).
    Load once and reuse: loading the model takes ≈ 0.3 s."""

    def __init__(self) -> None:
        pocketsphinx = require("pocketsphinx", "pocketsphinx", "speech recognition")
        self._decoder = pocketsphinx.Decoder(loglevel="FATAL")
        rate = int(self._decoder.config["samprate"])
        if rate != METRIC_RATE:
            raise ValueError(f"pocketsphinx's model expects {rate} Hz, wavediff expected {METRIC_RATE} Hz.")

    def __call__(self, wav: torch.Tensor | np.ndarray, sr: int) -> str:
        x = resample(as_mono(wav, "audio", sr, 0.1), sr, METRIC_RATE)  # [T] at 16 kHz
        pcm = (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
        return " ".join(_MARKUP.sub(" ", text).split())


def transcribe(wav: torch.Tensor | np.ndarray, sr: int, recognizer: Recognizer | None = None) -> str:
    """The words pocketsphinx hears in a waveform [T]; pass ``recognizer`` to reuse a loaded model."""
    return (recognizer or Recognizer())(wav, sr)
