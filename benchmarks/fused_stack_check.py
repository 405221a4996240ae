"""Agreement of the fused Triton residual stack with the layer-by-layer one, on a GPU, in training.

DiffWave-base (``Vocoder(VocoderConfig())``'s denoiser; its zero-initialised output layer given random
weights so that every parameter gets a gradient) on ``--batch`` random crops of 15,872 samples:
``loss = Σ ε̂ · R`` for a fixed random R, then backward. Three runs from the same weights and inputs:

* reference: layer by layer in float32 (TF32 off);
* layer by layer under bf16 autocast (what training did before the fused stack);
* fused Triton stack under bf16 autocast.

For the output and for every parameter's gradient it prints the relative error (‖a − ref‖ / ‖ref‖)
of each bf16 run against the reference; the fused stack should be as close as the layer-by-layer
bf16 run. The tests check the kernels' maths on the CPU (Triton's interpreter, float32 against
float64); this script checks the compiled kernels at full size.

    python benchmarks/fused_stack_check.py --batch 8 --json fused_check.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from _common import environment

CROP = 62 * 256


def run(net: torch.nn.Module, x, t, mel, r, autocast: bool, fused: bool) -> dict[str, torch.Tensor]:
    net.zero_grad(set_to_none=True)
    net.use_fused = fused
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        out = net(x, t, mel)
        if autocast:
            assert (net._fused_dtype(out) is not None) == fused, "the fused stack did not run as asked"
    (out.float() * r).sum().backward()
    res = {"output": out.detach().float()}
    res.update({name: p.grad.detach().float().clone() for name, p in net.named_parameters()})
    return res


def rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).norm() / ref.norm().clamp_min(1e-30))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("fused_stack_check.py needs a CUDA device")
    from wavediff.pipelines.vocoder import Vocoder, VocoderConfig

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    torch.manual_seed(0)
    net = Vocoder(VocoderConfig()).net.to(dev).train()
    torch.nn.init.normal_(net.output_projection.weight, std=0.1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 1, CROP, generator=g).to(dev)
    t = torch.randint(0, net.config.max_steps, (args.batch,), generator=g).to(dev)
    mel = (torch.randn(args.batch, 80, CROP // 256, generator=g) * 2 - 5).to(dev)
    r = torch.randn(args.batch, 1, CROP, generator=g).to(dev)

    ref = run(net, x, t, mel, r, autocast=False, fused=False)
    rows = {}
    for label, fused in (("layer by layer, bf16", False), ("fused Triton, bf16", True)):
        res = run(net, x, t, mel, r, autocast=True, fused=fused)
        errs = {k: rel(res[k], ref[k]) for k in ref}
        grads = [v for k, v in errs.items() if k != "output"]
        rows[label] = {
            "output": errs["output"],
            "grad_median": float(torch.tensor(grads).median()),
            "grad_max": max(grads),
            "grad_max_name": max((v, k) for k, v in errs.items() if k != "output")[1],
            "per_tensor": errs,
        }
    print("| stack (vs float32 layer by layer) | output rel. error | gradients: median rel. error | max (tensor) |")
    print("|---|---|---|---|")
    for label, row in rows.items():
        print(f"| {label} | {row['output']:.2e} | {row['grad_median']:.2e} | "
              f"{row['grad_max']:.2e} ({row['grad_max_name']}) |")
    if args.json:
        args.json.write_text(json.dumps({"environment": environment(dev), "batch": args.batch, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
