"""An NVIDIA GPU that PyTorch cannot use is said loudly, not silently dreamed around on
the CPU: the usual cause is a driver older than the CUDA this PyTorch is built for
(torch 2.14.1 installs as a CUDA 13 build; onnxruntime-gpu links CUDA 13 too)."""
from __future__ import annotations

import logging
import shutil
import subprocess
from functools import lru_cache

import torch

log = logging.getLogger("models")

# Linux driver branches that first support each CUDA major version (NVIDIA's release notes).
DRIVER_FOR_CUDA = {"13": "580", "12": "525", "11": "450"}


def nvidia_smi() -> tuple[list[str], str]:
    """(GPUs as "name, driver version" lines, nvidia-smi's complaint if it failed). No
    nvidia-smi on PATH: ([], "")."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return [], ""
    try:
        done = subprocess.run([exe, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return [], f"nvidia-smi did not run ({exc})"
    if done.returncode != 0:
        return [], " ".join((done.stdout + done.stderr).split())[:200] or f"nvidia-smi exit code {done.returncode}"
    return [line.strip() for line in done.stdout.splitlines() if line.strip()], ""


def torch_cuda_error() -> str:
    """Why torch.cuda.is_available() is False, in PyTorch's words."""
    if torch.version.cuda is None:
        return "this PyTorch is a CPU-only build"
    try:
        torch.cuda.init()
    except Exception as exc:
        return " ".join(str(exc).split())[:240]
    return "torch.cuda.is_available() is False"


def unusable_gpu() -> str | None:
    """One line when nvidia-smi finds an NVIDIA GPU (or is there and fails) but PyTorch
    cannot use CUDA: what was found, why, and the fix. None otherwise."""
    if torch.cuda.is_available():
        return None
    gpus, failure = nvidia_smi()
    if not gpus and not failure:
        return None
    found = f"NVIDIA GPU found ({'; '.join(gpus)})" if gpus else f"nvidia-smi is installed but failed: {failure}"
    cuda = torch.version.cuda
    if cuda is None:
        fix = "install the CUDA build of PyTorch (pip install torch==2.14.1 from the PyTorch index for CUDA 13)"
    else:
        need = DRIVER_FOR_CUDA.get(cuda.split(".")[0], "a version supporting it")
        fix = (f"this PyTorch {torch.__version__} is built for CUDA {cuda}, which needs NVIDIA driver >= {need}: "
               f"update the driver (nvidia-smi shows its version)")
    return f"{found}, but PyTorch cannot use it: {torch_cuda_error()}. Fix: {fix}"


@lru_cache(maxsize=1)
def warn_if_unusable() -> str | None:
    """unusable_gpu(), logged as a warning once per process."""
    line = unusable_gpu()
    if line:
        log.warning("%s. Dreaming on the CPU meanwhile.", line)
    return line
