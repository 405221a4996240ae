"""An LJSpeech-layout corpus read by Festival's HTS voice: speech to train on without a download.

:func:`build_festival_corpus` reads sentences (``id|text`` lines, e.g. LJSpeech's transcripts) with
Festival's ``cmu_us_slt_arctic_hts`` voice (one consistent female voice, 32 kHz), resamples them to
22050 Hz and writes ``OUT/metadata.csv`` (``id|text|text``) and ``OUT/wavs/{id}.wav`` (16-bit).

* Size: the first ``num`` sentences, or as many as make ``hours`` of audio (durations are
  estimated from the text, then measured; a few rounds settle on the shortest prefix that is long
  enough).
* Speed: each worker runs one ``festival -b`` process per chunk of sentences (the voice is loaded
  once per chunk; one process per utterance is ~10x slower); ``workers`` chunks run in parallel.
  About 24x real time per core.
* Resumable: finished wavs are written atomically and skipped on the next call.

Festival comes from the system's packages: ``apt-get install festival festvox-us-slt-hts``.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Sequence, Union

__all__ = ["FESTIVAL_VOICE", "INSTALL_HINT", "read_sentences", "festival_problem", "build_festival_corpus"]

PathLike = Union[str, "os.PathLike[str]"]
logger = logging.getLogger("wavediff.data")

FESTIVAL_VOICE = "cmu_us_slt_arctic_hts"
INSTALL_HINT = "apt-get install festival festvox-us-slt-hts"
_CHARS_PER_SECOND = 15.0  # first guess of this voice's speaking rate, refined by measurement
_MAX_ROUNDS = 8


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def read_sentences(path: PathLike) -> list[tuple[str, str]]:
    """``id|text`` lines (``id|text|normalised text``: the normalised column) -> [(id, text)]."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"sentence file {str(file)!r} does not exist")
    items, seen = [], set()
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2:
            raise ValueError(f"{file.name} line {n}: expected 'id|text', got {line[:60]!r}")
        utt_id = fields[0].strip()
        text = (fields[2] if len(fields) >= 3 and fields[2].strip() else fields[1]).strip()
        if not utt_id or "/" in utt_id or utt_id.startswith("."):
            raise ValueError(f"{file.name} line {n}: {utt_id!r} is not usable as a file name")
        if utt_id in seen:
            raise ValueError(f"{file.name} line {n}: id {utt_id!r} appears twice")
        if text:
            seen.add(utt_id)
            items.append((utt_id, text))
    if not items:
        raise ValueError(f"{file.name} has no 'id|text' lines")
    return items


def festival_problem(festival: str = "festival", voice: str = FESTIVAL_VOICE) -> str | None:
    """None when ``festival`` runs and has ``voice``; else a sentence saying what to install."""
    exe = shutil.which(festival)
    if exe is None:
        return f"Festival is not installed ({festival!r} is not on PATH); install it with: {INSTALL_HINT}"
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "check.scm"
        script.write_text(f"(voice_{voice})\n")
        r = subprocess.run([exe, "-b", str(script)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or "SIOD ERROR" in r.stderr + r.stdout:
        return f"Festival cannot load the voice {voice!r}; install it with: {INSTALL_HINT}"
    return None


# --------------------------------------------------------------------------------------------------
# One chunk = one festival process
# --------------------------------------------------------------------------------------------------


def _scheme_string(text: str) -> str:
    text = " ".join(text.split())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _chunk_script(items: Sequence[tuple[str, str]], raw_dir: Path, voice: str) -> str:
    """A Scheme script: select the voice once, then synth + save each sentence (errors contained)."""
    lines = [f"(voice_{voice})"]
    for utt_id, text in items:
        target = _scheme_string(str(raw_dir / f"{utt_id}.wav"))
        lines.append(
            f"(unwind-protect (utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) {target} 'riff)"
            f' (format t "FAILED {utt_id}\\n"))'
        )
    return "\n".join(lines) + "\n"


def _resample(wav, rate: int, target: int):
    """float [N] at ``rate`` -> float32 [N * target / rate] (polyphase, scipy)."""
    import numpy as np
    from scipy.signal import resample_poly

    if rate == target:
        return wav.astype(np.float32)
    g = math.gcd(rate, target)
    return resample_poly(wav, target // g, rate // g).astype(np.float32)  # 32000 -> 22050: 441 / 640


def _synth_chunk(
    items: Sequence[tuple[str, str]], wav_dir: Path, work_dir: Path, voice: str, sample_rate: int, festival: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """Synthesise ``items`` with one festival process; -> (ids written, [(id, reason)] failed)."""
    import soundfile as sf

    from wavediff.audio import save_audio

    raw_dir = Path(tempfile.mkdtemp(prefix="chunk-", dir=work_dir))
    try:
        script = raw_dir / "script.scm"
        script.write_text(_chunk_script(items, raw_dir, voice), encoding="utf-8")
        r = subprocess.run([festival, "-b", str(script)], capture_output=True, text=True)
        done, failed = [], []
        for utt_id, _ in items:
            raw = raw_dir / f"{utt_id}.wav"
            if not raw.is_file():
                detail = (r.stderr.strip().splitlines() or [f"festival exited with {r.returncode}"])[-1]
                failed.append((utt_id, f"festival wrote no audio ({detail})"))
                continue
            wav, rate = sf.read(os.fspath(raw), dtype="float64", always_2d=False)
            if wav.ndim > 1:
                wav = wav.mean(axis=1)
            save_audio(wav_dir / f"{utt_id}.wav", _resample(wav, int(rate), sample_rate), sample_rate)
            done.append(utt_id)
        return done, failed
    finally:
        shutil.rmtree(raw_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------------


def _duration(path: Path) -> float:
    import soundfile as sf

    info = sf.info(os.fspath(path))
    return info.frames / info.samplerate


def _select_prefix(
    sentences: Sequence[tuple[str, str]], durations: dict[str, float], target_s: float, chars_per_s: float
) -> int:
    """Length of the shortest prefix whose (measured or estimated) duration reaches ``target_s``."""
    total = 0.0
    for n, (utt_id, text) in enumerate(sentences, 1):
        total += durations.get(utt_id, len(text) / chars_per_s)
        if total >= target_s:
            return n
    return len(sentences)


def build_festival_corpus(
    out_dir: PathLike,
    sentences: PathLike | Sequence[tuple[str, str]],
    num: int | None = None,
    hours: float | None = None,
    workers: int = 1,
    voice: str = FESTIVAL_VOICE,
    sample_rate: int = 22050,
    chunk_size: int = 25,
    shuffle_seed: int | None = None,
    festival: str = "festival",
    progress: bool = True,
) -> dict:
    """Read sentences with Festival into an LJSpeech-layout corpus at ``out_dir``; return a summary.

    ``sentences`` is a file of ``id|text`` lines or a list of (id, text). Exactly one of ``num``
    (utterances) and ``hours`` chooses how many, taken in order (or in a seeded shuffled order with
    ``shuffle_seed``). Wavs already in ``out_dir/wavs`` are kept. The summary has ``utterances``,
    ``synthesized`` (this call), ``existing``, ``failed`` ([(id, reason)]), ``hours`` and ``wall_s``.
    """
    started = time.monotonic()
    if (num is None) == (hours is None):
        raise ValueError("give exactly one of num (utterances) and hours")
    if num is not None and (isinstance(num, bool) or not isinstance(num, int) or num < 1):
        raise ValueError(f"num must be a positive integer, got {num!r}")
    if hours is not None and not (isinstance(hours, (int, float)) and hours > 0):
        raise ValueError(f"hours must be a positive number, got {hours!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    items = read_sentences(sentences) if isinstance(sentences, (str, os.PathLike)) else [(str(i), str(t)) for i, t in sentences]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(items)
    exe = shutil.which(festival)
    problem = festival_problem(festival, voice)
    if problem:
        raise ValueError(problem)
    out = Path(out_dir)
    wav_dir = out / "wavs"
    wav_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=".festival-", dir=out))
    durations = {i: _duration(wav_dir / f"{i}.wav") for i, _ in items if (wav_dir / f"{i}.wav").is_file()}
    existing = set(durations)
    failed: dict[str, str] = {}
    from tqdm.auto import tqdm

    bar = tqdm(desc="festival", unit="utt", disable=not progress)
    try:
        for _ in range(_MAX_ROUNDS):
            # ---- choose the prefix ----
            if num is not None:
                count = min(num, len(items))
            else:
                measured = [(len(t), durations[i]) for i, t in items if i in durations]
                rate = sum(c for c, _ in measured) / max(sum(d for _, d in measured), 1e-9) if measured else _CHARS_PER_SECOND
                count = _select_prefix(items, durations, hours * 3600.0, rate)
            pending = [(i, t) for i, t in items[:count] if i not in durations and i not in failed]
            if not pending:
                break
            # ---- synthesise in parallel chunks ----
            bar.total = (bar.total or 0) + len(pending)
            bar.refresh()
            size = max(1, min(chunk_size, math.ceil(len(pending) / workers)))
            chunks = [pending[k : k + size] for k in range(0, len(pending), size)]
            with ThreadPoolExecutor(max_workers=workers) as pool:
                jobs = [pool.submit(_synth_chunk, c, wav_dir, work_dir, voice, sample_rate, exe) for c in chunks]
                for job in as_completed(jobs):
                    done, bad = job.result()
                    for utt_id in done:
                        durations[utt_id] = _duration(wav_dir / f"{utt_id}.wav")
                    failed.update(bad)
                    bar.update(len(done) + len(bad))
            if num is not None:
                break
    finally:
        bar.close()
        shutil.rmtree(work_dir, ignore_errors=True)
    if failed:
        shown = "; ".join(f"{i}: {r}" for i, r in list(failed.items())[:5])
        logger.warning("festival failed on %d sentence(s): %s", len(failed), shown)
    # ---- metadata of the chosen prefix ----
    chosen = [(i, t) for i, t in items[:count] if i in durations]
    if not chosen:
        raise ValueError("festival produced no audio; see the warnings above")
    tmp = out / ".metadata.csv.tmp"
    tmp.write_text("".join(f"{i}|{t}|{t}\n" for i, t in chosen), encoding="utf-8")
    os.replace(tmp, out / "metadata.csv")
    return {
        "utterances": len(chosen),
        "synthesized": sum(1 for i, _ in chosen if i not in existing),
        "existing": sum(1 for i, _ in chosen if i in existing),
        "failed": sorted(failed.items()),
        "hours": round(sum(durations[i] for i, _ in chosen) / 3600.0, 4),
        "wall_s": round(time.monotonic() - started, 2),
    }
