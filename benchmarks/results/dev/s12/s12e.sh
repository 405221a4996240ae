python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
cd benchmarks
timeout 220 python3 train_throughput.py --lmnt fp16:256 --wavediff bf16:256,384 --json $OUT/tt_s12e.json > $OUT/tt_s12e.txt 2>&1; echo "tt rc $?"; tail -6 $OUT/tt_s12e.txt
timeout 100 python3 vocoder_speed.py --device cuda --cases 1x5,32x5 --variants lmnt,fp32,bf16 --json $OUT/vs_new.json > $OUT/vs_new.txt 2>&1; echo "vs new rc $?"; tail -6 $OUT/vs_new.txt
PYTHONPATH=/tmp/site:$PWD/../.device/before timeout 100 python3 vocoder_speed.py --device cuda --cases 1x5,32x5 --variants lmnt,fp32,bf16 --json $OUT/vs_before.json > $OUT/vs_before.txt 2>&1; echo "vs before rc $?"; tail -6 $OUT/vs_before.txt
