"""One generic trainer: AMP, EMA, LR schedule, checkpoint/resume, DDP, TensorBoard.

It knows nothing about audio or diffusion.  It is given a model, a loss function and datasets:

    loss_fn(model, batch) -> loss                      # a scalar tensor, or
    loss_fn(model, batch) -> (loss, {"name": value})   # plus scalars to log (floats or 0-d tensors)

``batch`` is what the DataLoader yields, moved to the training device.  Under DDP ``model`` is the
``DistributedDataParallel`` wrapper (and under ``compile=True`` a compiled module): everything that
needs gradients must go through **one** ``model(...)`` call, and attributes of the bare module are
reached with :func:`unwrap_model`.  During validation ``model`` is the bare EMA module.  Under DDP
the logged training and validation losses are averaged over all ranks, the extra logs are rank 0's.

Layout of ``out_dir``::

    logs/                      TensorBoard event files (rank 0)
    state/step-XXXXXXXX.pt     full training state, written atomically; the last ``keep_last`` kept
    state/latest               name of the newest state file (written atomically)
    model/                     ``export_fn(ema_model, dir)`` output at every checkpoint (optional)

Exact resume: a run killed and resumed reaches the same weights as an uninterrupted one, because the
state holds model, EMA, optimiser, grad scaler, step, epoch and position in the epoch, and the
Python / NumPy / torch (CPU and CUDA) random states of every rank; the data order is a pure function
of (seed, epoch).  This is bit-exact with ``num_workers=0``; with worker processes the per-worker
random streams (e.g. random crops) restart from a fresh seed after a resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, Sampler

from .distributed import DistInfo, init_distributed
from .ema import EMA

__all__ = [
    "TrainConfig",
    "Trainer",
    "lr_factor",
    "seed_everything",
    "unwrap_model",
    "move_to_device",
    "find_latest_checkpoint",
    "get_rng_state",
    "set_rng_state",
]

from wavediff.device import device_type as resolve_device_type  # noqa: E402

logger = logging.getLogger("wavediff.train")

LossFn = Callable[[nn.Module, Any], Any]
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_SCHEDULES = ("constant", "cosine", "exponential")
_STATE_FORMAT = 1
_STATE_DIR, _LOG_DIR, _EXPORT_DIR, _LATEST = "state", "logs", "model", "latest"


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings (all primitives, so they round-trip through YAML/JSON).

    ``lr_schedule`` acts after ``warmup_steps`` of linear warm-up: ``constant``; ``exponential``
    (multiply by ``lr_decay`` every 1000 steps); ``cosine`` (half cosine from ``lr`` down to
    ``lr * min_lr_ratio`` at ``max_steps``).  ``val_every`` / ``ckpt_every`` of 0 mean "only at the
    end".  ``ema_decay`` of 0 disables the EMA (validation and export then use the live model).
    ``batch_size`` is per process.
    """

    max_steps: int = 1_000_000
    batch_size: int = 16
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    lr_decay: float = 0.999
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.9999
    precision: str = "auto"
    log_every: int = 50
    val_every: int = 1000
    ckpt_every: int = 1000
    keep_last: int = 2
    num_workers: int = 2
    seed: int = 1234
    device: str | None = None
    compile: bool = False
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # YAML gives a list
        checks = [
            (self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas),
             f"betas must be two numbers in [0, 1), got {self.betas}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}"),
            (self.lr_schedule in _SCHEDULES,
             f"lr_schedule must be one of {', '.join(_SCHEDULES)}, got {self.lr_schedule!r}"),
            (0.0 < self.lr_decay <= 1.0, f"lr_decay must be in (0, 1], got {self.lr_decay}"),
            (0.0 <= self.min_lr_ratio <= 1.0, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}"),
            (self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be > 0 or None, got {self.grad_clip}"),
            (0.0 <= self.ema_decay < 1.0, f"ema_decay must be in [0, 1), got {self.ema_decay}"),
            (self.precision in _PRECISIONS,
             f"precision must be one of {', '.join(_PRECISIONS)}, got {self.precision!r}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.val_every >= 0, f"val_every must be >= 0, got {self.val_every}"),
            (self.ckpt_every >= 0, f"ckpt_every must be >= 0, got {self.ckpt_every}"),
            (self.keep_last >= 1, f"keep_last must be >= 1, got {self.keep_last}"),
            (self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message + ".")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping (e.g. a YAML section); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of ``config.lr`` for the update with 0-based index ``step``."""
    warmup = config.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    after = step - warmup
    if config.lr_schedule == "constant":
        return 1.0
    if config.lr_schedule == "exponential":
        return config.lr_decay ** (after / 1000.0)
    # cosine: from 1 at the end of warm-up to min_lr_ratio at max_steps
    span = max(config.max_steps - warmup, 1)
    progress = min(after / span, 1.0)
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ------------------------------------------------------------------------------------------------
# small utilities
# ------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (all devices) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Global random states as tensors and primitives (``torch.load(weights_only=True)``-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
        "cuda": None,
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device | None = None) -> None:
    """Inverse of :func:`get_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if device is not None and device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


@contextlib.contextmanager
def _isolated_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with fixed seeds, then put every global generator back as it was."""
    saved = get_rng_state(device)
    seed_everything(seed)
    try:
        yield
    finally:
        set_rng_state(saved, device)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare module under DistributedDataParallel and/or ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def move_to_device(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move tensors nested in dicts, lists, tuples, named tuples and dataclasses to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        return type(obj)({k: move_to_device(v, device, non_blocking) for k, v in obj.items()})
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(move_to_device(v, device, non_blocking) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to_device(v, device, non_blocking) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: move_to_device(getattr(obj, f.name), device, non_blocking)
                   for f in dataclasses.fields(obj) if f.init}
        return dataclasses.replace(obj, **changes)
    return obj


def _checkpoint_step(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


def _state_files(state_dir: Path) -> list[Path]:
    files = [p for p in state_dir.glob("step-*.pt") if p.stem.split("-", 1)[1].isdigit()]
    return sorted(files, key=_checkpoint_step)


def find_latest_checkpoint(state_dir: str | os.PathLike) -> Path | None:
    """The file named by ``state_dir/latest``, else the highest ``step-*.pt``, else None."""
    state_dir = Path(state_dir)
    pointer = state_dir / _LATEST
    if pointer.is_file():
        named = state_dir / pointer.read_text().strip()
        if named.is_file():
            return named
    files = _state_files(state_dir) if state_dir.is_dir() else []
    return files[-1] if files else None


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _unpack_loss(out: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    if isinstance(out, tuple) and len(out) == 2:
        loss, logs = out
    else:
        loss, logs = out, {}
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar loss tensor or (loss, logs); got {got}.")
    if not isinstance(logs, Mapping):
        raise ValueError(f"loss_fn's logs must be a dict of scalars; got {type(logs).__name__}.")
    return loss, dict(logs)


def _as_float(value: Any) -> float:
    return float(value.detach().float()) if isinstance(value, torch.Tensor) else float(value)


def _dataset_length(dataset: Any, name: str) -> int:
    try:
        if isinstance(dataset, IterableDataset):
            raise TypeError
        n = len(dataset)
    except TypeError:
        raise ValueError(f"{name} must be a map-style dataset with __len__ and __getitem__.") from None
    if n == 0:
        raise ValueError(f"{name} is empty.")
    return n


class _ResumableSampler(Sampler[int]):
    """A DistributedSampler whose next iteration can start ``skip`` indices into the epoch."""

    def __init__(self, base: DistributedSampler) -> None:
        self.base = base
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0  # applies to one iteration only
        return itertools.islice(iter(self.base), skip, None)


@dataclass
class _Window:
    """Running sums between two log points."""

    steps: int = 0
    loss: Any = 0.0
    grad_norm: Any = 0.0
    logs: dict[str, Any] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)
    paused: float = 0.0


# ------------------------------------------------------------------------------------------------
# trainer
# ------------------------------------------------------------------------------------------------


class Trainer:
    """Train ``model`` by minimising ``loss_fn`` over ``train_dataset``; see the module docstring.

    Args:
        model: the bare ``nn.Module`` (built and seeded by the caller; moved to the device here).
        loss_fn: ``loss_fn(model, batch) -> loss | (loss, logs)``.
        train_dataset, val_dataset: map-style datasets.
        out_dir: run directory (logs, training state, exported model).
        config: :class:`TrainConfig`.
        collate_fn: DataLoader collate function (default: torch's default collate).
        on_validate: ``on_validate(ema_model, writer, step)``, rank 0, after each validation, with
            seeded random generators (the same noise every time) that do not disturb training.
        export_fn: ``export_fn(ema_model, directory)`` writes an inference checkpoint; called on
            rank 0 at every checkpoint into ``out_dir/model`` (replaced as a whole).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train_dataset: Dataset,
        out_dir: str | os.PathLike,
        config: TrainConfig | None = None,
        val_dataset: Dataset | None = None,
        collate_fn: Callable | None = None,
        on_validate: Callable[[nn.Module, Any, int], None] | None = None,
        export_fn: Callable[[nn.Module, Path], None] | None = None,
    ) -> None:
        self.config = config = config if config is not None else TrainConfig()
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        if not callable(loss_fn):
            raise ValueError("loss_fn must be callable as loss_fn(model, batch).")
        n_train = _dataset_length(train_dataset, "train_dataset")
        if val_dataset is not None:
            _dataset_length(val_dataset, "val_dataset")
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError("model has no trainable parameters.")

        self.loss_fn, self.collate_fn = loss_fn, collate_fn
        self.on_validate, self.export_fn = on_validate, export_fn
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self.out_dir = Path(out_dir)
        self.state_dir = self.out_dir / _STATE_DIR

        # -- device, process group, precision ----------------------------------------------------
        device_type = resolve_device_type(config.device)
        self.dist: DistInfo = init_distributed(device_type)
        try:
            self.device = self._device(config.device, device_type)
            self.precision = self._resolve_precision(config.precision, self.device)
            per_rank = n_train // self.dist.world_size
            self.batches_per_epoch = per_rank // config.batch_size
            if self.batches_per_epoch == 0:
                raise ValueError(
                    f"train_dataset has {n_train} items, fewer than one batch per process "
                    f"(batch_size {config.batch_size} x {self.dist.world_size} process(es))."
                )
        except BaseException:
            self.dist.destroy()
            raise

        # -- model, wrappers, EMA, optimiser -----------------------------------------------------
        self.model = model.to(self.device)
        self.train_model: nn.Module = self.model
        if self.dist.enabled:  # DDP broadcasts rank 0's weights, so the EMA copy is made after
            self.train_model = DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=config.find_unused_parameters,
            )
        if config.compile:
            self.train_model = torch.compile(self.train_model)
        self.ema = EMA(self.model, config.ema_decay) if config.ema_decay > 0 else None
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        self._fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(
            self._params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay,
            fused=self._fused or None,
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

        # -- data ------------------------------------------------------------------------------
        self._sampler = _ResumableSampler(DistributedSampler(
            train_dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
            shuffle=True, seed=config.seed, drop_last=True,
        ))
        self._train_loader: DataLoader | None = None
        self._val_loader: DataLoader | None = None
        if val_dataset is not None:
            self._val_loader = DataLoader(
                val_dataset, batch_size=config.batch_size, collate_fn=collate_fn,
                sampler=DistributedSampler(val_dataset, num_replicas=self.dist.world_size,
                                           rank=self.dist.rank, shuffle=False, drop_last=False),
                num_workers=config.num_workers, pin_memory=self.device.type == "cuda", drop_last=False,
            )

        # -- progress --------------------------------------------------------------------------
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self._pending_rng: dict[str, Any] | None = None
        self._stop_requested = False
        self._deadline: float | None = None
        self._last_saved_step = -1
        self._last_checkpoint: Path | None = None
        self._last_val_step = -1
        self._last_logged: dict[str, float] = {}
        self._last_val: dict[str, float] = {}
        self._writer: Any = None

    # -- setup helpers ---------------------------------------------------------------------------

    def _device(self, requested: str | None, kind: str) -> torch.device:
        if kind == "cpu":
            return torch.device("cpu")
        if self.dist.enabled:  # one GPU per process, chosen by torchrun
            return torch.device("cuda", self.dist.local_rank)
        device = torch.device(requested or "cuda")
        return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())

    @staticmethod
    def _resolve_precision(precision: str, device: torch.device) -> str:
        if precision == "auto":
            if device.type == "cuda" and torch.cuda.is_bf16_supported():
                return "bf16"
            return "fp32"
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("precision 'fp16' needs a CUDA device; use 'fp32' or 'bf16' on CPU.")
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("precision 'bf16' is not supported by this GPU; use 'fp16' or 'fp32'.")
        return precision

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    @property
    def ema_model(self) -> nn.Module:
        """The EMA weights as a module (the live bare model when the EMA is disabled)."""
        return self.ema.model if self.ema is not None else self.model

    def _make_train_loader(self) -> DataLoader:
        cfg = self.config
        # Worker seeds come from this generator, never from the global one (which is checkpointed).
        generator = torch.Generator().manual_seed(hash((cfg.seed, self.dist.rank, self.step)) % 2**62)
        return DataLoader(
            self.train_dataset, batch_size=cfg.batch_size, sampler=self._sampler, collate_fn=self.collate_fn,
            num_workers=cfg.num_workers, pin_memory=self.device.type == "cuda", drop_last=True,
            persistent_workers=cfg.num_workers > 0, generator=generator,
        )

    # -- checkpointing ---------------------------------------------------------------------------

    def state_dict(self, rng_per_rank: list[Any]) -> dict[str, Any]:
        """The whole training state; tensors and primitive containers only."""
        return {
            "format": _STATE_FORMAT,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": {
                "seed": self.config.seed,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "batch_size": self.config.batch_size,
                "world_size": self.dist.world_size,
            },
            "rng": rng_per_rank,
            "config": self.config.to_dict(),
        }

    def save_checkpoint(self) -> Path:
        """Write ``state/step-XXXXXXXX.pt`` and ``state/latest`` (rank 0), export, prune; all ranks call."""
        self.dist.barrier(self.device)
        rng = self.dist.gather_objects(get_rng_state(self.device))
        path = self.state_dir / f"step-{self.step:08d}.pt"
        if self.dist.is_main:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            _atomic_torch_save(self.state_dict(rng), path)
            _atomic_write_text(path.name + "\n", self.state_dir / _LATEST)
            for old in _state_files(self.state_dir)[: -self.config.keep_last]:
                if old != path:
                    old.unlink(missing_ok=True)
            if self.export_fn is not None:
                self._export()
        self._last_saved_step, self._last_checkpoint = self.step, path
        self.dist.barrier(self.device)
        return path

    def _export(self) -> None:
        final = self.out_dir / _EXPORT_DIR
        tmp, old = self.out_dir / f".{_EXPORT_DIR}.tmp", self.out_dir / f".{_EXPORT_DIR}.old"
        for stale in (tmp, old):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir(parents=True)
        model = self.ema_model
        was_training = model.training
        model.eval()
        try:
            self.export_fn(model, tmp)
        finally:
            model.train(was_training)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a state written by :meth:`save_checkpoint` (random states apply when ``fit`` starts)."""
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated or foreign file
            raise ValueError(f"cannot read training state {path}: {e}") from None
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise ValueError(f"{path} is not a wavediff training state (format {_STATE_FORMAT}).")
        try:
            self.model.load_state_dict(state["model"])
            if self.ema is not None:
                if state["ema"] is not None:
                    self.ema.load_state_dict(state["ema"])
                else:
                    logger.warning("%s has no EMA weights; the EMA restarts from the current weights.", path)
                    self.ema = EMA(self.model, self.config.ema_decay)
        except RuntimeError as e:
            raise ValueError(f"training state {path} does not fit this model: {e}") from None
        self._load_optimizer(state["optimizer"])
        if self.scaler.is_enabled() and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        sampler = state["sampler"]
        same_order = (sampler["world_size"] == self.dist.world_size and sampler["batch_size"] == self.config.batch_size
                      and sampler["seed"] == self.config.seed)
        if same_order:
            self.epoch, self.batch_in_epoch = int(sampler["epoch"]), int(sampler["batch_in_epoch"])
        else:  # the saved position means nothing under another split of the data
            logger.warning("data order changed (world size / batch size / seed); resuming at the next epoch.")
            self.epoch, self.batch_in_epoch = int(sampler["epoch"]) + 1, 0
        rng = state["rng"]
        if len(rng) == self.dist.world_size:
            self._pending_rng = rng[self.dist.rank]
        else:
            logger.warning("saved with %d process(es), running %d: random streams are re-seeded.",
                           len(rng), self.dist.world_size)
            self._pending_rng = None
            seed_everything(self.config.seed + self.dist.rank + self.step)
        self._last_saved_step, self._last_checkpoint = self.step, path
        self._last_val_step = self.step

    def _load_optimizer(self, saved: dict[str, Any]) -> None:
        cfg = self.config
        self.optimizer.load_state_dict(saved)
        for group in self.optimizer.param_groups:  # this run's implementation and hyper-parameters win
            group.update(fused=self._fused or None, foreach=None, betas=cfg.betas, weight_decay=cfg.weight_decay)

    # -- one step --------------------------------------------------------------------------------

    def _train_step(self, batch: Any, window: _Window) -> None:
        cfg = self.config
        lr = cfg.lr * lr_factor(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = move_to_device(batch, self.device, non_blocking=self.device.type == "cuda")
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss, logs = _unpack_loss(self.loss_fn(self.train_model, batch))
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = cfg.grad_clip if cfg.grad_clip is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self._params, max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)

        self.step += 1
        self.batch_in_epoch += 1
        if self.batch_in_epoch == self.batches_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

        window.steps += 1
        window.loss = window.loss + loss.detach().float()
        window.grad_norm = window.grad_norm + grad_norm.detach().float()
        for key, value in logs.items():
            value = value.detach().float() if isinstance(value, torch.Tensor) else float(value)
            window.logs[key] = window.logs.get(key, 0.0) + value

    def _log_window(self, window: _Window, pbar: Any) -> None:
        """Average the window (loss over all ranks), write scalars, check the loss is finite."""
        n = window.steps
        loss = torch.as_tensor(window.loss, dtype=torch.float32, device=self.device).reshape(1)
        loss = self.dist.all_reduce_sum(loss) / (n * self.dist.world_size)
        elapsed = max(time.perf_counter() - window.start - window.paused, 1e-9)
        values = {
            "loss": float(loss),
            "grad_norm": _as_float(window.grad_norm) / n,
            "lr": self.optimizer.param_groups[0]["lr"],
            "steps_per_s": n / elapsed,
            "items_per_s": n * self.config.batch_size * self.dist.world_size / elapsed,
            "epoch": float(self.epoch),
        }
        values.update({k: _as_float(v) / n for k, v in window.logs.items()})
        if self.device.type == "cuda":
            values["max_mem_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self._last_logged = values
        if self.dist.is_main:
            writer = self._writer_or_open()
            for key, value in values.items():
                writer.add_scalar(f"train/{key}", value, self.step)
            if pbar.disable:
                logger.info("step %d  loss %.5g  grad_norm %.3g  lr %.3g  %.2f steps/s", self.step,
                            values["loss"], values["grad_norm"], values["lr"], values["steps_per_s"])
            else:
                pbar.set_postfix(loss=f"{values['loss']:.4g}", lr=f"{values['lr']:.2e}", refresh=False)
        if not math.isfinite(values["loss"]) and self.precision != "fp16":
            latest = find_latest_checkpoint(self.state_dir)
            raise FloatingPointError(
                f"the training loss became {values['loss']} by step {self.step}; resume from "
                f"{latest or 'scratch'} with a lower lr or a grad_clip."
            )

    # -- validation ------------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        """Mean ``loss_fn`` of the EMA model over the validation set (all ranks), then ``on_validate``.

        Runs with fixed seeds (comparable from one validation to the next) and leaves the training
        random streams untouched.  Returns the averaged scalars, or None without a validation set.
        """
        if self._val_loader is None:
            return None
        model = self.ema_model
        was_training = model.training
        model.eval()
        try:
            with _isolated_rng(self.config.seed + 1 + self.dist.rank, self.device):
                totals = torch.zeros(2, dtype=torch.float64, device=self.device)  # [sum of loss, batches]
                extras: dict[str, float] = {}
                for batch in self._val_loader:
                    batch = move_to_device(batch, self.device, non_blocking=self.device.type == "cuda")
                    with self._autocast():
                        loss, logs = _unpack_loss(self.loss_fn(model, batch))
                    totals[0] += loss.detach().double()
                    totals[1] += 1
                    for key, value in logs.items():
                        extras[key] = extras.get(key, 0.0) + _as_float(value)
                batches = float(totals[1])  # this rank's, before the reduction
                self.dist.all_reduce_sum(totals)
                results = {"loss": float(totals[0] / totals[1])}
                results.update({k: v / batches for k, v in extras.items()})  # rank 0's shard
                if self.dist.is_main:
                    writer = self._writer_or_open()
                    for key, value in results.items():
                        writer.add_scalar(f"val/{key}", value, self.step)
                    if self.on_validate is not None:
                        self.on_validate(model, writer, self.step)
                    writer.flush()
        finally:
            model.train(was_training)
        self._last_val = results
        self._last_val_step = self.step
        self.dist.barrier(self.device)
        return results

    # -- the loop --------------------------------------------------------------------------------

    def _stop_now(self) -> bool:
        """Whether any rank was asked to stop (a signal) or ran out of time; all ranks get the same answer."""
        stop = self._stop_requested or (self._deadline is not None and time.perf_counter() >= self._deadline)
        if not self.dist.enabled:
            return stop
        flag = torch.tensor([float(stop)],
                            device=self.device if self.device.type == "cuda" else "cpu")
        return bool(self.dist.all_reduce_max(flag).item() > 0)

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def request_stop(signum: int, frame: Any) -> None:
            if self._stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C aborts without saving
            self._stop_requested = True
            logger.warning("%s received: finishing this step, saving, stopping (Ctrl-C again aborts).",
                           signal.Signals(signum).name)

        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, request_stop)
        return previous

    def _writer_or_open(self) -> Any:
        """The TensorBoard writer (rank 0), opened on first use; ``fit`` closes it at the end."""
        if self._writer is None:
            self._writer = self._open_writer()
        return self._writer

    def _open_writer(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(
                "training logs need the tensorboard package: pip install 'wavediff[train]'"
            ) from None
        # purge_step hides events a killed run logged after the state we resumed from
        return SummaryWriter(log_dir=str(self.out_dir / _LOG_DIR), purge_step=self.step or None)

    def fit(self, resume: bool = False, max_time: float | None = None) -> dict[str, Any]:
        """Train until ``max_steps`` (or a SIGINT/SIGTERM, or ``max_time``); returns the final statistics.

        ``resume=True`` continues from ``out_dir/state/latest`` (or starts fresh, with a log line,
        when there is none).  ``max_time``: stop (state saved, resumable) once this many wall-clock
        seconds have passed since ``fit`` was called, start-up included.  The returned dict has
        ``step``, ``epoch``, ``loss`` (mean over the last log window), ``val_loss``, ``interrupted``
        (stopped before ``max_steps``), ``time_limited`` (that stop was ``max_time``'s) and
        ``checkpoint`` (path of the last state).
        """
        cfg = self.config
        if max_time is not None and not max_time > 0:
            raise ValueError(f"max_time must be > 0 seconds, got {max_time}")
        self._deadline = time.perf_counter() + max_time if max_time is not None else None
        self._stop_requested = False
        previous_handlers: dict[int, Any] = {}
        pbar = None
        finished = False
        try:
            latest = find_latest_checkpoint(self.state_dir)
            if resume and latest is not None:
                self.load_checkpoint(latest)
                if self.dist.is_main:
                    logger.info("resumed from %s (step %d, epoch %d)", latest, self.step, self.epoch)
            else:
                if self.dist.is_main:
                    if resume:
                        logger.info("no training state in %s; starting from step 0.", self.state_dir)
                    elif latest is not None:
                        logger.warning("%s already holds training state; starting from step 0 anyway "
                                       "(pass resume=True to continue it).", self.state_dir)
                self._pending_rng = None
                seed_everything(cfg.seed + self.dist.rank)
            if self.dist.is_main:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                if self.state_dir.is_dir():
                    for stale in self.state_dir.glob("*.tmp"):  # left by a run killed mid-write
                        stale.unlink(missing_ok=True)
                self._writer_or_open()
            from tqdm.auto import tqdm

            pbar = tqdm(total=cfg.max_steps, initial=self.step, desc="train", dynamic_ncols=True,
                        disable=None if self.dist.is_main else True)
            self._train_loader = self._make_train_loader()
            previous_handlers = self._install_signal_handlers()
            self.train_model.train()
            if self._pending_rng is not None:  # last, so nothing above shifts the streams
                set_rng_state(self._pending_rng, self.device)
                self._pending_rng = None

            stopped = self._loop(pbar)

            interrupted = stopped and self.step < cfg.max_steps
            if not interrupted and self._last_val_step != self.step:
                self.validate()
            if self._last_saved_step != self.step:
                self.save_checkpoint()
            checkpoint = self._last_checkpoint
            if interrupted and self.dist.is_main:
                logger.warning("stopped at step %d; state saved to %s", self.step, checkpoint)
            finished = True
            return {
                "step": self.step,
                "epoch": self.epoch,
                "loss": self._last_logged.get("loss"),
                "val_loss": self._last_val.get("loss"),
                "interrupted": interrupted,
                "time_limited": interrupted and not self._stop_requested,
                "checkpoint": str(checkpoint) if checkpoint is not None else None,
            }
        finally:
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            if pbar is not None:
                pbar.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._train_loader = None  # shuts persistent workers down
            # after a normal end every rank meets before the group goes (a rank that tears its
            # connections down while another is still inside a collective can abort that one);
            # after an error the other ranks may never arrive, so no barrier then
            self.dist.destroy(barrier=finished)

    def _loop(self, pbar: Any) -> bool:
        """Run steps until max_steps or a stop request; True when stopped by a request."""
        cfg = self.config
        window = _Window()
        while self.step < cfg.max_steps:
            if self._stop_now():
                return True
            self._sampler.set_epoch(self.epoch)
            self._sampler.skip = self.batch_in_epoch * cfg.batch_size
            epoch = self.epoch
            for batch in self._train_loader:
                self._train_step(batch, window)
                pbar.update(1)
                final = self.step >= cfg.max_steps
                if self.step % cfg.log_every == 0 or final:
                    self._log_window(window, pbar)
                    window = _Window()
                paused = time.perf_counter()
                if cfg.val_every and self.step % cfg.val_every == 0:
                    self.validate()
                if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                    self.save_checkpoint()
                window.paused += time.perf_counter() - paused
                if final:
                    return False
                if self._stop_now():
                    return True
                if self.epoch != epoch:  # the epoch's last batch
                    break
        return False
