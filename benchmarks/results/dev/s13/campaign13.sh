#!/usr/bin/env bash
# Session-13 GPU campaign: the same-budget comparison (#5) with match_mel. One host of 2-4 H200s:
# lmnt's learner on GPU 0, conf/same_budget.yaml (DiffWave-base, fused kernels) on GPU 1 and, with a
# third GPU, conf/same_budget_x0.yaml on GPU 2; 400 s each, at the same time. Each run then
# copy-synthesises the 50 unseen test utterances at 6 steps, and writes every output once more after
# 16 match_mel iterations (benchmarks/same_budget.py train --mel-match 16).
#   phases: start | finish   (call finish within 30 s of start, from the repo root,
#   with carry [".whl", ".device"]; .device/setup.sh installs the wheels and unpacks Festival)
set -uo pipefail
phase=$1
W=${W:-/root/w}; E=$W/exp; D=$W/festival; SB=$W/sb
mkdir -p $W/logs $W/pids
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
T0=$(date +%s)
ts() { echo "[$(date +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*"; }
status() {
    ts "status"; nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
    for f in $W/logs/*.log; do
        echo "== $(basename $f)"; tr '\r' '\n' < $f | grep -v '^\s*$' | grep -v Warning | tail -n 3 | cut -c1-300
    done
}
launch() {  # launch NAME GPU SYSTEM [CONFIG]
    local name=$1 gpu=$2 system=$3 config=${4:-}
    setsid nohup bash -c "CUDA_VISIBLE_DEVICES=$gpu python3 benchmarks/same_budget.py train --system $system \
        --data $SB --out $SB/$name --mel-match 16 ${config:+--config $config}" > $W/logs/$name.log 2>&1 < /dev/null &
    echo $! > $W/pids/$name; ts "launched $name on GPU $gpu"
}
running() { local n=0 f; for f in $W/pids/*; do kill -0 $(cat $f) 2>/dev/null && n=$((n+1)); done; echo $n; }
wait_all() { while [ $(running) -gt 0 ] && [ $(( $(date +%s) - T0 )) -lt $1 ]; do sleep 5; done; }
if [ "$phase" = start ]; then rm -rf $W/src && mkdir -p $W/src && cp -a . $W/src/ && cd $W/src; else cd $W/src; fi
source .device/setup.sh || exit 1
case $phase in
start)
    nvidia-smi -L; nproc; python3 -c 'import torch, librosa, soundfile; print(torch.__version__, torch.cuda.device_count())'
    bash recipes/synthetic/run.sh --stage 0 --stop-stage 1 --hours 6 --workers 16 \
        --data-dir $D --config small --exp-dir $E > $W/logs/stages0-1.txt 2>&1
    [ -f $E/.done/1 ] || { tail -20 $W/logs/stages0-1.txt; echo "stages 0-1 failed"; exit 1; }
    ts "stages 0-1"
    python3 benchmarks/same_budget.py prepare --data $E/data --train 2000 --test 50 --out $SB || exit 1
    ts "prepared"
    launch lmnt 0 lmnt
    launch base 1 wavediff benchmarks/conf/same_budget.yaml
    [ $(nvidia-smi -L | wc -l) -ge 3 ] && launch x0 2 wavediff benchmarks/conf/same_budget_x0.yaml
    sleep 90; status
    wait_all ${WAIT:-580}
    status ;;
finish)
    wait_all 400
    status
    python3 - $SB <<'PY'
import sys, soundfile as sf
from pathlib import Path
sb = Path(sys.argv[1])
for d in sorted(sb.glob("*/gen*")):  # FLAC: the same samples, about half the bytes
    out = sb / "flac" / d.parent.name / d.name
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(d.glob("*.wav")):
        x, sr = sf.read(f, dtype="int16")
        sf.write(out / (f.stem + ".flac"), x, sr)
PY
    mkdir -p $W/json && for r in $SB/*/train.json; do cp $r $W/json/$(basename $(dirname $r)).json; done
    cp -r $W/logs $W/json/
    python3 .device/pack.py $OUT s13 audio=$SB/flac json=$W/json
    ls -la $OUT ;;
esac
