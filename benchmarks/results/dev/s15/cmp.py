import sys, glob, torch, soundfile as sf
from wavediff.pipelines.vocoder import Vocoder
torch.set_num_threads(2)
files = sorted(glob.glob("exp/s13/everyday_rec/wavs/*.wav"))[:8]
for d in sys.argv[1:]:
    v = Vocoder.from_pretrained(None if d == "default" else d).float()
    errs = {0: []}
    for f in files:
        wav, _ = sf.read(f, dtype="float32"); wav = torch.from_numpy(wav)
        mel = v.mel(wav)
        for mm in [0]:
            out = v.vocode(mel, seed=0, precision="float32", mel_match=mm)
            m2 = v.mel(out)
            n = min(m2.shape[-1], mel.shape[-1])
            errs[mm].append((m2[:, :n] - mel[:, :n]).abs().mean().item())
    print(d, {k: round(sum(e)/len(e), 3) for k, e in errs.items()})
