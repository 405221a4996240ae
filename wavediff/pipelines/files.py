"""File-level vocoding used by ``wavediff vocode``: .wav (copy-synthesis) or .npy mel in, .wav out."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wavediff.audio import MelConfig, load_audio, save_audio

from .vocoder import Vocoder

__all__ = [
    "INPUT_SUFFIXES", "DEFAULT_VOCODER_DIR", "DEFAULT_ACOUSTIC_DIR", "bundled_vocoder_dir", "bundled_acoustic_dir",
    "load_vocoder", "load_tts", "read_mel_input",
    "vocode_file", "vocode_dir", "read_text_lines", "synthesize_to_file", "acoustic_nll", "atomic_write_text",
    "write_aligned_mels",
]

INPUT_SUFFIXES = (".wav", ".flac", ".ogg", ".npy")
ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_VOCODER_DIR = ASSETS / "vocoder"
DEFAULT_ACOUSTIC_DIR = ASSETS / "acoustic"


def bundled_vocoder_dir() -> Path:
    """The default voice's vocoder folder inside the package (a clear error when it is missing)."""
    if not (DEFAULT_VOCODER_DIR / "config.json").is_file():
        raise ValueError("no default vocoder is bundled with this installation of wavediff; pass --checkpoint DIR")
    return DEFAULT_VOCODER_DIR


def bundled_acoustic_dir() -> Path:
    """The default voice's acoustic-model folder inside the package (a clear error when it is missing)."""
    if not (DEFAULT_ACOUSTIC_DIR / "config.json").is_file():
        raise ValueError(
            "no default voice is bundled with this installation of wavediff; pass --checkpoint DIR "
            "(an acoustic model) and --vocoder DIR (a vocoder)"
        )
    return DEFAULT_ACOUSTIC_DIR


def load_vocoder(checkpoint: str | os.PathLike | None, device: str | None = None) -> Vocoder:
    """The vocoder at ``checkpoint``, or the bundled default voice's when None."""
    if checkpoint is not None and not Path(checkpoint).is_dir():
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
    by_stem: dict[str, Path] = {}
    for f in files:  # e.g. synth --save-mel's x.wav beside x.npy: one would overwrite the other's output
        if f.stem in by_stem:
            raise ValueError(f"{by_stem[f.stem].name} and {f.name} in {in_dir} would both be written to "
                             f"{f.stem}.wav; move one of them elsewhere")
        by_stem[f.stem] = f
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


# ------------------------------------------------------------------------------ text to speech
def atomic_write_text(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_tts(checkpoint=None, vocoder=None, device: str | None = None):
    """A :class:`~wavediff.pipelines.tts.TTS` from checkpoints, or the bundled default voice."""
    from .tts import TTS

    if checkpoint is not None and not Path(checkpoint).is_dir():
        raise ValueError(f"checkpoint directory {str(checkpoint)!r} does not exist")
    return TTS.from_pretrained(checkpoint, vocoder=vocoder, device=device)


def read_text_lines(path) -> list[tuple[str, str]]:
    """(id, text) per non-empty line of a text file: ``id|text`` or plain text (ids line0001 …)."""
    import re

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"text file {str(path)!r} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path.name} is not UTF-8 text") from None
    items, seen = [], set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if "|" in line:
            utt_id, text = line.split("|", 1)
            utt_id = re.sub(r"[^A-Za-z0-9._-]+", "_", utt_id.strip()) or f"line{n:04d}"
        else:
            utt_id, text = f"line{n:04d}", line
        if utt_id in seen:
            raise ValueError(f"{path.name}: id {utt_id!r} appears twice (line {n})")
        seen.add(utt_id)
        items.append((utt_id, text))
    if not items:
        raise ValueError(f"{path.name} has no text lines")
    return items


def synthesize_to_file(tts, text: str, output_path, save_mel: bool = False, progress: bool | None = None, **options) -> Path:
    """Speak ``text`` into ``output_path`` (atomic); with ``save_mel`` also OUT.npy and OUT.png."""
    import logging
    import sys

    output_path = Path(output_path)
    if output_path.suffix.lower() != ".wav":
        raise ValueError(f"{output_path.name}: the output must be a .wav file")
    parts = len(tts.acoustic.sentences(text)) if text.strip() else 0
    bar = None
    show = sys.stderr.isatty() if progress is None else progress
    if parts > 1 and show:
        bar = tqdm(total=parts, desc="synth", unit="sentence")
    log = logging.getLogger("wavediff")

    def on_progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(1)
        elif total > 1:
            log.info("sentence %d/%d", done, total)

    try:
        wav, sr, mels = tts(text, progress=on_progress, return_mels=True, **options)
    finally:
        if bar is not None:
            bar.close()
    save_audio(output_path, wav, sr)
    if save_mel:
        mel = torch.cat(mels, dim=-1).numpy()
        npy = output_path.with_suffix(".npy")
        tmp = npy.with_name(f".{npy.stem}.tmp.npy")
        np.save(tmp, mel)
        os.replace(tmp, npy)
        try:
            from wavediff.eval.plots import save_mel_png

            save_mel_png(output_path.with_suffix(".png"), [torch.from_numpy(mel)], [output_path.stem])
        except ImportError:
            pass
    return output_path


def acoustic_nll(checkpoint, data_dir, utterances: int = 8, device: str | None = None, seed: int = 0) -> dict:
    """The acoustic model's variational bound (bits per mel value) on held-out utterances of ``data_dir``.

    Held-out: the corpus's seeded validation split (seed 1234, as ``train acoustic`` uses by
    default); with ``utterances`` at most the run's ``val_utterances`` these were never trained on."""
    from wavediff.data import scan_corpus, split_corpus
    from wavediff.data.tts import TTSDataset, collate_tts

    from .tts import AcousticPipeline

    pipe = AcousticPipeline.from_pretrained(checkpoint, device=device)
    utts = scan_corpus(data_dir)
    if len(utts) < 2:
        raise ValueError(f"{data_dir} needs at least two utterances")
    held = split_corpus(utts, val=min(utterances, len(utts) - 1), test=0, seed=1234).val
    ds = TTSDataset(held, pipe.mel_config, pipe.frontend)
    g = torch.Generator(device=pipe.device).manual_seed(seed)
    bits, prior_bits, values = [], [], []
    for i in tqdm(range(len(ds)), desc="nll", unit="utt", disable=True):
        res = pipe.likelihood(collate_tts([ds[i]], ds.silence_value), generator=g)
        bits.append(float(res["bits_per_value"][0]))
        prior_bits.append(float(res["prior_only_bits_per_value"][0]))
        values.append(int(res["values"][0]))
    w = np.array(values, dtype=np.float64)
    return {
        "bits_per_value": float(np.dot(bits, w) / w.sum()),
        "prior_only_bits_per_value": float(np.dot(prior_bits, w) / w.sum()),
        "utterances": len(values),
        "values": int(w.sum()),
        "per_utterance": dict(zip([u.id for u in ds.features.utterances if u.text][: len(bits)], bits)),
    }


def write_aligned_mels(
    checkpoint,
    data_dir,
    out_dir,
    *,
    cache_dir=None,
    batch_size: int = 16,
    steps: int | None = None,
    temperature: float | None = None,
    seed: int = 0,
    device: str | None = None,
    precision: str = "auto",
    progress: bool = True,
) -> dict:
    """An acoustic model's ground-truth-aligned mels of every transcribed utterance of ``data_dir``.

    Each is sampled as ``synth`` samples (the checkpoint's sampler, steps and temperature unless given)
    but with the durations that alignment search finds against the recording
    (:meth:`AcousticPipeline.aligned_mels`), so it has the recording's frames and lines up with its
    audio, and is written to ``out_dir/<id>.npy`` [n_mels, frames] (atomically; utterances whose file
    exists are skipped, so an interrupted run continues). ``out_dir/mel_config.json`` records the
    convention. ``wavediff train vocoder --mels out_dir`` then fine-tunes a vocoder on them. Returns
    counts: written, existing, skipped (no audio or text). ``cache_dir``: a feature cache to read the
    recordings' mels from (a run's ``features/``)."""
    from wavediff.data import scan_corpus
    from wavediff.data.tts import TTSDataset, collate_tts
    from wavediff.data.vocoder import given_mel_path, save_npy

    from .tts import AcousticPipeline

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be an int >= 1, got {batch_size!r}")
    if steps is not None and steps < 1:
        raise ValueError("steps must be >= 1")
    if temperature is not None and not temperature > 0:
        raise ValueError("temperature must be > 0")
    if checkpoint is None:
        checkpoint = bundled_acoustic_dir()
    elif not Path(checkpoint).is_dir():
        raise ValueError(f"checkpoint directory {str(checkpoint)!r} does not exist")
    pipe = AcousticPipeline.from_pretrained(checkpoint, device=device)
    ds = TTSDataset(scan_corpus(data_dir), pipe.mel_config, pipe.frontend, cache_dir=cache_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "mel_config.json", json.dumps(pipe.mel_config.to_dict(), indent=2, sort_keys=True))
    todo = [i for i in range(len(ds)) if not given_mel_path(out, ds.utterance(i).id).is_file()]
    existing = len(ds) - len(todo)
    written = 0
    with tqdm(total=len(todo), desc="aligned mels", unit="utt", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            chunk, items = [], []
            for i in todo[start:start + batch_size]:
                try:
                    items.append(ds.load(i))
                    chunk.append(i)
                except ValueError as exc:  # unreadable audio: reported, not fatal
                    ds.skipped.append((ds.utterance(i).id, str(exc)))
            bar.update(len(todo[start:start + batch_size]))
            if not items:
                continue
            batch = collate_tts(items, ds.silence_value)
            g = torch.Generator(device=pipe.device).manual_seed(seed + start)
            mels = pipe.aligned_mels(batch["tokens"], batch["token_lengths"], batch["mel"], batch["mel_lengths"],
                                     steps=steps, temperature=temperature, generator=g, precision=precision)
            for i, mel in zip(chunk, mels):
                save_npy(given_mel_path(out, ds.utterance(i).id), mel.float().cpu().numpy())
                written += 1
    return {"written": written, "existing": existing, "skipped": len(ds.skipped)}
