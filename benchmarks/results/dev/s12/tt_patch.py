"""Run benchmarks/train_throughput.py with module constants of wavediff.nn.fused_stack changed: NAME=INT,..."""
import os, runpy, sys
sys.path.insert(0, os.getcwd())
import wavediff.nn.fused_stack as fs
for kv in sys.argv[1].split(","):
    k, v = kv.split("=")
    setattr(fs, k, int(v))
sys.argv = ["train_throughput.py"] + sys.argv[2:]
runpy.run_path("train_throughput.py", run_name="__main__")
