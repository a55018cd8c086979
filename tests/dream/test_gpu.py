"""The CUDA path's helpers, tested where they can be without a GPU: out-of-memory told
apart from other faults on real exception objects of each library, uploads, and the
no-GPU answer of `make gpucheck`."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from live.dream import gpu


def _ort(kind: str, message: str) -> Exception:
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
    return getattr(ort_errors, kind)(message)


OUT_OF_MEMORY = [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 79.10 GiB total capacity)"),
    torch.OutOfMemoryError("out of memory"),
    ("RuntimeException", "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running "
                         "Conv node. Name:'n0' Status Message: BFCArena::AllocateRawInternal Failed to allocate memory "
                         "for requested buffer of size 52428800"),
    ("RuntimeException", "BFCArena::AllocateRawInternal: Available memory of 0 is smaller than requested bytes of 1048576"),
    ("Fail", "[ONNXRuntimeError] : 1 : FAIL : CUDA failure 2: out of memory ; GPU=0 ; hostname=h ; "
             "file=cuda_allocator.cc ; line=50 ; expr=cudaMalloc((void**)&p, size);"),
    RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
    RuntimeError("CUDNN_BACKEND_OPERATION: cudnnFinalize failed CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED"),
    RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported"),
    RuntimeError("Exception from src/plugins/intel_gpu: [GPU] out of GPU resources"),
]
OTHER_FAULTS = [
    RuntimeError("Given groups=1, weight of size [32, 3, 3, 3], expected input to have 3 channels, but got 4"),
    RuntimeError("CUDA error: an illegal memory access was encountered"),
    RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED"),
    ("Fail", "[ONNXRuntimeError] : 1 : FAIL : Load model from step.onnx failed: invalid protobuf"),
    ValueError("memory_format channels_last is not supported"),
    FloatingPointError("the dream step produced non-finite values"),
]


def _exc(case) -> BaseException:
    return _ort(*case) if isinstance(case, tuple) else case


@pytest.mark.parametrize("case", OUT_OF_MEMORY, ids=range(len(OUT_OF_MEMORY)))
def test_allocation_failures_of_every_library_are_out_of_memory(case):
    assert gpu.is_out_of_memory(_exc(case))


@pytest.mark.parametrize("case", OTHER_FAULTS, ids=range(len(OTHER_FAULTS)))
def test_other_faults_are_not_out_of_memory(case):
    assert not gpu.is_out_of_memory(_exc(case))


def test_out_of_memory_is_found_behind_a_wrapping_exception():
    try:
        try:
            raise _ort("Fail", "CUDA failure 2: out of memory ; GPU=0")
        except Exception as inner:
            raise RuntimeError("the onnx step failed") from inner
    except RuntimeError as outer:
        assert gpu.is_out_of_memory(outer)
    looped = RuntimeError("a")
    looped.__context__ = RuntimeError("b")
    looped.__context__.__context__ = looped  # a cycle ends the walk
    assert not gpu.is_out_of_memory(looped)


def test_upload_on_the_cpu_is_the_array_itself():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = gpu.upload(a, torch.device("cpu"))
    assert t.data_ptr() == a.ctypes.data and t.device.type == "cpu"
