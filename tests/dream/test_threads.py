"""While an exported step dreams, PyTorch keeps one thread (its spinning pool would take
the cores from OpenVINO's or ONNX Runtime's); eager steps and the naive loop get them back."""
from __future__ import annotations

import torch

from live.dream.backends import threads


def test_exported_steps_run_with_one_torch_thread_and_eager_ones_with_all():
    try:
        threads.use("openvino")
        assert torch.get_num_threads() == 1
        threads.use("torch")
        assert torch.get_num_threads() == threads.FULL
        threads.use("onnx")
        assert torch.get_num_threads() == 1
        threads.use("compile")
        assert torch.get_num_threads() == threads.FULL
    finally:
        torch.set_num_threads(threads.FULL)


def test_the_engine_sets_them_for_the_step_it_runs(backbone, photo):
    from live.dream import DreamEngine
    eng = DreamEngine(backbone, size=(64, 48), backend="torch", precision="fp32")
    try:
        torch.set_num_threads(1)
        eng.dream(photo)
        assert torch.get_num_threads() == threads.FULL
    finally:
        eng.close()
        torch.set_num_threads(threads.FULL)
