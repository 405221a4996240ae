#!/usr/bin/env bash
# copy-synthesis of the 36 everyday recordings, intermediate noise of the fast sampler scaled by $1
set -uo pipefail
s=$1
source /work/venv/bin/activate; cd /work/main
G=exp/s11/cs_sigma$s
python - <<PY > exp/s11/cs_sigma$s.log 2>&1
import sys, wavediff.diffusion.samplers as S
orig = S._noise
S._noise = lambda x, g: $s * orig(x, g)
from wavediff.cli import main
sys.exit(main(["vocode", "--in-dir", "exp/everyday_ref/wavs", "--out-dir", "$G", "--seed", "0"]))
PY
wavediff eval --ref exp/everyday_ref --gen $G --metrics wer,dnsmos --out-json exp/s11/cs_sigma$s.json --out-md exp/s11/cs_sigma$s.md >> exp/s11/cs_sigma$s.log 2>&1
