"""A tiny training run used by tests/test_trainer.py (in a subprocess, or under torchrun).

Fits y = sin(x) with a small MLP.  Every kind of randomness the trainer must checkpoint is used:
dataset jitter (torch, in __getitem__), dropout (torch), target noise (torch), and a loss weight
drawn from NumPy and from Python's `random`.  Writes <out>/final-rank<R>.pt with the bare model's
and the EMA's weights and prints the stats dict as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wavediff.train import TrainConfig, Trainer, seed_everything  # noqa: E402


class SineDataset(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.x = torch.linspace(-3.0, 3.0, n).unsqueeze(1)  # [n, 1]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = self.x[i] + 0.01 * torch.randn(1)
        return {"x": x, "y": torch.sin(x)}


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Dropout(0.1), nn.Linear(32, 1))


def make_loss_fn(step_sleep: float):
    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]):
        if step_sleep:
            time.sleep(step_sleep)
        pred = model(batch["x"])  # [B, 1]
        target = batch["y"] + 0.01 * torch.randn_like(batch["y"])
        weight = 1.0 + 0.01 * float(np.random.rand()) + 0.01 * random.random()
        mse = (pred - target).pow(2).mean()
        return weight * mse, {"mse": mse.detach()}

    return loss_fn


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--ckpt-every", type=int, default=10)
    p.add_argument("--val-every", type=int, default=10)
    p.add_argument("--log-every", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--n-train", type=int, default=60)
    p.add_argument("--keep-last", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--step-sleep", type=float, default=0.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--trace-saves", action="store_true", help="record which rank calls torch.save")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    out = Path(args.out)

    real_save = torch.save
    if args.trace_saves:

        def traced_save(obj, f, *a, **k):
            name = getattr(f, "name", f)  # files only: collectives pickle into BytesIO through torch.save
            if isinstance(name, (str, os.PathLike)):
                out.mkdir(parents=True, exist_ok=True)
                with open(out / f"saves-rank{rank}.txt", "a") as log:
                    log.write(f"{name}\n")
            return real_save(obj, f, *a, **k)

        torch.save = traced_save

    seed_everything(args.seed)  # same initial weights on every rank and every run
    model = make_model()
    config = TrainConfig(
        max_steps=args.max_steps, batch_size=args.batch_size, lr=3e-3, warmup_steps=5,
        lr_schedule="exponential", lr_decay=0.5, grad_clip=1.0, ema_decay=0.99, weight_decay=1e-4,
        precision=args.precision, log_every=args.log_every, val_every=args.val_every, ckpt_every=args.ckpt_every,
        keep_last=args.keep_last, num_workers=args.num_workers, seed=args.seed, device=args.device,
        compile=args.compile,
    )
    trainer = Trainer(model, make_loss_fn(args.step_sleep), SineDataset(args.n_train), out, config,
                      val_dataset=SineDataset(12))
    stats = trainer.fit(resume=args.resume)
    weights = {"model": trainer.model.state_dict(), "ema": trainer.ema_model.state_dict()}
    real_save(weights, out / f"final-rank{rank}.pt")
    # one write of the whole line: under torchrun two ranks share stdout, and print() may write
    # the text and its newline separately, so the ranks' lines could run together
    sys.stdout.write(json.dumps(stats) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
