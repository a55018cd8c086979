"""Every backend dreams: the objective rises under each. No timing assertions here;
qa/bench.py measures speed."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import ONNX_NORM, ONNX_SIZE as SIZE
from live.dream import DreamEngine
from live.dream.backends import BACKENDS, Steps
from live.dream.backends import onnx as ob
from live.dream.backends.compiled import CompiledStep, no_cudnn_search
from live.dream.step import make_step


def dreams(eng: DreamEngine, photo: np.ndarray, frames: int = 5) -> tuple[float, float]:
    before = eng.objective_value(photo)
    out = photo
    for _ in range(frames):
        out = eng.dream(photo)
    assert out.dtype == np.uint8 and out.shape == (SIZE[1], SIZE[0], 3)
    return before, eng.objective_value(out)


@pytest.mark.parametrize("backend, precision", [(b, "fp32") for b in BACKENDS] + [("torch", "bf16")])
def test_backend_raises_the_objective(backbone, photo, onnx_cache, backend, precision):
    eng = DreamEngine(backbone, "blocks.10", size=SIZE, backend=backend, precision=precision, seed=0)
    try:
        assert eng.wait_ready(timeout=600)  # compile: dream with the compiled step, not the eager stand-in
        before, after = dreams(eng, photo)
        assert after > 2 * before, (backend, precision, before, after)
        assert eng.info["backend"] == backend
        assert isinstance(eng._step, Steps)   # the engine asks every backend the same questions
    finally:
        eng.close()


def test_openvino_step_matches_pytorch(backbone, exported, openvino_ready):
    """The same export under OpenVINO is PyTorch's step within the validation tolerance
    (fp32 asked for explicitly: OpenVINO's bf16 default on AVX512-BF16 CPUs is not)."""
    from live.dream.backends import openvino as ovb
    from live.dream.backends.validate import check, compare
    assert ovb.on_disk(exported.path, backbone.device)  # the stamp: validated once per file and version
    step = make_step(backbone, "blocks.10", grad_norm=ONNX_NORM)
    try:
        report = compare(ovb.OvStep(exported.path, "CPU"), step.fp32(), SIZE, backbone.device)
    finally:
        step.close()
    check(report, "the OpenVINO step")
    assert all(d.mean < 1e-5 for d in report.values()), report
    ov = ovb.OvStep(exported.path, "CPU")
    x = torch.rand(1, 3, SIZE[1], SIZE[0])
    assert (ov(x, 0.0) - x).abs().max() < 1e-6  # strength is a graph input: 0 changes nothing
    assert (ov(x, 0.05) - x).abs().mean() > 1e-3
    cl = x.contiguous(memory_format=torch.channels_last)   # the engine's layout comes back as it went in
    out = ov(cl, 0.05)
    assert out.is_contiguous(memory_format=torch.channels_last) and torch.equal(out, ov(x, 0.05))


def test_onnx_backend_dreams_like_torch(backbone, photo, onnx_cache):
    """Same seed, same jitter, one frame through the whole engine path: nearly the same
    dream. (Over many frames any two implementations drift apart: gradient ascent through
    ReLU6 is chaotic; a 1e-5 nudge grows to about a grey level within three steps.)"""
    outs = {}
    for backend in ("torch", "onnx"):
        eng = DreamEngine(backbone, "blocks.10", size=SIZE, backend=backend, precision="fp32", seed=1)
        outs[backend] = eng.dream(photo)
        eng.close()
    diff = np.abs(outs["torch"].astype(float) - outs["onnx"].astype(float))
    assert diff.mean() < 0.05 and diff.max() <= 8  # grey levels


def test_compiled_step_matches_eager_and_stands_in_while_compiling(backbone):
    step = make_step(backbone, "blocks.10")
    try:
        compiled = CompiledStep(backbone, step, SIZE, background=True)
        x = torch.rand(1, 3, SIZE[1], SIZE[0]).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            early = compiled(x, 0.02)  # eager until ready: same numbers either way
            assert compiled.wait(timeout=600), compiled.error
            d = (compiled(x, 0.02) - step(x, 0.02)).abs()
        assert early.shape == x.shape
        assert d.mean().item() < 1e-5 and d.max().item() < 0.04
    finally:
        step.close()


def test_every_backend_in_the_table_is_a_setting_and_back():
    """The config's choices and the engine's table name the same backends."""
    from live.dream.settings import DreamSettings
    import dataclasses
    choices = {f.name: f for f in dataclasses.fields(DreamSettings)}["backend"].metadata["choices"]
    assert set(choices) == set(BACKENDS) | {"auto"}


def test_cuda_provider_only_when_cuda_is_there():
    providers = ob._providers(torch.device("cpu"))
    assert providers == ["CPUExecutionProvider"]
    if not torch.cuda.is_available():  # asking onnxruntime-gpu for CUDA here would log an error
        assert ob._providers(torch.device("cuda")) == ["CPUExecutionProvider"]


def test_onnx_step_binds_once_over_buffers_of_its_own(backbone, exported):
    """IO binding is made once over buffers allocated at the graph's size; each call
    copies the picture in and the result out, so a caller's tensors are never aliased."""
    step = ob.OrtStep(exported.path, torch.device("cpu"))
    binding, buffers = step._binding, (step._x.data_ptr(), step._out.data_ptr())
    a = torch.rand(1, 3, SIZE[1], SIZE[0]).contiguous(memory_format=torch.channels_last)
    b = torch.rand(1, 3, SIZE[1], SIZE[0])
    first, second, again = step(a, 0.05), step(b, 0.05), step(a, 0.02)
    assert step._binding is binding and (step._x.data_ptr(), step._out.data_ptr()) == buffers
    assert first.data_ptr() not in buffers and (first - a).abs().mean() > 1e-3
    assert first.is_contiguous(memory_format=torch.channels_last) and second.is_contiguous()  # as each went in
    fresh = ob.OrtStep(exported.path, torch.device("cpu"))
    assert torch.equal(fresh(b, 0.05), second)                       # nothing left over from the call before
    ratio = float((again - a).abs().mean() / (first - a).abs().mean())
    assert 0.3 < ratio < 0.5                                           # the strength changed: 0.02 / 0.05
    with pytest.raises(ValueError, match="dreams 160x120 pictures, not 96x72"):
        step(torch.rand(1, 3, 72, 96), 0.05)


def test_onnx_runtime_on_cuda_gets_a_stream_of_its_own(monkeypatch):
    """What ONNX Runtime is told on CUDA (run for real only by make gpucheck): our own
    stream's handle, never torch's default stream 0, which ORT reads as none."""
    import onnxruntime as ort

    class Stream:  # the one attribute _providers reads of torch.cuda.Stream
        cuda_stream = 94558126913712
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    (name, options), cpu = ob._providers(torch.device("cuda", 1), Stream())
    assert name == "CUDAExecutionProvider" and cpu == "CPUExecutionProvider"
    assert options == {"device_id": "1", "has_user_compute_stream": "1", "user_compute_stream": "94558126913712"}
    assert ob._providers(torch.device("cuda")) == ["CPUExecutionProvider"]   # no stream: never ORT's own syncing


def test_compile_backend_keeps_the_steps_precision_and_compiles_each_size_once(backbone, photo):
    """bf16 (the CPU's half precision; fp16 on CUDA is the same path) is traced into the
    compiled graph; a size change compiles once, going back compiles nothing."""
    from torch._dynamo.utils import counters
    eng = DreamEngine(backbone, "blocks.0", size=(64, 48), backend="compile", precision="bf16", seed=0, jitter=0)
    try:
        assert eng.wait_ready(timeout=600)
        steps = eng.current_step()
        first = steps.steps[(64, 48)]
        convs = {str(n.meta["val"].dtype) for n in first.graph.graph.nodes
                 if n.op == "call_function" and n.target == torch.ops.aten.convolution.default}
        assert "torch.bfloat16" in convs
        x = torch.rand(1, 3, 48, 64).contiguous(memory_format=torch.channels_last)
        eager = eng._torch_step(x, 0.02)
        cosine = torch.nn.functional.cosine_similarity((first(x, 0.02) - x).flatten(), (eager - x).flatten(), dim=0)
        assert cosine > 0.99, float(cosine)
        assert eng.info["backend"] == "compile" and eng.info["precision"] == "bf16"
        eng.configure(size=(80, 60))
        assert eng.wait_ready(timeout=600) and eng.current_step() is steps   # the same backend, a new size
        eng.dream(photo)
        graphs = counters["stats"]["unique_graphs"]
        eng.configure(size=(64, 48))
        assert eng.ready() and eng.running == "compile"
        assert eng.ready((96, 72)) and (96, 72) not in steps.steps  # not started: adaptive may move there
        eng.dream(photo)
        assert sorted(steps.steps) == [(64, 48), (80, 60)] and steps.steps[(64, 48)] is first
        assert counters["stats"]["unique_graphs"] == graphs                # back to a size: nothing compiled
    finally:
        eng.close()


def test_compile_mode_is_cuda_graphs_only_on_cuda():
    from live.dream.backends.compiled import compile_mode
    assert compile_mode(torch.device("cuda", 0)) == "reduce-overhead"
    assert compile_mode(torch.device("cpu")) is None


def test_overlapping_cudnn_search_pauses_leave_the_flag_as_it_was(monkeypatch):
    """The dreamer's and a compile thread's compiled calls overlap: the first one in saves
    cuDNN's benchmark flag, the last one out restores it (a plain save-and-restore each
    left it off for good when the two interleaved)."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    first, second = no_cudnn_search(), no_cudnn_search()
    first.__enter__()
    second.__enter__()
    assert torch.backends.cudnn.benchmark is False
    first.__exit__(None, None, None)       # the first one out: the second still records
    assert torch.backends.cudnn.benchmark is False
    second.__exit__(None, None, None)
    assert torch.backends.cudnn.benchmark is True
    with pytest.raises(RuntimeError), no_cudnn_search():
        raise RuntimeError("a failed capture")
    assert torch.backends.cudnn.benchmark is True
