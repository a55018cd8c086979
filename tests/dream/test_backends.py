"""Every backend dreams: the objective rises under each. No timing assertions here;
tools/bench.py measures speed."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import ONNX_SIZE as SIZE
from live.dream import DreamEngine
from live.dream.backends import BACKENDS
from live.dream.backends import onnx as ob
from live.dream.backends.compiled import CompiledStep
from live.dream.step import make_step


def dreams(eng: DreamEngine, photo: np.ndarray, frames: int = 5) -> tuple[float, float]:
    before = eng.objective_value(photo)
    out = photo
    for _ in range(frames):
        out = eng.dream(photo)
    assert out.dtype == np.uint8 and out.shape == (SIZE[1], SIZE[0], 3)
    return before, eng.objective_value(out)


@pytest.mark.parametrize("backend, precision", [("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"),
                                                ("compile", "fp32")])
def test_backend_raises_the_objective(backbone, photo, onnx_cache, backend, precision):
    eng = DreamEngine(backbone, "blocks.10", size=SIZE, backend=backend, precision=precision, seed=0)
    try:
        if backend == "compile":  # dream with the compiled step, not the eager stand-in
            eng.objective_value(photo)
            assert eng._step.wait(timeout=600), eng._step.error
        before, after = dreams(eng, photo)
        assert after > 2 * before, (backend, precision, before, after)
        assert eng.info["backend"] == backend
    finally:
        eng.close()


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


def test_auto_picks_a_backend_and_reports_it(backbone, photo, onnx_cache):
    eng = DreamEngine(backbone, "blocks.10", size=SIZE, backend="auto", precision="fp32", seed=0)
    try:
        assert eng.backend in BACKENDS and eng.info["backend"] == eng.backend
        before, after = dreams(eng, photo, frames=4)
        assert after > before
    finally:
        eng.close()


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
