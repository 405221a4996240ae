"""Audio file I/O (soundfile), resampling (librosa / soxr) and waveform validation."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

import librosa
import numpy as np
import soundfile as sf
import torch

__all__ = ["load_audio", "save_audio", "validate_waveform"]

PathLike = Union[str, "os.PathLike[str]"]

# File extension -> soundfile container format, for writes (reads detect the format from content).
_WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def validate_waveform(wav: torch.Tensor | np.ndarray, name: str = "audio") -> torch.Tensor:
    """Check a waveform [T] or [C, T] (or [B, T]) is non-empty and finite; return it as float32."""
    if isinstance(wav, np.ndarray):
        if not (np.issubdtype(wav.dtype, np.floating) or np.issubdtype(wav.dtype, np.integer)):
            raise ValueError(f"{name} must hold real numbers, got numpy dtype {wav.dtype}.")
        wav = torch.from_numpy(np.ascontiguousarray(wav))
    if not isinstance(wav, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(wav).__name__}.")
    if wav.is_complex() or wav.dtype == torch.bool:
        raise ValueError(f"{name} must hold real numbers, got dtype {wav.dtype}.")
    if wav.dim() not in (1, 2):
        raise ValueError(
            f"{name} must have shape [T] or [C, T], got {wav.dim()} dims {tuple(wav.shape)}."
        )
    if wav.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(wav.shape)}).")
    wav = wav.to(torch.float32)
    if not bool(torch.isfinite(wav).all()):
        raise ValueError(f"{name} contains NaN or Inf values.")
    return wav


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def load_audio(
    path: PathLike, sample_rate: int | None = None, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Read wav/flac/ogg -> (float32 samples [T] if mono else [C, T], sample rate).

    Channels are averaged when ``mono``; with ``sample_rate`` set and different from the file's,
    the audio is resampled with soxr (``librosa.resample(res_type='soxr_hq')``).
    """
    where = f"cannot read audio file '{os.fspath(path)}'"
    # ---- file checks ----
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{where}: the file does not exist.")
    if p.is_dir():
        raise ValueError(f"{where}: it is a directory.")
    if sample_rate is not None and (isinstance(sample_rate, bool) or int(sample_rate) <= 0):
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}.")
    # ---- decode ----
    try:
        data, file_sr = sf.read(os.fspath(p), dtype="float32", always_2d=True)  # [T, C]
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as exc:
        reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
        if reason.startswith("Error opening ") and "': " in reason:
            reason = reason.split("': ", 1)[1]  # drop soundfile's repeat of the path
        raise ValueError(f"{where}: {reason}.") from None
    if data.shape[0] == 0:
        raise ValueError(f"{where}: it contains no audio samples.")
    if not np.isfinite(data).all():
        raise ValueError(f"{where}: it contains NaN or Inf samples.")
    wav = data.T  # [C, T]
    # ---- channels ----
    if mono:
        wav = wav.mean(axis=0)  # [T]
    # ---- resample ----
    out_sr = int(file_sr)
    if sample_rate is not None and int(sample_rate) != out_sr:
        wav = librosa.resample(
            wav, orig_sr=out_sr, target_sr=int(sample_rate), res_type="soxr_hq", axis=-1
        )
        out_sr = int(sample_rate)
    return np.ascontiguousarray(wav, dtype=np.float32), out_sr


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def save_audio(
    path: PathLike,
    wav: torch.Tensor | np.ndarray,
    sample_rate: int,
    subtype: str | None = "PCM_16",
) -> None:
    """Write a waveform [T] or [1, T] to wav/flac/ogg atomically, clipping to [-1, 1].

    The data go to a temporary file in the destination directory, which is then renamed over
    ``path``; on any error (NaN samples, bad format) no file is left behind. Parent directories
    are created. ``subtype=None`` uses soundfile's default for the format (e.g. Vorbis for .ogg).
    """
    target = Path(path)
    # ---- checks (before touching the file system) ----
    samples = validate_waveform(
        wav.detach().cpu() if isinstance(wav, torch.Tensor) else wav, name="waveform to save"
    )
    if samples.dim() == 2:
        if samples.shape[0] != 1:
            raise ValueError(
                f"waveform to save must have shape [T] or [1, T], got {tuple(samples.shape)}."
            )
        samples = samples[0]
    is_int = isinstance(sample_rate, (int, np.integer)) and not isinstance(sample_rate, bool)
    if not is_int or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}.")
    fmt = _WRITE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot write '{target}': unsupported extension {target.suffix!r} "
            f"(use one of {', '.join(_WRITE_FORMATS)})."
        )
    if subtype is not None and not sf.check_format(fmt, subtype):
        raise ValueError(f"cannot write '{target}': subtype {subtype!r} is not valid for {fmt}.")
    data = np.clip(samples.numpy().astype(np.float32, copy=False), -1.0, 1.0)  # [T]
    # ---- atomic write ----
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=os.fspath(target.parent)
    )
    try:
        os.close(fd)
        sf.write(tmp_name, data, int(sample_rate), subtype=subtype, format=fmt)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
        raise
