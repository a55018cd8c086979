"""make gpucheck without a GPU (this machine): one line and exit 0; with an NVIDIA GPU
PyTorch cannot use: the reason and exit 1. And the benchmark's CUDA rows and timer."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qa import bench, gpucheck

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: make gpucheck really runs")


def test_without_a_gpu_gpucheck_says_so_in_one_line_and_exits_0(tmp_path):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin")
    done = subprocess.run([sys.executable, "-m", "qa.gpucheck", "--out-dir", str(tmp_path / "g")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and "no NVIDIA GPU" in done.stdout
    assert not (tmp_path / "g").exists()  # nothing ran, nothing written


def test_a_gpu_pytorch_cannot_use_fails_gpucheck_with_the_reason(tmp_path, monkeypatch, capsys):
    exe = tmp_path / "nvidia-smi"   # what nvidia-smi prints where a GPU and an old driver are
    exe.write_text("#!/bin/sh\necho 'NVIDIA A100-SXM4-40GB, 525.85.12'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert gpucheck.main(["--out-dir", str(tmp_path / "g")]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "gpucheck FAILED" in out and "A100" in out and "driver >= 580" in out


def test_make_gpucheck_runs_the_tool():
    done = subprocess.run(["make", "-n", "-o", ".venv/.installed", "gpucheck"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and ".venv/bin/python -m qa.gpucheck" in done.stdout


def test_gpucheck_collects_only_the_modules_that_hold_cuda_tests(tmp_path):
    files = [Path(f).relative_to(ROOT).as_posix() for f in gpucheck.cuda_test_files()]
    assert "tests/dream/test_cuda.py" in files
    assert "tests/remote/test_browser.py" not in files   # selenium, chromium: not on the GPU machine
    (tmp_path / "test_plain.py").write_text("def test_x():\n    pass\n")
    assert gpucheck.cuda_test_files(tmp_path) == []


def test_bench_has_half_precision_rows_on_cuda_and_times_with_events_there():
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    on_cuda = bench.methods_for(cuda)
    assert {("torch", "fp16"), ("torch", "bf16"), ("compile", "fp16"), ("compile", "bf16")} <= set(on_cuda)
    assert ("openvino", "fp32") not in on_cuda
    assert bench.methods_for(cuda, ["fp16"]) == [("naive", "fp32"), ("auto", "auto"), ("torch", "fp16"),
                                                 ("onnx", "fp16"), ("compile", "fp16")]
    assert bench.methods_for(cpu) == [("naive", "fp32"), ("auto", "auto"), ("torch", "fp32"), ("torch", "bf16"),
                                      ("onnx", "fp32"), ("openvino", "fp32"), ("compile", "fp32")]  # as before
    assert "Event" in bench.step_timer(cuda).__code__.co_names
    calls = []
    assert bench.step_timer(cpu)(lambda: calls.append(1)) >= 0 and calls == [1]
