"""One generic trainer (AMP, EMA, LR schedules, checkpoint/resume, DDP, TensorBoard).

It knows nothing about audio or diffusion: give it a model, ``loss_fn(model, batch)`` and datasets.
"""

from .ema import EMA
from .trainer import (
    TrainConfig,
    Trainer,
    find_latest_checkpoint,
    lr_factor,
    move_to_device,
    seed_everything,
    unwrap_model,
)

__all__ = [
    "EMA",
    "TrainConfig",
    "Trainer",
    "find_latest_checkpoint",
    "lr_factor",
    "move_to_device",
    "seed_everything",
    "unwrap_model",
]
