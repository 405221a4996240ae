"""wavediff CLI with Vocoder.vocode followed by the prototype mel projection (PROJ iterations)."""
import os, sys, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from proj import mel_project
from wavediff.pipelines import vocoder as V
n = int(os.environ.get("PROJ", "0"))
orig = V.Vocoder.vocode
def vocode(self, mel, **kw):
    wav = orig(self, mel, **kw)
    if n and torch.as_tensor(mel).dim() == 2:
        wav = mel_project(wav[None].float().cpu(), mel[None].float().cpu(), self.config.mel, n_iter=n)[0]
    return wav
V.Vocoder.vocode = vocode
from wavediff.cli import main
sys.exit(main(sys.argv[1:]))
