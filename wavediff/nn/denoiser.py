"""Dilated-convolution denoiser shared by the vocoder and the mel diffusion stage.

The residual stack follows lmnt-com/diffwave's ``model.py`` block for block (the
parameter names match, so converting its checkpoints is a key rename), with these
additions:

* ``in_channels``: a "sample" can be one audio sample (1) or a mel frame (80).
* ``fold``: a waveform ``[B, 1, L]`` is processed as ``[B, fold, L / fold]``;
  the residual stack then runs at ``1 / fold`` of the sample rate.
* ``upsample_factor``: any hop (odd ones too), or 1 for frame-rate conditioning.
* ``cond_channels=None``: unconditional model.
* ``learned_variance``: a second output head ``v`` for Improved-DDPM variances.
* the skip connections are summed in place, so memory is linear in the length
  and independent of the number of layers (lmnt stacks all skip outputs).
* activations are [B, C, L] in shape but stored time-major ([B, L, C] in memory):
  the 1x1 convs are then plain matrix products (the conditioner's is fused with
  the add into one ``addmm``) and the dilated conv runs channels-last, with no
  layout transposes inside cuDNN. Same maths and parameters as lmnt's.
* sampling on a CPU (no gradients) runs the layers in place, in buffers they share: the same
  operations in the same dtypes as with gradients, without allocating per layer.
* :meth:`Denoiser.prepare_condition` runs the conditioning (upsampler and every layer's conditioner
  projection) once for all the steps of a sampling run: the mel does not change from step to step, and
  its projection is a quarter of the vocoder's arithmetic per step (a third of the acoustic model's).

This module imports only torch. Training with gradients imports :mod:`.fused_stack` (and Triton where it
is installed: on a GPU the residual stack then runs as fused kernels, same maths); sampling never does,
so inference does not pay Triton's import (about 1.5 s on a 2-core CPU).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DenoiserConfig",
    "DiffusionEmbedding",
    "ConditionUpsampler",
    "ResidualBlock",
    "Denoiser",
    "PreparedCondition",
    "PREPARED_CONDITION_BYTES",
    "upsample_strides",
]

MAX_STAGE_STRIDE = 16
# Denoiser.prepare_conditions prepares the conditions of a sampling run when together they take no more than
# this: 12 s of audio for the default vocoder (20 layers x 96 projected channels at 22,050 / 8 Hz, float32)
PREPARED_CONDITION_BYTES = 256 * 2**20


# --------------------------------------------------------------------------- config


@dataclass
class DenoiserConfig:
    """Sizes of a :class:`Denoiser`; stored as the ``"model"`` section of ``config.json``."""

    in_channels: int = 1
    fold: int = 1
    residual_layers: int = 30
    residual_channels: int = 64
    dilation_cycle: int = 10
    cond_channels: int | None = 80
    upsample_factor: int = 256
    max_steps: int = 50
    learned_variance: bool = False
    embedding_dim: int = 128
    embedding_hidden: int = 512

    def __post_init__(self) -> None:
        for name in (
            "in_channels",
            "fold",
            "residual_layers",
            "residual_channels",
            "dilation_cycle",
            "upsample_factor",
            "max_steps",
            "embedding_dim",
            "embedding_hidden",
        ):
            _check_positive_int(name, getattr(self, name))
        if self.cond_channels is not None:
            _check_positive_int("cond_channels", self.cond_channels)
        if not isinstance(self.learned_variance, bool):
            raise ValueError(f"learned_variance must be a bool, got {self.learned_variance!r}.")
        if self.fold > 1 and self.in_channels != 1:
            raise ValueError(
                f"fold={self.fold} needs in_channels == 1 (a waveform), got in_channels={self.in_channels}."
            )
        if self.cond_channels is not None and self.upsample_factor % self.fold != 0:
            raise ValueError(
                f"fold={self.fold} must divide upsample_factor={self.upsample_factor}."
            )
        if self.embedding_dim % 2 != 0 or self.embedding_dim < 4:
            raise ValueError(f"embedding_dim must be an even number >= 4, got {self.embedding_dim}.")

    @property
    def out_channels(self) -> int:
        """Channels of the returned tensor: ``in_channels`` (ε), doubled with learned variance."""
        return self.in_channels * (2 if self.learned_variance else 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DenoiserConfig":
        if not isinstance(data, dict):
            raise ValueError(f"A denoiser config must be a dict, got {type(data).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown denoiser config keys {unknown}; known keys are {sorted(known)}.")
        return cls(**data)


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")


# --------------------------------------------------------------------------- blocks


def _conv1d(*args: Any, **kwargs: Any) -> nn.Conv1d:
    """``nn.Conv1d`` with Kaiming-normal weights, as in lmnt-com/diffwave."""
    layer = nn.Conv1d(*args, **kwargs)
    nn.init.kaiming_normal_(layer.weight)
    return layer


def _time_major(x: torch.Tensor) -> torch.Tensor:
    """[B, C, L] -> the same values stored time-major: a [B, C, L] view of a [B, L, C] buffer."""
    return x.transpose(1, 2).contiguous().transpose(1, 2)


def _pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """1x1 conv as one matrix product over channels: x [B, Cin, L], weight [Cout, Cin, 1] -> [B, Cout, L].

    The result is stored time-major; a time-major ``x`` is read without a copy."""
    return F.linear(x.transpose(1, 2), weight.squeeze(-1), bias).transpose(1, 2)


def _dilated_conv(x: torch.Tensor, conv: nn.Conv1d, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv`` (kernel k, 'same' padding) of x [B, C, L] -> [B, Cout, L], run as a 2-D conv on [B, C, 1, L].

    A time-major x is channels-last in that view, which cuDNN and oneDNN take as is (``F.conv1d``
    would first copy it to [B, C, L] order); the output is time-major too."""
    out = F.conv2d(x.unsqueeze(2), conv.weight.unsqueeze(2), bias,
                   padding=(0, conv.padding[0]), dilation=(1, conv.dilation[0]))  # [B, Cout, 1, L]
    return out.squeeze(2)


class DiffusionEmbedding(nn.Module):
    """Step index -> ``[B, embedding_hidden]`` feature (lmnt's sin/cos table + 2-layer MLP).

    Integer steps index the table; float steps interpolate linearly between the two
    neighbouring rows, which is what makes fractional (continuous-time) steps work.
    """

    def __init__(self, max_steps: int, embedding_dim: int = 128, hidden: int = 512) -> None:
        super().__init__()
        self.max_steps = max_steps
        self.register_buffer("embedding", self._build_embedding(max_steps, embedding_dim), persistent=False)
        self.projection1 = nn.Linear(embedding_dim, hidden)
        self.projection2 = nn.Linear(hidden, hidden)

    def _apply(self, fn: Any, recurse: bool = True) -> "DiffusionEmbedding":
        """Module casts (``.half()``, ``.to(torch.bfloat16)``) keep the sin/cos table in float32."""
        super()._apply(fn, recurse)
        if self.embedding.dtype in (torch.float16, torch.bfloat16):
            table = self._build_embedding(self.max_steps, self.embedding.shape[1])
            self.embedding = table.to(self.embedding.device)
        return self

    @staticmethod
    def _build_embedding(max_steps: int, embedding_dim: int) -> torch.Tensor:
        half = embedding_dim // 2
        steps = torch.arange(max_steps).unsqueeze(1)  # [T, 1]
        dims = torch.arange(half).unsqueeze(0)  # [1, half]
        table = steps * 10.0 ** (dims * 4.0 / (half - 1))  # [T, half]
        return torch.cat([torch.sin(table), torch.cos(table)], dim=1)  # [T, embedding_dim]

    def table_rows(self, t: torch.Tensor) -> torch.Tensor:
        """t [B] int or float -> interpolated table rows [B, embedding_dim] (float32)."""
        table = self.embedding.float()
        if not torch.is_floating_point(t):
            return table[t.long()]
        t = t.float()
        low = torch.floor(t).long()
        high = torch.ceil(t).long()
        frac = (t - low).unsqueeze(-1)  # [B, 1]
        return table[low] + (table[high] - table[low]) * frac

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t [B] -> [B, hidden]."""
        x = self.table_rows(t).to(self.projection1.weight.dtype)  # [B, E]
        x = F.silu(self.projection1(x))  # [B, H]
        return F.silu(self.projection2(x))  # [B, H]


def upsample_strides(factor: int) -> tuple[int, ...]:
    """Split an upsampling factor into the fewest transposed-conv strides <= 16.

    Among the splits with the fewest stages the most balanced one (smallest largest
    stride) is chosen, largest stride first: 256 -> (16, 16) like lmnt, 300 -> (10, 6, 5),
    275 -> (11, 5, 5), 1 -> (). A prime factor above 16 becomes a stage of its own.
    """
    _check_positive_int("upsample factor", factor)
    big: list[int] = []  # prime factors > 16: each needs a stage of its own
    rest = 1  # product of the prime factors <= 16
    remaining, p = factor, 2
    while remaining > 1:
        if p * p > remaining:
            p = remaining  # what is left is prime
        while remaining % p == 0:
            remaining //= p
            if p > MAX_STAGE_STRIDE:
                big.append(p)
            else:
                rest *= p
        p += 1

    best: tuple[int, ...] | None = None
    n_stages = 0
    while best is None:
        n_stages += 1
        best = _balanced_split(rest, n_stages)
    strides = sorted([s for s in best if s > 1] + big, reverse=True)
    return tuple(strides)


def _balanced_split(n: int, k: int) -> tuple[int, ...] | None:
    """The split of n into k factors <= 16 with the smallest maximum, or None."""
    if k == 1:
        return (n,) if n <= MAX_STAGE_STRIDE else None
    best: tuple[int, ...] | None = None
    for d in range(min(n, MAX_STAGE_STRIDE), 0, -1):
        if n % d:
            continue
        tail = _balanced_split(n // d, k - 1)
        if tail is None:
            continue
        cand = (d,) + tail
        if best is None or max(cand) < max(best):
            best = cand
    return best


class ConditionUpsampler(nn.Module):
    """cond [B, C, frames] -> [B, C, frames * factor] with 2-D transposed convs.

    Each stage is lmnt's ``ConvTranspose2d(1, 1, [3, 2s], stride [1, s], padding [1, s // 2])``
    followed by ``leaky_relu(0.4)``; its output is cropped to ``frames * s`` so odd strides
    work too. A factor of 1 is the identity (frame-rate conditioning).
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.strides = upsample_strides(factor)
        self.stages = nn.ModuleList(
            nn.ConvTranspose2d(1, 1, [3, 2 * s], stride=[1, s], padding=[1, s // 2]) for s in self.strides
        )

    def forward(self, cond: torch.Tensor, fused_dtype: torch.dtype | None = None) -> torch.Tensor:
        """cond [B, C, N] -> [B, C, N * factor], stored time-major (a [B, C, L] view of [B, L, C]).

        With ``fused_dtype`` (where :class:`Denoiser` runs its fused residual stack) each stage runs as
        the Triton kernels of :mod:`wavediff.nn.fused_upsampler`, its output in that dtype, when no
        stride exceeds 16 (the tiles the kernels were sized for; a prime factor above 16 gets a stage
        of its own and runs here)."""
        if fused_dtype is not None and self.strides and max(self.strides) <= MAX_STAGE_STRIDE:
            from .fused_upsampler import fused_upsample

            return fused_upsample(self.stages, self.strides, cond, fused_dtype)
        x = cond.transpose(1, 2)  # [B, N, C]
        for stride, stage in zip(self.strides, self.stages):
            x = F.leaky_relu(_transposed_stage(x, stage.weight, stage.bias, stride), 0.4)  # [B, N * s, C]
        return x.transpose(1, 2)


def _transposed_stage(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int) -> torch.Tensor:
    """``ConvTranspose2d(1, 1, [3, 2s], stride [1, s], padding [1, s // 2])`` on time-major frames, cropped
    to ``N * s`` samples: x [B, N, C] -> [B, N * s, C].

    Output block n (samples n*s .. n*s + s - 1 before the padding crop) sums frame n through the
    kernel's first s columns and frame n - 1 through its last s, each over three neighbouring bins:
    one product with a 6-deep inner dimension, written straight in time-major order. (cuDNN's
    transposed conv for this one-channel case reads and writes at a small fraction of the memory
    bandwidth and needs layout transposes around it.)"""
    batch, frames, bins = x.shape
    kernel = weight.reshape(3, 2 * stride)  # [3 bins, 2s]
    u = F.pad(x, (1, 1))  # [B, N, C + 2]: bin h of tap kh reads u[..., h + 2 - kh]
    taps = torch.cat([u[..., None, 2 - kh: 2 - kh + bins] for kh in range(3)], 2)  # [B, N, 3, C]
    current = F.pad(taps, (0, 0, 0, 0, 0, 1))  # [B, N + 1, 3, C]: frame n
    previous = F.pad(taps, (0, 0, 0, 0, 1, 0))  # frame n - 1
    frames_in = torch.cat([current, previous], 2)  # [B, N + 1, 6, C]
    mix = torch.cat([kernel[:, :stride], kernel[:, stride:]], 0).t()  # [s, 6]
    out = torch.matmul(mix.to(frames_in.dtype), frames_in)  # [B, N + 1, s, C]
    start = stride // 2
    out = out.reshape(batch, (frames + 1) * stride, bins)[:, start:start + frames * stride]
    return out + bias.to(out.dtype)


def _gated_tanh(y: torch.Tensor) -> torch.Tensor:
    """WaveNet's gate σ(gate)·tanh(filter) of y = [gate; filter] (last dim): [B, L, 2C] -> [B, L, C].

    Sampling on a CPU (no gradients) takes the same product as σ(g)·(2σ(2f) − 1) in float32, in place:
    PyTorch's CPU tanh, and any bfloat16 elementwise op, is several times slower than its float32
    sigmoid, and this halves the gate's time in CPU vocoding. It agrees to ~2e-7."""
    gate, filt = torch.chunk(y, 2, dim=-1)
    if torch.is_grad_enabled() or y.device.type != "cpu":
        return torch.sigmoid(gate) * torch.tanh(filt)
    out = torch.sigmoid(gate.float())
    return out.mul_(torch.sigmoid(filt.float() * 2).mul_(2).sub_(1)).to(y.dtype)


def _sampling_gate(y: torch.Tensor, work: dict[str, torch.Tensor]) -> torch.Tensor:
    """:func:`_gated_tanh`'s sampling branch (no gradients, CPU) in place: [B, L, 2C] -> [B, L, C].

    The same operations in the same dtypes, so the same values, without its temporaries: a float32
    ``y`` is overwritten (the result is a view of it), another dtype is converted into ``work``'s float32
    buffer and the result written to its buffer there (both reused by the next layer)."""
    dtype = y.dtype
    if dtype != torch.float32:
        y = _work_buffer(work, "gate", y.shape, torch.float32, y.device).copy_(y)
    gate, filt = torch.chunk(y, 2, dim=-1)
    filt.mul_(2)
    y.sigmoid_()  # σ(gate) and σ(2 filt) in one pass
    gate.mul_(filt.mul_(2).sub_(1))
    if dtype == torch.float32:
        return gate
    return _work_buffer(work, "gated", gate.shape, dtype, y.device).copy_(gate)


def _work_buffer(work: dict[str, torch.Tensor], name: str, shape: torch.Size, dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor:
    """``work[name]``, (re)allocated when it does not have this shape and dtype: buffers that one sampling
    call's layers share. (Allocating such buffers anew in every layer can cost more than the arithmetic on
    them: depending on the state of glibc's allocator, which varies from process to process, each one is
    handed back to the OS when freed and page-faulted in again; that made the bundled vocoder's 4 s CPU
    call take 1.4-2.0 s instead of 1.0 s: benchmarks/results/dev/cpu_sampling_session7.md.)"""
    buf = work.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = work[name] = torch.empty(shape, dtype=dtype, device=device)
    return buf


class ResidualBlock(nn.Module):
    """One gated, dilated residual layer (lmnt's maths and parameter names)."""

    def __init__(self, cond_channels: int | None, residual_channels: int, dilation: int, embedding_hidden: int = 512) -> None:
        super().__init__()
        c = residual_channels
        self.dilated_conv = _conv1d(c, 2 * c, 3, padding=dilation, dilation=dilation)
        self.diffusion_projection = nn.Linear(embedding_hidden, c)
        self.conditioner_projection = _conv1d(cond_channels, 2 * c, 1) if cond_channels is not None else None
        self.output_projection = _conv1d(c, 2 * c, 1)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None, step: torch.Tensor, projected: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, L], cond [B, Cc, L] or None, step [B, H] -> (residual out [B, C, L], skip [B, C, L]).

        ``projected`` [B, L, 2C] (instead of cond): the conditioner projection of cond plus both biases,
        computed beforehand (:meth:`Denoiser.prepare_condition`).

        Inside, the maths runs on [B, L, C] (time-major) tensors, so the chunks' gradients are
        concatenated time-major too; x and cond are read without copies when stored time-major (as
        :class:`Denoiser` keeps them), and the outputs are views of time-major buffers."""
        x = x.transpose(1, 2)  # [B, L, C]
        y = x + self.diffusion_projection(step).unsqueeze(1)  # [B, L, C]
        if projected is not None:
            y = _dilated_conv(y.transpose(1, 2), self.dilated_conv, None).transpose(1, 2) + projected
            return self._gate_and_project(x, y)
        cond_proj = self.conditioner_projection
        # the conditioner's bias joins the dilated conv's: the same sum with one pass fewer
        bias = self.dilated_conv.bias if cond_proj is None else self.dilated_conv.bias + cond_proj.bias
        y = _dilated_conv(y.transpose(1, 2), self.dilated_conv, bias).transpose(1, 2)  # [B, L, 2C]
        if cond_proj is not None:
            batch, length, width = y.shape
            cond = cond.transpose(1, 2).reshape(batch * length, -1)  # [B*L, Cc]
            # y + cond @ W^T in one matrix product (the add rides on the GEMM)
            y = torch.addmm(y.reshape(batch * length, width), cond, cond_proj.weight.squeeze(-1).t())
            y = y.view(batch, length, width)  # [B, L, 2C]
        return self._gate_and_project(x, y)

    def _gate_and_project(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """forward's second half: the gate and output projection of y [B, L, 2C], added to x [B, L, C]."""
        y = _gated_tanh(y)  # [B, L, C]
        y = F.linear(y, self.output_projection.weight.squeeze(-1), self.output_projection.bias)  # [B, L, 2C]
        residual, skip = torch.chunk(y, 2, dim=-1)
        out = x + residual  # a fresh tensor autograd does not keep, so dividing in place is safe
        return out.div_(math.sqrt(2.0)).transpose(1, 2), skip.transpose(1, 2)

    def _sample(
        self, x: torch.Tensor, cond: torch.Tensor | None, step: torch.Tensor, work: dict[str, torch.Tensor],
        projected: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` for sampling on a CPU (no gradients): the same operations in the same dtypes, so
        the same values, written in place or into ``work``'s buffers (shared by all layers of one call)
        where forward allocates. ``x`` is overwritten: the output is stored in it; the skip output is a
        view of a ``work`` buffer, which the next layer overwrites."""
        x = x.transpose(1, 2)  # [B, L, C]
        step = self.diffusion_projection(step).unsqueeze(1)  # [B, 1, C]
        y = torch.add(x, step, out=_work_buffer(work, "input", x.shape, torch.result_type(x, step), x.device))
        cond_proj = self.conditioner_projection
        if projected is not None:
            bias = None  # both biases are in `projected`
        elif cond_proj is None:
            bias = self.dilated_conv.bias
        else:
            bias = self.dilated_conv.bias + cond_proj.bias
        y = _dilated_conv(y.transpose(1, 2), self.dilated_conv, bias).transpose(1, 2)  # [B, L, 2C], new
        if projected is not None:
            y.add_(projected)  # forward's sum, in place
        elif cond_proj is not None:
            batch, length, width = y.shape
            cond = cond.transpose(1, 2).reshape(batch * length, -1)  # [B*L, Cc]
            # forward's addmm with y as the accumulator (same kernel, without copying y first); autocast leaves
            # in-place ops alone, so the operands are given y's dtype, as autocast gives them there
            weight = cond_proj.weight.squeeze(-1).t().to(y.dtype)
            y = y.reshape(batch * length, width).addmm_(cond.to(y.dtype), weight).view(batch, length, width)
        y = _sampling_gate(y, work)  # [B, L, C]
        batch, length, channels = y.shape
        # forward's F.linear, i.e. addmm(bias, y, W^T) (with y's dtype for the operands, as above), into a buffer
        proj = self.output_projection
        out = _work_buffer(work, "output", (batch * length, 2 * channels), y.dtype, y.device)
        y = torch.addmm(proj.bias.to(y.dtype), y.reshape(batch * length, channels),
                        proj.weight.squeeze(-1).t().to(y.dtype), out=out).view(batch, length, 2 * channels)
        residual, skip = torch.chunk(y, 2, dim=-1)
        return x.add_(residual).div_(math.sqrt(2.0)).transpose(1, 2), skip.transpose(1, 2)


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class PreparedCondition:
    """A conditioning input run through :class:`Denoiser`'s upsampler and every layer's conditioner
    projection once (:meth:`Denoiser.prepare_condition`), to be passed as ``cond`` at each step of a
    sampling run instead of the mel: ``terms[i]`` [B, L', 2C] is layer i's ``W·cond + b`` (its dilated conv's
    bias included), float32, time-major; ``frames`` is the number of conditioning frames it came from."""

    terms: torch.Tensor  # [layers, B, L', 2C]
    frames: int

    @property
    def shape(self) -> tuple[int, int]:
        """(batch, frames) of the cond it was made from."""
        return (self.terms.shape[1], self.frames)


class Denoiser(nn.Module):
    """ε-prediction network: ``forward(x, t, cond) -> ε`` (and ``v`` with learned variance)."""

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        if not isinstance(config, DenoiserConfig):
            raise ValueError(f"Denoiser needs a DenoiserConfig, got {type(config).__name__}.")
        self.config = config
        cfg = config
        inner = cfg.in_channels * cfg.fold  # channels seen by the residual stack
        c = cfg.residual_channels
        self.input_projection = _conv1d(inner, c, 1)
        self.diffusion_embedding = DiffusionEmbedding(cfg.max_steps, cfg.embedding_dim, cfg.embedding_hidden)
        if cfg.cond_channels is not None:
            self.cond_upsampler = ConditionUpsampler(cfg.upsample_factor // cfg.fold)
        else:
            self.cond_upsampler = None
        self.residual_layers = nn.ModuleList(
            ResidualBlock(cfg.cond_channels, c, 2 ** (i % cfg.dilation_cycle), cfg.embedding_hidden)
            for i in range(cfg.residual_layers)
        )
        self.use_fused = True  # see _fused_dtype; set False to always run the layers one by one
        self.skip_projection = _conv1d(c, c, 1)
        self.output_projection = _conv1d(c, inner * (2 if cfg.learned_variance else 1), 1)
        nn.init.zeros_(self.output_projection.weight)
        nn.init.zeros_(self.output_projection.bias)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def condition_bytes(self, batch: int, frames: int) -> int:
        """Bytes that :meth:`prepare_condition` holds for a [batch, cond_channels, frames] cond (0 if unconditional)."""
        cfg = self.config
        if cfg.cond_channels is None:
            return 0
        positions = frames * cfg.upsample_factor // cfg.fold
        return 4 * batch * positions * cfg.residual_layers * 2 * cfg.residual_channels

    @torch.no_grad()
    def prepare_condition(self, cond: torch.Tensor) -> PreparedCondition:
        """cond [B, cond_channels, frames] -> a :class:`PreparedCondition` that ``forward`` takes in its place
        and that gives the same output (to float32 rounding) with a quarter to a third less arithmetic per call:
        the upsampler and all layers' conditioner projections (one matrix product) run here, once, instead of
        at every step. For sampling: it holds :meth:`condition_bytes` of memory and no gradients."""
        cfg = self.config
        if cfg.cond_channels is None:
            raise ValueError("This denoiser is unconditional: it has no condition to prepare.")
        if not torch.is_tensor(cond) or cond.dim() != 3 or cond.shape[1] != cfg.cond_channels:
            shape = tuple(cond.shape) if torch.is_tensor(cond) else type(cond).__name__
            raise ValueError(f"cond must be [batch, {cfg.cond_channels}, frames], got {shape}.")
        with torch.autocast(cond.device.type, enabled=False):
            up = self.cond_upsampler(cond.float()).transpose(1, 2)  # [B, L', Cc]
            batch, positions, channels = up.shape
            up = up.reshape(batch * positions, channels)
            terms = up.new_empty(len(self.residual_layers), batch * positions, 2 * cfg.residual_channels)
            for layer, out in zip(self.residual_layers, terms):  # each layer's term contiguous: read at every step
                proj = layer.conditioner_projection
                torch.addmm((proj.bias + layer.dilated_conv.bias).float(), up, proj.weight.squeeze(-1).t().float(),
                            out=out)
        return PreparedCondition(terms.view(len(self.residual_layers), batch, positions, -1), cond.shape[2])

    def prepare_conditions(self, conds: list[torch.Tensor]) -> list[torch.Tensor | PreparedCondition]:
        """The conds of one sampling run (e.g. a mel's chunks), each through :meth:`prepare_condition` where
        together they take no more than ``PREPARED_CONDITION_BYTES``; otherwise unchanged (projected at each
        step, as without preparation)."""
        total = sum(self.condition_bytes(c.shape[0], c.shape[-1]) for c in conds)
        if self.config.cond_channels is None or total > PREPARED_CONDITION_BYTES:
            return list(conds)
        return [self.prepare_condition(c) for c in conds]

    # ---- input checks ---------------------------------------------------------------

    def _check_inputs(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None
    ) -> torch.Tensor:
        cfg = self.config
        if x.dim() != 3:
            raise ValueError(f"x must be [batch, {cfg.in_channels}, length], got shape {tuple(x.shape)}.")
        batch, channels, length = x.shape
        if channels != cfg.in_channels:
            raise ValueError(f"x has {channels} channels but the model expects in_channels={cfg.in_channels}.")
        if cfg.cond_channels is None:
            if cond is not None:
                raise ValueError("This denoiser is unconditional but a cond tensor was given.")
        else:
            if cond is None:
                raise ValueError(f"This denoiser needs cond [batch, {cfg.cond_channels}, frames], got None.")
            if isinstance(cond, PreparedCondition):
                if (cond.terms.shape[0], cond.terms.shape[3]) != (cfg.residual_layers, 2 * cfg.residual_channels):
                    raise ValueError("This prepared condition was made by a denoiser of another size.")
                cond_batch, frames = cond.shape
            elif cond.dim() != 3 or cond.shape[1] != cfg.cond_channels:
                raise ValueError(
                    f"cond must be [batch, {cfg.cond_channels}, frames], got shape {tuple(cond.shape)}."
                )
            else:
                cond_batch, frames = cond.shape[0], cond.shape[2]
            if cond_batch != batch:
                raise ValueError(f"cond batch {cond_batch} does not match x batch {batch}.")
            if frames * cfg.upsample_factor != length:
                raise ValueError(
                    f"cond has {frames} frames, i.e. {frames * cfg.upsample_factor} samples "
                    f"at upsample_factor={cfg.upsample_factor}, but x has length {length}."
                )
        if length % cfg.fold != 0:
            raise ValueError(f"Length {length} is not a multiple of fold={cfg.fold}.")
        t = torch.as_tensor(t)
        if t.dim() == 0 or (t.dim() == 1 and t.shape[0] == 1 and batch != 1):
            t = t.reshape(1).expand(batch)
        if t.dim() != 1 or t.shape[0] != batch:
            raise ValueError(f"t must be [batch={batch}] (or a scalar), got shape {tuple(t.shape)}.")
        if t.dtype == torch.bool or t.is_complex():
            raise ValueError(f"t must be an int or float tensor, got {t.dtype}.")
        if not torch.compiler.is_compiling():
            # checked where t lives: free on the CPU, one device->host copy (not two) on a GPU
            lo, hi = torch.cat([v.reshape(1) for v in torch.aminmax(t.detach())]).tolist()
            if not (lo >= 0 and hi <= cfg.max_steps - 1):  # also rejects NaN
                raise ValueError(
                    f"Diffusion steps must lie in [0, {cfg.max_steps - 1}], got values in [{lo}, {hi}]."
                )
        return t.to(x.device, non_blocking=True)

    # ---- forward ------------------------------------------------------------------

    def _fused_dtype(self, h: torch.Tensor) -> torch.dtype | None:
        """The activation dtype for :func:`fused_residual_stack`, or None to run the layers one by one.

        The fused stack is for training (gradients on) on a CUDA device in bf16 (autocast or bf16
        weights), the precision it was checked and measured in (``benchmarks/fused_stack_check.py``);
        on the CPU only under Triton's interpreter (the tests)."""
        cfg = self.config
        if not torch.is_grad_enabled() or not self.use_fused:
            return None
        from .fused_stack import fused_stack_supported

        if not fused_stack_supported(cfg.residual_channels, cfg.cond_channels, h.device):
            return None
        if h.device.type != "cuda":
            return h.dtype
        dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else h.dtype
        return dtype if dtype == torch.bfloat16 else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | PreparedCondition | None = None
    ) -> torch.Tensor:
        """x [B, in_channels, L], t [B] (int or fractional float), cond [B, cond_channels, L / upsample_factor]
        (or :meth:`prepare_condition` of one) -> ε [B, in_channels, L], or [ε; v] [B, 2 * in_channels, L] with
        ``learned_variance``."""
        t = self._check_inputs(x, t, cond)
        prepared = cond if isinstance(cond, PreparedCondition) else None
        cfg = self.config
        batch, _, length = x.shape
        fold = cfg.fold

        if fold > 1:  # sample n * fold + k -> channel k, time n
            x = x.reshape(batch, length // fold, fold).transpose(1, 2)  # [B, F, L / F]
        # activations stay time-major from here on (see the module docstring): the 1x1 input conv as a
        # product written time-major, not a conv followed by a transposing copy
        h = F.relu(_pointwise_conv(x, self.input_projection.weight, self.input_projection.bias))  # [B, C, L']

        step = self.diffusion_embedding(t)  # [B, H]
        fused_dtype = None if prepared is not None else self._fused_dtype(h)
        if self.cond_upsampler is not None and prepared is None:
            cond = _time_major(self.cond_upsampler(cond, fused_dtype))  # [B, Cc, L']

        if fused_dtype is not None:  # training on a GPU: the whole stack as Triton kernels
            from .fused_stack import fused_residual_stack

            skip_sum = fused_residual_stack(self.residual_layers, h, cond, step, fused_dtype)  # [B, C, L']
        else:
            skip_sum = None  # [B, L', C]: a base tensor, so adding in place stays cheap in autograd
            # sampling on a CPU runs the layers' in-place twins, which share buffers (``work``); h is this
            # call's own tensor, so they may overwrite it
            sampling = not torch.is_grad_enabled() and h.device.type == "cpu"
            work: dict[str, torch.Tensor] = {}
            for i, layer in enumerate(self.residual_layers):
                projected = None if prepared is None else prepared.terms[i]  # [B, L', 2C]
                if sampling:
                    h, skip = layer._sample(h, cond, step, work, projected)
                else:
                    h, skip = layer(h, cond, step, projected)
                if skip_sum is None:  # own buffer, so the layer output can be freed (or, sampling, overwritten);
                    # a copy even where a [B, 1, C] view counts as contiguous: adding in place to a view of the
                    # layer's output would fail in autograd, or overwrite a sampling buffer
                    skip_sum = skip.transpose(1, 2).clone(memory_format=torch.contiguous_format)
                else:
                    skip_sum.add_(skip.transpose(1, 2))  # in place: memory independent of the number of layers
                del skip  # a view that would keep the whole [B, 2C, L] layer output alive
            skip_sum = skip_sum.transpose(1, 2)
        del h
        # the skip sum's 1/√layers rides on the skip projection's weight (a pass over [B, C, L'] fewer)
        skip_weight = self.skip_projection.weight / math.sqrt(len(self.residual_layers))
        h = F.relu(_pointwise_conv(skip_sum, skip_weight, self.skip_projection.bias))  # [B, C, L']
        out = _pointwise_conv(h, self.output_projection.weight, self.output_projection.bias)  # [B, inner * m, L']

        if fold > 1:
            heads = out.shape[1] // fold
            out = out.reshape(batch, heads, fold, length // fold).transpose(2, 3)  # [B, m, L/F, F]
            out = out.reshape(batch, heads, length)  # [B, m, L]
        return out.contiguous()
