"""Audio: mel extraction under named conventions, file I/O, resampling, validation."""

from wavediff.audio.io import load_audio, save_audio, validate_waveform
from wavediff.audio.mel import PRESETS, MelConfig, MelSpectrogram, decompress_mel, griffin_lim, match_mel, validate_mel

__all__ = [
    "PRESETS",
    "MelConfig",
    "MelSpectrogram",
    "validate_mel",
    "decompress_mel",
    "griffin_lim",
    "match_mel",
    "load_audio",
    "save_audio",
    "validate_waveform",
]
