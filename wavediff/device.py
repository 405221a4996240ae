"""Choosing the device (CUDA when available, else CPU; a requested device is checked with a clear
error) and the precision that sampling runs the networks in."""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["device_type", "PRECISIONS", "native_bf16", "inference_dtype", "in_precision"]

PRECISIONS = ("auto", "float32", "bfloat16")


def device_type(requested: str | torch.device | None = None) -> str:
    """``"cpu"`` or ``"cuda"`` for a requested device (None: cuda if available, else cpu).

    Raises ValueError for an unknown device or for CUDA on a machine without it."""
    if requested is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(requested).type
    except RuntimeError:
        raise ValueError(f"unknown device {str(requested)!r}; use 'cpu', 'cuda' or 'cuda:N'.") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(requested)!r} requested but CUDA is not available.")
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device {str(requested)!r} is not supported; use 'cpu' or 'cuda'.")
    return kind


def native_bf16(device: str | torch.device) -> bool:
    """True where bfloat16 matrix products run in hardware: a CUDA GPU that supports them, or a CPU
    with AVX512-BF16 or AMX (what oneDNN checks). Elsewhere bf16 is emulated and slower than float32."""
    kind = torch.device(device).type
    if kind == "cuda":
        if not torch.cuda.is_available():
            return False
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # an older torch without including_emulation
            return torch.cuda.is_bf16_supported()
    if kind == "cpu":
        try:
            return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a build without oneDNN's check
            return False
    return False


def inference_dtype(precision: str | None, device: str | torch.device) -> torch.dtype:
    """The dtype a network samples in: ``"float32"``, ``"bfloat16"``, or ``"auto"``/None (bfloat16 where
    :func:`native_bf16`, else float32)."""
    if precision in (None, "auto"):
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")


def in_precision(fn: Callable[..., torch.Tensor], dtype: torch.dtype, device: str | torch.device) -> Callable[..., torch.Tensor]:
    """``fn`` run under autocast to ``dtype`` (matrix products and convolutions in bf16, weights as
    stored), its result returned in float32 so that the sampler's arithmetic stays in float32."""
    if dtype == torch.float32:
        return fn
    kind = torch.device(device).type

    def wrapped(*args, **kwargs):
        with torch.autocast(kind, dtype=dtype):
            out = fn(*args, **kwargs)
        return out.float()

    return wrapped
