"""Prototype: structured channel pruning of the bundled vocoder (96 -> C channels)."""
import math, sys, copy, glob
import torch, torch.nn.functional as F
import soundfile as sf
from wavediff.pipelines.vocoder import Vocoder
from wavediff.nn.denoiser import _gated_tanh, _dilated_conv, _pointwise_conv, _time_major

torch.manual_seed(0)
C_NEW = int(sys.argv[1]); OUT = sys.argv[2]; MODE = sys.argv[3] if len(sys.argv) > 3 else "score"
v = Vocoder.from_pretrained().float()
net = v.net
C = net.config.residual_channels
L = len(net.residual_layers)

stats = {"res": [torch.zeros(C) for _ in range(L)], "gate": [torch.zeros(C) for _ in range(L)],
         "skip": torch.zeros(C), "fin": torch.zeros(C), "n": 0}


def stats_forward(x, t, cond):
    t = net._check_inputs(x, t, cond)
    b, _, length = x.shape
    fold = net.config.fold
    x = x.reshape(b, length // fold, fold).transpose(1, 2)
    h = F.relu(_pointwise_conv(x, net.input_projection.weight, net.input_projection.bias))
    step = net.diffusion_embedding(t)
    cond = _time_major(net.cond_upsampler(cond))
    skip_sum = 0
    n = h.shape[0] * h.shape[2]
    for l, layer in enumerate(net.residual_layers):
        stats["res"][l] += h.pow(2).sum((0, 2))
        xx = h.transpose(1, 2)
        y = xx + layer.diffusion_projection(step).unsqueeze(1)
        bias = layer.dilated_conv.bias + layer.conditioner_projection.bias
        y = _dilated_conv(y.transpose(1, 2), layer.dilated_conv, bias).transpose(1, 2)
        y = y + F.linear(cond.transpose(1, 2), layer.conditioner_projection.weight.squeeze(-1))
        g = _gated_tanh(y)
        stats["gate"][l] += g.pow(2).sum((0, 1))
        y = F.linear(g, layer.output_projection.weight.squeeze(-1), layer.output_projection.bias)
        res, skip = torch.chunk(y, 2, dim=-1)
        h = ((xx + res) / math.sqrt(2)).transpose(1, 2)
        skip_sum = skip_sum + skip
    skip_sum = skip_sum.transpose(1, 2)
    stats["skip"] += (skip_sum / math.sqrt(L)).pow(2).sum((0, 2))
    sw = net.skip_projection.weight / math.sqrt(L)
    h = F.relu(_pointwise_conv(skip_sum, sw, net.skip_projection.bias))
    stats["fin"] += h.pow(2).sum((0, 2))
    stats["n"] += n
    out = _pointwise_conv(h, net.output_projection.weight, net.output_projection.bias)
    out = out.reshape(b, 1, fold, length // fold).transpose(2, 3).reshape(b, 1, length)
    return out


files = sorted(glob.glob("exp/s13/sb_rec/wavs/*.wav"))[:12]
orig = net.forward
net.forward = stats_forward
with torch.no_grad():
    for f in files:
        wav, sr = sf.read(f, dtype="float32")
        mel = v.mel(torch.from_numpy(wav))
        v.vocode(mel, seed=0, precision="float32", mel_match=0)
net.forward = orig
n = stats["n"]
rms = lambda s: (s / n).sqrt()

sd = {k: p.detach().clone() for k, p in net.state_dict().items()}
score_res = torch.zeros(C)
gsel = []
for l, layer in enumerate(net.residual_layers):
    W = layer.dilated_conv.weight  # [2C, C, 3]
    score_res += rms(stats["res"][l]) * W.pow(2).sum((0, 2)).sqrt()
    Wo = layer.output_projection.weight.squeeze(-1)  # [2C, C]
    gsel.append(rms(stats["gate"][l]) * Wo.pow(2).sum(0).sqrt())
Wsk = net.skip_projection.weight.squeeze(-1)  # [C, C] out, in
score_skip = rms(stats["skip"]) * Wsk.pow(2).sum(0).sqrt()
Wf = net.output_projection.weight.squeeze(-1)  # [8, C]
score_fin = rms(stats["fin"]) * Wf.pow(2).sum(0).sqrt()


def top(score):
    if MODE == "random":
        return torch.randperm(C)[:C_NEW].sort().values
    return score.topk(C_NEW).indices.sort().values


R, S, K = top(score_res), top(score_skip), top(score_fin)
G = [top(s) for s in gsel]
for name, s, idx in (("res", score_res, R), ("skip", score_skip, S), ("fin", score_fin, K)):
    print(name, "kept share of score", float(s[idx].sum() / s.sum()))
print("gate kept share", [round(float(s[g].sum() / s.sum()), 3) for s, g in zip(gsel, G)])

new = {}
new["input_projection.weight"] = sd["input_projection.weight"][R]
new["input_projection.bias"] = sd["input_projection.bias"][R]
for l in range(L):
    p = f"residual_layers.{l}."
    g = G[l]
    g2 = torch.cat([g, g + C])
    new[p + "dilated_conv.weight"] = sd[p + "dilated_conv.weight"][g2][:, R]
    new[p + "dilated_conv.bias"] = sd[p + "dilated_conv.bias"][g2]
    new[p + "conditioner_projection.weight"] = sd[p + "conditioner_projection.weight"][g2]
    new[p + "conditioner_projection.bias"] = sd[p + "conditioner_projection.bias"][g2]
    new[p + "diffusion_projection.weight"] = sd[p + "diffusion_projection.weight"][R]
    new[p + "diffusion_projection.bias"] = sd[p + "diffusion_projection.bias"][R]
    rs = torch.cat([R, S + C])
    new[p + "output_projection.weight"] = sd[p + "output_projection.weight"][rs][:, g]
    new[p + "output_projection.bias"] = sd[p + "output_projection.bias"][rs]
new["skip_projection.weight"] = sd["skip_projection.weight"][K][:, S]
new["skip_projection.bias"] = sd["skip_projection.bias"][K]
new["output_projection.weight"] = sd["output_projection.weight"][:, K]
new["output_projection.bias"] = sd["output_projection.bias"]
for k in sd:
    if k not in new:
        new[k] = sd[k]

cfg = copy.deepcopy(v.config)
cfg.model.residual_channels = C_NEW
student = Vocoder(cfg)
missing = student.net.load_state_dict(new, strict=True)
student.save_pretrained(OUT, state_dict=student.net.state_dict())
print("saved", OUT, student.net.num_parameters())
