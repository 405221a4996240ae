"""The diffusion acoustic model (Grad-TTS-like): text encoder + duration predictor + mel denoiser.

Phoneme ids go through a transformer encoder to hidden states ``h`` and a per-phoneme prior mean
``μ`` (in mel units). Durations (from monotonic alignment search in training, from the duration
predictor at inference) expand both to frame rate; the DiffWave-style denoiser then works over mel
frames (80 bins as channels) conditioned on the expanded ``h`` and ``μ`` (Grad-TTS feeds μ to its
estimator too: the network need not infer it from x_t), and diffusion starts from N(μ, I).
This module holds the networks only; losses and sampling live in :mod:`wavediff.pipelines.tts`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from .alignment import log_likelihood_gaussian, monotonic_alignment_search, sequence_mask
from .denoiser import Denoiser, DenoiserConfig
from .duration import DurationPredictor, alignment_path, durations_to_frames
from .encoder import EncoderConfig, TextEncoder

__all__ = ["AcousticConfig", "AcousticModel"]


@dataclass
class AcousticConfig:
    """Sizes of an :class:`AcousticModel` (the ``"model"`` section of its ``config.json``)."""

    encoder: EncoderConfig
    denoiser: DenoiserConfig = field(
        default_factory=lambda: DenoiserConfig(
            in_channels=80, cond_channels=192 + 80, upsample_factor=1, residual_layers=12,
            residual_channels=64, dilation_cycle=6, max_steps=1000,
        )
    )
    duration_channels: int = 256
    duration_kernel: int = 3
    duration_dropout: float = 0.1

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig.from_dict(self.encoder)
        if isinstance(self.denoiser, dict):
            self.denoiser = DenoiserConfig.from_dict(self.denoiser)
        e, d = self.encoder, self.denoiser
        if d.in_channels != e.n_mels:
            raise ValueError(f"the denoiser works on {d.in_channels} channels but the encoder predicts {e.n_mels} mel bins")
        if d.cond_channels != e.dim + e.n_mels:
            raise ValueError(
                f"the denoiser is conditioned on {d.cond_channels} channels; it needs the encoder's "
                f"{e.dim} + the prior mean's {e.n_mels}"
            )
        if d.upsample_factor != 1 or d.fold != 1:
            raise ValueError("the mel denoiser works at frame rate: upsample_factor and fold must be 1")

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.to_dict(),
            "denoiser": self.denoiser.to_dict(),
            "duration_channels": self.duration_channels,
            "duration_kernel": self.duration_kernel,
            "duration_dropout": self.duration_dropout,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AcousticConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown acoustic model keys {unknown}")
        return cls(**d)


class AcousticModel(nn.Module):
    """Networks of the acoustic model. Shapes: B batch, N phonemes, T frames, M mel bins, D dim."""

    def __init__(self, config: AcousticConfig):
        super().__init__()
        self.config = config
        self.encoder = TextEncoder(config.encoder)
        self.duration = DurationPredictor(config.encoder.dim, config.duration_channels, config.duration_kernel, config.duration_dropout)
        self.denoiser = Denoiser(config.denoiser)

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor):
        """tokens [B, N], lengths [B] → h [B, D, N], μ [B, M, N], mask [B, 1, N], log-durations [B, N]."""
        h, mu, mask = self.encoder(tokens, lengths)
        log_dur = self.duration(h.detach(), mask)
        return h, mu, mask, log_dur

    @torch.no_grad()
    def align(self, mu: torch.Tensor, mel: torch.Tensor, text_mask: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
        """Monotonic alignment search of mel [B, M, T] against μ [B, M, N] → path [B, N, T] (0/1)."""
        mel_mask = sequence_mask(mel_lengths, mel.shape[-1])
        ll = log_likelihood_gaussian(mu.float(), mel.float())
        return monotonic_alignment_search(ll, text_mask, mel_mask).to(mu.dtype)

    @staticmethod
    def condition(h_x: torch.Tensor, mu_x: torch.Tensor) -> torch.Tensor:
        """The denoiser's frame-rate conditioning: expanded h [B, D, T] and μ [B, M, T] → [B, D + M, T]."""
        return torch.cat([h_x, mu_x], dim=1)

    @staticmethod
    def expand(x: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
        """Per-phoneme x [B, C, N] → per-frame [B, C, T] along an alignment path [B, N, T]."""
        return torch.bmm(x, path.to(x.dtype))

    def plan(self, tokens: torch.Tensor, lengths: torch.Tensor, length_scale: float = 1.0):
        """Inference: expanded h [B, D, T], μ [B, M, T], frame lengths [B] and the path [B, N, T]."""
        h, mu, mask, log_dur = self.encode(tokens, lengths)
        durations, frame_lengths = durations_to_frames(log_dur, mask, length_scale)
        path = alignment_path(durations, int(frame_lengths.max()))
        return self.expand(h, path), self.expand(mu, path), frame_lengths, path
