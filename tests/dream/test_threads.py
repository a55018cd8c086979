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


def test_opencv_keeps_one_thread_in_the_live_installation_on_a_small_cpu(backbone, monkeypatch):
    """On 2-4 cores the installation's own threads are its parallelism (OpenCV's pool on
    small pictures only costs hand-offs there); on a larger CPU OpenCV keeps its default."""
    import cv2
    import live.app
    from live.app import App
    from conftest import small_config
    assert threads.opencv_threads(2) == 1 and threads.opencv_threads(4) == 1
    assert threads.opencv_threads(16) is None
    before = cv2.getNumThreads()
    try:
        for cores, want in ((16, 3), (2, 1)):
            cv2.setNumThreads(3)
            monkeypatch.setattr(live.app, "cpu_threads", lambda: cores)   # noqa: B023
            app = App(small_config(), "clouds", backbone=backbone)
            app.start()
            app.stop()
            assert cv2.getNumThreads() == want
    finally:
        cv2.setNumThreads(before)
