python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
cd benchmarks
timeout 100 python3 fused_stack_check.py --batch 16 --json $OUT/check_s12b.json > $OUT/check_s12b.txt 2>&1; echo "check rc $?"; tail -3 $OUT/check_s12b.txt
timeout 200 python3 train_throughput.py --lmnt fp16:256 --wavediff bf16:256,384 --json $OUT/tt_s12b.json > $OUT/tt_s12b.txt 2>&1; echo "tt rc $?"; tail -6 $OUT/tt_s12b.txt
timeout 120 python3 ../.device/tt_patch.py PRE_PROGRAMS=2048 --wavediff bf16:256,384 --json $OUT/tt_pre2048.json > $OUT/tt_pre2048.txt 2>&1; echo "pre2048 rc $?"; tail -4 $OUT/tt_pre2048.txt
timeout 150 python3 fused_kernel_sweep.py --batch 256 --json $OUT/sweep_s12b.json > $OUT/sweep_s12b.txt 2>&1; echo "sweep rc $?"
python3 -c "
import json;d=json.load(open('$OUT/sweep_s12b.json'));print(d['ms_per_step']); print({k:v['best'] for k,v in d['kernels'].items()})
print(d['kernels']['w']['timings_ms'][:6])
for r in d['other_kernels'][:12]: print(r)
"
