"""Spectral distances between waveforms (torch only; used by the schedule search and ``eval``)."""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["stft_magnitude", "mrstft_distance"]

DEFAULT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))


def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """|STFT| of x [B, T] → [B, n_fft//2+1, frames] (Hann window, centred, floor 1e-7)."""
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, win, window, center=True, return_complex=True)
    return spec.abs().clamp(min=1e-7)


def mrstft_distance(
    reference: torch.Tensor, generated: torch.Tensor, resolutions: Sequence[tuple[int, int, int]] = DEFAULT_RESOLUTIONS
) -> torch.Tensor:
    """Multi-resolution STFT distance per example, [B]: mean over resolutions of spectral
    convergence ‖|S|−|Ŝ|‖_F/‖|S|‖_F plus mean |log|S| − log|Ŝ||| (Yamamoto et al., 2020).

    0 for identical signals; grows with added noise. Inputs [T] or [B, T]; the longer is cropped."""
    ref, gen = torch.atleast_2d(reference).float(), torch.atleast_2d(generated).float()
    if ref.shape[0] != gen.shape[0]:
        raise ValueError(f"batch sizes differ: {ref.shape[0]} vs {gen.shape[0]}")
    n = min(ref.shape[-1], gen.shape[-1])
    if n < max(r[0] for r in resolutions) // 2 + 1:
        raise ValueError(f"signals of {n} samples are too short for the STFT distance")
    ref, gen = ref[..., :n], gen[..., :n]
    total = torch.zeros(ref.shape[0], device=ref.device)
    for n_fft, hop, win in resolutions:
        s, g = stft_magnitude(ref, n_fft, hop, win), stft_magnitude(gen, n_fft, hop, win)
        sc = torch.linalg.vector_norm(s - g, dim=(1, 2)) / torch.linalg.vector_norm(s, dim=(1, 2))
        mag = (s.log() - g.log()).abs().mean(dim=(1, 2))
        total = total + sc + mag
    return total / len(resolutions)
