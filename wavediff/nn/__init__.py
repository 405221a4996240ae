"""Neural network modules (torch only; never numpy or librosa)."""

from wavediff.nn.denoiser import Denoiser, DenoiserConfig

__all__ = ["Denoiser", "DenoiserConfig"]
