"""Vocoder training data: aligned (audio, mel) crops, an on-disk feature cache, bad-file handling.

Alignment. Every utterance becomes ``audio`` [frames * hop] and ``mel`` [n_mels, frames] such that
mel frame ``i`` belongs to samples ``[i * hop, (i + 1) * hop)``; a crop of ``F`` frames starting at
frame ``f`` is ``audio[f * hop:(f + F) * hop]`` with ``mel[:, f:f + F]``.

* ``hifigan`` (``center=False``, ``(n_fft - hop) / 2`` reflect padding): the N resampled samples
  are zero-padded up to a multiple of hop, giving exactly ``N' / hop`` frames whose windows are
  centred on their hop-long blocks; the mel is computed on that padded signal.
* ``diffwave`` (``center=True``): the mel of the N samples has ``1 + N // hop`` frames (frame
  ``i`` centred on sample ``i * hop``); the audio is then zero-padded to ``frames * hop``, which is
  what lmnt-com/diffwave's learner does when it crops.

Cache. With ``cache_dir`` the resampled, padded audio (float32 ``.npy``) and the mel (``.npy``) of
each utterance are stored as ``cache_dir/<config key>/<id>.<source key>.{audio,mel}.npy``; the
config key hashes ``mel_config.to_dict()``, the source key the source file's path, size and mtime:
a changed mel convention writes to another folder, a changed source file to another name. Files
are written atomically (temporary file + ``os.replace``). A file found bad leaves a ``.bad``
marker holding the reason, so it is read only once.

Bad files (unreadable, empty, NaN, shorter than the STFT needs) are reported by name in one
warning and skipped: a cheap header scan (``soundfile.info``) runs in ``__init__``; a file that
still fails in ``__getitem__`` is recorded and another random valid item is returned instead.
Inside DataLoader workers that record stays in the worker (its warning is still printed, and
with a cache the ``.bad`` marker makes later datasets skip the file); ``precompute()`` finds every
bad file up front, in the calling process.

Randomness. After ``set_epoch(e)`` a crop is a pure function of ``(seed, e, index)``, whatever
the workers. Before any ``set_epoch`` call, crops are drawn from torch's default generator, which
DataLoader seeds differently in every worker and every epoch (reproducible under
``torch.manual_seed`` or the DataLoader ``generator``); use this mode with
``persistent_workers=True``, where ``set_epoch`` on the main-process dataset does not reach the
workers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from wavediff.audio import MelConfig, MelSpectrogram, load_audio
from wavediff.data.corpus import Utterance

__all__ = ["VocoderDataset", "collate_vocoder", "given_mel_path", "save_npy"]

PathLike = Union[str, "os.PathLike[str]"]

_CACHE_VERSION = 1  # bump when the cached arrays' meaning changes
_KEY_CHARS = 16  # hex digits of the config / source hashes
_SHOWN_BAD = 10  # bad files named in one warning before "..."


# --------------------------------------------------------------------------------------------------
# Cache helpers
# --------------------------------------------------------------------------------------------------


def _config_key(config: MelConfig) -> str:
    blob = json.dumps({"cache_version": _CACHE_VERSION, "mel": config.to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:_KEY_CHARS]


def _source_key(path: Path) -> str:
    stat = os.stat(path)
    blob = f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:_KEY_CHARS]


def _safe_name(utt_id: str) -> str:
    """An id usable as a file name (no separators, no leading dot)."""
    name = utt_id.replace("/", "_").replace("\\", "_").replace(os.sep, "_")
    return "_" + name if name.startswith(".") else name


class _GivenMelError(ValueError):
    """A problem with a given mel (``mel_dir``), not with the recording: no ``.bad`` marker in the cache."""


def given_mel_path(mel_dir: PathLike, utt_id: str) -> Path:
    """Where a folder of given mels (``VocoderDataset(mel_dir=...)``) keeps utterance ``utt_id``'s."""
    return Path(mel_dir) / f"{_safe_name(utt_id)}.npy"


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(binary_file)`` on a temporary file next to ``path``; rename it over path."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
        raise


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` as .npy atomically (temporary file, then rename)."""
    _atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))


def _identity(item: Any) -> Any:
    return item


class _CachePaths:
    """The cache files of one utterance under one mel config."""

    def __init__(self, folder: Path, utt: Utterance) -> None:
        stem = f"{_safe_name(utt.id)}.{_source_key(utt.path)}"
        self.audio = folder / f"{stem}.audio.npy"
        self.mel = folder / f"{stem}.mel.npy"
        self.bad = folder / f"{stem}.bad"


# --------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------


class VocoderDataset(Dataset):
    """Aligned (audio, mel) pairs of a list of utterances under one mel convention.

    Each item is ``dict(audio=float32 [crop_frames * hop], mel=float32 [n_mels, crop_frames])`` for
    a random crop; with ``crop_frames=None`` the whole utterance (``frames * hop`` samples). Items
    shorter than the crop are padded: audio with zeros, mel with the convention's silence value
    (``mel_config.value_range[0]``, the mel of a zero signal). Utterances with fewer than
    ``min_frames`` frames are skipped and reported like bad files.

    ``mel_dir``: a folder of given mels to train on instead of the recordings' own, one
    ``<id>.npy`` [n_mels, frames] per utterance (:func:`given_mel_path`), e.g. an acoustic model's
    ground-truth-aligned mels (``wavediff aligned-mels``). Each must have its recording's frame count
    under this mel convention; one that is missing or does not is reported and skipped like a bad
    file. A ``mel_config.json`` in the folder must match ``mel_config``.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        mel_config: MelConfig,
        crop_frames: int | None = 62,
        cache_dir: PathLike | None = None,
        seed: int = 0,
        min_frames: int = 1,
        mel_dir: PathLike | None = None,
    ) -> None:
        # ---- arguments ----
        if not isinstance(mel_config, MelConfig):
            raise ValueError(f"mel_config must be a MelConfig, got {type(mel_config).__name__}.")
        if crop_frames is not None and (
            isinstance(crop_frames, bool) or not isinstance(crop_frames, int) or crop_frames <= 0
        ):
            raise ValueError(f"crop_frames must be a positive int or None, got {crop_frames!r}.")
        if isinstance(min_frames, bool) or not isinstance(min_frames, int) or min_frames <= 0:
            raise ValueError(f"min_frames must be a positive int, got {min_frames!r}.")
        utterances = list(utterances)
        if not utterances:
            raise ValueError("VocoderDataset needs at least one utterance; the list is empty.")
        if not all(isinstance(u, Utterance) for u in utterances):
            raise ValueError(
                "utterances must be wavediff.data.Utterance objects (see scan_corpus)."
            )
        self.mel_config = mel_config
        self.crop_frames = crop_frames
        self.min_frames = min_frames
        self.seed = int(seed)
        self.hop = mel_config.hop_length
        self.silence_value = float(mel_config.value_range[0])
        self.mel_module = MelSpectrogram(mel_config)
        self._epoch: int | None = None
        self.mel_dir = Path(mel_dir) if mel_dir is not None else None
        if self.mel_dir is not None:
            if not self.mel_dir.is_dir():
                raise ValueError(f"mel folder {os.fspath(self.mel_dir)!r} does not exist.")
            info = self.mel_dir / "mel_config.json"
            if info.is_file() and json.loads(info.read_text(encoding="utf-8")) != mel_config.to_dict():
                raise ValueError(
                    f"the mels in {os.fspath(self.mel_dir)!r} are not in the '{mel_config.preset}' convention "
                    f"this dataset uses (see its mel_config.json)."
                )
        # ---- cache folder ----
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cache_folder: Path | None = None
        if self.cache_dir is not None:
            self.cache_folder = self.cache_dir / _config_key(mel_config)
            self.cache_folder.mkdir(parents=True, exist_ok=True)
            info = self.cache_folder / "mel_config.json"
            if not info.exists():
                text = json.dumps(mel_config.to_dict(), indent=2, sort_keys=True).encode("utf-8")
                _atomic_write(info, lambda handle: handle.write(text))
        # ---- cheap validity scan ----
        self.skipped: list[tuple[str, str]] = []
        self._bad: set[int] = set()  # indices into self.utterances found bad in __getitem__
        good, bad = [], []
        for utt in utterances:
            reason = self._scan(utt)
            (bad if reason else good).append((utt, reason))
        self.utterances: list[Utterance] = [utt for utt, _ in good]
        self._record_bad([(utt, reason) for utt, reason in bad])
        if not self.utterances:
            raise ValueError(
                f"All {len(utterances)} utterances are unusable for the '{mel_config.preset}' mel "
                f"convention (first: {self.skipped[0][0]}: {self.skipped[0][1]})."
            )

    # ---- bookkeeping ---------------------------------------------------------------------------
    @property
    def num_skipped(self) -> int:
        """How many utterances were skipped as bad (header scan, precompute or __getitem__)."""
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.utterances)

    def set_epoch(self, epoch: int | None) -> None:
        """Make crops a pure function of (seed, epoch, index); None returns to torch's RNG."""
        self._epoch = None if epoch is None else int(epoch)

    @property
    def collate_fn(self) -> functools.partial:
        """``collate_vocoder`` padding mels with this convention's silence value (picklable)."""
        return functools.partial(collate_vocoder, mel_pad_value=self.silence_value)

    def _record_bad(self, entries: list[tuple[Utterance, str]]) -> None:
        """Add (utterance, reason) pairs to ``skipped`` and name them in one warning."""
        if not entries:
            return
        self.skipped.extend((utt.id, reason) for utt, reason in entries)
        shown = "; ".join(
            f"{utt.id} ({utt.path}): {reason}" for utt, reason in entries[:_SHOWN_BAD]
        )
        more = f"; and {len(entries) - _SHOWN_BAD} more" if len(entries) > _SHOWN_BAD else ""
        what = "bad audio file(s)" if self.mel_dir is None else "utterance(s) (bad audio or no usable given mel)"
        warnings.warn(f"VocoderDataset skips {len(entries)} {what}: {shown}{more}.", stacklevel=3)

    def _write_bad_marker(self, utt: Utterance, reason: str) -> None:
        if self.cache_folder is None:
            return
        try:
            marker = _CachePaths(self.cache_folder, utt).bad
            _atomic_write(marker, lambda handle: handle.write(reason.encode("utf-8")))
        except OSError:
            pass  # source gone or cache read-only: the marker is only an optimisation

    # ---- validity ------------------------------------------------------------------------------
    def _effective_samples(self, num_samples: int) -> int:
        """Samples the STFT sees: hifigan-style (center=False) pads up to a multiple of hop."""
        if self.mel_config.center:
            return num_samples
        return -(-num_samples // self.hop) * self.hop

    def _length_problem(self, num_samples: int) -> str | None:
        """Why ``num_samples`` (at the mel sample rate) is too short, or None."""
        cfg = self.mel_config
        effective = self._effective_samples(num_samples)
        if effective < cfg.min_samples:
            return (
                f"too short: {num_samples} samples at {cfg.sample_rate} Hz, the '{cfg.preset}' "
                f"STFT needs at least {cfg.min_samples}"
            )
        frames = cfg.frames_for(effective)
        if frames < self.min_frames:
            return f"too short: {frames} mel frames, fewer than min_frames={self.min_frames}"
        return None

    def _scan(self, utt: Utterance) -> str | None:
        """Header-only check of one file; the reason it is unusable, or None."""
        try:
            info = sf.info(os.fspath(utt.path))
        except Exception as exc:  # noqa: BLE001 - any failure to open means unreadable
            detail = " ".join(str(exc).split())
            if "': " in detail:
                detail = detail.split("': ", 1)[1]  # drop soundfile's repeat of the path
            return f"unreadable: {detail or type(exc).__name__}"
        if info.frames <= 0 or info.samplerate <= 0:
            return "empty: it contains no audio samples"
        problem = self._length_problem(
            math.ceil(info.frames * self.mel_config.sample_rate / info.samplerate)
        )
        if problem:
            return problem
        if self.mel_dir is not None and not given_mel_path(self.mel_dir, utt.id).is_file():
            return f"no mel for it in {os.fspath(self.mel_dir)}"
        if self.cache_folder is not None:
            marker = _CachePaths(self.cache_folder, utt).bad
            if marker.is_file():
                return marker.read_text(encoding="utf-8", errors="replace")
        return None

    # ---- features ------------------------------------------------------------------------------
    def compute_features(self, utt: Utterance) -> tuple[np.ndarray, np.ndarray]:
        """Read, resample and analyse one file -> (audio [frames * hop], mel [n_mels, frames]).

        Raises ValueError naming the problem for unreadable, empty, non-finite or too short audio.
        """
        cfg = self.mel_config
        wav, _ = load_audio(utt.path, sample_rate=cfg.sample_rate)  # [N] float32
        problem = self._length_problem(wav.shape[0])
        if problem:
            raise ValueError(problem)
        effective = self._effective_samples(wav.shape[0])
        wav = np.pad(wav, (0, effective - wav.shape[0]))  # hifigan: up to a multiple of hop
        with torch.no_grad():
            mel = self.mel_module(torch.from_numpy(wav)).numpy()  # [n_mels, frames]
        frames = mel.shape[1]
        audio = np.zeros(frames * self.hop, dtype=np.float32)  # [frames * hop]
        keep = min(audio.shape[0], wav.shape[0])
        audio[:keep] = wav[:keep]
        return audio, np.ascontiguousarray(mel, dtype=np.float32)

    def _read_cache(self, paths: _CachePaths) -> tuple[np.ndarray, np.ndarray] | None:
        """Cached (audio memmap, mel) when both files are present and consistent, else None."""
        try:
            mel = np.load(paths.mel, allow_pickle=False)
            audio = np.load(paths.audio, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        ok = (
            mel.ndim == 2
            and mel.shape[0] == self.mel_config.n_mels
            and audio.ndim == 1
            and audio.shape[0] == mel.shape[1] * self.hop
        )
        return (audio, mel) if ok else None

    def _cached_features(self, utt: Utterance) -> tuple[tuple[np.ndarray, np.ndarray], bool]:
        """((audio, mel), computed?) from the cache, computing and storing on a miss; with
        ``mel_dir`` the mel is the given one."""
        if self.cache_folder is None:
            (audio, mel), computed = self.compute_features(utt), True
        else:
            paths = _CachePaths(self.cache_folder, utt)
            cached = self._read_cache(paths)
            if cached is not None:
                (audio, mel), computed = cached, False
            else:
                audio, mel = self.compute_features(utt)
                save_npy(paths.audio, audio)
                save_npy(paths.mel, mel)  # written last: readers need both
                computed = True
        if self.mel_dir is not None:
            mel = self._given_mel(utt, mel.shape[1])
        return (audio, mel), computed

    def _given_mel(self, utt: Utterance, frames: int) -> np.ndarray:
        path = given_mel_path(self.mel_dir, utt.id)
        try:
            mel = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise _GivenMelError(f"cannot read its mel {os.fspath(path)}: {exc}") from None
        if mel.shape != (self.mel_config.n_mels, frames):
            raise _GivenMelError(
                f"its mel {os.fspath(path)} is shaped {list(mel.shape)}; the recording has "
                f"[{self.mel_config.n_mels}, {frames}] (mel bins, frames)"
            )
        if not np.isfinite(mel).all():
            raise _GivenMelError(f"its mel {os.fspath(path)} holds NaN or infinite values")
        return np.ascontiguousarray(mel, dtype=np.float32)

    def load_features(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Whole-utterance (audio [frames * hop], mel [n_mels, frames]) of item ``index``."""
        (audio, mel), _ = self._cached_features(self.utterances[index])
        return np.array(audio, dtype=np.float32), np.array(mel, dtype=np.float32)

    # ---- items ---------------------------------------------------------------------------------
    def _rng(self, index: int) -> np.random.Generator:
        if self._epoch is not None:
            material = [self.seed, 0, self._epoch, index]
        else:  # torch's generator: seeded per worker (and per epoch) by DataLoader
            material = [self.seed, 1, int(torch.randint(0, 2**62, ()).item()), index]
        return np.random.default_rng(np.random.SeedSequence(material))

    def _crop(
        self, audio: np.ndarray, mel: np.ndarray, rng: np.random.Generator
    ) -> dict[str, torch.Tensor]:
        """Whole (audio [frames * hop], mel [n_mels, frames]) -> one aligned, padded crop."""
        hop, crop, frames = self.hop, self.crop_frames, mel.shape[1]
        if crop is None:
            out_audio = np.array(audio, dtype=np.float32)  # [frames * hop]
            out_mel = np.array(mel, dtype=np.float32)  # [n_mels, frames]
        elif frames >= crop:
            start = int(rng.integers(0, frames - crop + 1))
            out_audio = np.array(audio[start * hop : (start + crop) * hop], dtype=np.float32)
            out_mel = np.array(mel[:, start : start + crop], dtype=np.float32)
        else:  # short utterance: pad to the crop
            out_audio = np.zeros(crop * hop, dtype=np.float32)  # [crop * hop]
            out_audio[: frames * hop] = audio
            out_mel = np.full((mel.shape[0], crop), self.silence_value, dtype=np.float32)
            out_mel[:, :frames] = mel
        return {"audio": torch.from_numpy(out_audio), "mel": torch.from_numpy(out_mel)}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """-> dict(audio [crop_frames * hop], mel [n_mels, crop_frames]) float32 tensors."""
        if not 0 <= index < len(self.utterances):
            raise IndexError(f"index {index} out of range for {len(self.utterances)} utterances.")
        rng = self._rng(index)
        candidate = index
        while True:
            if candidate not in self._bad:
                try:
                    (audio, mel), _ = self._cached_features(self.utterances[candidate])
                except Exception as exc:  # noqa: BLE001 - a bad file must never end an epoch
                    self._mark_bad(candidate, exc)
                else:
                    return self._crop(audio, mel, rng)
            valid = [i for i in range(len(self.utterances)) if i not in self._bad]
            if not valid:
                raise ValueError(
                    f"Every one of the {len(self.utterances)} utterances failed to load; "
                    f"see dataset.skipped (last: {self.skipped[-1][0]}: {self.skipped[-1][1]})."
                )
            candidate = valid[int(rng.integers(len(valid)))]

    def _reason(self, utt: Utterance, exc: Exception) -> str:
        reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
        prefix = f"cannot read audio file '{os.fspath(utt.path)}': "
        return reason[len(prefix) :] if reason.startswith(prefix) else reason

    def _mark_bad(self, index: int, exc: Exception) -> None:
        utt = self.utterances[index]
        reason = self._reason(utt, exc)
        self._bad.add(index)
        if not isinstance(exc, _GivenMelError):
            self._write_bad_marker(utt, reason)
        self._record_bad([(utt, reason)])

    # ---- cache building ------------------------------------------------------------------------
    def precompute(self, num_workers: int = 0, progress: bool = True) -> int:
        """Fill the cache for every utterance; return how many were computed (not already cached).

        Bad files found on the way are reported by name, recorded in ``skipped`` and removed from
        the dataset. Cache files of these utterances left by older versions of their source files
        are deleted.
        """
        if self.cache_folder is None:
            raise ValueError("precompute needs a cache_dir; this VocoderDataset has none.")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}.")
        loader = DataLoader(
            _FeatureJobs(self), batch_size=None, shuffle=False, num_workers=num_workers,
            collate_fn=_identity,
        )
        computed, bad = 0, []
        for index, was_computed, reason in tqdm(
            loader, total=len(self.utterances), desc="mel features", unit="utt",
            disable=not progress,
        ):
            if reason is not None:
                bad.append((self.utterances[index], reason))
            computed += int(was_computed)
        bad_ids = {utt.id for utt, _ in bad}
        self.utterances = [u for u in self.utterances if u.id not in bad_ids]
        self._bad = set()
        self._record_bad(bad)
        self._remove_stale()
        if not self.utterances:
            raise ValueError(
                "All utterances of this VocoderDataset are unusable; see its warnings."
            )
        return computed

    def _remove_stale(self) -> None:
        """Delete cache files of this dataset's ids whose source key is no longer current."""
        assert self.cache_folder is not None
        current = {_safe_name(u.id): _source_key(u.path) for u in self.utterances}
        for entry in os.scandir(self.cache_folder):
            parts = entry.name.split(".")
            if entry.name.startswith(".") or len(parts) < 3:
                continue
            kind = ".".join(parts[-2:]) if parts[-1] == "npy" else parts[-1]
            if kind not in ("audio.npy", "mel.npy", "bad"):
                continue
            tail = 3 if kind != "bad" else 2
            name, key = ".".join(parts[:-tail]), parts[-tail]
            if name in current and key != current[name]:
                os.remove(entry.path)


class _FeatureJobs(Dataset):
    """Item i -> (i, computed?, reason or None): fills the cache of a VocoderDataset."""

    def __init__(self, dataset: VocoderDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset.utterances)

    def __getitem__(self, index: int) -> tuple[int, bool, str | None]:
        utt = self.dataset.utterances[index]
        try:
            _, computed = self.dataset._cached_features(utt)
        except Exception as exc:  # noqa: BLE001 - reported by precompute
            reason = self.dataset._reason(utt, exc)
            if not isinstance(exc, _GivenMelError):
                self.dataset._write_bad_marker(utt, reason)
            return index, False, reason
        return index, computed, None


# --------------------------------------------------------------------------------------------------
# Collation
# --------------------------------------------------------------------------------------------------


def collate_vocoder(
    batch: Sequence[dict[str, torch.Tensor]], mel_pad_value: float | None = None
) -> dict[str, torch.Tensor]:
    """Items -> dict(audio [B, F * hop], mel [B, n_mels, F], lengths [B] int64 frames).

    Shorter items are padded at the end to the longest (F frames): audio with zeros, mels with
    ``mel_pad_value`` (default: the batch's smallest mel value, i.e. the silence floor of real
    speech; ``VocoderDataset.collate_fn`` passes the convention's exact silence value).
    """
    if len(batch) == 0:
        raise ValueError("collate_vocoder got an empty batch.")
    # ---- checks ----
    audios, mels = [], []
    for i, item in enumerate(batch):
        if not isinstance(item, dict) or "audio" not in item or "mel" not in item:
            raise ValueError(f"batch item {i} must be a dict with 'audio' and 'mel'.")
        audio, mel = torch.as_tensor(item["audio"]), torch.as_tensor(item["mel"])
        if audio.dim() != 1 or mel.dim() != 2 or mel.shape[1] == 0:
            raise ValueError(
                f"batch item {i} must hold audio [L] and mel [n_mels, frames], got audio "
                f"{tuple(audio.shape)} and mel {tuple(mel.shape)}."
            )
        audios.append(audio)
        mels.append(mel)
    hop = audios[0].shape[0] // mels[0].shape[1]
    n_mels = mels[0].shape[0]
    for i, (audio, mel) in enumerate(zip(audios, mels)):
        if mel.shape[0] != n_mels or audio.shape[0] != mel.shape[1] * hop:
            raise ValueError(
                f"batch item {i} has audio {tuple(audio.shape)} and mel {tuple(mel.shape)}, "
                f"inconsistent with item 0 ({n_mels} mels, {hop} samples per frame)."
            )
    # ---- pad and stack ----
    lengths = torch.tensor([mel.shape[1] for mel in mels], dtype=torch.long)  # [B]
    frames = int(lengths.max())
    if mel_pad_value is None:
        mel_pad_value = float(min(float(mel.min()) for mel in mels))
    audio_out = torch.zeros(len(batch), frames * hop, dtype=torch.float32)  # [B, F * hop]
    mel_out = torch.full((len(batch), n_mels, frames), float(mel_pad_value))  # [B, n_mels, F]
    for i, (audio, mel) in enumerate(zip(audios, mels)):
        audio_out[i, : audio.shape[0]] = audio
        mel_out[i, :, : mel.shape[1]] = mel
    return {"audio": audio_out, "mel": mel_out, "lengths": lengths}
