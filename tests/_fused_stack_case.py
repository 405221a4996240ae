"""Helper for tests/test_fused_stack.py, run in a subprocess with TRITON_INTERPRET=1 (Triton reads it
at import): the fused residual stack (float32, through Triton's interpreter) against the layers run one
by one in float64. Prints one JSON object: relative max errors of the output and every gradient.

``python _fused_stack_case.py CASE_JSON`` runs one case. ``--serve`` reads one case per line on stdin
and answers each with one JSON line, {"errors": ...} or {"error": traceback}; every case runs in a
child forked from the server after its imports and before it runs anything, so each starts from the
same fresh module state as a process of its own (the cases change the kernels' module settings and
patch Triton's interpreter) without paying the ~4 s of imports (torch, Triton) again."""
from __future__ import annotations

import json
import os
import sys
import traceback

import torch


def check_bounds(fs, fu=None) -> None:
    """Make every load and store of the kernels check that each address it touches lies inside one of
    the tensors passed to that launch (Triton's interpreter itself reads any address it is given)."""
    import numpy as np
    from triton.runtime import interpreter

    builder = interpreter.InterpreterBuilder
    ranges: list[tuple[int, int]] = []

    def check(ptrs, mask, what):
        size = interpreter._get_np_dtype(ptrs.get_element_ty()).itemsize
        active = ptrs.data[mask.data.astype(bool)]
        inside = np.zeros(active.shape, dtype=bool)
        for lo, hi in ranges:
            inside |= (active >= lo) & (active + size <= hi)
        if not inside.all():
            raise RuntimeError(f"out-of-bounds {what} at {active[~inside][:4].tolist()}")

    load, store = builder.create_masked_load, builder.create_masked_store

    def checked_load(self, ptrs, mask, *rest):
        check(ptrs, mask, "load")
        return load(self, ptrs, mask, *rest)

    def checked_store(self, ptrs, value, mask, *rest):
        check(ptrs, mask, "store")
        return store(self, ptrs, value, mask, *rest)

    builder.create_masked_load, builder.create_masked_store = checked_load, checked_store

    def track(tensors):
        ranges[:] = [(v.data_ptr(), v.data_ptr() + v.numel() * v.element_size())
                     for v in tensors if isinstance(v, torch.Tensor)]

    if fu is not None:  # the upsampler's launches: _launch(kernel, grid, *args, **meta)
        launch_up = fu._launch

        def tracking_launch(kern, grid, *a, **kw):
            track([*a, *kw.values()])
            return launch_up(kern, grid, *a, **kw)

        fu._launch = tracking_launch
    kernel = fs._kernel

    def tracking_kernel(name):
        launch = kernel(name)

        def run(grid, *a, **kw):
            track([*a, *kw.values()])
            return launch(grid, *a, **kw)

        return run

    fs._kernel = tracking_kernel


def relative_errors(pairs) -> dict[str, float]:
    errors: dict[str, float] = {}
    for name, (got, want) in pairs.items():
        if got is None or want is None:
            errors[name] = float("inf") if (got is None) != (want is None) else 0.0
            continue
        scale = want.abs().max().item()
        errors[name] = (got.double() - want).abs().max().item() / max(scale, 1e-12)
    return errors


def upsampler_errors(args, fs) -> dict[str, float]:
    """The fused upsampler (float32) against ConditionUpsampler's own stages (float64), with a
    gradient for the mel too (the stages' input gradients all run)."""
    import wavediff.nn.fused_upsampler as fu
    from wavediff.nn.denoiser import ConditionUpsampler

    if args.get("bounds"):
        check_bounds(fs, fu)
    torch.manual_seed(0)
    ref = ConditionUpsampler(args["upsample"]).double()
    for p in ref.parameters():
        p.data.normal_(0, 0.5)
    up = ConditionUpsampler(args["upsample"])
    up.load_state_dict(ref.state_dict())
    b, bins, frames = args["batch"], args["cond"], args["frames"]
    mel = torch.randn(b, bins, frames, dtype=torch.float64, requires_grad=True)
    r = torch.randn(b, bins, frames * args["upsample"], dtype=torch.float64)
    out_ref = ref(mel)
    (out_ref * r).sum().backward()
    m32 = mel.detach().float().requires_grad_()
    out = up(m32, torch.float32)
    (out * r.float()).sum().backward()
    pairs = {"output": (out, out_ref), "grad mel": (m32.grad, mel.grad)}
    for (name, p), p_ref in zip(up.named_parameters(), ref.parameters()):
        pairs[f"grad {name}"] = (p.grad, p_ref.grad)
    return relative_errors(pairs)


def case_errors(args: dict) -> dict[str, float]:
    import wavediff.nn.fused_stack as fs
    from wavediff.nn.denoiser import Denoiser, DenoiserConfig

    assert fs._interpreting(), "run me with TRITON_INTERPRET=1"
    if args.get("upsample"):
        return upsampler_errors(args, fs)
    fs.W_PROGRAMS = args.get("w_programs", fs.W_PROGRAMS)
    fs.W_COLUMN_BLOCKS = args.get("w_blocks", fs.W_COLUMN_BLOCKS)
    fs.PRE_HOIST = args.get("pre_hoist", fs.PRE_HOIST)
    if args.get("tile"):
        fs.BLOCK_T = args["tile"]
    if args.get("bounds"):
        check_bounds(fs)
    torch.manual_seed(0)
    cfg = DenoiserConfig(residual_layers=args["layers"], residual_channels=args["channels"],
                         dilation_cycle=args["cycle"], cond_channels=args["cond"], upsample_factor=4)
    ref_net = Denoiser(cfg).double()
    for p in ref_net.parameters():
        p.data.normal_(0, 0.3)
    net = Denoiser(cfg)
    net.load_state_dict(ref_net.state_dict())
    b, length = args["batch"], args["length"]
    errors: dict[str, float] = {}
    if args.get("model"):  # the whole Denoiser: fused (float32) vs use_fused=False (float64)
        x = torch.randn(b, 1, length * 4, dtype=torch.float64)
        t = torch.tensor([3, 17][:b])
        mel = torch.randn(b, args["cond"], length, dtype=torch.float64)
        r = torch.randn(b, 1, length * 4, dtype=torch.float64)
        ref_net.use_fused = False
        out_ref = ref_net(x, t, mel)
        (out_ref * r).sum().backward()
        assert net._fused_dtype(torch.empty(0)) == torch.float32, "the fused stack would not run"
        out = net(x.float(), t, mel.float())
        (out * r.float()).sum().backward()
        pairs = {"output": (out, out_ref)}
    else:  # the stack alone, with gradients for its inputs too
        h = torch.randn(b, args["channels"], length, dtype=torch.float64, requires_grad=True)
        cond = torch.randn(b, args["cond"], length, dtype=torch.float64, requires_grad=True)
        step = torch.randn(b, cfg.embedding_hidden, dtype=torch.float64, requires_grad=True)
        r = torch.randn(b, args["channels"], length, dtype=torch.float64)
        skip_ref = None
        hh = h
        for layer in ref_net.residual_layers:
            hh, skip = layer(hh, cond, step)
            skip_ref = skip if skip_ref is None else skip_ref + skip
        (skip_ref * r).sum().backward()
        h32, c32, s32 = (v.detach().float().requires_grad_() for v in (h, cond, step))
        out = fs.fused_residual_stack(net.residual_layers, h32, c32, s32, torch.float32)
        (out * r.float()).sum().backward()
        pairs = {"output": (out, skip_ref), "grad h": (h32.grad, h.grad), "grad cond": (c32.grad, cond.grad),
                 "grad step": (s32.grad, step.grad)}
    for name, p in net.named_parameters():
        if p.grad is not None or dict(ref_net.named_parameters())[name].grad is not None:
            pairs[f"grad {name}"] = (p.grad, dict(ref_net.named_parameters())[name].grad)
    errors.update(relative_errors(pairs))
    return errors


def forked_case(args: dict) -> dict:
    """``case_errors(args)`` in a forked child: {"errors": ...}, or {"error": what went wrong}."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its stdout is the server's answer channel, so prints go to stderr
        os.close(read)
        os.dup2(2, 1)
        try:
            result = {"errors": case_errors(args)}
        except BaseException:  # noqa: BLE001 - reported to the test, which fails with it
            result = {"error": traceback.format_exc()}
        with os.fdopen(write, "w") as f:
            json.dump(result, f)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        answer = f.read()
    _, status = os.waitpid(pid, 0)
    return json.loads(answer) if answer else {"error": f"the case's process ended ({status}) without an answer"}


def serve() -> None:
    import numpy  # noqa: F401 - everything the cases import, imported once here
    import triton.runtime.interpreter  # noqa: F401

    import wavediff.nn.denoiser  # noqa: F401
    import wavediff.nn.fused_stack  # noqa: F401
    import wavediff.nn.fused_upsampler  # noqa: F401

    for line in sys.stdin:
        sys.stdout.write(json.dumps(forked_case(json.loads(line))) + "\n")
        sys.stdout.flush()


def main() -> None:
    if sys.argv[1] == "--serve":
        serve()
    else:
        print(json.dumps(case_errors(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
