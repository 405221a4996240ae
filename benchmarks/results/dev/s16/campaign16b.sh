#!/usr/bin/env bash
# Session-16 second GPU call (nvidia-h200-x2), one call: corpus, then side by side until T0+TRAIN_END s:
#   V2 (GPU 0): the 48-channel vocoder continued from exp/s16/v48_16 (.device/p48_ig2.yaml, lr 8e-5);
#   C2 (GPU 1): the acoustic model continued from the working tree's bundled one (session 16's C) with ac_b128.
# carry: [".whl", ".device", "exp/s16/v48_16"]
set -uo pipefail
W=/root/w2; E=$W/exp; D=$W/festival
mkdir -p $W/logs
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
T0=$(date +%s)
ts() { echo "[$(date +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*"; }
status() {
    ts "status"; nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
    for f in $W/logs/*.log; do
        echo "== $(basename $f)"; tr '\r' '\n' < $f | grep -v '^\s*$' | grep -v Warning | tail -n 4 | cut -c1-250
    done
}
launch() { local name=$1; shift; setsid nohup bash -c "$*" > $W/logs/$name.log 2>&1 < /dev/null & ts "launched $name"; }
source .device/setup.sh || exit 1
nvidia-smi -L
bash recipes/synthetic/run.sh --stage 0 --stop-stage 2 --hours 6 --workers 30 --data-dir $D \
    --config small --exp-dir $E > $W/logs/stages0-2.txt 2>&1
[ -f $E/.done/2 ] || { tail -20 $W/logs/stages0-2.txt; echo "stages 0-2 failed"; exit 1; }
ts "stages 0-2"
left=$(( T0 + ${TRAIN_END:-480} - $(date +%s) ))
mkdir -p $W/v $W/c && ln -sfn $E/features $W/v/features
launch v "CUDA_VISIBLE_DEVICES=0 python3 -m wavediff train vocoder --data $E/data/train --out $W/v --config .device/p48_ig2.yaml --init exp/s16/v48_16 --device cuda --max-time $left"
launch c "CUDA_VISIBLE_DEVICES=1 python3 -m wavediff train acoustic --data $E/data/train --out $W/c --config .device/ac_b128.yaml --init default --device cuda --max-time $left"
sleep 60; status
while pgrep -f "wavediff train" > /dev/null && [ $(( $(date +%s) - T0 )) -lt $(( ${TRAIN_END:-480} + 40 )) ]; do sleep 5; done
status
python3 .device/pack.py $OUT s16b v=$W/v/model c=$W/c/model logs=$W/logs
ls -la $OUT
