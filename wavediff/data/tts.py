"""(phoneme ids, mel) pairs for the acoustic model; mels come from the vocoder's feature cache."""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from wavediff.audio import MelConfig

from .corpus import Utterance
from .vocoder import VocoderDataset

__all__ = ["TTSDataset", "collate_tts"]

logger = logging.getLogger("wavediff.data")


class TTSDataset(Dataset):
    """Items ``{"tokens": int64 [N], "mel": float32 [n_mels, T]}`` for utterances with text.

    Texts are converted once with ``frontend.encode``; utterances without text, whose text has
    nothing to pronounce, or longer than ``max_frames`` are reported and skipped. Mels are shared
    with :class:`VocoderDataset`'s cache (same key), so a vocoder and an acoustic model trained on
    one corpus compute features once."""

    def __init__(
        self,
        utterances: Sequence[Utterance],
        mel_config: MelConfig,
        frontend,
        cache_dir: str | Path | None = None,
        max_frames: int | None = None,
    ):
        self.features = VocoderDataset(utterances, mel_config, crop_frames=None, cache_dir=cache_dir)
        self.mel_config = mel_config
        self.silence_value = self.features.silence_value
        self.max_frames = max_frames
        self.tokens: list[list[int]] = []
        keep = []
        skipped = list(self.features.skipped)
        for i, utt in enumerate(self.features.utterances):
            if not utt.text:
                skipped.append((utt.id, "no transcript"))
                continue
            try:
                ids = frontend.encode(utt.text)
            except ValueError as e:
                skipped.append((utt.id, str(e)))
                continue
            keep.append(i)
            self.tokens.append(ids)
        self._index = keep
        self.skipped = skipped
        if len(skipped) > len(self.features.skipped):
            extra = skipped[len(self.features.skipped) :]
            names = ", ".join(f"{u} ({r})" for u, r in extra[:5])
            logger.warning("skipped %d utterance(s) without usable text: %s%s", len(extra), names, " …" if len(extra) > 5 else "")
        if not self._index:
            raise ValueError("no utterance has both usable audio and text")

    def __len__(self) -> int:
        return len(self._index)

    def utterance(self, i: int):
        """The :class:`Utterance` behind item ``i``."""
        return self.features.utterances[self._index[i]]

    def load(self, i: int) -> dict:
        """Item ``i`` itself; ValueError when its audio cannot be read (``__getitem__`` then takes another)."""
        _, mel = self.features.load_features(self._index[i])
        if self.max_frames is not None and mel.shape[1] > self.max_frames:
            mel = mel[:, : self.max_frames]
        return {"tokens": torch.tensor(self.tokens[i], dtype=torch.long), "mel": torch.from_numpy(np.ascontiguousarray(mel))}

    def __getitem__(self, i: int) -> dict:
        for attempt in range(10):
            try:
                return self.load(i)
            except ValueError as e:
                logger.warning("skipping %s: %s", self.utterance(i).id, e)
                i = random.randrange(len(self))
        raise ValueError("too many unreadable files in a row")  # pragma: no cover - every retry hit a bad file

    @property
    def collate_fn(self):
        return lambda batch: collate_tts(batch, self.silence_value)


def collate_tts(batch: Sequence[dict], mel_pad_value: float) -> dict:
    """Pad to the longest: tokens with 0 (the pad id), mels with the silence value; add lengths."""
    b = len(batch)
    n = max(len(x["tokens"]) for x in batch)
    t = max(x["mel"].shape[1] for x in batch)
    n_mels = batch[0]["mel"].shape[0]
    tokens = torch.zeros(b, n, dtype=torch.long)
    mel = torch.full((b, n_mels, t), float(mel_pad_value))
    for i, x in enumerate(batch):
        tokens[i, : len(x["tokens"])] = x["tokens"]
        mel[i, :, : x["mel"].shape[1]] = x["mel"]
    return {
        "tokens": tokens,
        "token_lengths": torch.tensor([len(x["tokens"]) for x in batch]),
        "mel": mel,
        "mel_lengths": torch.tensor([x["mel"].shape[1] for x in batch]),
    }
