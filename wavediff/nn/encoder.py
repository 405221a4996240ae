"""Transformer phoneme encoder of the acoustic model (Glow-TTS / Grad-TTS layout).

tokens -> scaled embedding -> optional conv prenet -> N transformer blocks
(self-attention + convolutional feed-forward) -> h, and a 1x1 projection of h to
the prior mean mu of Grad-TTS.

Choices, and why:

* **Rotary position embeddings (RoPE)** instead of Glow-TTS's windowed relative
  attention. Both make attention depend on relative offsets only, so nothing is tied
  to the lengths seen in training. RoPE has no parameters and no window (an offset
  of 40 tokens is still told apart from one of 4), and it rotates q and k *before*
  the attention product, so the product itself is the stock
  ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU).
  Relative-attention logits need a custom skewed matmul that those kernels cannot run.
* **Pre-norm** blocks (LayerNorm before each sub-layer, one final LayerNorm), which
  train stably without learning-rate warm-up; Glow-TTS/Grad-TTS use post-norm.
* **Padding**: keys beyond each item's length are masked out of attention and every
  convolution input is zeroed beyond the length, so padding (whatever token ids it
  holds) never changes the outputs on the valid positions. Padded query rows still
  attend to the valid keys (no all-masked rows, hence no NaN) and are zeroed on output.

This module imports only torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "EncoderConfig",
    "ChannelLayerNorm",
    "RotaryEmbedding",
    "apply_rotary",
    "MultiHeadSelfAttention",
    "ConvFeedForward",
    "ConvPrenet",
    "TransformerBlock",
    "TextEncoder",
]


# --------------------------------------------------------------------------- config


@dataclass
class EncoderConfig:
    """Sizes of a :class:`TextEncoder`; stored in the acoustic model's ``config.json``."""

    n_symbols: int
    dim: int = 192
    n_layers: int = 6
    n_heads: int = 2
    ffn_dim: int = 768
    kernel_size: int = 3
    dropout: float = 0.1
    n_mels: int = 80
    prenet: bool = True
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("n_symbols", "dim", "n_layers", "n_heads", "ffn_dim", "kernel_size", "n_mels"):
            _check_positive_int(name, getattr(self, name))
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-length convolutions), got {self.kernel_size}.")
        if self.dim % self.n_heads != 0:
            raise ValueError(f"dim={self.dim} must be a multiple of n_heads={self.n_heads}.")
        if (self.dim // self.n_heads) % 2 != 0:
            raise ValueError(
                f"The head size dim / n_heads = {self.dim // self.n_heads} must be even for rotary embeddings."
            )
        dropout_ok = isinstance(self.dropout, (int, float)) and not isinstance(self.dropout, bool)
        if not dropout_ok or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}.")
        if not isinstance(self.prenet, bool):
            raise ValueError(f"prenet must be a bool, got {self.prenet!r}.")
        if (
            isinstance(self.rope_base, bool)
            or not isinstance(self.rope_base, (int, float))
            or not self.rope_base > 1.0
        ):
            raise ValueError(f"rope_base must be a number > 1, got {self.rope_base!r}.")
        self.dropout = float(self.dropout)
        self.rope_base = float(self.rope_base)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EncoderConfig":
        if not isinstance(data, dict):
            raise ValueError(f"An encoder config must be a dict, got {type(data).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown encoder config keys {unknown}; known keys are {sorted(known)}.")
        if "n_symbols" not in data:
            raise ValueError("An encoder config needs n_symbols (the size of the symbol table).")
        return cls(**data)


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")


# --------------------------------------------------------------------------- blocks


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a [B, C, N] tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, N] -> [B, C, N]."""
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class RotaryEmbedding(nn.Module):
    """Rotation angles of RoPE (Su et al. 2021) for positions 0..N-1.

    Channel pair (i, i + D/2) of a head is rotated by ``position * base^(-2i/D)``.
    The angles are computed in float32 on every call (no buffer, no length limit,
    unaffected by casting the module to bf16/fp16).
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2 != 0:
            raise ValueError(f"Rotary embeddings need an even head size, got {head_dim}.")
        self.head_dim = head_dim
        self.base = base

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions [N] (int or float) -> (cos, sin), each [N, head_dim / 2] float32."""
        half = self.head_dim // 2
        exponents = torch.arange(half, device=positions.device, dtype=torch.float32) * (2.0 / self.head_dim)
        inv_freq = self.base ** (-exponents)  # [D/2]
        angles = positions.to(torch.float32).unsqueeze(1) * inv_freq.unsqueeze(0)  # [N, D/2]
        return torch.cos(angles), torch.sin(angles)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [..., N, D], cos/sin [N, D/2] -> x rotated pairwise (i, i + D/2), same dtype as x."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.to(x.dtype)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with rotary positions and a key padding mask."""

    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0, rope_base: float = 10000.0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.rotary = RotaryEmbedding(self.head_dim, rope_base)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """x [B, N, C], key_mask [B, N] bool (True = real token) -> [B, N, C]."""
        batch, length, channels = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, N, D]
        cos, sin = self.rotary(torch.arange(length, device=x.device))  # [N, D/2]
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        attn_mask = key_mask.view(batch, 1, 1, length)  # broadcast over heads and queries
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # [B, H, N, D]
        y = y.transpose(1, 2).reshape(batch, length, channels)  # [B, N, C]
        return self.out(y)


class ConvFeedForward(nn.Module):
    """Glow-TTS feed-forward: conv(k) -> ReLU -> dropout -> conv(k), inputs zeroed past the length."""

    def __init__(self, dim: int, hidden: int, kernel_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(dim, hidden, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv1d(hidden, dim, kernel_size, padding=kernel_size // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, N, C], mask [B, N, 1] float -> [B, N, C] (zero past the length)."""
        y = (x * mask).transpose(1, 2)  # [B, C, N]
        y = self.dropout(F.relu(self.conv1(y)))  # [B, hidden, N]
        y = self.conv2(y * mask.transpose(1, 2))  # [B, C, N]
        return y.transpose(1, 2) * mask


class ConvPrenet(nn.Module):
    """Glow-TTS ``ConvReluNorm`` prenet: 3 x (conv5 -> LayerNorm -> ReLU -> dropout), then a
    zero-initialised 1x1 projection added to the input (the prenet starts as the identity)."""

    n_layers = 3
    kernel_size = 5
    dropout_p = 0.5

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(dim, dim, self.kernel_size, padding=self.kernel_size // 2) for _ in range(self.n_layers)
        )
        self.norms = nn.ModuleList(ChannelLayerNorm(dim) for _ in range(self.n_layers))
        self.dropout = nn.Dropout(self.dropout_p)
        self.proj = nn.Conv1d(dim, dim, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, C, N], mask [B, 1, N] float -> [B, C, N] (zero past the length)."""
        y = x
        for conv, norm in zip(self.convs, self.norms):
            y = self.dropout(F.relu(norm(conv(y * mask))))  # [B, C, N]
        return (x + self.proj(y)) * mask


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attention(LN(x)), then x + conv-FFN(LN(x))."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attention = MultiHeadSelfAttention(cfg.dim, cfg.n_heads, cfg.dropout, cfg.rope_base)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.ffn = ConvFeedForward(cfg.dim, cfg.ffn_dim, cfg.kernel_size, cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, N, C], key_mask [B, N] bool, mask [B, N, 1] float -> [B, N, C] (zero past the length)."""
        x = x + self.dropout(self.attention(self.norm1(x), key_mask))
        x = x * mask
        x = x + self.dropout(self.ffn(self.norm2(x), mask))
        return x * mask


# --------------------------------------------------------------------------- model


class TextEncoder(nn.Module):
    """Phoneme ids -> hidden states h and the prior mean mu of the mel frames (per token)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        if not isinstance(config, EncoderConfig):
            raise ValueError(f"TextEncoder needs an EncoderConfig, got {type(config).__name__}.")
        self.config = config
        cfg = config
        self.embedding = nn.Embedding(cfg.n_symbols, cfg.dim)
        nn.init.normal_(self.embedding.weight, 0.0, cfg.dim**-0.5)  # x sqrt(dim) below: unit scale
        self.prenet = ConvPrenet(cfg.dim) if cfg.prenet else None
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.dim)
        self.proj_mu = nn.Conv1d(cfg.dim, cfg.n_mels, 1)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def _check_inputs(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """-> bool mask [B, N]."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [batch, length], got shape {tuple(tokens.shape)}.")
        if torch.is_floating_point(tokens) or tokens.dtype == torch.bool or tokens.is_complex():
            raise ValueError(f"tokens must be an integer tensor, got {tokens.dtype}.")
        batch, length = tokens.shape
        lengths = torch.as_tensor(lengths, device=tokens.device)
        if lengths.shape != (batch,) or torch.is_floating_point(lengths) or lengths.dtype == torch.bool:
            raise ValueError(
                f"lengths must be an integer tensor of shape [{batch}], got {lengths.dtype} {tuple(lengths.shape)}."
            )
        if batch and not bool(((lengths >= 1) & (lengths <= length)).all()):
            raise ValueError(f"lengths must lie in [1, {length}], got {lengths.tolist()}.")
        mask = torch.arange(length, device=tokens.device).unsqueeze(0) < lengths.unsqueeze(1)  # [B, N]
        valid = tokens[mask]
        if valid.numel() and not bool(((valid >= 0) & (valid < self.config.n_symbols)).all()):
            raise ValueError(
                f"Token ids must lie in [0, {self.config.n_symbols - 1}], got values in "
                f"[{int(valid.min())}, {int(valid.max())}]."
            )
        return mask

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens [B, N] long, lengths [B] -> (h [B, dim, N], mu [B, n_mels, N], mask [B, 1, N]).

        ``mask`` is 1.0 on the first ``lengths[b]`` positions and 0.0 after (dtype of h);
        h and mu are zero past the length. Token ids past the length are ignored.
        """
        key_mask = self._check_inputs(tokens, lengths)  # [B, N] bool
        dtype = self.embedding.weight.dtype
        mask_bn1 = key_mask.unsqueeze(2).to(dtype)  # [B, N, 1]
        tokens = tokens.masked_fill(~key_mask, 0)  # padding ids never reach the table

        x = self.embedding(tokens) * math.sqrt(self.config.dim)  # [B, N, C]
        x = x * mask_bn1
        if self.prenet is not None:
            x = self.prenet(x.transpose(1, 2), mask_bn1.transpose(1, 2)).transpose(1, 2)  # [B, N, C]
        for block in self.blocks:
            x = block(x, key_mask, mask_bn1)  # [B, N, C]
        x = self.final_norm(x) * mask_bn1

        mask = mask_bn1.transpose(1, 2)  # [B, 1, N]
        h = x.transpose(1, 2)  # [B, C, N]
        mu = self.proj_mu(h) * mask  # [B, n_mels, N]
        return h, mu, mask
