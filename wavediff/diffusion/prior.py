"""Data-dependent priors as an affine change of variables.

PriorGrad (Lee et al., 2022) diffuses a vocoder's waveform towards N(0, Σ_c), Σ_c diagonal from the
conditioning mel's frame energy; Grad-TTS (Popov et al., 2021) diffuses a mel towards N(μ, I), μ the
text encoder's output. Both are the standard DDPM on the standardised variable

    y = (x − μ) / s,        x = μ + s ⊙ y,

so the core (schedules, losses, bound, samplers) runs unchanged on y; the network still sees x_t.
The ε-loss on y is PriorGrad's Σ⁻¹-weighted loss and Grad-TTS's prior-centred loss.
"""
from __future__ import annotations

import torch

__all__ = ["AffinePrior"]


class AffinePrior:
    """Prior N(mean, diag(std²)); either part may be None (0 and 1). Tensors broadcast to x."""

    def __init__(self, mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
        if std is not None and (not torch.isfinite(std).all() or (std <= 0).any()):
            raise ValueError("prior std must be finite and positive")
        if mean is not None and not torch.isfinite(mean).all():
            raise ValueError("prior mean must be finite")
        self.mean = mean
        self.std = std

    def to_standard(self, x: torch.Tensor) -> torch.Tensor:
        """x -> y = (x − μ)/s."""
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        return x

    def from_standard(self, y: torch.Tensor) -> torch.Tensor:
        """y -> x = μ + s·y."""
        if self.std is not None:
            y = y * self.std
        if self.mean is not None:
            y = y + self.mean
        return y

    def std_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x) if self.std is None else self.std.expand_as(x).to(x.dtype)

    def wrap(self, model):
        """A model of y from a network of x: ``model_y(y_t, t) = net(μ + s·y_t, t)``.

        The network predicts the standard ε of y (PriorGrad's ε/s), so its output is used as is."""

        def model_y(y, t):
            return model(self.from_standard(y), t)

        return model_y
