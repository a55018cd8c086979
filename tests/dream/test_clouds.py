"""The procedural clouds: a blue sky with white clouds, deterministic, slowly evolving."""
from __future__ import annotations

import numpy as np
import pytest

from live.dream.clouds import clouds


def test_shape_dtype_and_determinism():
    a = clouds(160, 90, t=1.5, seed=3)
    assert a.shape == (90, 160, 3) and a.dtype == np.uint8
    assert np.array_equal(a, clouds(160, 90, t=1.5, seed=3))
    assert np.abs(a.astype(int) - clouds(160, 90, t=1.5, seed=4)).mean() > 5


def test_blue_sky_with_white_clouds():
    img = clouds(320, 180, seed=0).astype(int)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    sky = (b > r + 40) & (b > 150)
    white = (r > 200) & (g > 200) & (b > 200) & (np.abs(r - b) < 30)
    assert 0.1 < sky.mean() < 0.95 and 0.03 < white.mean() < 0.9
    assert img[:20, ..., 2].mean() > img[:20, ..., 0].mean() + 60  # deep blue at the top


def test_evolves_slowly_with_t():
    a = clouds(128, 72, t=0.0).astype(int)
    near = np.abs(a - clouds(128, 72, t=0.2)).mean()
    far = np.abs(a - clouds(128, 72, t=60.0)).mean()
    assert 0 < near < 3 < far


def test_same_sky_at_any_resolution():
    small = clouds(80, 45, t=2.0).astype(float)
    big = clouds(640, 360, t=2.0)[::8, ::8].astype(float)
    assert np.abs(small - big).mean() < 12


def test_bad_size():
    with pytest.raises(ValueError):
        clouds(0, 10)
