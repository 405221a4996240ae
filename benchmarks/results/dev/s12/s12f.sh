python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
cd benchmarks
timeout 100 python3 fused_stack_check.py --batch 16 --json $OUT/check_s12f.json > $OUT/check_s12f.txt 2>&1; echo "check rc $?"; tail -3 $OUT/check_s12f.txt
timeout 200 python3 train_throughput.py --lmnt fp16:256 --wavediff bf16:256,384 --json $OUT/tt_s12f.json > $OUT/tt_s12f.txt 2>&1; echo "tt rc $?"; tail -6 $OUT/tt_s12f.txt
timeout 100 python3 ../.device/tt_patch.py FAST_GATE=0 --wavediff bf16:384 --json $OUT/tt_s12f_exact.json > $OUT/tt_s12f_exact.txt 2>&1; echo "exact rc $?"; tail -3 $OUT/tt_s12f_exact.txt
