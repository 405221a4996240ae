"""Vocoding speed (× real time): wavediff's Vocoder vs lmnt-com/diffwave's ``predict``, same weights.

One random-weight lmnt ``DiffWave`` (DiffWave-base; its zero-initialised output layer given random
weights so the network is not trivial) is converted with ``wavediff.convert.convert_lmnt_state_dict``
into a wavediff :class:`Vocoder` built as ``convert_lmnt_checkpoint`` builds it (diffwave mel preset,
lmnt's βs, its 6-step fast schedule, clamp to [-1, 1]). Both then run 6-step fast sampling on the same
random mels:

* ``lmnt``: the loop of ``diffwave.inference.predict(fast_sampling=True)``, copied below with the model
  passed in (``predict`` itself loads a checkpoint from disk and imports torchaudio); fp32, as lmnt runs;
* ``wavediff fp32``: ``Vocoder.vocode(precision="float32")``;
* ``wavediff bf16``: ``Vocoder.vocode(precision="bfloat16")`` (the network under autocast; what
  ``precision="auto"``, the default, picks on a GPU or a CPU with AVX512-BF16/AMX);
* ``wavediff bf16+compile``: the same with ``vocoder.net.compile()`` (GPU only; compile time excluded);
* ``wavediff bf16+cudagraphs``: ``compile(mode="reduce-overhead")``, which replays CUDA graphs.

× real time = batch × seconds of audio / median wall time of one vocode call (after warm-up), so a
batch of 32 that takes 1 s for 5-s clips is 160× real time. The first case also checks that lmnt and
wavediff fp32 produce the same audio from the same random state. Out-of-memory is recorded as ``OOM``.

    python benchmarks/vocoder_speed.py --device cuda --cases 1x5,32x5 --json vocoder_speed_gpu.json
    python benchmarks/vocoder_speed.py --device cpu --cases 1x2,4x2 --variants lmnt,fp32
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from _common import environment, failure_status

HOP = 256
SAMPLE_RATE = 22050
VARIANTS = ("lmnt", "fp32", "bf16", "bf16+compile", "bf16+cudagraphs")


@dataclass
class Result:
    variant: str
    batch: int
    seconds: float
    status: str = "ok"
    x_real_time: float | None = None
    median_s: float | None = None
    min_s: float | None = None  # the better statistic on a shared (noisy) CPU: noise only adds time
    runs: int = 0
    peak_gib: float | None = None
    setup_s: float | None = None


# ------------------------------------------------------------------------------------------------
# the two vocoders
# ------------------------------------------------------------------------------------------------


def build_models(device: torch.device, seed: int = 0):
    """(lmnt DiffWave, its params, the converted wavediff Vocoder) with identical weights, eval mode."""
    from diffwave.model import DiffWave
    from diffwave.params import AttrDict, params

    from wavediff.convert import convert_lmnt_state_dict, lmnt_vocoder

    lmnt_params = AttrDict(dict(params))
    torch.manual_seed(seed)
    lmnt = DiffWave(lmnt_params)
    with torch.no_grad():  # lmnt zero-initialises the output layer
        torch.nn.init.normal_(lmnt.output_projection.weight, std=0.05)
    config, state_dict = convert_lmnt_state_dict(lmnt.state_dict(), lmnt_params)
    vocoder = lmnt_vocoder(config, state_dict, lmnt_params.noise_schedule, lmnt_params.inference_noise_schedule)
    return lmnt.to(device).eval(), lmnt_params, vocoder.to(device).eval()


def lmnt_predict(model: torch.nn.Module, spectrogram: torch.Tensor, params: Any, device: torch.device) -> torch.Tensor:
    """``diffwave.inference.predict(..., fast_sampling=True)`` of diffwave 0.1.7 after its model loading."""
    from wavediff.convert import lmnt_reference_predict

    return lmnt_reference_predict(model, spectrogram, params, device)


# ------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], device: torch.device, warmup: int, min_runs: int, min_time: float,
               max_runs: int = 30) -> list[float]:
    """Wall times of ``fn`` (device-synchronised) after ``warmup`` calls: at least ``min_runs`` and ``min_time`` s."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    while len(times) < min_runs or (sum(times) < min_time and len(times) < max_runs):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def make_call(variant: str, lmnt, params, vocoder, mel: torch.Tensor, device: torch.device) -> Callable[[], Any]:
    if variant == "lmnt":
        return lambda: lmnt_predict(lmnt, mel, params, device)
    if variant == "fp32":
        return lambda: vocoder.vocode(mel, precision="float32")
    if variant != "bf16" and device.type != "cuda":
        raise ValueError(f"variant {variant} needs a GPU")
    return lambda: vocoder.vocode(mel, precision="bfloat16")


def run_case(variant: str, batch: int, seconds: float, models, device: torch.device, args) -> Result:
    lmnt, params, base_vocoder = models
    result = Result(variant, batch, seconds)
    frames = round(seconds * SAMPLE_RATE / HOP)
    g = torch.Generator().manual_seed(batch)
    mel = torch.rand(batch, params.n_mels, frames, generator=g).to(device)  # diffwave-convention mels: [0, 1]
    vocoder = base_vocoder
    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        if variant in ("bf16+compile", "bf16+cudagraphs"):
            torch._dynamo.reset()
            vocoder = copy.deepcopy(base_vocoder)
            vocoder.net.compile(mode="reduce-overhead" if variant == "bf16+cudagraphs" else None)
        fn = make_call(variant, lmnt, params, vocoder, mel, device)
        fn()  # compiles where it compiles
        _sync(device)
        result.setup_s = time.perf_counter() - t0
        times = time_calls(fn, device, args.warmup, args.min_runs, args.min_time)
        result.runs = len(times)
        result.median_s = statistics.median(times)
        result.min_s = min(times)
        result.x_real_time = batch * frames * HOP / SAMPLE_RATE / result.median_s
        if device.type == "cuda":
            result.peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
    except torch.cuda.OutOfMemoryError:
        result.status = "OOM"
    except Exception as e:  # noqa: BLE001 - one failed case is a result, the rest still run
        result.status = failure_status(e)
    finally:
        fn = vocoder = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def check_same_audio(models, device: torch.device) -> float:
    """Max |lmnt − wavediff| of one fp32 vocode from the same random state (batch 2, 0.5 s)."""
    lmnt, params, vocoder = models
    mel = torch.rand(2, params.n_mels, 43, generator=torch.Generator().manual_seed(7)).to(device)
    torch.manual_seed(123)
    ref = lmnt_predict(lmnt, mel, params, device)
    torch.manual_seed(123)
    ours = vocoder.vocode(mel, precision="float32")
    return float((ours - ref).abs().max())


# ------------------------------------------------------------------------------------------------
# reporting
# ------------------------------------------------------------------------------------------------


def markdown_table(results: list[Result], device: torch.device) -> str:
    names = {"lmnt": "lmnt `predict` (fp32)", "fp32": "wavediff fp32", "bf16": "wavediff bf16 (autocast)",
             "bf16+compile": "wavediff bf16 + torch.compile", "bf16+cudagraphs": "wavediff bf16 + compile(reduce-overhead)"}
    cases = sorted({(r.batch, r.seconds) for r in results})
    head = "| vocoder (" + device.type + ") | " + " | ".join(f"{b} × {s:g} s" for b, s in cases) + " |"
    lines = [head, "|---" * (len(cases) + 1) + "|"]
    for variant in VARIANTS:
        row = [r for r in results if r.variant == variant]
        if not row:
            continue
        cells = []
        for b, s in cases:
            r = next((r for r in row if (r.batch, r.seconds) == (b, s)), None)
            if r is None:
                cells.append("")
            elif r.status != "ok":
                cells.append(r.status.split(":")[0])  # OOM | skipped | error
            else:
                mem = f", {r.peak_gib:.1f} GiB" if r.peak_gib is not None else ""
                speed = f"{r.x_real_time:.0f}" if r.x_real_time >= 10 else f"{r.x_real_time:.2f}"
                spread = f", min {1000 * r.min_s:.0f}" if device.type == "cpu" else ""
                cells.append(f"{speed}× ({1000 * r.median_s:.0f} ms{spread}{mem})")
        lines.append(f"| {names[variant]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--cases", default="1x5,32x5", help="BATCHxSECONDS,... (default 1x5,32x5)")
    ap.add_argument("--variants", default=None, help=f"comma list of {','.join(VARIANTS)} (default: all the device runs)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--min-runs", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--time-budget", type=float, default=float("inf"), help="skip cases once this many s have passed")
    args = ap.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = args.variants.split(",") if args.variants else (list(VARIANTS) if device.type == "cuda" else ["lmnt", "fp32", "bf16"])
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    cases = []
    for spec in args.cases.split(","):
        b, s = spec.lower().split("x")
        cases.append((int(b), float(s)))

    env = environment(device)
    models = build_models(device)
    env["same_audio_max_abs_diff"] = check_same_audio(models, device)
    print(json.dumps(env), flush=True)
    start = time.perf_counter()
    results: list[Result] = []
    for variant in variants:
        for batch, seconds in cases:
            if time.perf_counter() - start > args.time_budget:
                r = Result(variant, batch, seconds, status="skipped: time budget")
            else:
                r = run_case(variant, batch, seconds, models, device, args)
            results.append(r)
            print(json.dumps(asdict(r)), flush=True)
            if args.json:
                args.json.write_text(json.dumps({"environment": env, "results": [asdict(x) for x in results]}, indent=1))
    print()
    print(markdown_table(results, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
