"""Choosing the device: CUDA when available, else CPU; a requested device is checked with a clear error."""
from __future__ import annotations

import torch

__all__ = ["device_type"]


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
