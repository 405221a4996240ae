#!/usr/bin/env bash
# Session-16 GPU campaign, nvidia-h200-x2, two runs side by side:
#   V (GPU 0): the default 64-channel vocoder pruned to 48 (`wavediff prune --channels 48`), fine-tuned with
#              InferGrad (.device/p48_ig.yaml = small64_infergrad at 48 channels) on the recordings' mels;
#   C (GPU 1): the default acoustic model, trained on with batch 128 / lr 4e-4 (.device/ac_b128.yaml).
# phases: start (corpus, prune, launch both; returns at +WAIT s) | finish (call within 30 s of start's end;
# waits for the runs, which end at start's T0 + BUDGET, then packs; it must end inside its own 600 s).
# carry: [".whl", ".device"]
set -uo pipefail
phase=$1
W=${W:-/root/w}; E=$W/exp; D=$W/festival
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
if [ "$phase" = start ]; then rm -rf $W/src && mkdir -p $W/src && cp -a . $W/src/ && cd $W/src; else cd $W/src; fi
source .device/setup.sh || exit 1
case $phase in
start)
    nvidia-smi -L; nproc
    END=$(( T0 + ${BUDGET:-1080} )); echo $END > $W/END
    python3 -c 'import torch, librosa, soundfile, gruut; print(torch.__version__, gruut.__version__)' || exit 1
    python3 -m wavediff prune --checkpoint default --channels 48 --out $W/p48 || exit 1
    bash recipes/synthetic/run.sh --stage 0 --stop-stage 2 --hours 6 --workers 30 --data-dir $D \
        --config small --exp-dir $E > $W/logs/stages0-2.txt 2>&1
    [ -f $E/.done/2 ] || { tail -20 $W/logs/stages0-2.txt; echo "stages 0-2 failed"; exit 1; }
    ts "stages 0-2"
    left=$(( END - 40 - $(date +%s) ))
    mkdir -p $W/v $W/c && ln -sfn $E/features $W/v/features
    launch v "CUDA_VISIBLE_DEVICES=0 python3 -m wavediff train vocoder --data $E/data/train --out $W/v --config .device/p48_ig.yaml --init $W/p48 --device cuda --max-time $left"
    launch c "CUDA_VISIBLE_DEVICES=1 python3 -m wavediff train acoustic --data $E/data/train --out $W/c --config .device/ac_b128.yaml --init default --device cuda --max-time $left"
    sleep 100; status
    while [ $(( $(date +%s) - T0 )) -lt ${WAIT:-570} ]; do sleep 10; done
    status ;;
finish)
    END=$(cat $W/END)
    while pgrep -f "wavediff train" > /dev/null && [ $(date +%s) -lt $(( END + 40 )) ] \
          && [ $(( $(date +%s) - T0 )) -lt 520 ]; do sleep 5; done
    status
    python3 .device/pack.py $OUT s16 v=$W/v/model c=$W/c/model logs=$W/logs vrun=$W/v/run.json crun=$W/c/run.json
    ls -la $OUT ;;
esac
