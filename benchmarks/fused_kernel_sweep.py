"""Per-kernel times of the fused residual stack on a GPU, and what autotuning measured for each configuration.

DiffWave-base (``Vocoder(VocoderConfig())``'s denoiser) on ``--batch`` random crops of 15,872 samples,
bf16 autocast, ``loss = Σ ε̂ · R``, backward: the stack's training step without the optimiser. The first
step autotunes each kernel of :mod:`wavediff.nn.fused_stack` over its configurations (``--grid wide``
replaces them with a larger grid first); the script prints every configuration's time as the autotuner
measured it, the registers and spills of each compiled variant, then profiles ``--iters`` steps with
``torch.profiler`` and prints the GPU time per step of each kernel and of everything else.

    python benchmarks/fused_kernel_sweep.py --batch 256 --grid wide --json sweep.json
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch

from _common import environment

CROP = 62 * 256
KERNELS = {"fwd": "_fwd_kernel", "pre": "_bwd_pre_kernel", "x": "_bwd_x_kernel", "w": "_bwd_w_kernel"}


def wide_grid(triton):
    """A larger configuration grid than the module's own (for modules whose ``_configs`` takes a name)."""
    def configs(name: str) -> list:
        if name == "w":
            return [triton.Config({}, num_warps=w, num_stages=st) for w in (4, 8) for st in (1, 2, 3, 4)]
        if name == "fwd":
            return [triton.Config({"BT": bt, "TPP": tpp, "KST": kst}, num_warps=w, num_stages=tpp)
                    for bt in (32, 64, 128) for w in (4, 8) for kst in (1, 2) for tpp in (1, 2)]
        if name == "pre":
            return [triton.Config({"BT": bt}, num_warps=w, num_stages=st)
                    for bt in (32, 64, 128) for w in (4, 8) for st in (1, 2, 3)]
        return [triton.Config({"BT": bt, "TPP": tpp}, num_warps=w, num_stages=st)
                for bt in (32, 64, 128) for w in (4, 8) for tpp, st in ((1, 1), (2, 2), (4, 2), (4, 3))]
    return configs


def compiled_variants(jit_fn) -> list[dict]:
    """Registers and spills of every variant of a JIT function compiled so far (best effort)."""
    out = []
    for cache in getattr(jit_fn, "device_caches", {}).values():
        kernels = cache[0] if isinstance(cache, tuple) else cache
        for key, k in getattr(kernels, "items", lambda: [])():
            meta = getattr(k, "metadata", None)
            out.append({"n_regs": getattr(k, "n_regs", None), "n_spills": getattr(k, "n_spills", None),
                        "num_warps": getattr(meta, "num_warps", None), "num_stages": getattr(meta, "num_stages", None),
                        "key": str(key)[-160:]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--grid", choices=["module", "wide"], default="module")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("fused_kernel_sweep.py needs a CUDA device")
    import triton

    import wavediff.nn.fused_stack as fs
    from wavediff.pipelines.vocoder import Vocoder, VocoderConfig

    if args.grid == "wide":
        fs._configs = wide_grid(triton)
    dev = torch.device("cuda")
    torch.manual_seed(0)
    net = Vocoder(VocoderConfig()).net.to(dev)
    for p in net.parameters():  # the zero-initialised output layer too, so every gradient is non-zero
        if p.abs().sum() == 0:
            p.data.normal_(0, 0.02)
    b = args.batch
    x = torch.randn(b, 1, CROP, device=dev)
    t = torch.randint(0, 50, (b,), device=dev)
    mel = torch.randn(b, 80, CROP // 256, device=dev)
    r = torch.randn(b, 1, CROP, device=dev)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            assert net._fused_dtype(x) is not None, "the fused stack would not run"
            out = net(x, t, mel)
        (out.float() * r).sum().backward()

    step()  # autotunes every kernel
    torch.cuda.synchronize()
    report: dict = {"environment": environment(dev), "batch": b, "grid": args.grid, "kernels": {}}
    for name, fn_name in KERNELS.items():
        launch = fs._TUNED.get(name)
        tuner = getattr(launch, "autotuner", None)
        timings = getattr(tuner, "configs_timings", None) or {}
        rows = sorted(((float(v[0] if isinstance(v, (list, tuple)) else v), str(c)) for c, v in timings.items()))
        try:
            variants = compiled_variants(getattr(fs, fn_name))
        except Exception as exc:  # Triton's caches are internal; keep the timings if they move
            variants = [{"n_regs": None, "n_spills": None, "num_warps": None, "num_stages": None, "key": repr(exc)}]
        report["kernels"][name] = {"best": str(getattr(tuner, "best_config", "")), "timings_ms": rows,
                                   "variants": variants}
        print(f"\n## {fn_name}: best {getattr(tuner, 'best_config', '')}")
        for ms, cfg in rows[:12]:
            print(f"  {ms:8.3f} ms  {cfg}")
        for v in report["kernels"][name]["variants"]:
            print(f"  compiled: regs {v['n_regs']} spills {v['n_spills']} warps {v['num_warps']} "
                  f"stages {v['num_stages']}")
    step()
    torch.cuda.synchronize()
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        for _ in range(args.iters):
            step()
        torch.cuda.synchronize()
    per: dict[str, float] = defaultdict(float)
    others = []
    for evt in prof.key_averages():
        if evt.key.startswith(("aten::", "_FusedStack", "autograd::", "Optimizer", "cuda")):
            continue  # CPU-side ranges: their device time is their kernels'
        us = getattr(evt, "self_device_time_total", None) or getattr(evt, "self_cuda_time_total", 0)
        if us <= 0:
            continue
        kind = next((n for n, k in KERNELS.items() if evt.key.startswith(k)), "other")
        per[kind] += us / 1000 / args.iters
        if kind == "other":
            others.append((us / 1000 / args.iters, evt.count // args.iters, evt.key[:90]))
    report["other_kernels"] = sorted(others, reverse=True)[:25]
    ops = []
    for evt in prof.key_averages(group_by_input_shape=True):
        us = getattr(evt, "self_device_time_total", None) or getattr(evt, "self_cuda_time_total", 0)
        if evt.key.startswith("aten::") and us > 0:
            ops.append((us / 1000 / args.iters, evt.count // args.iters, evt.key, str(evt.input_shapes)[:150]))
    report["aten_ops"] = sorted(ops, reverse=True)[:25]
    for ms, n, key, shapes in report["aten_ops"]:
        print(f"  op {ms:7.2f} ms  x{n:<4d} {key} {shapes}")
    for ms, n, key in report["other_kernels"]:
        print(f"  other {ms:7.2f} ms  x{n:<4d} {key}")
    total = sum(per.values())
    report["ms_per_step"] = dict(per, total=total)
    print(f"\n## GPU ms per step (batch {b}): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(per.items()))
          + f", total {total:.1f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
