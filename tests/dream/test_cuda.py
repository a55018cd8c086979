"""The CUDA path on a real GPU. Marked `cuda`: `make gpucheck` runs them on an NVIDIA
machine; elsewhere they are skipped with the reason (conftest). None of these has run
yet where this was written (no GPU there): the first `make gpucheck` is their first run."""
from __future__ import annotations

import warnings

import numpy as np
import onnxruntime
import pytest
import torch

from conftest import ONNX_NORM, ONNX_SIZE
from live.dream import DreamEngine, gpu
from live.dream.temporal.coherent import TemporalDream

pytestmark = pytest.mark.cuda
ORT_CUDA = pytest.mark.skipif(
    "CUDAExecutionProvider" not in onnxruntime.get_available_providers(),
    reason="this onnxruntime has no CUDA provider (pyproject installs onnxruntime-gpu, which has)")
BUSY_CYCLES = 2_000_000_000   # about a second of a GPU's clock: long enough to see who waits for it


def synchronising(fn) -> list[str]:
    """fn() under torch's sync debug mode: what it did that made the host wait."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    # (torch 2.11 also warns that the mode is a prototype: that notice is not a wait)
    return [str(w.message) for w in seen if "called a synchronizing" in str(w.message)]


def returns_before_the_device_is_done(fn) -> bool:
    """Keep the GPU busy, call fn(): True if fn came back while the GPU was still busy
    (it queued its work instead of waiting for the device)."""
    torch.cuda.synchronize()
    torch.cuda._sleep(BUSY_CYCLES)
    fn()
    done = torch.cuda.Event()
    done.record()
    pending = not done.query()
    torch.cuda.synchronize()
    return pending


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0))


def test_fp16_dream_rises_and_a_frame_waits_for_the_device_once(cuda_backbone, photo):
    eng = DreamEngine(cuda_backbone, "blocks.10", size=(320, 240), backend="torch", precision="fp16", seed=0)
    temporal = TemporalDream(eng)
    try:
        before = eng.objective_value(photo)
        frames = [np.roll(photo, 2 * i, axis=1) for i in range(8)]
        for f in frames[:3]:
            temporal(f, 1 / 15)
        waits = synchronising(lambda: [temporal(f, 1 / 15) for f in frames[3:]])
        x = torch.rand(1, 3, 240, 320, device="cuda").contiguous(memory_format=torch.channels_last)
        queued = returns_before_the_device_is_done(lambda: eng.run_steps(x, 3))
        after = eng.objective_value(eng.dream(photo))
    finally:
        eng.close()
    assert torch.backends.cudnn.benchmark
    assert len(waits) == 5, waits   # one per frame: the dream's picture coming back
    assert queued                   # three steps queued without waiting for the device
    assert after > 1.25 * before    # the same frames on the CPU in fp32: 1.41x; on an H200 in fp16: 1.37x


@ORT_CUDA
def test_onnx_runtime_on_cuda_shares_a_stream_and_never_waits(cuda_backbone, onnx_cache):
    eng = DreamEngine(cuda_backbone, "blocks.10", size=ONNX_SIZE, backend="onnx", precision="fp32",
                      grad_norm=ONNX_NORM, seed=0)
    try:
        assert eng.wait_ready(timeout=600)
        step = eng.current_step()
        assert step.providers[0] == "CUDAExecutionProvider" and step.on_cuda
        assert step.stream is not None and step.stream.cuda_stream != 0
        x = torch.rand(1, 3, ONNX_SIZE[1], ONNX_SIZE[0], device="cuda")
        assert returns_before_the_device_is_done(lambda: step(x, 0.05))
        assert synchronising(lambda: step(x, 0.05)) == []
        got = step(x, 0.05)
        want = eng._torch_step.fp32()(x, 0.05)
    finally:
        eng.close()
    assert cosine(got - x, want - x) > 0.99


@ORT_CUDA
def test_onnx_fp16_graph_on_cuda_follows_the_fp32_step(cuda_backbone):
    eng = DreamEngine(cuda_backbone, "blocks.10", size=(320, 240), backend="onnx", precision="fp16",
                      grad_norm="laplacian", seed=0)
    try:
        assert eng.wait_ready(timeout=900)
        step = eng.current_step()
        assert step.on_cuda and step.path.name.split("-")[-2].endswith("fp16")
        x = torch.rand(1, 3, 240, 320, device="cuda")
        c = cosine(step(x, 0.05) - x, eng._torch_step.fp32()(x, 0.05) - x)
        eng.dream(np.zeros((240, 320, 3), np.uint8))
        assert eng.info["backend"] == "onnx" and eng.info["precision"] == "fp16"
    finally:
        eng.close()
    assert c > 0.97


def test_compile_fp16_with_cuda_graphs_compiles_each_size_once(cuda_backbone, photo):
    from torch._dynamo.utils import counters
    eng = DreamEngine(cuda_backbone, "blocks.10", size=(320, 240), backend="compile", precision="fp16", seed=0)
    try:
        assert eng.wait_ready(timeout=900)
        steps = eng.current_step()
        assert steps.steps[(320, 240)].mode == "reduce-overhead"
        for _ in range(4):
            out = eng.dream(photo)
        eng.configure(size=(256, 192))
        assert eng.wait_ready(timeout=900)
        eng.dream(photo)
        graphs = counters["stats"]["unique_graphs"]
        eng.configure(size=(320, 240))
        for _ in range(3):
            out = eng.dream(photo)
        assert counters["stats"]["unique_graphs"] == graphs
        assert eng.info["backend"] == "compile" and eng.info["precision"] == "fp16"
        x = torch.rand(1, 3, 240, 320, device="cuda").contiguous(memory_format=torch.channels_last)
        c = cosine(steps(x, 0.05) - x, eng._torch_step(x, 0.05) - x)
    finally:
        eng.close()
    assert out.shape == (240, 320, 3) and c > 0.98


def test_a_real_cuda_out_of_memory_is_out_of_memory():
    with pytest.raises(torch.OutOfMemoryError) as caught:
        torch.empty(1 << 50, dtype=torch.uint8, device="cuda")
    assert gpu.is_out_of_memory(caught.value)


def test_a_cuda_backbone_exports_and_validates_on_the_cpu(cuda_backbone, tmp_path):
    from live.dream.backends import onnx as ob
    from live.dream.step import make_step
    step = make_step(cuda_backbone, "blocks.3", grad_norm="mean")
    try:
        exported = ob.export_step(cuda_backbone, step, (64, 48), tmp_path / "step.onnx")
    finally:
        step.close()
    assert exported.path.is_file() and all(d.ok() for d in exported.report.values())
    assert cuda_backbone.on_cpu().device.type == "cpu"


def test_a_gpu_dreams_at_the_gpu_budget(cuda_backbone):
    """[dream] gpu_size is the working size's budget where the dream runs on CUDA."""
    from conftest import small_config
    from live.app import App
    app = App(small_config("dream.gpu_size=[256, 192]"), "clouds", backbone=cuda_backbone)
    try:
        w, h = app.dreamer.engine.size
        assert app.dreamer.base_size == (256, 192) and abs(w * h - 256 * 192) <= 0.1 * 256 * 192
    finally:
        app.dreamer.engine.close()
