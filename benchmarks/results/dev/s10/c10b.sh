#!/usr/bin/env bash
# Session 10, second GPU run: the shipped acoustic model (a1) fine-tuned a few more minutes, alone on the GPU.
set -uo pipefail
T0=$(date +%s); END=$(( T0 + ${BUDGET:-320} ))
ts() { echo "[+$(( $(date +%s) - T0 ))s] $*"; }
W=/root/w; E=$W/exp; D=$W/festival
mkdir -p $W && rm -rf $W/src && mkdir -p $W/src && cp -a . $W/src/ && cd $W/src
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
source .device/setup.sh || exit 1
bash recipes/synthetic/run.sh --stage 0 --stop-stage 2 --hours 6 --workers 16 --data-dir $D \
    --config small --exp-dir $E > $W/stages.log 2>&1
[ -f $E/.done/2 ] || { tail -20 $W/stages.log; echo "stages 0-2 failed"; exit 1; }
ts "stages 0-2"
left=$(( END - $(date +%s) ))
mkdir -p $W/a3 && ln -sfn $E/features $W/a3/features
python3 -m wavediff train acoustic --data $E/data/train --out $W/a3 --config small --init default \
    --device cuda --max-time $left > $W/a3.log 2>&1
ts "train rc $?"; tr '\r' '\n' < $W/a3.log | grep -v '^\s*$' | grep -v Warning | tail -3 | cut -c1-200
python3 .device/pack.py $OUT a3 a3=$W/a3/model log=$W/a3.log
ts done
