# session 12, call 1: fused upsampler + time-major input projection + scaled skip weight
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader
cd benchmarks
timeout 100 python3 fused_stack_check.py --batch 16 --json $OUT/check_s12.json > $OUT/check_s12.txt 2>&1; echo "check rc $?"; tail -12 $OUT/check_s12.txt
timeout 300 python3 train_throughput.py --lmnt fp16:256 --wavediff bf16:256,384 --json $OUT/tt_s12.json > $OUT/tt_s12.txt 2>&1; echo "tt rc $?"; tail -6 $OUT/tt_s12.txt
PYTHONPATH=/tmp/site:$PWD/../.device/before timeout 120 python3 train_throughput.py --wavediff bf16:256 --json $OUT/tt_before.json > $OUT/tt_before.txt 2>&1; echo "before rc $?"; tail -3 $OUT/tt_before.txt
timeout 150 python3 fused_kernel_sweep.py --batch 256 --json $OUT/sweep_s12.json > $OUT/sweep_s12.txt 2>&1; echo "sweep rc $?"
grep "  other\|  op \|ms per step\|total" $OUT/sweep_s12.txt | head -40
