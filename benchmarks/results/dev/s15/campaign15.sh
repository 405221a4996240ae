#!/usr/bin/env bash
# Session-15 GPU campaign, nvidia-h200-x2: the bundled vocoder pruned to 64 channels (exp/s15/p64, from
# exp/s15/prune.py) fine-tuned with InferGrad (.device/p64_ig.yaml), two variants side by side:
#   A (GPU 0): on the default acoustic model's ground-truth-aligned mels (--mels), as the shipped vocoder's last run;
#   B (GPU 1): on the recordings' own mels.
# phases: start (corpus, aligned mels, launch both; returns at +WAIT s) | finish (call within 30 s of start's
# end; waits for the runs, which end at start's T0 + BUDGET, then packs; it must end inside its own 600 s,
# so BUDGET <= WAIT + ~500).  carry: [".whl", ".device", "exp/s15/p64"]
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
    bash recipes/synthetic/run.sh --stage 0 --stop-stage 2 --hours 6 --workers 30 --data-dir $D \
        --config small --exp-dir $E > $W/logs/stages0-2.txt 2>&1
    [ -f $E/.done/2 ] || { tail -20 $W/logs/stages0-2.txt; echo "stages 0-2 failed"; exit 1; }
    ts "stages 0-2"
    python3 -m wavediff data aligned-mels --data $E/data/train --out $W/gta --cache $E/features \
        --batch-size 32 --device cuda > $W/logs/gta.txt 2>&1 || { tail -5 $W/logs/gta.txt; exit 1; }
    ts "aligned mels: $(ls $W/gta | wc -l)"
    left=$(( END - 40 - $(date +%s) ))
    mkdir -p $W/a $W/b && for r in a b; do ln -sfn $E/features $W/$r/features; done
    launch a "CUDA_VISIBLE_DEVICES=0 python3 -m wavediff train vocoder --data $E/data/train --out $W/a --config .device/p64_ig.yaml --init exp/s15/p64 --mels $W/gta --device cuda --max-time $left"
    launch b "CUDA_VISIBLE_DEVICES=1 python3 -m wavediff train vocoder --data $E/data/train --out $W/b --config .device/p64_ig.yaml --init exp/s15/p64 --device cuda --max-time $left"
    sleep 100; status
    while [ $(( $(date +%s) - T0 )) -lt ${WAIT:-570} ]; do sleep 10; done
    status ;;
finish)
    END=$(cat $W/END)
    while pgrep -f "wavediff train" > /dev/null && [ $(date +%s) -lt $(( END + 40 )) ] \
          && [ $(( $(date +%s) - T0 )) -lt 520 ]; do sleep 5; done
    status
    python3 .device/pack.py $OUT s15 a=$W/a/model b=$W/b/model logs=$W/logs arun=$W/a/run.json
    ls -la $OUT ;;
esac
