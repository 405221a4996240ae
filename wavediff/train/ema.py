"""Exponential moving average (EMA) of a model's weights.

The shadow copy is a full ``nn.Module`` (so it can be validated, sampled from and exported like
the model itself) whose floating-point parameters are kept in float32 whatever the training
precision.  The decay warms up so early, fast-changing weights are not averaged with the random
initialisation for thousands of steps:

    decay_n = min(decay, (1 + n) / (10 + n))        n = updates already applied
    shadow  <- decay_n * shadow + (1 - decay_n) * param

Buffers (e.g. normalisation statistics or fixed schedules) are copied, not averaged.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """EMA of ``model``'s parameters held in ``self.model`` (a float32 deep copy, eval mode).

    Args:
        model: the bare module being trained (not a DDP / compiled wrapper).
        decay: the asymptotic decay, in [0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}.")
        self.decay = float(decay)
        self.num_updates = 0
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.model.eval()
        for p in self.model.parameters():
            if p.is_floating_point():
                p.data = p.data.float()

    def current_decay(self) -> float:
        """The decay the next :meth:`update` will use."""
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of ``model`` (same architecture) into the average."""
        d = self.current_decay()
        shadow, current = [], []
        for (name, s), (name_m, p) in zip(self.model.named_parameters(), model.named_parameters()):
            if name != name_m:
                raise ValueError(f"EMA model and model differ: parameter {name!r} vs {name_m!r}.")
            if s.is_floating_point():
                shadow.append(s)
                current.append(p.detach().to(s.dtype))
        if shadow:
            # shadow = d * shadow + (1 - d) * param, in place over all tensors at once
            torch._foreach_mul_(shadow, d)
            torch._foreach_add_(shadow, current, alpha=1.0 - d)
        for s, b in zip(self.model.buffers(), model.buffers()):
            s.copy_(b)
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Tensors and primitives only (loadable with ``torch.load(weights_only=True)``)."""
        return {"model": self.model.state_dict(), "num_updates": self.num_updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the shadow weights and the update count (the configured decay is kept)."""
        self.model.load_state_dict(state["model"])
        self.num_updates = int(state["num_updates"])
