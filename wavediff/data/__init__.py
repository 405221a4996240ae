"""Data: corpora on disk (LJSpeech layout or plain folders), vocoder datasets, feature caches."""

from wavediff.data.corpus import (
    AUDIO_SUFFIXES,
    Split,
    Utterance,
    read_id_list,
    scan_corpus,
    select,
    split_corpus,
)
from wavediff.data.synthetic import make_test_corpus, speech_like
from wavediff.data.vocoder import VocoderDataset, collate_vocoder

__all__ = [
    "AUDIO_SUFFIXES",
    "Split",
    "Utterance",
    "VocoderDataset",
    "collate_vocoder",
    "make_test_corpus",
    "read_id_list",
    "scan_corpus",
    "select",
    "speech_like",
    "split_corpus",
]
