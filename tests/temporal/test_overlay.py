"""The overlay: the one picture the window, the recorder and the clip renderer show is
the camera frame at its own size with the dream on it, weighted by the operator's blend
times the motion response's; TemporalDream hands its step over as a DreamFrame."""
import numpy as np
import pytest

from live.dream import DreamEngine
from live.dream.images import natural_picture
from live.dream.settings import AttractSettings, MotionSettings
from live.dream.temporal.coherent import TemporalDream
from live.dream.temporal.overlay import DreamFrame, Overlay


def flat(w: int, h: int, rgb: tuple[int, int, int]) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rgb
    return img


def test_compose_blends_the_upscaled_dream_over_the_full_size_frame():
    current = flat(64, 48, (200, 100, 0))
    dream = DreamFrame(flat(16, 12, (0, 100, 200)), flat(16, 12, (0, 0, 0)), 1.0)
    overlay = Overlay()
    assert overlay.compose(current, None, 1.0) is current
    assert np.array_equal(overlay.compose(current, dream, 0.0), current)
    full = overlay.compose(current, dream, 1.0)
    assert full.shape == (48, 64, 3) and full.dtype == np.uint8
    assert np.array_equal(full, flat(64, 48, (0, 100, 200)))
    half = overlay.compose(current, dream, 0.5)
    assert np.array_equal(half, flat(64, 48, (100, 100, 100)))
    # the motion response's multiplier scales the operator's blend
    damped = overlay.compose(current, DreamFrame(dream.image, dream.base, 0.5), 0.5)
    assert np.array_equal(damped, flat(64, 48, (150, 100, 50)))


def test_a_blend_map_weights_each_pixel():
    current = flat(64, 48, (200, 200, 200))
    local = np.zeros((12, 16), np.float32)
    local[:, 8:] = 1.0                      # dream on the right half only
    out = Overlay().compose(current, DreamFrame(flat(16, 12, (0, 0, 0)), flat(16, 12, (0, 0, 0)), local), 1.0)
    assert np.all(out[:, :24] == 200) and np.all(out[:, 40:] == 0)


def test_temporal_dream_exposes_its_step_as_a_dream_frame(backbone):
    eng = DreamEngine(backbone, layer="blocks.6", size=(64, 48), precision="fp32", backend="torch", seed=0)
    temporal = TemporalDream(eng, MotionSettings(), AttractSettings(enabled=False))
    assert temporal.last is None
    frame = natural_picture(128, 96)
    try:
        for _ in range(2):
            out, state = temporal(frame, 0.1)
        last = temporal.last
        assert last.image is out and last.blend == pytest.approx(state.blend)
        assert last.base.shape == out.shape == (48, 64, 3)
        # the base is the camera picture at the working size, not the dream
        assert np.abs(last.base.astype(int) - out.astype(int)).mean() > 1.0
        composed = Overlay().compose(frame, last, 1.0)
        assert composed.shape == frame.shape
        temporal.reset()
        assert temporal.last is None
    finally:
        eng.close()
