"""Duration predictor, its loss, and the length utilities of the acoustic model.

Durations are frames per token. The predictor outputs log durations (Glow-TTS /
Grad-TTS convention): the training target is ``log d`` and synthesis takes
``ceil(exp(log_d) * length_scale)``, so a perfect prediction of d gives back exactly d
frames. ``ceil`` of a positive number is at least 1, so every real token gets at least
one frame at synthesis; to match, targets below 1 frame (zero durations from an
external aligner) are trained towards 1 frame (``log max(d, 1)``) instead of the huge
negative ``log 1e-8`` Grad-TTS would use for them. MAS durations are always >= 1.

This module imports only torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wavediff.nn.encoder import ChannelLayerNorm

__all__ = [
    "DurationPredictor",
    "duration_loss",
    "durations_to_frames",
    "expand",
    "alignment_path",
]


def _mask_b1n(mask: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """[B, N] or [B, 1, N] mask (bool or 0/1) -> float [B, 1, N]."""
    if mask.dim() == 2:
        mask = mask.unsqueeze(1)
    if mask.shape != (batch, 1, length):
        raise ValueError(f"mask must be [{batch}, {length}] or [{batch}, 1, {length}], got shape {tuple(mask.shape)}.")
    return mask.float() if mask.dtype == torch.bool else (mask != 0).float()


class DurationPredictor(nn.Module):
    """FastSpeech / Glow-TTS duration predictor: 2 x (conv -> ReLU -> LayerNorm -> dropout) -> 1x1 conv.

    Feed it ``h.detach()``: like Glow-TTS and Grad-TTS, the duration loss should not
    shape the encoder (the detaching is left to the caller).
    """

    def __init__(
        self, in_channels: int, filter_channels: int = 256, kernel_size: int = 3, dropout: float = 0.1
    ) -> None:
        super().__init__()
        sizes = (("in_channels", in_channels), ("filter_channels", filter_channels), ("kernel_size", kernel_size))
        for name, value in sizes:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-length convolutions), got {kernel_size}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.in_channels = in_channels
        self.conv1 = nn.Conv1d(in_channels, filter_channels, kernel_size, padding=kernel_size // 2)
        self.norm1 = ChannelLayerNorm(filter_channels)
        self.conv2 = nn.Conv1d(filter_channels, filter_channels, kernel_size, padding=kernel_size // 2)
        self.norm2 = ChannelLayerNorm(filter_channels)
        self.proj = nn.Conv1d(filter_channels, 1, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h [B, C, N], mask [B, 1, N] or [B, N] -> log durations [B, N] (0 past the length)."""
        if h.dim() != 3 or h.shape[1] != self.in_channels:
            raise ValueError(f"h must be [batch, {self.in_channels}, tokens], got shape {tuple(h.shape)}.")
        mask = _mask_b1n(mask, h.shape[0], h.shape[2]).to(h.dtype)  # [B, 1, N]
        y = self.dropout(self.norm1(F.relu(self.conv1(h * mask))))  # [B, F, N]
        y = self.dropout(self.norm2(F.relu(self.conv2(y * mask))))  # [B, F, N]
        return (self.proj(y * mask) * mask).squeeze(1)  # [B, N]


def duration_loss(log_dur_pred: torch.Tensor, durations: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log_dur_pred [B, N], durations [B, N] (frames, int or float), mask [B, N] or [B, 1, N] -> scalar.

    Mean over real tokens of ``(log_dur_pred - log max(d, 1))^2``.
    """
    if log_dur_pred.dim() != 2 or durations.shape != log_dur_pred.shape:
        raise ValueError(
            f"log_dur_pred and durations must both be [batch, tokens], got {tuple(log_dur_pred.shape)} "
            f"and {tuple(durations.shape)}."
        )
    batch, length = log_dur_pred.shape
    mask = _mask_b1n(mask, batch, length).squeeze(1).to(log_dur_pred.dtype)  # [B, N]
    if bool((durations[mask > 0] < 0).any()):
        raise ValueError("durations must be >= 0.")
    target = torch.log(durations.to(log_dur_pred.dtype).clamp_min(1.0))  # [B, N]
    squared = (log_dur_pred - target) ** 2 * mask
    return squared.sum() / mask.sum().clamp_min(1.0)


def durations_to_frames(
    log_dur: torch.Tensor, mask: torch.Tensor, length_scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """log_dur [B, N], mask [B, N] or [B, 1, N] -> (durations [B, N] long, frame counts [B] long).

    ``d = ceil(exp(log_dur) * length_scale)`` on real tokens (Grad-TTS), 0 on padding.
    ``length_scale`` > 1 slows speech down, < 1 speeds it up.
    """
    if log_dur.dim() != 2:
        raise ValueError(f"log_dur must be [batch, tokens], got shape {tuple(log_dur.shape)}.")
    if not float(length_scale) > 0.0:
        raise ValueError(f"length_scale must be > 0, got {length_scale!r}.")
    batch, length = log_dur.shape
    mask = _mask_b1n(mask, batch, length).squeeze(1)  # [B, N] float
    w = torch.exp(log_dur.float()) * mask * float(length_scale)
    durations = torch.ceil(w).long()  # [B, N]
    return durations, durations.sum(1)


def _check_durations(durations: torch.Tensor, batch: int | None = None, length: int | None = None) -> torch.Tensor:
    if durations.dim() != 2:
        raise ValueError(f"durations must be [batch, tokens], got shape {tuple(durations.shape)}.")
    if (batch is not None and durations.shape[0] != batch) or (length is not None and durations.shape[1] != length):
        raise ValueError(f"durations must be [{batch}, {length}], got shape {tuple(durations.shape)}.")
    if torch.is_floating_point(durations):
        if not bool((durations == durations.round()).all()):
            raise ValueError("durations must be whole numbers of frames.")
        durations = durations.long()
    if bool((durations < 0).any()):
        raise ValueError("durations must be >= 0.")
    return durations.long()


def _frame_count(cum: torch.Tensor, max_frames: int | None) -> int:
    total = int(cum[:, -1].max()) if cum.numel() else 0  # no tokens (or no items): 0 frames
    if max_frames is None:
        return total
    if max_frames < total:
        raise ValueError(f"max_frames={max_frames} is shorter than the longest item ({total} frames).")
    return max_frames


def expand(h: torch.Tensor, durations: torch.Tensor, max_frames: int | None = None) -> torch.Tensor:
    """Length regulator: h [B, C, N], durations [B, N] -> [B, C, T].

    Token n's column is repeated ``durations[b, n]`` times; frames past an item's total are
    zero. T is ``max_frames`` or the longest total. Padded tokens must have duration 0
    (as ``durations_to_frames`` gives). Equal to ``h @ alignment_path(durations)`` but
    done with a gather (no [B, N, T] matrix).
    """
    if h.dim() != 3:
        raise ValueError(f"h must be [batch, channels, tokens], got shape {tuple(h.shape)}.")
    batch, channels, length = h.shape
    durations = _check_durations(durations, batch, length)
    cum = torch.cumsum(durations, dim=1)  # [B, N]: end frame (exclusive) of each token
    t_max = _frame_count(cum, max_frames)
    if length == 0:
        return h.new_zeros(batch, channels, t_max)
    frames = torch.arange(t_max, device=h.device).unsqueeze(0).expand(batch, t_max).contiguous()  # [B, T]
    token = torch.searchsorted(cum, frames, right=True)  # [B, T]: first token whose end is past t
    inside = token < length  # False past the item's total
    token = token.clamp_max(length - 1)
    out = h.gather(2, token.unsqueeze(1).expand(batch, channels, t_max))  # [B, C, T]
    return out * inside.unsqueeze(1).to(h.dtype)


def alignment_path(durations: torch.Tensor, max_frames: int | None = None) -> torch.Tensor:
    """durations [B, N] -> 0/1 float path [B, N, T] with ``path[b, n, t] = 1`` iff frame t is token n's.

    T is ``max_frames`` or the longest total.
    """
    durations = _check_durations(durations)
    cum = torch.cumsum(durations, dim=1)  # [B, N]
    t_max = _frame_count(cum, max_frames)
    frames = torch.arange(t_max, device=durations.device).view(1, 1, t_max)  # [1, 1, T]
    start = (cum - durations).unsqueeze(2)  # [B, N, 1]
    return ((frames >= start) & (frames < cum.unsqueeze(2))).float()
