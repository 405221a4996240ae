"""Time the fused upsampler (forward + backward, DiffWave-base sizes) for module-constant variants."""
import itertools, json, sys, torch
import wavediff.nn.fused_upsampler as fu
from wavediff.nn.denoiser import ConditionUpsampler
torch.manual_seed(0)
up = ConditionUpsampler(256).cuda()
mel = torch.randn(256, 80, 62, device="cuda")
g = torch.randn(256, 80, 62 * 256, device="cuda", dtype=torch.bfloat16)
res = []
for frames, warps, iters in itertools.product((4, 8), (4, 8), (8, 16)):
    fu.FRAMES, fu.WARPS, fu.MAX_ITERS = frames, warps, iters
    times = {}
    for phase in range(2):
        for _ in range(3):
            y = fu.fused_upsample(up.stages, up.strides, mel, torch.bfloat16)
            y.backward(g)
        torch.cuda.synchronize()
        s, m, e = (torch.cuda.Event(enable_timing=True) for _ in range(3))
        s.record(); y = fu.fused_upsample(up.stages, up.strides, mel, torch.bfloat16); m.record()
        y.backward(g); e.record(); torch.cuda.synchronize()
        times = {"fwd_ms": s.elapsed_time(m), "bwd_ms": m.elapsed_time(e)}
    res.append(dict(frames=frames, warps=warps, iters=iters, **times))
    print(res[-1], flush=True)
json.dump(res, open(sys.argv[1], "w"), indent=1)
