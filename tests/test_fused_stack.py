"""The fused Triton residual stack (wavediff.nn.fused_stack) and mel upsampler (wavediff.nn.fused_upsampler).

The kernels run through Triton's interpreter on the CPU (TRITON_INTERPRET=1, which Triton reads at
import, hence a process per case, forked from one helper process after its imports) in float32,
against the layers run one by one in float64: the output and every gradient (inputs, each layer's
parameters, and for the whole Denoiser every parameter) must agree to float32 rounding."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import torch

from wavediff.nn.denoiser import ConditionUpsampler, Denoiser, DenoiserConfig, upsample_strides
from wavediff.nn.fused_stack import fast_gate, fused_stack_supported

HELPER = Path(__file__).with_name("_fused_stack_case.py")
TOL = 2e-4  # float32 against float64, relative to each tensor's largest value


class _CaseServer:
    """The helper in --serve mode: one process that imports torch and Triton once and runs each case
    in a child forked from it (a fresh process state per case, as before, without ~4 s of imports)."""

    def __init__(self) -> None:
        self.stderr = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([sys.executable, str(HELPER), "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     env=dict(os.environ, TRITON_INTERPRET="1"))
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.answers.put(line) for line in self.proc.stdout], daemon=True).start()

    def run(self, case: dict, timeout: float = 300) -> dict[str, float]:
        self.proc.stdin.write(json.dumps(case) + "\n")
        self.proc.stdin.flush()
        try:
            answer = json.loads(self.answers.get(timeout=timeout))
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"no answer in {timeout} s; helper's stderr: {self._stderr()}") from None
        assert "errors" in answer, answer.get("error", "") + self._stderr()
        return answer["errors"]

    def _stderr(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-3000:]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.stderr.close()


@pytest.fixture(scope="module")
def _server():
    server = _CaseServer()
    yield server
    server.close()


@pytest.fixture
def _run_case(_server):
    return lambda **case: _server.run(case)


CASES = {
    # 3 tiles of 64 in 2 chunks (the last partial), dilations 1, 2, 4, 1; 10 conditioner channels
    "16 channels, ragged tiles": dict(layers=4, channels=16, cycle=3, cond=10, batch=2, length=150),
    # 80 conditioner channels (64 + 16 blocks), dilations up to 128 > length, the weight-gradient
    # kernel's programs looping over several tiles each, each over all 2C columns
    "32 channels, dilation past the end": dict(layers=8, channels=32, cycle=8, cond=80, batch=2, length=100,
                                               w_programs=3, w_blocks=1),
    # every address each kernel touches checked against the tensors it was given, 32-step tiles
    "64 channels, bounds checked": dict(layers=10, channels=64, cycle=10, cond=80, batch=2, length=300,
                                        tile=32, w_programs=5, bounds=True),
    # the other autotuning choices: weight gradient over all columns, pre-gradient weights hoisted
    "64 channels, bounds checked, the other kernel variants": dict(
        layers=2, channels=64, cycle=2, cond=80, batch=2, length=100, tile=32, w_programs=2, w_blocks=1,
        pre_hoist=True, bounds=True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_fused_stack_matches_layers_in_float64(name, _run_case):
    errors = _run_case(**CASES[name])
    case = CASES[name]
    # output, 3 input gradients, 8 parameter tensors per layer (4 weights, 4 biases)
    assert len(errors) == 4 + 8 * case["layers"], sorted(errors)
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, bad


def test_whole_denoiser_fused_matches_unfused(_run_case):
    errors = _run_case(layers=3, channels=32, cycle=3, cond=80, batch=2, length=40, model=True)
    assert "output" in errors and "grad cond_upsampler.stages.0.weight" in errors
    assert "grad residual_layers.2.conditioner_projection.weight" in errors
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, bad


UPSAMPLER_CASES = {
    # lmnt's two 16x stages on 80 bins (bins past 64: the padded block of 128), every address checked
    "256 = 16 x 16, bounds checked": dict(upsample=256, cond=80, batch=2, frames=7, bounds=True),
    # odd strides (padded to 16, 8, 8 rows per block), a crop of s // 2 that is not s / 2, one frame
    "300 = 10 x 6 x 5": dict(upsample=300, cond=10, batch=1, frames=5),
    "5, one frame": dict(upsample=5, cond=16, batch=3, frames=1),
    "2 (a stride below 4 rows per block)": dict(upsample=2, cond=8, batch=2, frames=3),
}


@pytest.mark.parametrize("name", list(UPSAMPLER_CASES))
def test_fused_upsampler_matches_stages_in_float64(name, _run_case):
    errors = _run_case(**UPSAMPLER_CASES[name])
    stages = len(upsample_strides(UPSAMPLER_CASES[name]["upsample"]))
    assert len(errors) == 2 + 2 * stages, sorted(errors)  # output, the mel's gradient, weight + bias per stage
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, bad


def test_upsampler_strides_above_16_run_the_stages_own_code(monkeypatch):
    """The kernels' tiles are sized for strides up to 16; a stride of 17 (its own stage) is left to the
    module's own code even where the fused stack runs (``fused_dtype`` given)."""
    import wavediff.nn.fused_upsampler as fu

    def refuse(*args, **kwargs):
        raise AssertionError("the fused upsampler ran")

    monkeypatch.setattr(fu, "fused_upsample", refuse)
    up = ConditionUpsampler(34)
    assert up.strides == (17, 2)
    cond = torch.randn(1, 4, 3)
    torch.testing.assert_close(up(cond, torch.float32), up(cond))
    with pytest.raises(AssertionError, match="fused upsampler ran"):
        ConditionUpsampler(32)(cond, torch.float32)


def test_fast_gate_on_a_gpu_unless_turned_off(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("WAVEDIFF_FAST_GATE", raising=False)
    assert fast_gate()
    monkeypatch.setenv("WAVEDIFF_FAST_GATE", "0")
    assert not fast_gate()
    monkeypatch.setenv("WAVEDIFF_FAST_GATE", "1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the interpreter cannot run the PTX instruction
    assert not fast_gate()


def test_fused_stack_supported_only_where_it_applies(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("WAVEDIFF_FUSED", raising=False)
    assert not fused_stack_supported(64, 80, torch.device("cpu"))  # CPU runs the layers (no interpreter)
    assert fused_stack_supported(64, 80, torch.device("cuda"))
    assert not fused_stack_supported(64, None, torch.device("cuda"))  # unconditional model
    assert not fused_stack_supported(96, 80, torch.device("cuda"))  # not a power of two
    assert not fused_stack_supported(128, 80, torch.device("cuda"))  # wider than the kernels were checked for
    assert not fused_stack_supported(64, 272, torch.device("cuda"))  # the acoustic model's conditioner
    monkeypatch.setenv("WAVEDIFF_FUSED", "0")
    assert not fused_stack_supported(64, 80, torch.device("cuda"))


def test_denoiser_runs_layers_on_cpu_and_without_grad():
    net = Denoiser(DenoiserConfig(residual_layers=2, residual_channels=16, cond_channels=8, upsample_factor=4))
    h = torch.zeros(1, 16, 8)
    assert net._fused_dtype(h) is None  # CPU without the interpreter
    with torch.no_grad():
        assert net._fused_dtype(h) is None
