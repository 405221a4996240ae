#!/usr/bin/env bash
# Session-14 GPU campaign, one H200: the bundled acoustic model fine-tuned further, two variants side by
# side on the same 6-h Festival corpus: A = `--config small` (session 10's a1 settings: batch 32, lr 2e-4)
# and B = dev/s14/ac_b128.yaml (batch 128, lr 4e-4). Both `--init default`, both stop at the same time.
#   phases: start | finish   (call finish within 30 s of start, from the repo root, with carry
#   [".whl", ".device"]; .device/setup.sh installs the wheels (gruut among them) and unpacks Festival)
#   | one: variant A alone, in the foreground, packed before BUDGET s (default 480) have passed.
# The first machine's start/finish pair was lost: finish waited for training that ended at +1150 s of
# start's clock, i.e. past finish's own 600-s limit (start had used 562 s), and so returned nothing.
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
if [ "$phase" = start ] || [ "$phase" = one ]; then rm -rf $W/src && mkdir -p $W/src && cp -a . $W/src/ && cd $W/src; else cd $W/src; fi
source .device/setup.sh || exit 1
case $phase in
start)
    nvidia-smi -L; nproc
    END=$(( T0 + ${BUDGET:-1150} )); echo $END > $W/END
    python3 -c 'import torch, librosa, soundfile, gruut; print(torch.__version__, gruut.__version__)' || exit 1
    bash recipes/synthetic/run.sh --stage 0 --stop-stage 2 --hours 6 --workers 16 --data-dir $D \
        --config small --exp-dir $E > $W/logs/stages0-2.txt 2>&1
    [ -f $E/.done/2 ] || { tail -20 $W/logs/stages0-2.txt; echo "stages 0-2 failed"; exit 1; }
    ts "stages 0-2"
    left=$(( END - $(date +%s) ))
    mkdir -p $W/a $W/b && for r in a b; do ln -sfn $E/features $W/$r/features; done
    launch a "python3 -m wavediff train acoustic --data $E/data/train --out $W/a --config small --init default --device cuda --max-time $left"
    launch b "python3 -m wavediff train acoustic --data $E/data/train --out $W/b --config .device/ac_b128.yaml --init default --device cuda --max-time $left"
    sleep 90; status
    while [ $(( $(date +%s) - T0 )) -lt ${WAIT:-560} ]; do sleep 10; done
    status ;;
one)
    END=$(( T0 + ${BUDGET:-480} ))
    bash recipes/synthetic/run.sh --stage 0 --stop-stage 2 --hours 6 --workers 16 --data-dir $D \
        --config small --exp-dir $E > $W/logs/stages0-2.txt 2>&1
    [ -f $E/.done/2 ] || { tail -20 $W/logs/stages0-2.txt; echo "stages 0-2 failed"; exit 1; }
    ts "stages 0-2"
    mkdir -p $W/a && ln -sfn $E/features $W/a/features
    python3 -m wavediff train acoustic --data $E/data/train --out $W/a --config small --init default \
        --device cuda --max-time $(( END - 45 - $(date +%s) )) > $W/logs/a.log 2>&1
    ts "train rc $?"; status
    python3 .device/pack.py $OUT s14 a=$W/a/model logs=$W/logs arun=$W/a/run.json
    ls -la $OUT ;;
finish)
    END=$(cat $W/END)
    while pgrep -f "wavediff train" > /dev/null && [ $(date +%s) -lt $(( END + 150 )) ]; do sleep 5; done
    status
    python3 .device/pack.py $OUT s14 a=$W/a/model b=$W/b/model logs=$W/logs arun=$W/a/run.json brun=$W/b/run.json
    ls -la $OUT ;;
esac
