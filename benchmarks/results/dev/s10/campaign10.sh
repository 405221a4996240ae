#!/usr/bin/env bash
# Session-10 GPU campaign, one H200: the bundled acoustic model fine-tuned with the leading pause
# (two lr variants), and the bundled vocoder's InferGrad fine-tuning continued on aligned mels made
# with the pause.   phases: start | wait | finish   (call each within 30 s of the last)
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
        echo "== $(basename $f)"; tr '\r' '\n' < $f | grep -v '^\s*$' | grep -v Warning | tail -n 3 | cut -c1-250
    done
}
launch() { local name=$1; shift; setsid nohup bash -c "$*" > $W/logs/$name.log 2>&1 < /dev/null & ts "launched $name"; }
if [ "$phase" = start ]; then rm -rf $W/src && mkdir -p $W/src && cp -a . $W/src/ && cd $W/src; else cd $W/src; fi
source .device/setup.sh || exit 1
case $phase in
start)
    nvidia-smi -L; nproc
    END=$(( T0 + ${BUDGET:-1320} )); echo $END > $W/END
    bash recipes/synthetic/run.sh --stage 0 --stop-stage 2 --hours 6 --workers 16 --data-dir $D \
        --config small --exp-dir $E > $W/logs/stages0-2.txt 2>&1
    [ -f $E/.done/2 ] || { tail -20 $W/logs/stages0-2.txt; echo "stages 0-2 failed"; exit 1; }
    ts "stages 0-2"
    left=$(( END - $(date +%s) ))
    mkdir -p $W/a1 $W/a2 $W/v && for r in a1 a2 v; do ln -sfn $E/features $W/$r/features; done
    launch a1 "python3 -m wavediff train acoustic --data $E/data/train --out $W/a1 --config small --init default --device cuda --max-time $left"
    launch a2 "python3 -m wavediff train acoustic --data $E/data/train --out $W/a2 --config .device/ac_decay.yaml --init default --device cuda --max-time $left"
    python3 -m wavediff data aligned-mels --data $E/data/train --out $W/gta --cache $E/features \
        --batch-size 32 --device cuda 2>&1 | tail -2
    ts "aligned mels: $(ls $W/gta | wc -l) files"
    left=$(( END - $(date +%s) ))
    launch v "python3 -m wavediff train vocoder --data $E/data/train --out $W/v --config .device/ig10.yaml --init default --mels $W/gta --device cuda --max-time $left"
    sleep 60; status
    while [ $(( $(date +%s) - T0 )) -lt ${WAIT:-570} ]; do sleep 10; done
    status ;;
wait)
    while [ $(( $(date +%s) - T0 )) -lt ${WAIT:-570} ]; do sleep 10; done
    status ;;
finish)
    END=$(cat $W/END)
    while pgrep -f "wavediff train" > /dev/null && [ $(date +%s) -lt $(( END + 150 )) ]; do sleep 5; done
    status
    python3 .device/pack.py $OUT s10 a1=$W/a1/model a2=$W/a2/model v=$W/v/model logs=$W/logs \
        a1run=$W/a1/run.json a2run=$W/a2/run.json vrun=$W/v/run.json
    ls -la $OUT ;;
esac
