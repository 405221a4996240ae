"""Tests for wavediff.train: config checks, LR schedules, EMA maths, checkpoints, exact resume, DDP."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from wavediff.train import EMA, TrainConfig, Trainer, find_latest_checkpoint, lr_factor, move_to_device

TOY = Path(__file__).with_name("_toy_train.py")
sys.path.insert(0, str(TOY.parent))
import _toy_train as toy  # noqa: E402

STATE_10 = "state/step-00000010.pt"


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def _toy_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(TOY), "--out", str(out), *extra]


def _run_toy(out: Path, *extra: str) -> dict:
    proc = subprocess.run(_toy_cmd(out, *extra), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _start_and_wait_for(out: Path, relpath: str, *extra: str) -> subprocess.Popen:
    """Start the toy run and return once ``out/relpath`` exists (the run still going)."""
    proc = subprocess.Popen(_toy_cmd(out, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / relpath).exists():
        assert proc.poll() is None, f"toy run ended before writing {relpath}: {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {relpath}"
        time.sleep(0.005)
    return proc


def _final_weights(out: Path, rank: int = 0) -> dict:
    return torch.load(out / f"final-rank{rank}.pt", weights_only=True)


def _assert_same_weights(a: dict, b: dict, atol: float = 1e-6) -> None:
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], atol=atol, rtol=0, msg=f"{part}.{key}")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> tuple[dict, dict]:
    """An uninterrupted 40-step toy run: (stats, final weights)."""
    out = tmp_path_factory.mktemp("reference")
    stats = _run_toy(out)
    return stats, _final_weights(out)


# ------------------------------------------------------------------------------------------------
# configuration and pure functions
# ------------------------------------------------------------------------------------------------


def test_config_rejects_bad_values_with_clear_errors() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="ema_decay must be in"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="unknown training option\\(s\\): bacth_size"):
        TrainConfig.from_dict({"bacth_size": 4})
    cfg = TrainConfig.from_dict({"betas": [0.8, 0.99], "max_steps": 5})
    assert cfg.betas == (0.8, 0.99) and cfg.max_steps == 5
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_lr_schedules_match_their_formulas() -> None:
    warm = TrainConfig(max_steps=110, warmup_steps=10, lr_schedule="constant")
    assert [lr_factor(s, warm) for s in (0, 4, 9, 10, 109)] == [0.1, 0.5, 1.0, 1.0, 1.0]

    exp = TrainConfig(warmup_steps=10, lr_schedule="exponential", lr_decay=0.5)
    assert lr_factor(10, exp) == 1.0
    assert lr_factor(1010, exp) == pytest.approx(0.5)
    assert lr_factor(2510, exp) == pytest.approx(0.5**2.5)

    cos = TrainConfig(max_steps=110, warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(10, cos) == pytest.approx(1.0)
    assert lr_factor(60, cos) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(pi/2) = 0
    assert lr_factor(35, cos) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lr_factor(110, cos) == pytest.approx(0.1)
    assert lr_factor(500, cos) == pytest.approx(0.1)  # clamps past max_steps


class _LinearWithCounter(nn.Linear):
    def __init__(self) -> None:
        super().__init__(3, 2)
        self.register_buffer("counter", torch.zeros(1))


def test_ema_matches_hand_computation() -> None:
    model = _LinearWithCounter()
    ema = EMA(model, decay=0.5)
    shadow = {k: v.clone() for k, v in model.named_parameters()}
    for n in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model.counter += 1
        d = min(0.5, (1 + n) / (10 + n))  # 0.1, 0.1818.., 0.25, 0.3077.. -> never reaches 0.5 here
        assert ema.current_decay() == pytest.approx(d)
        ema.update(model)
        for name, p in model.named_parameters():
            shadow[name] = d * shadow[name] + (1 - d) * p.detach()
    for name, s in ema.model.named_parameters():
        torch.testing.assert_close(s, shadow[name], atol=1e-6, rtol=0)
        assert not s.requires_grad
    assert ema.model.counter.item() == 4  # buffers are copied, not averaged
    assert ema.num_updates == 4
    restored = EMA(_LinearWithCounter(), decay=0.5)
    restored.load_state_dict(ema.state_dict())
    torch.testing.assert_close(restored.model.weight, ema.model.weight)
    assert restored.current_decay() == ema.current_decay()
    with pytest.raises(ValueError, match="EMA decay must be in"):
        EMA(model, decay=1.5)


def test_move_to_device_walks_nested_batches() -> None:
    batch = {"a": torch.ones(2), "b": [torch.zeros(1), (torch.ones(1), "keep")], "n": 3}
    moved = move_to_device(batch, torch.device("cpu"))
    assert moved["b"][1][1] == "keep" and moved["n"] == 3
    assert torch.equal(moved["b"][1][0], torch.ones(1))


# ------------------------------------------------------------------------------------------------
# in-process training
# ------------------------------------------------------------------------------------------------


def _config(**overrides) -> TrainConfig:
    base = dict(max_steps=50, batch_size=8, lr=3e-3, warmup_steps=5, ema_decay=0.9, precision="fp32",
                log_every=10, val_every=25, ckpt_every=10, keep_last=2, num_workers=0, seed=3, device="cpu")
    base.update(overrides)
    return TrainConfig(**base)


def test_toy_regression_trains_logs_checkpoints_and_exports(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = toy.make_model()
    validated, exported = [], []

    def on_validate(ema_model: nn.Module, writer, step: int) -> None:
        assert not ema_model.training and writer is not None
        validated.append(step)

    def export_fn(ema_model: nn.Module, directory: Path) -> None:
        torch.save(ema_model.state_dict(), directory / "weights.pt")
        exported.append(directory)

    trainer = Trainer(model, toy.make_loss_fn(0.0), toy.SineDataset(64), tmp_path, _config(),
                      val_dataset=toy.SineDataset(16), on_validate=on_validate, export_fn=export_fn)
    before = trainer.validate()["loss"]
    stats = trainer.fit()

    assert stats["step"] == 50 and not stats["interrupted"]
    assert stats["val_loss"] < 0.5 * before  # sin(x) is being learned
    assert stats["loss"] < 0.2
    assert validated == [0, 25, 50]
    # checkpoints: every 10 steps, pruned to the last two, no temporary file left, `latest` points at 50
    state = tmp_path / "state"
    assert sorted(p.name for p in state.iterdir()) == ["latest", "step-00000040.pt", "step-00000050.pt"]
    assert (state / "latest").read_text().strip() == "step-00000050.pt"
    assert find_latest_checkpoint(state) == state / "step-00000050.pt"
    assert stats["checkpoint"] == str(state / "step-00000050.pt")
    saved = torch.load(state / "step-00000050.pt", weights_only=True)
    assert saved["step"] == 50 and saved["epoch"] == 50 // 8 and saved["batch_in_epoch"] == 50 % 8
    assert saved["ema"]["num_updates"] == 50
    # the exported model is the EMA model of the last checkpoint, swapped in as a whole
    assert len(exported) == 5 and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    exported_weights = torch.load(tmp_path / "model" / "weights.pt", weights_only=True)
    torch.testing.assert_close(exported_weights["0.weight"], trainer.ema_model[0].weight)
    assert not torch.equal(trainer.ema_model[0].weight, trainer.model[0].weight)
    # TensorBoard scalars
    assert len(list((tmp_path / "logs").glob("events.out.tfevents.*"))) == 1


def test_resume_without_state_starts_fresh(tmp_path: Path, caplog) -> None:
    trainer = Trainer(toy.make_model(), toy.make_loss_fn(0.0), toy.SineDataset(16), tmp_path,
                      _config(max_steps=3, ckpt_every=0, val_every=0, batch_size=4))
    with caplog.at_level("INFO", logger="wavediff.train"):
        stats = trainer.fit(resume=True)
    assert "no training state" in caplog.text
    assert stats["step"] == 3 and stats["val_loss"] is None
    assert (tmp_path / "state" / "step-00000003.pt").is_file()  # the end-of-run checkpoint


def test_max_time_stops_saves_and_resume_continues(tmp_path: Path) -> None:
    slow = toy.make_loss_fn(0.0)

    def loss_fn(model, batch):  # ~20 ms a step, so a 0.3 s budget ends well before max_steps
        time.sleep(0.02)
        return slow(model, batch)

    def make_trainer() -> Trainer:
        return Trainer(toy.make_model(), loss_fn, toy.SineDataset(16), tmp_path,
                       _config(max_steps=1000, ckpt_every=0, val_every=0, batch_size=4))

    first = make_trainer().fit(max_time=0.3)
    assert first["interrupted"] and first["time_limited"]
    assert 1 <= first["step"] < 100
    assert first["checkpoint"] == str(tmp_path / "state" / f"step-{first['step']:08d}.pt")
    second = make_trainer().fit(resume=True, max_time=0.3)
    assert second["time_limited"] and second["step"] > first["step"]
    with pytest.raises(ValueError, match="max_time must be > 0"):
        make_trainer().fit(max_time=0)


def test_user_errors_are_value_errors(tmp_path: Path) -> None:
    model, loss_fn = toy.make_model(), toy.make_loss_fn(0.0)
    with pytest.raises(ValueError, match="train_dataset is empty"):
        Trainer(model, loss_fn, toy.SineDataset(0), tmp_path, _config())
    with pytest.raises(ValueError, match="fewer than one batch per process"):
        Trainer(model, loss_fn, toy.SineDataset(5), tmp_path, _config(batch_size=8))
    with pytest.raises(ValueError, match="'fp16' needs a CUDA device"):
        Trainer(model, loss_fn, toy.SineDataset(16), tmp_path, _config(precision="fp16"))
    with pytest.raises(ValueError, match="map-style dataset"):
        Trainer(model, loss_fn, (i for i in range(16)), tmp_path, _config())
    bad_loss = Trainer(model, lambda m, b: m(b["x"]), toy.SineDataset(16), tmp_path / "b",
                       _config(max_steps=1))
    with pytest.raises(ValueError, match="scalar loss tensor"):
        bad_loss.fit()


# ------------------------------------------------------------------------------------------------
# exact resume (subprocesses)
# ------------------------------------------------------------------------------------------------


def test_killed_run_resumes_to_identical_weights(tmp_path: Path, reference_run) -> None:
    ref_stats, ref_weights = reference_run
    proc = _start_and_wait_for(tmp_path, STATE_10, "--step-sleep", "0.25")  # 30 steps left: a wide window under load
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "final-rank0.pt").exists()  # really killed mid-run
    # (the kill may land between the state file and its `latest` pointer: resume must cope)

    stats = _run_toy(tmp_path, "--resume")
    assert not list((tmp_path / "state").glob("*.tmp"))
    assert stats["step"] == ref_stats["step"] == 40
    _assert_same_weights(_final_weights(tmp_path), ref_weights)
    assert stats["val_loss"] == pytest.approx(ref_stats["val_loss"], abs=1e-6)


def test_sigterm_saves_gracefully_and_resumes_to_identical_weights(tmp_path: Path, reference_run) -> None:
    _, ref_weights = reference_run
    proc = _start_and_wait_for(tmp_path, STATE_10, "--step-sleep", "0.25")  # 30 steps left: a wide window under load
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-3000:]
    stats = json.loads(stdout.strip().splitlines()[-1])
    assert stats["interrupted"] and 10 <= stats["step"] < 40
    assert "SIGTERM received" in stderr
    assert find_latest_checkpoint(tmp_path / "state").name == f"step-{stats['step']:08d}.pt"

    final = _run_toy(tmp_path, "--resume")
    assert final["step"] == 40 and not final["interrupted"]
    _assert_same_weights(_final_weights(tmp_path), ref_weights)


# ------------------------------------------------------------------------------------------------
# DDP on CPU (gloo) under torchrun
# ------------------------------------------------------------------------------------------------


def test_torchrun_two_processes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(TOY), "--out", str(tmp_path), "--max-steps", "12", "--ckpt-every", "5", "--val-every", "6",
           "--n-train", "40", "--trace-saves"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    stats = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(stats) == 2 and all(s["step"] == 12 for s in stats)
    assert all(s["checkpoint"] == str(tmp_path / "state" / "step-00000012.pt") for s in stats)

    # only rank 0 wrote training state
    assert not (tmp_path / "saves-rank1.txt").exists()
    saves = (tmp_path / "saves-rank0.txt").read_text().split()
    assert [Path(s).name for s in saves] == [f"step-{n:08d}.pt.tmp" for n in (5, 10, 12)]
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["latest", "step-00000010.pt",
                                                                      "step-00000012.pt"]
    state = torch.load(tmp_path / "state" / "step-00000012.pt", weights_only=True)
    assert len(state["rng"]) == 2  # every rank's random streams
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])
    assert len(list((tmp_path / "logs").glob("events.out.tfevents.*"))) == 1
    # the ranks end with identical weights (and EMA)
    _assert_same_weights(_final_weights(tmp_path, 0), _final_weights(tmp_path, 1), atol=0.0)
