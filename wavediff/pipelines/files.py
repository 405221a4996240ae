"""File-level vocoding used by ``wavediff vocode``: .wav (copy-synthesis) or .npy mel in, .wav out."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wavediff.audio import MelConfig, load_audio, save_audio

from .vocoder import Vocoder

__all__ = ["INPUT_SUFFIXES", "load_vocoder", "read_mel_input", "vocode_file", "vocode_dir", "DEFAULT_VOCODER_DIR"]

INPUT_SUFFIXES = (".wav", ".flac", ".ogg", ".npy")
DEFAULT_VOCODER_DIR = Path(__file__).resolve().parents[1] / "assets" / "vocoder"


def load_vocoder(checkpoint: str | os.PathLike | None, device: str | None = None) -> Vocoder:
    """The vocoder at ``checkpoint``, or the bundled default voice's when None."""
    if checkpoint is None:
        if not (DEFAULT_VOCODER_DIR / "config.json").is_file():
            raise ValueError("no default vocoder is bundled with this version of wavediff; pass --checkpoint DIR")
        checkpoint = DEFAULT_VOCODER_DIR
    if not Path(checkpoint).is_dir():
        raise ValueError(f"checkpoint directory {str(checkpoint)!r} does not exist")
    return Vocoder.from_pretrained(checkpoint, device=device)


def read_mel_input(vocoder: Vocoder, path: str | os.PathLike, mel_preset: str | None = None) -> torch.Tensor:
    """A mel [n_mels, F] for ``path``: computed from audio (resampled to the model's rate) or read from .npy.

    A .npy mel may be [n_mels, F] or [F, n_mels]; ``mel_preset`` declares its convention, which must
    be the model's (mels of different conventions are not interchangeable)."""
    path = Path(path)
    model_cfg = vocoder.config.mel
    if mel_preset is not None and mel_preset != model_cfg.preset:
        other = MelConfig.from_preset(mel_preset)
        raise ValueError(
            f"{path.name}: the input is declared '{other.preset}' ({other.description}) but this vocoder "
            f"expects '{model_cfg.preset}' ({model_cfg.description})"
        )
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise ValueError(f"{path.name}: not a readable .npy array ({e})") from None
        if arr.ndim != 2:
            raise ValueError(f"{path.name}: a mel must be 2-D, [{model_cfg.n_mels}, frames] or [frames, {model_cfg.n_mels}]; got shape {arr.shape}")
        from wavediff.audio import validate_mel

        return validate_mel(torch.from_numpy(np.asarray(arr, dtype=np.float32)), model_cfg, name=path.name)[0]
    if suffix in (".wav", ".flac", ".ogg"):
        wav, _ = load_audio(path, sample_rate=vocoder.sample_rate)
        hop = vocoder.hop_length
        n = (len(wav) // hop) * hop
        if n == 0:
            raise ValueError(f"{path.name}: audio shorter than one frame")
        mel = vocoder.mel(torch.from_numpy(wav[:n]))
        return mel[..., : n // hop]
    raise ValueError(f"{path.name}: unsupported input; expected one of {', '.join(INPUT_SUFFIXES)}")


def vocode_file(vocoder: Vocoder, input_path, output_path, mel_preset: str | None = None, **options) -> Path:
    """Vocode one file and write ``output_path`` atomically; returns the path."""
    mel = read_mel_input(vocoder, input_path, mel_preset)
    wav = vocoder.vocode(mel, **options)
    save_audio(output_path, wav.cpu(), vocoder.sample_rate)
    return Path(output_path)


def vocode_dir(vocoder: Vocoder, in_dir, out_dir, mel_preset: str | None = None, progress: bool = True, **options):
    """Vocode every supported file of ``in_dir`` into ``out_dir/<stem>.wav``.

    Returns (written paths, failures as (name, reason)); a bad file never stops the others."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise ValueError(f"input directory {str(in_dir)!r} does not exist")
    files = sorted(p for p in in_dir.iterdir() if p.suffix.lower() in INPUT_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no {', '.join(INPUT_SUFFIXES)} files in {in_dir}")
    written, failed = [], []
    seed = options.pop("seed", None)
    for i, f in enumerate(tqdm(files, desc="vocode", unit="file", disable=not progress)):
        try:
            opts = dict(options)
            if seed is not None:
                opts["seed"] = seed + i
            written.append(vocode_file(vocoder, f, out_dir / f"{f.stem}.wav", mel_preset, **opts))
        except ValueError as e:
            failed.append((f.name, str(e)))
    return written, failed
