"""qa.coherence's pan: the warp error says whether a dream moves with the scene. A
pattern baked into the panned picture (it moves exactly with the scene) scores near the
input's own, however deep; the same pattern fixed on the screen (it swims) scores far
above it."""
from __future__ import annotations

import cv2
import numpy as np

from live.dream.images import natural_picture
from qa.coherence import pan_flows, pan_scene, warp_error

SIZE, SPEED = (160, 120), (2.4, 0.7)


def stripes(w: int, h: int, period: float, amplitude: float) -> np.ndarray:
    """A deep, high-contrast pattern like a dream's strokes (grey levels, signed)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return amplitude * np.sin(2 * np.pi * (xs + 0.6 * ys) / period)[..., None]


def test_a_dream_that_moves_with_the_scene_measures_like_the_input():
    src = natural_picture(480, 360, seed=3)
    baked = np.clip(src + stripes(480, 360, 9.0, 30.0), 0, 255).astype(np.uint8)
    plain = pan_scene(src, 16, (320, 240), SIZE, 3.0, SPEED)
    moving = pan_scene(baked, 16, (320, 240), SIZE, 3.0, SPEED)
    swimming = [np.clip(f + stripes(*SIZE, 4.5, 30.0), 0, 255).astype(np.uint8) for f in plain]
    flows = pan_flows(len(plain), SIZE, SPEED)
    ref = warp_error(plain, flows, 4)
    assert np.abs(moving[8].astype(np.float32) - plain[8]).mean() > 15      # deep
    assert warp_error(moving, flows, 4) < 1.3 * ref
    assert warp_error(swimming, flows, 4) > 3 * ref
