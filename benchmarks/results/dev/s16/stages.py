import time, sys, functools
import torch
torch.set_num_threads(2)
from wavediff.cli import main
import wavediff.pipelines.tts as T, wavediff.pipelines.vocoder as V, wavediff.text.g2p as G, wavediff.checkpoint as C, wavediff.text.frontend as FE
import wavediff.diffusion.samplers as S
acc={}
def wrap(mod, name, label):
    f=getattr(mod,name)
    @functools.wraps(f)
    def g(*a,**k):
        t=time.perf_counter(); r=f(*a,**k); acc[label]=acc.get(label,0)+time.perf_counter()-t; return r
    setattr(mod,name,g)
wrap(C,"build_and_load","build_and_load")
for cls in [c for c in vars(G).values() if isinstance(c,type) and hasattr(c,"_build")]:
    wrap(cls,"_build","g2p_build"); wrap(cls,"sentences","g2p_sentences")
for cls in [c for c in vars(T).values() if isinstance(c,type)]:
    if "_sample_mels" in vars(cls): wrap(cls,"_sample_mels","acoustic_sample")
    if "mel" in vars(cls): wrap(cls,"mel","acoustic_mel_total")
    if "from_pretrained" in vars(cls): wrap(cls,"from_pretrained",cls.__name__+".from_pretrained")
for cls in [c for c in vars(V).values() if isinstance(c,type)]:
    if "vocode" in vars(cls): wrap(cls,"vocode","vocode_total")
    if "_sample" in vars(cls): wrap(cls,"_sample","vocode_sample")
    if "from_pretrained" in vars(cls): wrap(cls,"from_pretrained",cls.__name__+".from_pretrained")
t=time.perf_counter()
main(["synth", sys.argv[1] if len(sys.argv)>1 else "The quick brown fox jumps over the lazy dog.", "-o", "/tmp/fox.wav", "--device","cpu","--seed","0", *sys.argv[2:]])
tot=time.perf_counter()-t
for k,v in acc.items(): print(f"{k:30s} {v:.3f}")
import soundfile as sf; d=sf.info("/tmp/fox.wav").duration
print("total",round(tot,3),"audio",round(d,3),"rtf",round(tot/d,3))
