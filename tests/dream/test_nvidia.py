"""A GPU that PyTorch cannot use is one loud line with the reason and the fix. This
machine has no NVIDIA GPU and no driver (PyTorch really cannot use CUDA here); what
nvidia-smi would print on a machine with a GPU and an old driver is played by a small
script of that name on PATH: the real lookup, subprocess call and parsing run."""
from __future__ import annotations

import logging
import os
import stat

import pytest
import torch

import models
from models import nvidia

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA works here: nothing to warn about")


def fake_nvidia_smi(folder, text: str, code: int = 0) -> None:
    exe = folder / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\nprintf '%s\\n' '{text}'\nexit {code}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def path_with(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    nvidia.warn_if_unusable.cache_clear()
    yield tmp_path
    nvidia.warn_if_unusable.cache_clear()


def test_a_gpu_torch_cannot_use_is_one_loud_line_with_reason_and_fix(path_with, caplog):
    fake_nvidia_smi(path_with, "NVIDIA GeForce RTX 3090, 535.54.03")
    caplog.set_level(logging.WARNING, logger="models")
    assert models.resolve_device("auto") == torch.device("cpu")
    assert models.resolve_device("auto") == torch.device("cpu")
    lines = [r.getMessage() for r in caplog.records if r.name == "models"]
    assert len(lines) == 1 and "\n" not in lines[0]
    line = lines[0]
    assert "NVIDIA GeForce RTX 3090, 535.54.03" in line                    # what was found
    assert torch_cuda_reason() in line                                     # PyTorch's own reason
    assert f"CUDA {torch.version.cuda}" in line and "driver >= 580" in line  # the fix
    assert "Dreaming on the CPU" in line
    with pytest.raises(models.ModelError, match="RTX 3090.*driver >= 580.*use 'auto' or 'cpu'"):
        models.resolve_device("cuda")


def torch_cuda_reason() -> str:
    try:
        torch.cuda.init()
    except Exception as exc:
        return " ".join(str(exc).split())[:60]
    return ""


def test_nvidia_smi_failing_is_said_too(path_with):
    fake_nvidia_smi(path_with, "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.", 9)
    line = nvidia.unusable_gpu()
    assert line is not None and "nvidia-smi is installed but failed: NVIDIA-SMI has failed" in line


def test_no_nvidia_smi_no_word(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    nvidia.warn_if_unusable.cache_clear()
    caplog.set_level(logging.WARNING, logger="models")
    assert models.resolve_device("auto") == torch.device("cpu")
    assert nvidia.unusable_gpu() is None and not [r for r in caplog.records if r.name == "models"]
    nvidia.warn_if_unusable.cache_clear()
