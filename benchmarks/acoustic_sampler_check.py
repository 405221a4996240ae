"""How close an acoustic model's sampled mels come to the recording, per sampler setting.

Each utterance of a corpus (LJSpeech layout, transcripts + wavs) is aligned to its own recording by
monotonic alignment search, as in training. So durations are not at issue: only the mel denoiser and
the sampler are. The sampler runs from the same noise in every setting. Printed: log-mel MSE to the
recording, and the prior mean μ's own MSE for scale.

    python benchmarks/acoustic_sampler_check.py --checkpoint EXP/model --data CORPUS [--utterances 3]

Settings (``--settings``, ``;``-separated) are ``steps:temperature[:clip[:fractional]]``. ``clip``
clamps x̂₀ (in the prior-centred space). ``fractional`` runs DPM-Solver++ at the fractional steps
that ``timesteps()`` returned before session 5: the case that turned mels into noise
(benchmarks/results/festival_session5.md).
"""
from __future__ import annotations

import argparse

import torch

from wavediff.audio import MelSpectrogram, load_audio
from wavediff.data import scan_corpus
from wavediff.diffusion import AffinePrior, sample
from wavediff.pipelines.tts import AcousticPipeline


def fractional_logsnr_steps(schedule, steps: int) -> torch.Tensor:
    """The ideal log-SNR-uniform points, not rounded (what samplers were fed before the fix)."""
    last = schedule.num_steps - 1
    u = torch.linspace(1.0, 0.0, steps, dtype=torch.float64)
    lam_max = schedule.log_snr(torch.tensor(0.0, dtype=torch.float64))
    lam_min = schedule.log_snr(torch.tensor(float(last), dtype=torch.float64))
    ab = torch.sigmoid(lam_min + (1 - u) * (lam_max - lam_min))
    t = schedule.t_from_alpha_bar(ab.clamp(schedule.alpha_bars[-1], schedule.alpha_bars[0]))
    t[0], t[-1] = last, 0.0
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="LJSpeech-layout corpus with transcripts")
    ap.add_argument("--utterances", type=int, default=3)
    ap.add_argument("--settings", default="10:1.5;10:1.5:none:fractional;6:1.5;6:5;6:5:3;10:5")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = AcousticPipeline.from_pretrained(args.checkpoint, device="cpu")
    cfg, sch = pipe.config, pipe.diffusion.schedule
    melfn = MelSpectrogram(cfg.mel)
    settings = []
    for s in args.settings.split(";"):
        parts = s.split(":") + ["none", ""]
        steps, temp, clip, frac = int(parts[0]), float(parts[1]), parts[2], parts[3] == "fractional"
        settings.append((s, steps, temp, None if clip == "none" else float(clip), frac))
    totals = {s[0]: [] for s in settings}
    prior = []
    utts = [u for u in scan_corpus(args.data) if u.text][: args.utterances]
    for utt in utts:
        with torch.no_grad():
            wav = torch.as_tensor(load_audio(utt.path, cfg.mel.sample_rate)[0]).float()
            mel = melfn(wav)[None]
            tokens, lengths = pipe.tokens([utt.text])
            h, mu, text_mask, _ = pipe.model.encode(tokens, lengths)
            path = pipe.model.align(mu, mel, text_mask, torch.tensor([mel.shape[-1]]))
            mu_x, h_x = pipe.model.expand(mu, path), pipe.model.expand(h, path)
            cond = pipe.model.condition(h_x, mu_x)
            model = pipe.diffusion.model_fn(lambda x, t: pipe.model.denoiser(x, t, cond), AffinePrior(mean=mu_x))
            z = torch.randn(mu_x.shape, generator=torch.Generator().manual_seed(0))
            prior.append(((mu_x - mel) ** 2).mean().item())
            for name, steps, temp, clip, frac in settings:
                opts = {"ts": fractional_logsnr_steps(sch, steps)} if frac else {"steps": steps}
                y = sample("dpmpp_2m", model, z / temp, sch, clip=clip, **opts)
                m = (mu_x + y).clamp(*cfg.mel.value_range)
                totals[name].append(((m - mel) ** 2).mean().item())
        print(f"{utt.id}: done", flush=True)
    print(f"| setting (steps:temperature[:clip[:fractional]]) | log-mel MSE over {len(utts)} utterances |")
    print("|---|---:|")
    print(f"| prior mean μ alone | {sum(prior) / len(prior):.3f} |")
    for name, values in totals.items():
        print(f"| DPM-Solver++ {name} | {sum(values) / len(values):.3f} |")


if __name__ == "__main__":
    main()
