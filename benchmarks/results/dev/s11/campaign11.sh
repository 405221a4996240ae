#!/usr/bin/env bash
# Session-11 GPU campaign, two H200s of one host: the same-budget comparison (#5) with wavediff
# trained as it is sampled (InferGrad from scratch). Round 1: lmnt's learner on GPU 0 and
# conf/same_budget_infergrad.yaml (A) on GPU 1, 400 s each, at the same time; round 2: variants B and
# C (sb_b.yaml, sb_c.yaml here) on GPUs 0 and 1. Every run then copy-synthesises the same 50 unseen
# test utterances at 6 steps (benchmarks/same_budget.py train).
# Phase x0 (a later, separate machine of one H200): the corpus again, then conf/same_budget_x0.yaml
# alone on the GPU for 400 s, and its copy-synthesis.
#   phases: start | r2 | finish   (call each within 30 s of the last, from the repo root, with
#   carry [".whl", ".device"]; .device/setup.sh installs the wheels and unpacks Festival)
set -uo pipefail
phase=$1
W=${W:-/root/w}; E=$W/exp; D=$W/festival; SB=$W/sb; S11=benchmarks/results/dev/s11
mkdir -p $W/logs $W/pids
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
T0=$(date +%s)
ts() { echo "[$(date +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*"; }
status() {
    ts "status"; nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
    for f in $W/logs/*.log; do
        echo "== $(basename $f)"; tr '\r' '\n' < $f | grep -v '^\s*$' | grep -v Warning | tail -n 4 | cut -c1-300
    done
}
launch() {  # launch NAME GPU SYSTEM [CONFIG]
    local name=$1 gpu=$2 system=$3 config=${4:-}
    setsid nohup bash -c "CUDA_VISIBLE_DEVICES=$gpu python3 benchmarks/same_budget.py train --system $system \
        --data $SB --out $SB/$name ${config:+--config $config}" > $W/logs/$name.log 2>&1 < /dev/null &
    echo $! > $W/pids/$name; ts "launched $name on GPU $gpu"
}
running() { local n=0 f; for f in $W/pids/*; do kill -0 $(cat $f) 2>/dev/null && n=$((n+1)); done; echo $n; }
wait_all() { while [ $(running) -gt 0 ] && [ $(( $(date +%s) - T0 )) -lt $1 ]; do sleep 5; done; }
pack_round() {  # pack_round LABEL NAME...
    local label=$1; shift; local items=() n
    for n in "$@"; do
        items+=("$n=$SB/$n/gen")
        [ -d $SB/$n/run/model ] && items+=("${n}_model=$SB/$n/run/model")
    done
    python3 .device/pack.py $OUT $label "${items[@]}" logs=$W/logs
}
if [ "$phase" = start ] || [ "$phase" = x0 ]; then rm -rf $W/src && mkdir -p $W/src && cp -a . $W/src/ && cd $W/src; else cd $W/src; fi
source .device/setup.sh || exit 1
corpus() {
    bash recipes/synthetic/run.sh --stage 0 --stop-stage 1 --hours 6 --workers 16 \
        --data-dir $D --config small --exp-dir $E > $W/logs/stages0-1.txt 2>&1
    [ -f $E/.done/1 ] || { tail -20 $W/logs/stages0-1.txt; echo "stages 0-1 failed"; exit 1; }
    ts "stages 0-1"
    python3 benchmarks/same_budget.py prepare --data $E/data --train 2000 --test 50 --out $SB || exit 1
    ts "prepared"
}
case $phase in
x0)
    nvidia-smi -L; corpus
    launch X 0 wavediff benchmarks/conf/same_budget_x0.yaml
    sleep 60; status
    wait_all 560
    status
    pack_round x0 X ;;
start)
    nvidia-smi -L; nproc; python3 -c 'import torch; print(torch.__version__, torch.cuda.device_count())'
    corpus
    launch lmnt 0 lmnt
    launch A 1 wavediff benchmarks/conf/same_budget_infergrad.yaml
    sleep 90; status
    wait_all ${WAIT:-565}
    status ;;
r2)
    wait_all 200
    status
    rm -f $W/pids/lmnt $W/pids/A
    launch B 0 wavediff $S11/sb_b.yaml
    launch C 1 wavediff $S11/sb_c.yaml
    pack_round r1 lmnt A
    ls -la $OUT ;;
finish)
    sleep 60; status
    wait_all ${WAIT:-570}
    status
    pack_round r2 B C
    ls -la $OUT ;;
esac
