"""Training throughput on one GPU: lmnt-com/diffwave's learner vs wavediff's Trainer, DiffWave-base.

Both train the same network (30 layers, 64 channels, 2.62 M parameters) on the same crop
(62 mel frames = 15,872 samples at hop 256) from batches that already sit on the GPU:

* lmnt: ``diffwave.learner.DiffWaveLearner.train_step`` (its Adam, its ``fp16`` option, no EMA,
  ``cudnn.benchmark`` on as its ``train()`` entry point sets it);
* wavediff: the real :class:`wavediff.train.Trainer` step (``Trainer._train_step``: autocast, the
  vocoder's ε-loss, backward, grad clip 1.0, fused AdamW, EMA 0.9999) on
  ``VocoderLoss(Vocoder(VocoderConfig()))`` (DenoiserConfig defaults = DiffWave-base, hifigan mels).

Warm-up steps (which include any ``torch.compile`` compilation) are not timed. Each case reports
steps/s, seconds of training audio per wall-clock second (batch × 15,872 / 22,050 × steps/s) and
the peak of ``torch.cuda.max_memory_allocated``; the timed steps run as two halves whose rates are
both kept, so their spread shows the noise. A case that runs out of memory is recorded as ``OOM``.

    python benchmarks/train_throughput.py --json train_throughput.json
    python benchmarks/train_throughput.py --lmnt fp16:16,64 --wavediff bf16+compile:64 --profile-dir prof/

``--lmnt`` / ``--wavediff`` take ``PRECISION[+compile]:B1,B2,...`` and may be repeated; ``--profile-dir``
writes a torch.profiler kernel table for the best case of each side. Runs on CPU too (``--device cpu``,
small batches) as a smoke test; without torchaudio (which ``diffwave.learner`` imports) the lmnt
side falls back to a verbatim copy of ``DiffWaveLearner.train_step`` and says so in its rows.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from _common import environment, failure_status
from torch import nn

SAMPLE_RATE = 22050
HOP = 256
CROP_FRAMES = 62
CROP_SAMPLES = CROP_FRAMES * HOP  # 15,872
N_MELS = 80


# ------------------------------------------------------------------------------------------------
# cases and results
# ------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One measured configuration."""

    impl: str  # "lmnt" | "wavediff"
    precision: str  # lmnt: fp32 | fp16; wavediff: fp32 | bf16 | fp16
    batch: int
    compile: bool = False
    fused: bool = True  # wavediff: the fused Triton residual stack where it applies (else layer by layer)

    @property
    def name(self) -> str:
        mods = (" +compile" if self.compile else "") + ("" if self.fused else " +unfused")
        return f"{self.impl} {self.precision}{mods} b{self.batch}"


@dataclass
class Result:
    impl: str
    precision: str
    batch: int
    compile: bool
    fused: bool = True
    stack: str = ""  # wavediff: "fused Triton" or "layer by layer", as it ran
    status: str = "ok"  # ok | OOM | error: ... | skipped: ...
    steps_per_s: float | None = None
    audio_s_per_s: float | None = None
    step_ms: float | None = None
    halves_audio_s_per_s: list[float] = field(default_factory=list)
    peak_gib: float | None = None
    warmup_s: float | None = None
    timed_steps: int = 0
    note: str = ""


def parse_cases(impl: str, specs: list[str]) -> list[Case]:
    """``["fp16:16,64", "bf16+compile:64", "bf16+unfused:64"]`` -> cases."""
    cases = []
    for spec in specs:
        try:
            mode, batches = spec.split(":")
            precision, *extras = mode.split("+")
            if not set(extras) <= {"compile", "unfused"} or (impl == "lmnt" and "unfused" in extras):
                raise ValueError
            sizes = [int(b) for b in batches.split(",") if b]
        except ValueError:
            raise SystemExit(f"bad --{impl} spec {spec!r}; expected PRECISION[+compile][+unfused]:B1,B2,... "
                             "(+unfused: wavediff only)") from None
        cases += [Case(impl, precision, b, "compile" in extras, "unfused" not in extras) for b in sizes]
    return cases


# ------------------------------------------------------------------------------------------------
# the two training steps
# ------------------------------------------------------------------------------------------------


def _lmnt_params():
    from diffwave.params import AttrDict, params

    return AttrDict(dict(params))  # a copy: lmnt's params are a mutable module global


class _LmntLearnerCopy:
    """Verbatim ``DiffWaveLearner.__init__`` (the parts ``train_step`` uses) and ``train_step`` of
    diffwave 0.1.7; used only where ``diffwave.learner`` cannot be imported (it needs torchaudio)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, params: Any, fp16: bool) -> None:
        import numpy as np

        self.model, self.optimizer, self.params = model, optimizer, params
        self.autocast = torch.autocast("cuda", enabled=fp16)
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        beta = np.array(self.params.noise_schedule)
        self.noise_level = torch.tensor(np.cumprod(1 - beta).astype(np.float32))
        self.loss_fn = nn.L1Loss()

    def train_step(self, features: dict) -> torch.Tensor:
        for param in self.model.parameters():
            param.grad = None
        audio = features["audio"]
        spectrogram = features["spectrogram"]
        N, T = audio.shape
        self.noise_level = self.noise_level.to(audio.device)
        with self.autocast:
            t = torch.randint(0, len(self.params.noise_schedule), [N], device=audio.device)
            noise_scale = self.noise_level[t].unsqueeze(1)
            noise_scale_sqrt = noise_scale**0.5
            noise = torch.randn_like(audio)
            noisy_audio = noise_scale_sqrt * audio + (1.0 - noise_scale) ** 0.5 * noise
            predicted = self.model(noisy_audio, spectrogram, t)
            loss = self.loss_fn(noise, predicted.squeeze(1))
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        self.grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.params.max_grad_norm or 1e9)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss


def make_lmnt_step(case: Case, device: torch.device, workdir: Path) -> tuple[Callable[[], Any], str, int, str]:
    """lmnt's model, Adam and learner; returns (step, which learner, parameter count, "")."""
    from diffwave.model import DiffWave

    params = _lmnt_params()
    model = DiffWave(params).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate)  # as lmnt's _train_impl
    fp16 = case.precision == "fp16"
    try:
        from diffwave.learner import DiffWaveLearner

        learner = DiffWaveLearner(str(workdir), model, None, optimizer, params, fp16=fp16)
        which = "diffwave.learner.DiffWaveLearner"
    except ImportError as e:  # torchaudio missing (CPU smoke tests)
        learner = _LmntLearnerCopy(model, optimizer, params, fp16)
        which = f"verbatim copy of DiffWaveLearner.train_step ({e})"
    g = torch.Generator(device="cpu").manual_seed(0)
    features = {
        "audio": (torch.rand(case.batch, CROP_SAMPLES, generator=g) * 2 - 1).mul_(0.5).to(device),
        "spectrogram": torch.rand(case.batch, N_MELS, CROP_FRAMES, generator=g).to(device),  # lmnt mels: [0, 1]
    }
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    return (lambda: learner.train_step(features)), which, n_params, ""


def make_wavediff_step(case: Case, device: torch.device, workdir: Path) -> tuple[Callable[[], Any], str, int, str]:
    """wavediff's Vocoder (DiffWave-base) in the real Trainer; returns (step, description, parameter count,
    which residual stack runs: "fused Triton" or "layer by layer")."""
    from wavediff.pipelines.vocoder import Vocoder, VocoderConfig, VocoderLoss
    from wavediff.train import TrainConfig, Trainer
    from wavediff.train.trainer import _Window

    class _Sized(torch.utils.data.Dataset):  # the Trainer checks its dataset; batches come from here
        def __len__(self) -> int:
            return case.batch

        def __getitem__(self, i: int) -> Any:
            raise IndexError("this benchmark feeds GPU batches directly")

    torch.manual_seed(0)
    vocoder = Vocoder(VocoderConfig())
    vocoder.net.use_fused = case.fused
    config = TrainConfig(batch_size=case.batch, precision=case.precision, compile=case.compile, grad_clip=1.0,
                         ema_decay=0.9999, num_workers=0, device=str(device), lr=2e-4)
    trainer = Trainer(VocoderLoss(vocoder), lambda model, batch: model(batch), _Sized(), workdir, config)
    trainer.train_model.train()
    g = torch.Generator(device="cpu").manual_seed(0)
    batch = {
        "audio": (torch.rand(case.batch, CROP_SAMPLES, generator=g) * 2 - 1).mul_(0.5).to(device),
        "mel": (torch.randn(case.batch, N_MELS, CROP_FRAMES, generator=g) * 2 - 5).to(device),  # ln-mel values
    }
    window = _Window()
    n_params = vocoder.net.num_parameters()
    with trainer._autocast():
        stack = "fused Triton" if vocoder.net._fused_dtype(torch.empty(0, device=device)) else "layer by layer"
    return (lambda: trainer._train_step(batch, window)), "wavediff.train.Trainer._train_step", n_params, stack


# ------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure(case: Case, device: torch.device, warmup: int, steps: int) -> Result:
    """Build the case, run ``warmup`` untimed and ``steps`` timed training steps (two halves)."""
    result = Result(case.impl, case.precision, case.batch, case.compile, case.fused)
    step = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if case.compile:
                torch._dynamo.reset()  # static shapes per case, no recompilation into dynamic ones
            if device.type == "cuda":
                torch.backends.cudnn.benchmark = case.impl == "lmnt"  # lmnt's train() sets it; the Trainer decides its own
                torch.cuda.reset_peak_memory_stats(device)
            make = make_lmnt_step if case.impl == "lmnt" else make_wavediff_step
            step, which, n_params, result.stack = make(case, device, Path(tmp))
            result.note = f"{which}; {n_params / 1e6:.3f} M parameters"
            t0 = time.perf_counter()
            for _ in range(warmup):
                step()
            _sync(device)
            result.warmup_s = time.perf_counter() - t0
            if result.stack == "fused Triton":
                from wavediff.nn.fused_stack import tuned_configs

                result.note += f"; autotuned: {tuned_configs()}"
            halves = [steps // 2, steps - steps // 2]
            elapsed = []
            for n in halves:
                t0 = time.perf_counter()
                for _ in range(n):
                    step()
                _sync(device)
                elapsed.append(time.perf_counter() - t0)
            total = sum(elapsed)
            audio_per_step = case.batch * CROP_SAMPLES / SAMPLE_RATE
            result.timed_steps = steps
            result.steps_per_s = steps / total
            result.step_ms = 1000 * total / steps
            result.audio_s_per_s = audio_per_step * steps / total
            result.halves_audio_s_per_s = [audio_per_step * n / e for n, e in zip(halves, elapsed)]
            if device.type == "cuda":
                result.peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
        except torch.cuda.OutOfMemoryError:
            result.status = "OOM"
        except Exception as e:  # noqa: BLE001 - a failed case is a result, the others still run
            result.status = failure_status(e)
        finally:
            step = None
            _free(device)
    return result


def profile(case: Case, device: torch.device, out_dir: Path, steps: int = 3, rows: int = 25) -> dict[str, Any]:
    """torch.profiler table (self device time per op / kernel) over ``steps`` steps after warm-up."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with tempfile.TemporaryDirectory() as tmp:
        if case.compile:
            torch._dynamo.reset()
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = case.impl == "lmnt"
        make = make_lmnt_step if case.impl == "lmnt" else make_wavediff_step
        step, _, _, _ = make(case, device, Path(tmp))
        for _ in range(3):
            step()
        _sync(device)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        t0 = time.perf_counter()
        with torch_profile(activities=activities) as prof:
            for _ in range(steps):
                step()
            _sync(device)
        wall = time.perf_counter() - t0
        events = prof.key_averages()
        sort_key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
        table = events.table(sort_by=sort_key, row_limit=rows, max_name_column_width=70)
        # device activity counted once per kernel / copy, as the table's "Self CUDA time total"
        device_us = sum(e.self_device_time_total for e in prof.events()
                        if e.device_type == torch.autograd.DeviceType.CUDA and not e.is_user_annotation)
        summary = {
            "case": case.name,
            "steps": steps,
            "wall_ms_per_step_under_profiler": 1000 * wall / steps,
            "device_kernel_ms_per_step": device_us / 1000 / steps,
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"profile_{case.name.replace(' ', '_').replace('+', '')}.txt"
        path.write_text(json.dumps(summary) + "\n\n" + table + "\n")
        step = None
        _free(device)
        return summary


# ------------------------------------------------------------------------------------------------
# reporting
# ------------------------------------------------------------------------------------------------


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.3g}"


def markdown_table(results: list[Result]) -> str:
    lines = [
        "| implementation | precision | batch | steps/s | audio s / s | halves (audio s / s) | peak GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        impl = "lmnt-com/diffwave learner" if r.impl == "lmnt" else "wavediff Trainer"
        if r.impl == "wavediff":
            impl += f", {r.stack or ('fused stack' if r.fused else 'layer by layer')}"
        prec = r.precision + (" + torch.compile" if r.compile else "")
        if r.status != "ok":
            lines.append(f"| {impl} | {prec} | {r.batch} | {r.status} | | | |")
            continue
        halves = " / ".join(_rate(h) for h in r.halves_audio_s_per_s)
        peak = f"{r.peak_gib:.1f}" if r.peak_gib is not None else "-"
        lines.append(f"| {impl} | {prec} | {r.batch} | {r.steps_per_s:.2f} | {_rate(r.audio_s_per_s)} | {halves} | {peak} |")
    best = {impl: max((r for r in results if r.impl == impl and r.status == "ok"),
                      key=lambda r: r.audio_s_per_s, default=None) for impl in ("lmnt", "wavediff")}
    if best["lmnt"] and best["wavediff"]:
        ratio = best["wavediff"].audio_s_per_s / best["lmnt"].audio_s_per_s
        lines.append("")
        lines.append(f"Best wavediff / best lmnt: {_rate(best['wavediff'].audio_s_per_s)} / "
                     f"{_rate(best['lmnt'].audio_s_per_s)} audio s/s = **{ratio:.2f}x**")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lmnt", action="append", default=None, help="PRECISION:B1,B2 (fp16/fp32), repeatable")
    ap.add_argument("--wavediff", action="append", default=None, help="PRECISION[+compile]:B1,B2, repeatable")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", type=Path, default=None, help="write environment + results here")
    ap.add_argument("--profile-dir", type=Path, default=None, help="profile the best case of each side here")
    ap.add_argument("--time-budget", type=float, default=float("inf"), help="skip cases once this many s have passed")
    args = ap.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    lmnt_specs = args.lmnt or ["fp16:16,64,128,256"]
    wavediff_specs = args.wavediff or ["bf16:16,64,256", "bf16+compile:128"]
    cases = parse_cases("lmnt", lmnt_specs) + parse_cases("wavediff", wavediff_specs)
    env = environment(device)
    print(json.dumps(env), flush=True)

    start = time.perf_counter()
    results: list[Result] = []
    for case in cases:
        if time.perf_counter() - start > args.time_budget:
            results.append(Result(case.impl, case.precision, case.batch, case.compile, case.fused,
                                  status="skipped: time budget"))
            continue
        r = measure(case, device, args.warmup, args.steps)
        results.append(r)
        print(json.dumps(asdict(r)), flush=True)
        if args.json:
            args.json.write_text(json.dumps({"environment": env, "results": [asdict(x) for x in results]}, indent=1))

    profiles = []
    if args.profile_dir is not None:
        for impl in ("lmnt", "wavediff"):
            ok = [r for r in results if r.impl == impl and r.status == "ok"]
            if ok and time.perf_counter() - start < args.time_budget:
                b = max(ok, key=lambda r: r.audio_s_per_s)
                profiles.append(profile(Case(b.impl, b.precision, b.batch, b.compile, b.fused), device, args.profile_dir))
                print(json.dumps(profiles[-1]), flush=True)

    if args.json:
        args.json.write_text(json.dumps({"environment": env, "results": [asdict(x) for x in results],
                                         "profiles": profiles}, indent=1))
    print()
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
