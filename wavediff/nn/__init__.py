"""Neural network modules (torch only; never numpy or librosa)."""

from wavediff.nn.denoiser import Denoiser, DenoiserConfig

__all__ = ["Denoiser", "DenoiserConfig"]
from wavediff.nn.alignment import (
    log_likelihood_gaussian,
    monotonic_alignment_search,
    path_to_durations,
    sequence_mask,
)
from wavediff.nn.duration import (
    DurationPredictor,
    alignment_path,
    duration_loss,
    durations_to_frames,
    expand,
)
from wavediff.nn.encoder import EncoderConfig, TextEncoder

__all__ += [
    "EncoderConfig",
    "TextEncoder",
    "DurationPredictor",
    "duration_loss",
    "durations_to_frames",
    "expand",
    "alignment_path",
    "monotonic_alignment_search",
    "log_likelihood_gaussian",
    "path_to_durations",
    "sequence_mask",
]
