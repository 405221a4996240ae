"""Corpora on disk: LJSpeech-layout folders or plain folders of audio, id lists and seeded splits.

* LJSpeech layout: ``root/metadata.csv`` with lines ``id|text|normalised text`` (or ``id|text``, or
  just ``id``) and audio in ``root/wavs/{id}.wav`` (``.flac`` / ``.ogg`` also accepted).
* Any other folder: every ``.wav`` / ``.flac`` / ``.ogg`` below it, recursively, sorted by relative
  path; the id is the relative path without its suffix, with ``/`` replaced by ``_``; no text.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence, Union

__all__ = [
    "AUDIO_SUFFIXES",
    "Split",
    "Utterance",
    "read_id_list",
    "scan_corpus",
    "select",
    "split_corpus",
]

PathLike = Union[str, "os.PathLike[str]"]

AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg")
_SHOWN_IDS = 5  # ids quoted in a warning or error before "..."


@dataclass(frozen=True)
class Utterance:
    """One recording: a unique id, its audio file and its transcript (None when unknown)."""

    id: str
    path: Path
    text: str | None = None


class Split(NamedTuple):
    """Disjoint train / validation / test lists of utterances."""

    train: list[Utterance]
    val: list[Utterance]
    test: list[Utterance]


def _quote_ids(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_SHOWN_IDS])
    return shown + (", ..." if len(ids) > _SHOWN_IDS else "")


# --------------------------------------------------------------------------------------------------
# Scanning
# --------------------------------------------------------------------------------------------------


def _parse_metadata(metadata: Path) -> list[tuple[str, str | None]]:
    """metadata.csv -> [(id, text)] using the normalised column when present and non-empty."""
    entries: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    with open(metadata, encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\r\n").split("|")
            utt_id = fields[0].strip()
            if not utt_id:
                continue  # blank line
            if utt_id in seen:
                duplicates.append(utt_id)
                continue
            seen.add(utt_id)
            text = None
            if len(fields) >= 3 and fields[2].strip():
                text = fields[2].strip()
            elif len(fields) >= 2 and fields[1].strip():
                text = fields[1].strip()
            entries.append((utt_id, text))
    if duplicates:
        warnings.warn(
            f"{metadata}: {len(duplicates)} duplicated id(s) ignored (first occurrence kept): "
            f"{_quote_ids(duplicates)}.",
            stacklevel=3,
        )
    return entries


def _scan_ljspeech(root: Path) -> list[Utterance]:
    wav_dir = root / "wavs"
    found: list[Utterance] = []
    missing: list[str] = []
    for utt_id, text in _parse_metadata(root / "metadata.csv"):
        candidates = [wav_dir / f"{utt_id}{suffix}" for suffix in AUDIO_SUFFIXES]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(utt_id)
            continue
        found.append(Utterance(id=utt_id, path=path, text=text))
    if missing:
        warnings.warn(
            f"{root / 'metadata.csv'}: {len(missing)} listed utterance(s) have no audio file in "
            f"{wav_dir} and are skipped: {_quote_ids(missing)}.",
            stacklevel=3,
        )
    return found


def _scan_folder(root: Path) -> list[Utterance]:
    files = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
         and not p.name.startswith(".")),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    found: list[Utterance] = []
    owner: dict[str, Path] = {}
    for path in files:
        utt_id = path.relative_to(root).with_suffix("").as_posix().replace("/", "_")
        if utt_id in owner:
            raise ValueError(
                f"Audio files '{owner[utt_id]}' and '{path}' both map to utterance id {utt_id!r}; "
                "rename one of them."
            )
        owner[utt_id] = path
        found.append(Utterance(id=utt_id, path=path, text=None))
    return found


def scan_corpus(root: PathLike) -> list[Utterance]:
    """List the utterances of a corpus folder (LJSpeech layout if it has ``metadata.csv``).

    Metadata lines whose audio file is missing are skipped with one warning giving their count and
    the first few ids. A missing root, or a corpus with no audio, raises ValueError.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise ValueError(f"Corpus folder '{root_path}' does not exist or is not a directory.")
    if (root_path / "metadata.csv").is_file():
        utterances = _scan_ljspeech(root_path)
        where = f"'{root_path}' (LJSpeech layout: metadata.csv + wavs/)"
    else:
        utterances = _scan_folder(root_path)
        where = f"'{root_path}' (searched recursively for {', '.join(AUDIO_SUFFIXES)})"
    if not utterances:
        raise ValueError(f"No audio files found in corpus folder {where}.")
    return utterances


# --------------------------------------------------------------------------------------------------
# Id lists and selection
# --------------------------------------------------------------------------------------------------


def read_id_list(path: PathLike) -> list[str]:
    """Read utterance ids, one per line; blank lines and ``#`` comments are ignored.

    Filelist formats are accepted too: only the text before the first ``|`` counts, and a path
    there is reduced to its file name without an audio suffix (``DUMMY/LJ001-0001.wav|text`` ->
    ``LJ001-0001``).
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"Id list '{file}' does not exist.")
    ids: list[str] = []
    for line in file.read_text(encoding="utf-8").splitlines():
        entry = line.split("|", 1)[0].strip()
        if not entry or entry.startswith("#"):
            continue
        name = entry.replace("\\", "/").rsplit("/", 1)[-1]
        stem, dot, suffix = name.rpartition(".")
        if dot and f".{suffix.lower()}" in AUDIO_SUFFIXES:
            name = stem
        ids.append(name)
    return ids


def select(
    utterances: Sequence[Utterance], ids: Iterable[str], strict: bool = True
) -> list[Utterance]:
    """The utterances with the given ids, in the order of ``ids``.

    Ids not in ``utterances`` raise ValueError when ``strict``; otherwise they are skipped with one
    warning giving their count and the first few.
    """
    by_id = {u.id: u for u in utterances}
    chosen: list[Utterance] = []
    unknown: list[str] = []
    for utt_id in ids:
        if utt_id in by_id:
            chosen.append(by_id[utt_id])
        else:
            unknown.append(utt_id)
    if unknown:
        message = f"{len(unknown)} requested id(s) are not in the corpus: {_quote_ids(unknown)}."
        if strict:
            raise ValueError(message)
        warnings.warn(message + " They are skipped.", stacklevel=2)
    return chosen


# --------------------------------------------------------------------------------------------------
# Seeded split
# --------------------------------------------------------------------------------------------------


def _split_count(value: int | float, total: int, name: str) -> int:
    """An int is a count; a float in [0, 1) a fraction of ``total`` (at least 1 when > 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a count (int) or a fraction (float), got {value!r}.")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}.")
        return value
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} as a fraction must lie in [0, 1), got {value}.")
    return 0 if value == 0.0 else max(1, round(value * total))


def _split_key(seed: int, utt_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{utt_id}".encode("utf-8")).digest()


def split_corpus(
    utterances: Sequence[Utterance],
    val: int | float = 0.05,
    test: int | float = 0.05,
    seed: int = 0,
) -> Split:
    """Seeded, deterministic train/val/test split by id, for corpora without a standard split.

    Each id gets a rank from ``sha256(seed, id)``; the lowest ``val`` ranks go to validation, the
    next ``test`` to test, the rest to training. The result does not depend on the input order, and
    adding utterances moves few existing ones. Each list keeps the input order.
    """
    ids = [u.id for u in utterances]
    if len(set(ids)) != len(ids):
        raise ValueError("split_corpus needs unique utterance ids; the list has duplicates.")
    total = len(ids)
    n_val, n_test = _split_count(val, total, "val"), _split_count(test, total, "test")
    if n_val + n_test >= total:
        raise ValueError(
            f"Cannot hold out {n_val} validation and {n_test} test utterances from {total}; "
            "nothing would be left for training."
        )
    ranked = sorted(ids, key=lambda utt_id: _split_key(seed, utt_id))
    val_ids, test_ids = set(ranked[:n_val]), set(ranked[n_val : n_val + n_test])
    return Split(
        train=[u for u in utterances if u.id not in val_ids and u.id not in test_ids],
        val=[u for u in utterances if u.id in val_ids],
        test=[u for u in utterances if u.id in test_ids],
    )
