"""Mel-spectrogram extraction under named conventions ("presets") and mel validation.

Two conventions are supported, because mels produced by other systems follow one or the other:

* ``hifigan`` (default) -- HiFi-GAN's ``meldataset.py``, which FastSpeech2, Tacotron2, Glow-TTS and
  Matcha-TTS emit: 22050 Hz, n_fft/win 1024, hop 256, 80 Slaney mels over 0-8000 Hz, magnitude
  ``sqrt(re^2 + im^2 + 1e-9)``, ``center=False`` after ``(n_fft - hop) / 2`` reflect padding on each
  side (``N // hop`` frames), then ``ln(clamp(x, 1e-5))``.
* ``diffwave`` -- lmnt-com/diffwave ``preprocess.py`` (torchaudio ``MelSpectrogram`` with
  ``normalized=True``, power 1, HTK mels without norm over 20-11025 Hz, ``center=True`` reflect):
  the STFT magnitude divided by ``sqrt(sum(window^2))``, then ``20 log10(clamp(x, 1e-5)) - 20``
  mapped to ``clamp((x + 100) / 100, 0, 1)``. ``1 + N // hop`` frames.

Everything is computed with ``torch.stft``; torchaudio is not a dependency.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PRESETS", "MelConfig", "MelSpectrogram", "validate_mel"]

PRESETS: tuple[str, ...] = ("hifigan", "diffwave")

_MEL_SCALES = ("slaney", "htk")
_MEL_NORMS = ("slaney", None)
_COMPRESSIONS = ("ln", "diffwave")

# lmnt-com/diffwave dB mapping: 20*log10(x) - REF_DB, then clamp((x + RANGE_DB) / RANGE_DB, 0, 1).
_DIFFWAVE_REF_DB = 20.0
_DIFFWAVE_RANGE_DB = 100.0

# Fraction of a convention's value span by which a mel may exceed it before validate_mel rejects it
# (acoustic models predict unclamped values that overshoot a little).
_DEFAULT_RANGE_TOLERANCE = 0.05

_INT_FIELDS = ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels")
_FLOAT_FIELDS = ("fmin", "fmax", "mag_eps", "clamp_min")
_BOOL_FIELDS = ("center", "stft_normalized")


# --------------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MelConfig:
    """Every parameter that defines a mel convention; stored in checkpoints as ``to_dict()``."""

    preset: str
    sample_rate: int
    n_fft: int
    win_length: int
    hop_length: int
    n_mels: int
    fmin: float
    fmax: float
    mel_scale: str  # 'slaney' | 'htk'
    mel_norm: str | None  # 'slaney' | None
    center: bool  # True: torch.stft(center=True, reflect); False: (n_fft - hop) / 2 reflect pad
    stft_normalized: bool  # divide the STFT by sqrt(sum(window^2)) (torchaudio normalized=True)
    mag_eps: float  # magnitude = sqrt(re^2 + im^2 + mag_eps)
    compression: str  # 'ln' | 'diffwave'
    clamp_min: float = 1e-5

    # ---- validation ---------------------------------------------------------------------------
    def __post_init__(self) -> None:
        if not isinstance(self.preset, str) or not self.preset:
            raise ValueError(f"MelConfig.preset must be a non-empty string, got {self.preset!r}.")
        for key in _INT_FIELDS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"MelConfig.{key} must be a positive integer, got {value!r}.")
            object.__setattr__(self, key, int(value))
        for key in _FLOAT_FIELDS:
            value = getattr(self, key)
            is_number = isinstance(value, (int, float, np.floating, np.integer))
            if isinstance(value, bool) or not is_number:
                raise ValueError(f"MelConfig.{key} must be a number, got {value!r}.")
            object.__setattr__(self, key, float(value))
        for key in _BOOL_FIELDS:
            if not isinstance(getattr(self, key), (bool, np.bool_)):
                raise ValueError(f"MelConfig.{key} must be a bool, got {getattr(self, key)!r}.")
            object.__setattr__(self, key, bool(getattr(self, key)))
        if self.mel_scale not in _MEL_SCALES:
            raise ValueError(
                f"MelConfig.mel_scale must be one of {_MEL_SCALES}, got {self.mel_scale!r}."
            )
        if self.mel_norm not in _MEL_NORMS:
            raise ValueError(
                f"MelConfig.mel_norm must be one of {_MEL_NORMS}, got {self.mel_norm!r}."
            )
        if self.compression not in _COMPRESSIONS:
            raise ValueError(
                f"MelConfig.compression must be one of {_COMPRESSIONS}, got {self.compression!r}."
            )
        if self.win_length > self.n_fft:
            raise ValueError(
                f"MelConfig.win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})."
            )
        if self.hop_length > self.n_fft:
            raise ValueError(
                f"MelConfig.hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft})."
            )
        if not 0.0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(
                f"MelConfig needs 0 <= fmin < fmax <= sample_rate / 2, got fmin={self.fmin}, "
                f"fmax={self.fmax}, sample_rate={self.sample_rate}."
            )
        if self.mag_eps < 0.0:
            raise ValueError(f"MelConfig.mag_eps must be >= 0, got {self.mag_eps}.")
        if self.clamp_min <= 0.0:
            raise ValueError(f"MelConfig.clamp_min must be > 0, got {self.clamp_min}.")

    # ---- presets ------------------------------------------------------------------------------
    @classmethod
    def hifigan(cls) -> "MelConfig":
        """HiFi-GAN ``meldataset.py`` convention (default; what most TTS acoustic models emit)."""
        return cls(
            preset="hifigan",
            sample_rate=22050,
            n_fft=1024,
            win_length=1024,
            hop_length=256,
            n_mels=80,
            fmin=0.0,
            fmax=8000.0,
            mel_scale="slaney",
            mel_norm="slaney",
            center=False,
            stft_normalized=False,
            mag_eps=1e-9,
            compression="ln",
            clamp_min=1e-5,
        )

    @classmethod
    def diffwave(cls) -> "MelConfig":
        """lmnt-com/diffwave ``preprocess.py`` convention (torchaudio MelSpectrogram)."""
        return cls(
            preset="diffwave",
            sample_rate=22050,
            n_fft=1024,
            win_length=1024,
            hop_length=256,
            n_mels=80,
            fmin=20.0,
            fmax=11025.0,
            mel_scale="htk",
            mel_norm=None,
            center=True,
            stft_normalized=True,
            mag_eps=0.0,
            compression="diffwave",
            clamp_min=1e-5,
        )

    @classmethod
    def from_preset(cls, name: str) -> "MelConfig":
        """Config of a named preset; an unknown name raises ValueError listing the presets."""
        if name == "hifigan":
            return cls.hifigan()
        if name == "diffwave":
            return cls.diffwave()
        raise ValueError(f"Unknown mel preset {name!r}; available presets: {', '.join(PRESETS)}.")

    # ---- (de)serialisation --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MelConfig":
        """Inverse of ``to_dict``; unknown or missing keys raise ValueError naming them."""
        if not isinstance(d, Mapping):
            raise ValueError(f"MelConfig.from_dict expects a mapping, got {type(d).__name__}.")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"Unknown MelConfig keys: {', '.join(map(str, unknown))}.")
        required = [
            name
            for name, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in d]
        if missing:
            raise ValueError(f"MelConfig dict is missing keys: {', '.join(missing)}.")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    # ---- derived quantities -------------------------------------------------------------------
    @property
    def description(self) -> str:
        """Short human description of the value convention, used in error messages."""
        lo, hi = self.value_range
        if self.compression == "ln":
            return f"natural-log magnitude, range [{lo:.1f}, ~{hi:.1f}]"
        return "20*log10 magnitude - 20 dB, mapped to [0, 1]"

    @cached_property
    def value_range(self) -> tuple[float, float]:
        """(min, max) a valid mel can take for audio within [-1, 1].

        For ``ln`` the max is the bound ``ln(sum(window) * max_row_sum(mel_basis))`` (a full-scale
        signal cannot exceed it); for ``diffwave`` the range is exactly [0, 1].
        """
        if self.compression == "diffwave":
            return (0.0, 1.0)
        window = _hann_window_np(self.win_length)
        peak_magnitude = float(window.sum())
        if self.stft_normalized:
            peak_magnitude /= math.sqrt(float((window**2).sum()))
        peak_mel = peak_magnitude * float(mel_basis_np(self).sum(axis=1).max())
        return (math.log(self.clamp_min), math.log(max(peak_mel, self.clamp_min)))

    @property
    def pad_each_side(self) -> int:
        """Reflect padding added to each side of the waveform before framing."""
        if self.center:
            return self.n_fft // 2
        return (self.n_fft - self.hop_length) // 2

    @property
    def min_samples(self) -> int:
        """Shortest waveform the STFT accepts (reflect padding needs pad < length)."""
        pad = self.pad_each_side
        return max(pad + 1, self.n_fft - 2 * pad, 1)

    def frames_for(self, num_samples: int) -> int:
        """Number of mel frames produced for ``num_samples`` audio samples."""
        if num_samples < self.min_samples:
            raise ValueError(
                f"{num_samples} samples is too short for the '{self.preset}' mel convention; "
                f"need at least {self.min_samples}."
            )
        padded = num_samples + 2 * self.pad_each_side
        return 1 + (padded - self.n_fft) // self.hop_length


# --------------------------------------------------------------------------------------------------
# Filter bank and window
# --------------------------------------------------------------------------------------------------


def _hann_window_np(win_length: int) -> np.ndarray:
    """Periodic Hann window (torch.hann_window / scipy 'hann' with fftbins=True), float64."""
    n = np.arange(win_length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)


def _hz_to_mel(hz: np.ndarray, htk: bool) -> np.ndarray:
    """Hz -> mel on the HTK scale or Slaney's (linear below 1 kHz, logarithmic above), as librosa."""
    hz = np.asarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    linear = hz / f_sp
    return np.where(hz >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep, linear)


def _mel_to_hz(mel: np.ndarray, htk: bool) -> np.ndarray:
    """The inverse of :func:`_hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_basis_np(config: MelConfig) -> np.ndarray:
    """Mel filter bank [n_mels, n_fft // 2 + 1] (float32): ``librosa.filters.mel``'s, computed the same way.

    Triangles between mel-spaced band edges over the FFT bin frequencies, Slaney's area normalisation
    when ``mel_norm == "slaney"``. A port rather than a call: importing ``librosa.filters`` pulls in
    scipy.signal (about a second on a 2-core CPU), which ``wavediff synth`` would pay at every start.
    The tests pin it to librosa's for both presets and other sizes."""
    htk = config.mel_scale == "htk"
    fft_freqs = np.fft.rfftfreq(config.n_fft, 1.0 / config.sample_rate)  # [n_fft // 2 + 1]
    edges = _mel_to_hz(np.linspace(_hz_to_mel(config.fmin, htk), _hz_to_mel(config.fmax, htk), config.n_mels + 2), htk)
    widths = np.diff(edges)  # [n_mels + 1]
    ramps = edges[:, None] - fft_freqs[None, :]  # [n_mels + 2, bins]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)  # librosa builds it in float32
    if config.mel_norm == "slaney":  # as librosa: the float32 bank times float64 norms, rounded to float32
        weights = (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)
    return weights


# --------------------------------------------------------------------------------------------------
# Module
# --------------------------------------------------------------------------------------------------


class MelSpectrogram(torch.nn.Module):
    """Waveform -> mel spectrogram under a ``MelConfig`` convention (torch.stft, differentiable)."""

    mel_basis: torch.Tensor
    window: torch.Tensor

    def __init__(self, config: MelConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else MelConfig.hifigan()
        basis = torch.from_numpy(mel_basis_np(self.config)).float()
        self.register_buffer("mel_basis", basis, persistent=False)  # [n_mels, n_fft // 2 + 1]
        window = torch.hann_window(self.config.win_length, periodic=True)
        self.register_buffer("window", window, persistent=False)  # [win_length]

    def extra_repr(self) -> str:
        return f"preset={self.config.preset!r}, n_mels={self.config.n_mels}"

    # ---- input checks -------------------------------------------------------------------------
    def _check_input(self, wav: torch.Tensor) -> None:
        if not isinstance(wav, torch.Tensor):
            raise ValueError(f"waveform must be a torch.Tensor, got {type(wav).__name__}.")
        if wav.dim() not in (1, 2):
            raise ValueError(
                f"waveform must have shape [T] or [B, T], got {wav.dim()} dims {tuple(wav.shape)}."
            )
        if not wav.is_floating_point():
            raise ValueError(f"waveform must be a floating-point tensor, got dtype {wav.dtype}.")
        if wav.numel() == 0:
            raise ValueError(f"waveform is empty (shape {tuple(wav.shape)}).")
        if wav.shape[-1] < self.config.min_samples:
            raise ValueError(
                f"waveform has {wav.shape[-1]} samples, fewer than the {self.config.min_samples} "
                f"the '{self.config.preset}' mel convention needs."
            )
        if not bool(torch.isfinite(wav).all()):
            raise ValueError("waveform contains NaN or Inf values.")

    # ---- stages -------------------------------------------------------------------------------
    def _prepare(self, wav: torch.Tensor) -> tuple[torch.Tensor, bool, torch.dtype]:
        """Validate; return (x [B, T] in float32/float64, was_1d, output dtype)."""
        self._check_input(wav)
        compute_dtype = torch.float64 if wav.dtype == torch.float64 else torch.float32
        x = wav.to(compute_dtype)
        squeeze = x.dim() == 1
        return (x.unsqueeze(0) if squeeze else x), squeeze, wav.dtype

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """STFT magnitude. wav [T] or [B, T] -> [F, frames] or [B, F, frames]; F = n_fft//2 + 1."""
        x, squeeze, out_dtype = self._prepare(wav)
        spec = self._stft_magnitude(x).to(out_dtype)  # [B, F, frames]
        return spec.squeeze(0) if squeeze else spec

    def _stft_magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T] (float32/64) -> magnitude [B, F, frames] in the same dtype."""
        cfg = self.config
        if x.dtype == self.window.dtype:
            window = self.window.to(x.device)  # [win_length]
        else:  # e.g. float64 input: an exact window, not an upcast float32 one
            window = torch.hann_window(
                cfg.win_length, periodic=True, dtype=x.dtype, device=x.device
            )
        if not cfg.center:
            pad = cfg.pad_each_side
            x = F.pad(x.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)  # [B, T + 2 pad]
        spec = torch.stft(
            x,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=window,
            center=cfg.center,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )  # [B, F, frames] complex
        if cfg.stft_normalized:
            spec = spec / window.pow(2).sum().sqrt()
        if cfg.mag_eps > 0.0:
            ri = torch.view_as_real(spec)  # [B, F, frames, 2]
            return torch.sqrt(ri.pow(2).sum(-1) + cfg.mag_eps)
        return spec.abs()

    def compress(self, mel: torch.Tensor) -> torch.Tensor:
        """Linear mel energies -> the convention's compressed values (same shape)."""
        return compress_mel(mel, self.config)

    def decompress(self, mel: torch.Tensor) -> torch.Tensor:
        """Compressed mel -> linear mel magnitudes (inverse of :meth:`compress` above the floor)."""
        return decompress_mel(mel, self.config)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [T] or [B, T] float -> mel [n_mels, frames] or [B, n_mels, frames], input dtype.

        frames = ``config.frames_for(T)``: ``T // hop`` for hifigan, ``1 + T // hop`` for diffwave.
        """
        x, squeeze, out_dtype = self._prepare(wav)  # x [B, T]
        spec = self._stft_magnitude(x)  # [B, F, frames]
        basis = self.mel_basis.to(device=x.device, dtype=x.dtype)  # [n_mels, F]
        mel = self.compress(torch.matmul(basis, spec))  # [B, n_mels, frames]
        mel = mel.to(out_dtype)
        return mel.squeeze(0) if squeeze else mel


def compress_mel(mel: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Linear mel magnitudes -> ``config``'s compressed values (same shape), clamped as the convention clamps."""
    mel = torch.clamp(mel, min=config.clamp_min)
    if config.compression == "ln":
        return torch.log(mel)
    db = 20.0 * torch.log10(mel) - _DIFFWAVE_REF_DB
    return torch.clamp((db + _DIFFWAVE_RANGE_DB) / _DIFFWAVE_RANGE_DB, 0.0, 1.0)


def decompress_mel(mel: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Compressed mel values of ``config``'s convention -> linear mel magnitudes (same shape)."""
    if config.compression == "ln":
        return torch.exp(mel)
    db = mel * _DIFFWAVE_RANGE_DB - _DIFFWAVE_RANGE_DB + _DIFFWAVE_REF_DB
    return torch.pow(10.0, db / 20.0)


def griffin_lim(
    mel: torch.Tensor,
    config: MelConfig,
    n_iter: int = 32,
    momentum: float = 0.99,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A waveform whose mel under ``config`` approximates ``mel``: no network, no training.

    The linear magnitude is the mel filter bank's pseudo-inverse applied to the decompressed mel
    (clamped at 0); the phase comes from fast Griffin-Lim (Perraudin et al. 2013, the momentum
    variant librosa uses), started from random phases. The frames are placed where ``config``'s
    framing puts them, so the output lines up with the audio the mel came from.

    mel [n_mels, F] or [B, n_mels, F] -> waveform [F * hop] or [B, F * hop] (float32)."""
    if not isinstance(n_iter, int) or n_iter < 0:
        raise ValueError(f"n_iter must be an int >= 0, got {n_iter!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
    mel = torch.as_tensor(mel)
    squeeze = mel.dim() == 2
    if squeeze:
        mel = mel.unsqueeze(0)
    if mel.dim() != 3 or mel.shape[1] != config.n_mels:
        raise ValueError(f"mel must be [{config.n_mels}, frames] or [batch, {config.n_mels}, frames], got shape {tuple(mel.shape)}")
    mel = mel.float()
    device = mel.device
    frames = mel.shape[-1]
    hop, n_fft = config.hop_length, config.n_fft
    length = frames * hop
    basis = torch.from_numpy(mel_basis_np(config)).to(device=device, dtype=torch.float64)
    window = torch.hann_window(config.win_length, periodic=True, device=device)
    inverse = torch.linalg.pinv(basis).float()  # [n_fft // 2 + 1, n_mels]
    mag = (inverse @ decompress_mel(mel, config)).clamp(min=0.0)  # [B, n_fft // 2 + 1, F]
    if config.stft_normalized:
        mag = mag * window.pow(2).sum().sqrt()
    # torch.stft(center=True) of `length` samples has 1 + length // hop frames centred at k * hop;
    # the config's frame k is centred at k * hop + offset
    offset = n_fft // 2 - config.pad_each_side
    need = 1 + length // hop
    if mag.shape[-1] < need:
        mag = torch.cat([mag, mag[..., -1:].expand(-1, -1, need - mag.shape[-1])], dim=-1)
    mag = mag[..., :need]

    def istft(spec: torch.Tensor) -> torch.Tensor:
        return torch.istft(spec, n_fft, hop, config.win_length, window, center=True, length=length)

    def stft(wav: torch.Tensor) -> torch.Tensor:
        return torch.stft(wav, n_fft, hop, config.win_length, window, center=True, pad_mode="reflect", return_complex=True)

    phase = torch.rand(mag.shape, generator=generator, device=device) * (2 * math.pi)
    angles = torch.polar(torch.ones_like(mag), phase)
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = stft(istft(mag * angles))
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles = angles / angles.abs().clamp(min=1e-16)
        previous = rebuilt
    wav = istft(mag * angles)
    if offset:
        wav = F.pad(wav, (offset, 0))[..., :length]
    return wav[0] if squeeze else wav


def check_iterations(value: Any, name: str) -> int:
    """``value`` if it is an int >= 0 (not a bool); else a ValueError that names ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def match_mel(
    wav: torch.Tensor,
    mel: torch.Tensor,
    config: MelConfig,
    n_iter: int = 16,
    chunk_frames: int | None = 2048,
) -> torch.Tensor:
    """Rescale ``wav``'s spectrum so that its mel under ``config`` becomes ``mel``; keep its phase
    and its detail within each mel band.

    Each iteration takes the STFT of the waveform (``config``'s window and hop, frames placed where
    the convention puts them), computes its mel, and multiplies every STFT bin by the ratio of the
    target mel to that mel, spread from the bands to the bins through the filter bank (each bin's
    weighted mean of its bands' ratios; bins below ``fmin`` or above ``fmax`` take the nearest band's),
    then resynthesises by overlap-add. A vocoder's output keeps its harmonics and phase and loses
    what its mel does not have: noise in pauses and between formants, a wrong loudness. Values at the
    convention's floor (or ceiling) count as "at most" (or "at least") that value. Griffin-Lim
    estimates phase for a magnitude; this corrects the magnitude of a waveform that already has one.

    wav [L] or [B, L]; mel [n_mels, F] or [B, n_mels, F] in ``config``'s convention (frames past the
    waveform's are ignored; the waveform's frames past the mel's are left alone); float32 out, same
    shape as ``wav``. Each output sample depends on the input within ``n_iter · n_fft / hop`` frames,
    so long inputs are processed in chunks of ``chunk_frames`` frames with that much context each
    side (None: in one piece), which changes the result only by rounding."""
    check_iterations(n_iter, "n_iter")
    if chunk_frames is not None and (isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1):
        raise ValueError(f"chunk_frames must be a positive int or None, got {chunk_frames!r}")
    wav, mel = torch.as_tensor(wav), torch.as_tensor(mel)
    squeeze = wav.dim() == 1
    if squeeze:
        wav, mel = wav.unsqueeze(0), (mel.unsqueeze(0) if mel.dim() == 2 else mel)
    if wav.dim() != 2 or mel.dim() != 3 or mel.shape[1] != config.n_mels or mel.shape[0] != wav.shape[0]:
        raise ValueError(
            f"match_mel needs wav [L] with mel [{config.n_mels}, F], or wav [B, L] with mel [B, {config.n_mels}, F]; "
            f"got {tuple(wav.shape)} and {tuple(mel.shape)}"
        )
    wav, mel = wav.float(), mel.float().to(wav.device)
    if n_iter == 0:
        return wav[0] if squeeze else wav
    if wav.shape[-1] < config.min_samples:
        raise ValueError(f"match_mel needs at least {config.min_samples} samples, got {wav.shape[-1]}")
    hop = config.hop_length
    frames = min(mel.shape[-1], config.frames_for(wav.shape[-1]))
    context = n_iter * math.ceil(config.n_fft / hop) + 1
    bank = _MatchBank(config, wav.device)
    if chunk_frames is None or frames <= chunk_frames + 2 * context:
        out = _match_mel_piece(wav, mel[..., :frames], bank, n_iter)
    else:
        pieces = []
        for start in range(0, frames, chunk_frames):
            stop = min(start + chunk_frames, frames)
            lo, hi = max(start - context, 0), min(stop + context, frames)
            s_lo = lo * hop
            s_hi = wav.shape[-1] if hi == frames else hi * hop
            piece = _match_mel_piece(wav[:, s_lo:s_hi], mel[..., lo:hi], bank, n_iter)
            a = (start - lo) * hop
            b = piece.shape[-1] if stop == frames else (stop - lo) * hop
            pieces.append(piece[:, a:b])
        out = torch.cat(pieces, dim=-1)
    return out[0] if squeeze else out


class _MatchBank:
    """What every piece of one :func:`match_mel` call shares: the filter bank, the weight with which
    the bands see each bin, the first and last bins they see, and the analysis/synthesis window."""

    def __init__(self, config: MelConfig, device: torch.device):
        self.config = config
        self.basis = torch.from_numpy(mel_basis_np(config)).to(device=device, dtype=torch.float32)  # [M, K]
        self.weight = self.basis.sum(0)  # [K]
        seen = (self.weight > self.weight.max() * 1e-3).nonzero().flatten()
        self.first, self.last = int(seen[0]), int(seen[-1])
        self.window = torch.zeros(config.n_fft, device=device)
        lo = (config.n_fft - config.win_length) // 2  # torch.stft centres a shorter window in the frame
        self.window[lo : lo + config.win_length] = torch.hann_window(config.win_length, periodic=True, device=device)
        self.scale = self.window.pow(2).sum().sqrt() if config.stft_normalized else 1.0


def _match_mel_piece(wav: torch.Tensor, mel: torch.Tensor, bank: _MatchBank, n_iter: int) -> torch.Tensor:
    """match_mel on one piece: wav [B, L], mel [B, n_mels, F] with F <= the piece's frame count.

    The frames are the convention's own (its reflect padding, then frames every hop), so that the
    mel measured here is exactly :class:`MelSpectrogram`'s, edges included; resynthesis is the
    weighted overlap-add that inverts such an STFT."""
    config, basis, weight, window = bank.config, bank.basis, bank.weight, bank.window
    first, last, scale = bank.first, bank.last, bank.scale
    length = wav.shape[-1]
    n_fft, hop, frames, pad = config.n_fft, config.hop_length, mel.shape[-1], config.pad_each_side
    padded = length + 2 * pad
    count = 1 + (padded - n_fft) // hop  # frames of the padded signal, as torch.stft(center=False) makes them

    def overlap_add(chunks: torch.Tensor) -> torch.Tensor:  # [B, n_fft, count] -> [B, padded]
        out = F.fold(chunks, output_size=(1, padded), kernel_size=(1, n_fft), stride=(1, hop))
        return out.reshape(chunks.shape[0], padded)

    envelope = overlap_add(window.pow(2)[None, :, None].expand(1, n_fft, count))[0, pad : pad + length]  # > 0 inside
    target = decompress_mel(mel, config)  # [B, M, F], at the convention's floor where it is there
    x = wav
    for _ in range(n_iter):
        padded_x = F.pad(x.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(padded_x, n_fft, hop, n_fft, window, center=False, return_complex=True)  # [B, K, count]
        mag = torch.sqrt(spec.real.square() + spec.imag.square() + config.mag_eps) / scale
        current = decompress_mel(compress_mel(basis @ mag[..., :frames], config), config)  # clamped as the convention does
        ratio = basis.T @ (target / current) / weight.clamp(min=1e-12)[:, None]  # [B, K, F]
        ratio[:, :first] = ratio[:, first : first + 1]
        ratio[:, last + 1 :] = ratio[:, last : last + 1]
        ratio = F.pad(ratio, (0, count - frames), value=1.0)
        rebuilt = torch.fft.irfft(spec * ratio, n=n_fft, dim=1) * window[:, None]  # [B, n_fft, count]
        x = overlap_add(rebuilt)[:, pad : pad + length] / envelope
    return x


# --------------------------------------------------------------------------------------------------
# Validation of mels coming from elsewhere
# --------------------------------------------------------------------------------------------------


def _other_convention(config: MelConfig) -> MelConfig:
    """The preset whose value compression differs from ``config``'s."""
    for name in PRESETS:
        candidate = MelConfig.from_preset(name)
        if candidate.compression != config.compression:
            return candidate
    raise AssertionError("every compression has a preset")  # pragma: no cover


def _within(vmin: float, vmax: float, config: MelConfig, tolerance: float) -> bool:
    lo, hi = config.value_range
    slack = tolerance * (hi - lo)
    return vmin >= lo - slack and vmax <= hi + slack


def _looks_like(mel: torch.Tensor, vmin: float, vmax: float, config: MelConfig) -> bool:
    """Heuristic: do these values plausibly follow ``config``'s compression?"""
    if config.compression == "diffwave":
        return vmin >= 0.0 and vmax <= 1.0
    # ln mel of real audio: mostly negative, reaching down towards ln(clamp_min).
    in_range = _within(vmin, vmax, config, _DEFAULT_RANGE_TOLERANCE)
    return in_range and vmin < 0.0 and float(mel.median()) < 0.0


def validate_mel(
    mel: torch.Tensor | np.ndarray,
    config: MelConfig,
    name: str = "mel",
    *,
    sample_rate: int | None = None,
    tolerance: float = _DEFAULT_RANGE_TOLERANCE,
) -> torch.Tensor:
    """Check a mel from any source against ``config`` and return it as [B, n_mels, T] float32.

    Accepts [n_mels, T], [B, n_mels, T], or [T, n_mels] (transposed when unambiguous). Values may
    exceed ``config.value_range`` by ``tolerance`` times its span. ``sample_rate``, when given, must
    equal the config's. Every problem raises ValueError with one sentence naming the convention.
    """
    cfg = config
    # ---- type ----
    if isinstance(mel, np.ndarray):
        if not (np.issubdtype(mel.dtype, np.floating) or np.issubdtype(mel.dtype, np.integer)):
            raise ValueError(f"{name} must hold real numbers, got numpy dtype {mel.dtype}.")
        mel = torch.from_numpy(np.ascontiguousarray(mel))
    if not isinstance(mel, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(mel).__name__}.")
    if mel.is_complex() or mel.dtype == torch.bool:
        raise ValueError(f"{name} must hold real numbers, got dtype {mel.dtype}.")
    if sample_rate is not None and int(sample_rate) != cfg.sample_rate:
        raise ValueError(
            f"{name} was computed at {sample_rate} Hz, but the '{cfg.preset}' mel convention of "
            f"this model uses {cfg.sample_rate} Hz."
        )
    # ---- shape ----
    if mel.dim() == 2:
        if mel.shape[1] == cfg.n_mels and mel.shape[0] != cfg.n_mels:
            mel = mel.transpose(0, 1)  # [T, n_mels] -> [n_mels, T]
        mel = mel.unsqueeze(0)  # [1, n_mels, T]
    elif mel.dim() != 3:
        raise ValueError(
            f"{name} must have shape [n_mels, T] or [B, n_mels, T], got {mel.dim()} dims "
            f"{tuple(mel.shape)}."
        )
    if mel.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(mel.shape)}).")
    if mel.shape[1] != cfg.n_mels:
        hint = ""
        if mel.shape[2] == cfg.n_mels:
            hint = " (it looks like [B, T, n_mels]; transpose the last two dims)"
        raise ValueError(
            f"{name} has {mel.shape[1]} mel bins but the '{cfg.preset}' convention expects "
            f"{cfg.n_mels}{hint}."
        )
    mel = mel.to(torch.float32).contiguous()
    # ---- values ----
    if not bool(torch.isfinite(mel).all()):
        raise ValueError(f"{name} contains NaN or Inf values.")
    vmin, vmax = float(mel.min()), float(mel.max())
    other = _other_convention(cfg)
    looks_other = _looks_like(mel, vmin, vmax, other)
    mismatch = (
        f"{name} values lie in [{vmin:.3g}, {vmax:.3g}], which looks like the '{other.preset}' "
        f"convention ({other.description}), but this model expects '{cfg.preset}' "
        f"({cfg.description})."
    )
    if not _within(vmin, vmax, cfg, tolerance):
        if looks_other:
            raise ValueError(mismatch)
        lo, hi = cfg.value_range
        raise ValueError(
            f"{name} values lie in [{vmin:.3g}, {vmax:.3g}], outside the range "
            f"[{lo:.3g}, {hi:.3g}] of the '{cfg.preset}' convention ({cfg.description})."
        )
    # An ln-mel of real audio is mostly negative; values all within [0, 1] are a diffwave-style mel.
    if cfg.compression == "ln" and other.compression == "diffwave" and looks_other:
        raise ValueError(mismatch)
    return mel
