"""What the CUDA path needs beyond PyTorch's defaults, in one place: out-of-memory told apart
from other faults (whatever library ran out), host -> device uploads that do not block
the host, and cuDNN's autotuner switched on. On the CPU every function here is a no-op
or the plain operation, so the CPU path is unchanged."""
from __future__ import annotations

import numpy as np
import torch

# How the libraries the step runs on say "no memory left" when they do not raise
# torch.cuda.OutOfMemoryError: ONNX Runtime's arena and CUDA provider, cuDNN and cuBLAS
# (through PyTorch's checks), the CUDA runtime itself and OpenVINO's GPU plugin.
OOM_MESSAGES = (
    "out of memory",                      # CUDA runtime / ORT's CUDA_CALL ("CUDA failure 2: out of memory")
    "failed to allocate memory",          # ORT's BFC arena ("... for requested buffer of size N")
    "is smaller than requested bytes",    # ORT's arena at its limit ("Available memory of X is ...")
    "std::bad_alloc",                     # a C++ library's host allocation
    "cudnn_status_alloc_failed",          # cuDNN (also in "..._HOST_ALLOCATION_FAILED" names below)
    "allocation_failed",
    "cublas_status_alloc_failed",         # cuBLAS (cublasCreate, workspace)
    "cudaerrormemoryallocation",          # the CUDA runtime's enum name
    "cuda_error_out_of_memory",           # the driver API's
    "out of gpu resources",               # OpenVINO GPU plugin
    "cl_out_of_resources",
    "cl_mem_object_allocation_failure",
)


def is_out_of_memory(exc: BaseException | None) -> bool:
    """Did this fault come from running out of device memory? PyTorch's own
    OutOfMemoryError, or another library's allocation failure (recognised by its message),
    also when wrapped as the cause or context of another exception."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, torch.OutOfMemoryError):
            return True
        text = str(exc).lower()
        if any(m in text for m in OOM_MESSAGES):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def upload(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array as a tensor on `device`. On CUDA through pinned memory with
    non_blocking=True: from pageable memory the copy would make the host wait; pinned
    blocks come from PyTorch's caching host allocator, which reuses a block only after
    the copy that read it has finished (so no sync is needed here). On the CPU: the array
    itself, no copy."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    if device.type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def prepare(device: torch.device) -> None:
    """Per-process settings for dreaming on `device`: cuDNN picks the fastest convolution
    algorithms for each shape once (the working size changes rarely; each new one costs
    one slower first step)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def release_memory() -> None:
    """Give the memory PyTorch's allocator keeps cached back to the device (after an
    out-of-memory, once the failed engine is gone: what it still holds stays held)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
