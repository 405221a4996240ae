"""Objective speech-quality metrics: waveforms in (numpy or torch, [T] or [1, T]), floats out.

Intrusive metrics compare a generated signal with its reference recording:

* :func:`mrstft` - multi-resolution STFT distance (:func:`wavediff.eval.spectral.mrstft_distance`);
  0 for identical signals. Sample-aligned: the longer signal is cropped.
* :func:`mcd` - mel-cepstral distortion in dB, with DTW alignment when the lengths differ.
* :func:`pesq_wb` - wide-band PESQ (ITU-T P.862.2, PyPI ``pesq``) at 16 kHz; -0.5 … 4.64.
* :func:`stoi` - short-time objective intelligibility (PyPI ``pystoi``); 0 … 1.
* :func:`f0_rmse_and_vuv` - F0 error in cents (and Hz) over frames voiced in both signals, and the
  voicing-decision error rate (librosa's pYIN), with DTW alignment when the lengths differ.

Non-intrusive: :func:`dnsmos` (Microsoft's DNSMOS P.808 and P.835 SIG/BAK/OVRL models, bundled with
PyPI ``speechmos``; run with onnxruntime). Speed: :func:`real_time_factor`.
Speech recognition and word error rate live in :mod:`wavediff.eval.asr`.

Metrics that are defined at 16 kHz (PESQ, DNSMOS, ASR) resample inside (soxr). Bad input (empty,
NaN/Inf, multi-channel, too short) raises ``ValueError``; a missing optional package raises
``ImportError`` naming ``pip install 'wavediff[eval]'``.
"""
from __future__ import annotations

import importlib
import math
import time
import warnings
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch

from wavediff.audio.io import validate_waveform
from wavediff.eval.spectral import mrstft_distance

__all__ = [
    "INSTALL_HINT",
    "DNSMOS_KEYS",
    "require",
    "as_mono",
    "resample",
    "lengths_match",
    "analysis_frames",
    "mel_cepstrum",
    "align_frames",
    "mrstft",
    "mcd",
    "pesq_wb",
    "stoi",
    "f0_rmse_and_vuv",
    "DnsMos",
    "dnsmos",
    "real_time_factor",
    "Stopwatch",
]

INSTALL_HINT = "pip install 'wavediff[eval]'"
DNSMOS_KEYS = ("p808", "sig", "bak", "ovrl")
METRIC_RATE = 16000  # PESQ wide band, DNSMOS and pocketsphinx work at 16 kHz
LENGTH_TOLERANCE = 0.02  # relative length difference still treated as "the same length" ...
LENGTH_TOLERANCE_S = 0.05  # ... or this many seconds, whichever is larger
_MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)  # dB per unit of cepstral distance
_LOG_FLOOR = 1e-5  # amplitude floor before the log (as the hifigan mel preset)


# ---------------------------------------------------------------------------------- helpers
def require(module: str, package: str, purpose: str) -> Any:
    """Import an optional dependency, or raise ImportError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{purpose} needs the optional package '{package}' ({exc}); install it with: {INSTALL_HINT}"
        ) from None


def _check_rate(sr: int) -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sample rate must be a positive integer, got {sr!r}.")
    return int(sr)


def as_mono(wav: torch.Tensor | np.ndarray, name: str = "audio", sr: int | None = None,
            min_seconds: float = 0.0) -> np.ndarray:
    """Validate a waveform [T] or [1, T] and return it as float32 numpy [T].

    Empty, NaN/Inf, multi-channel or (with ``sr``) shorter-than-``min_seconds`` input → ValueError."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu()
    x = validate_waveform(wav, name)  # [T] or [C, T], float32, finite, non-empty
    if x.dim() == 2:
        if x.shape[0] != 1:
            raise ValueError(f"{name} must be mono, shaped [T] or [1, T]; got {tuple(x.shape)}.")
        x = x[0]
    if sr is not None and x.numel() < min_seconds * _check_rate(sr):
        raise ValueError(
            f"{name} is too short: {x.numel() / sr:.3f} s, this metric needs at least {min_seconds:g} s."
        )
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


def resample(x: np.ndarray, sr: int, target: int) -> np.ndarray:
    """Resample float32 [T] from ``sr`` to ``target`` Hz (soxr, as :func:`wavediff.audio.load_audio`)."""
    if _check_rate(sr) == _check_rate(target):
        return x
    return librosa.resample(x, orig_sr=sr, target_sr=target, res_type="soxr_hq").astype(np.float32)


def lengths_match(n_ref: int, n_gen: int, sr: int) -> bool:
    """True when two signals are "the same length" (copy-synthesis): within 2 % or 50 ms."""
    tolerance = max(LENGTH_TOLERANCE * n_ref, LENGTH_TOLERANCE_S * sr)
    return abs(n_ref - n_gen) <= tolerance


def analysis_frames(sr: int) -> tuple[int, int]:
    """(n_fft, hop) for frame-level metrics: a ≈46 ms power-of-two window, hop a quarter of it
    (1024/256 at 16-24 kHz, 2048/512 at 44.1-48 kHz)."""
    n_fft = 2 ** int(round(math.log2(0.0464 * _check_rate(sr))))
    return n_fft, n_fft // 4


# ---------------------------------------------------------------------------------- spectral
def mrstft(reference: torch.Tensor | np.ndarray, generated: torch.Tensor | np.ndarray) -> float:
    """Multi-resolution STFT distance (≥ 0, 0 when identical); the longer signal is cropped."""
    ref = torch.from_numpy(as_mono(reference, "reference"))
    gen = torch.from_numpy(as_mono(generated, "generated"))
    return float(mrstft_distance(ref, gen)[0])


def mel_cepstrum(wav: torch.Tensor | np.ndarray, sr: int, order: int = 24, n_mels: int = 80) -> np.ndarray:
    """Mel-frequency cepstrum [frames, order + 1] (c0 … c_order) of a waveform [T].

    c is the real cepstrum of the natural-log mel amplitude spectrum A_m (Slaney mel filters,
    fmin 0, fmax sr/2, :func:`analysis_frames` STFT, centred): with M mel bands,
    ln A_m ≈ c0 + 2 Σ_{n≥1} c_n cos(π n (m + ½) / M), i.e. c = DCT-II(ln A) / (2M)."""
    import scipy.fft

    x = as_mono(wav, "audio")
    n_fft, hop = analysis_frames(sr)
    if not 1 <= order < n_mels:
        raise ValueError(f"order must be in [1, {n_mels - 1}], got {order}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa's "empty filters" note at low rates
        mel = librosa.feature.melspectrogram(
            y=x, sr=sr, n_fft=n_fft, hop_length=hop, power=1.0, n_mels=n_mels, fmin=0.0, fmax=sr / 2,
        )  # [n_mels, frames]
    log_mel = np.log(np.maximum(mel, _LOG_FLOOR))
    cep = scipy.fft.dct(log_mel, type=2, axis=0, norm=None) / (2 * n_mels)  # [n_mels, frames]
    return np.ascontiguousarray(cep[: order + 1].T)  # [frames, order + 1]


def align_frames(ref_feats: np.ndarray, gen_feats: np.ndarray, dtw: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of frame indices (ref_idx [P], gen_idx [P]) that compare the two sequences [F, D].

    ``dtw=False``: frame k with frame k over the shorter length. ``dtw=True``: the Euclidean DTW
    path (librosa.sequence.dtw, steps (1,1), (1,0), (0,1))."""
    if not dtw:
        n = min(len(ref_feats), len(gen_feats))
        idx = np.arange(n)
        return idx, idx
    _, path = librosa.sequence.dtw(X=ref_feats.T, Y=gen_feats.T, metric="euclidean")  # path end → start
    path = path[::-1]
    return path[:, 0], path[:, 1]


def _want_dtw(dtw: bool | None, n_ref: int, n_gen: int, sr: int) -> bool:
    return (not lengths_match(n_ref, n_gen, sr)) if dtw is None else bool(dtw)


def mcd(reference: torch.Tensor | np.ndarray, generated: torch.Tensor | np.ndarray, sr: int,
        order: int = 24, dtw: bool | None = None) -> float:
    """Mel-cepstral distortion in dB (0 when identical), averaged over aligned frames:

        MCD = 10 / ln 10 · √(2 Σ_{n=1..order} (c_n − ĉ_n)²)    (c0, the energy, excluded)

    with c from :func:`mel_cepstrum`. Frames are paired by DTW on the cepstra when ``dtw`` is True,
    or when it is None (default) and the lengths differ by more than 2 % / 50 ms; else frame by frame.
    The numbers are in the range of the usual SPTK-based MCD but not identical to it (mel filter
    bank cepstrum instead of an all-pass warped mel-cepstrum)."""
    sr = _check_rate(sr)
    ref, gen = as_mono(reference, "reference", sr, 0.05), as_mono(generated, "generated", sr, 0.05)
    c_ref, c_gen = mel_cepstrum(ref, sr, order)[:, 1:], mel_cepstrum(gen, sr, order)[:, 1:]  # [F, order]
    i, j = align_frames(c_ref, c_gen, _want_dtw(dtw, len(ref), len(gen), sr))
    dist = np.sqrt(np.sum((c_ref[i] - c_gen[j]) ** 2, axis=1))  # [P]
    return float(_MCD_SCALE * dist.mean())


# ---------------------------------------------------------------------------------- perceptual
def pesq_wb(reference: torch.Tensor | np.ndarray, generated: torch.Tensor | np.ndarray, sr: int) -> float:
    """Wide-band PESQ MOS-LQO (ITU-T P.862.2), -0.5 … 4.64 (4.64 when identical); both signals are
    resampled to 16 kHz and cropped to the shorter. Needs ≥ 0.25 s and speech in the reference."""
    sr = _check_rate(sr)
    pesq_mod = require("pesq", "pesq", "PESQ")
    ref = resample(as_mono(reference, "reference", sr, 0.25), sr, METRIC_RATE)
    gen = resample(as_mono(generated, "generated", sr, 0.25), sr, METRIC_RATE)
    n = min(len(ref), len(gen))
    try:
        return float(pesq_mod.pesq(METRIC_RATE, ref[:n].astype(np.float64), gen[:n].astype(np.float64), "wb"))
    except pesq_mod.PesqError as exc:  # NoUtterancesError, BufferTooShortError
        msg = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"PESQ cannot score this pair: {msg}.") from None


def stoi(reference: torch.Tensor | np.ndarray, generated: torch.Tensor | np.ndarray, sr: int,
         extended: bool = False) -> float:
    """STOI (or ESTOI with ``extended``), about 0 … 1 (1 when identical); cropped to the shorter.
    Needs at least 30 non-silent 25.6 ms frames (≈ 0.4 s of speech), else ValueError."""
    sr = _check_rate(sr)
    pystoi = require("pystoi", "pystoi", "STOI")
    ref, gen = as_mono(reference, "reference", sr, 0.4), as_mono(generated, "generated", sr, 0.4)
    n = min(len(ref), len(gen))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(pystoi.stoi(ref[:n].astype(np.float64), gen[:n].astype(np.float64), sr, extended=extended))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        raise ValueError("STOI cannot score this pair: fewer than 30 non-silent frames (≈ 0.4 s of speech).")
    return value


def f0_rmse_and_vuv(reference: torch.Tensor | np.ndarray, generated: torch.Tensor | np.ndarray, sr: int,
                    fmin: float = 50.0, fmax: float = 550.0, dtw: bool | None = None) -> dict[str, float]:
    """F0 and voicing agreement from pYIN (librosa.pyin, :func:`analysis_frames` frames).

    Returns ``f0_rmse_cents`` = √mean(1200·log2(f̂/f))² and ``f0_rmse_hz`` = √mean(f̂ − f)² over frame
    pairs voiced in both signals (NaN when there is none), ``vuv_error`` = the fraction of frame pairs
    whose voiced/unvoiced decisions differ, and ``voiced_frames`` (the count of pairs voiced in both).
    Frames are paired as in :func:`mcd` (DTW on mel-cepstra when the lengths differ)."""
    sr = _check_rate(sr)
    if not 0 < fmin < fmax < sr / 2:
        raise ValueError(f"need 0 < fmin < fmax < sr/2, got fmin={fmin}, fmax={fmax}, sr={sr}.")
    ref, gen = as_mono(reference, "reference", sr, 0.1), as_mono(generated, "generated", sr, 0.1)
    n_fft, hop = analysis_frames(sr)

    def track(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f0, voiced, _ = librosa.pyin(x, fmin=fmin, fmax=fmax, sr=sr, frame_length=n_fft, hop_length=hop)
        return np.nan_to_num(f0, nan=0.0), voiced.astype(bool)  # [F], [F]

    (f_ref, v_ref), (f_gen, v_gen) = track(ref), track(gen)
    use_dtw = _want_dtw(dtw, len(ref), len(gen), sr)
    if use_dtw:
        i, j = align_frames(mel_cepstrum(ref, sr)[:, 1:], mel_cepstrum(gen, sr)[:, 1:], True)
        i, j = np.minimum(i, len(f_ref) - 1), np.minimum(j, len(f_gen) - 1)
    else:
        i, j = align_frames(f_ref[:, None], f_gen[:, None], False)
    both = v_ref[i] & v_gen[j]  # [P]
    vuv = float(np.mean(v_ref[i] != v_gen[j]))
    if not both.any():
        return {"f0_rmse_cents": float("nan"), "f0_rmse_hz": float("nan"), "vuv_error": vuv, "voiced_frames": 0}
    fr, fg = f_ref[i][both], f_gen[j][both]
    cents = 1200.0 * np.log2(fg / fr)
    return {
        "f0_rmse_cents": float(np.sqrt(np.mean(cents**2))),
        "f0_rmse_hz": float(np.sqrt(np.mean((fg - fr) ** 2))),
        "vuv_error": vuv,
        "voiced_frames": int(both.sum()),
    }


# ---------------------------------------------------------------------------------- non-intrusive
class DnsMos:
    """DNSMOS P.808 and P.835 (SIG, BAK, OVRL) from the ONNX models bundled with PyPI ``speechmos``.

    Load once, call per clip: ``DnsMos()(wav, sr) -> {"p808", "sig", "bak", "ovrl"}`` (MOS, 1 … 5).
    Input is resampled to 16 kHz and clipped to [-1, 1]; clips shorter than the model's 9.01 s window
    are repeated to fill it (as speechmos does); scores are averaged over 1 s hops."""

    def __init__(self) -> None:
        require("onnxruntime", "onnxruntime", "DNSMOS")
        module = require("speechmos.dnsmos", "speechmos", "DNSMOS")
        models = Path(module.__file__).resolve().parent / "dnsmos_models"
        self._model = module.DNSMOS(str(models / "sig_bak_ovr.onnx"), str(models / "model_v8.onnx"))

    def __call__(self, wav: torch.Tensor | np.ndarray, sr: int) -> dict[str, float]:
        sr = _check_rate(sr)
        x = np.clip(resample(as_mono(wav, "audio", sr, 0.5), sr, METRIC_RATE), -1.0, 1.0)
        if not np.any(x):
            raise ValueError("DNSMOS cannot score digital silence (all samples are zero).")
        out = self._model(x, METRIC_RATE, False)
        return {key: float(out[f"{key}_mos"]) for key in DNSMOS_KEYS}


def dnsmos(wav: torch.Tensor | np.ndarray, sr: int, model: DnsMos | None = None) -> dict[str, float]:
    """DNSMOS scores {"p808", "sig", "bak", "ovrl"} of one clip; pass ``model`` to reuse loaded models."""
    return (model or DnsMos())(wav, sr)


# ---------------------------------------------------------------------------------- speed
def real_time_factor(compute_seconds: float, audio_seconds: float) -> float:
    """Seconds of compute per second of audio produced (< 1: faster than real time)."""
    if not compute_seconds >= 0 or not math.isfinite(compute_seconds):
        raise ValueError(f"compute time must be a finite number ≥ 0 seconds, got {compute_seconds!r}.")
    if not audio_seconds > 0 or not math.isfinite(audio_seconds):
        raise ValueError(f"audio duration must be a finite number > 0 seconds, got {audio_seconds!r}.")
    return float(compute_seconds) / float(audio_seconds)


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (wall clock, perf_counter); on CUDA call
    ``torch.cuda.synchronize()`` inside the block before it ends."""

    def __enter__(self) -> "Stopwatch":
        self.seconds = 0.0
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start

    def rtf(self, audio_seconds: float) -> float:
        """The real-time factor of the timed block for ``audio_seconds`` of output."""
        return real_time_factor(self.seconds, audio_seconds)
