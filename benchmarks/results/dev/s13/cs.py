"""Copy-synthesis variants of a folder: base vocoder, + mel projection, GL."""
import sys, torch, soundfile as sf
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from proj import mel_project
from wavediff.pipelines.vocoder import Vocoder, GriffinLim
from wavediff.audio import load_audio

ref, out = Path(sys.argv[1]), Path(sys.argv[2])
variants = sys.argv[3].split(",")
torch.set_num_threads(2)
voc = Vocoder.from_pretrained(None)
cfg = voc.config.mel
for v in variants:
    (out / v).mkdir(parents=True, exist_ok=True)
for f in sorted(ref.glob("*.wav")):
    wav, sr = load_audio(str(f), sample_rate=cfg.sample_rate)
    wav = torch.from_numpy(wav)
    mel = voc.mel(wav)
    base = None
    for v in variants:
        if v == "gl":
            y = GriffinLim(cfg)(mel, seed=0)
        elif v == "gl64":
            y = GriffinLim(cfg, n_iter=64)(mel, seed=0)
        else:
            if base is None:
                base = voc(mel, seed=0)
            y = base
            if v.startswith("p"):   # pN: N projection iterations; fN floor-only
                y = mel_project(base[None], mel[None], cfg, n_iter=int(v[1:]))[0]
            elif v.startswith("f"):
                y = mel_project(base[None], mel[None], cfg, n_iter=int(v[1:]), floor_only=True)[0]
        sf.write(out / v / f.name, y.numpy(), cfg.sample_rate)
print("done")
