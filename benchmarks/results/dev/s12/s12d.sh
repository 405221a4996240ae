python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
timeout 90 python3 .device/upbench.py $OUT/upbench.json 2>&1 | tail -16
cd benchmarks
timeout 100 python3 fused_stack_check.py --batch 16 --json $OUT/check_s12d.json > $OUT/check_s12d.txt 2>&1; echo "check rc $?"; tail -3 $OUT/check_s12d.txt
timeout 220 python3 train_throughput.py --lmnt fp16:256 --wavediff bf16:256,384 --json $OUT/tt_s12d.json > $OUT/tt_s12d.txt 2>&1; echo "tt rc $?"; tail -6 $OUT/tt_s12d.txt
timeout 150 python3 fused_kernel_sweep.py --batch 256 --json $OUT/sweep_s12d.json > $OUT/sweep_s12d.txt 2>&1; echo "sweep rc $?"
python3 -c "
import json;d=json.load(open('$OUT/sweep_s12d.json'));print(d['ms_per_step']); print({k:v['best'] for k,v in d['kernels'].items()})
for t,c in d['kernels']['pre']['timings_ms']: print(round(t,3), c)
for r in d['other_kernels'][:6]: print(r)
"
