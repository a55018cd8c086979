"""Procedural clouds in a blue sky: the picture to dream on when there is no camera, and
the classic "what do you see in the clouds" start for offline renders.

Fractal value noise (several octaves of smooth random grids) drifting with the wind and
slowly morphing with `t`, shaped into cumulus-like puffs over a vertical sky gradient.
Cloud size is relative to the picture width, so any resolution shows the same sky."""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

OCTAVES = 6
PERSISTENCE = 0.6         # amplitude ratio between octaves: higher = more ragged detail
BASE_CELLS = 3.0          # cells of the coarsest noise across the picture width
MAX_NOISE_WIDTH = 480     # noise is computed at most this wide, then upscaled
GRID = 64                 # side of each periodic random grid (wraps, so drift never ends)
MORPH_RATE = 0.05         # noise key frames per unit of t: the slow change of shape
WIND = (0.012, 0.002)     # drift of the coarsest octave, picture widths per unit of t

SKY_TOP = np.array([0.16, 0.36, 0.78], np.float32)      # RGB, deep blue at the zenith
SKY_HORIZON = np.array([0.62, 0.78, 0.95], np.float32)  # pale near the horizon
CLOUD_LIT = np.array([1.0, 1.0, 0.98], np.float32)
CLOUD_SHADE = np.array([0.62, 0.66, 0.74], np.float32)


@lru_cache(maxsize=8)
def _pixel_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates in picture widths (cached: the live source calls this per frame)."""
    xs = np.arange(width, dtype=np.float32) / width
    ys = np.arange(height, dtype=np.float32) / width
    return np.meshgrid(xs, ys)


def _grid(seed: int, octave: int, key: int) -> np.ndarray:
    rng = np.random.default_rng((seed & 0xFFFFFFFF, octave, key & 0xFFFFFFFF))
    return rng.random((GRID, GRID), dtype=np.float32)


def _octave(width: int, height: int, t: float, seed: int, octave: int) -> np.ndarray:
    """One band of value noise in [0, 1]: a random grid sampled smoothly (bicubic, wrapping),
    drifting with the wind and cross-fading between key frames as t advances."""
    px, py = _pixel_grid(width, height)
    cells = BASE_CELLS * 2.0 ** octave
    speed = 1.0 + 0.35 * octave  # small wisps move a little faster than big banks
    off = np.float32(octave * 17.3)  # decorrelate the octaves' lattices
    mx = (px + np.float32(WIND[0] * speed * t)) * np.float32(cells) + off
    my = (py + np.float32(WIND[1] * speed * t)) * np.float32(cells) + off
    phase = t * MORPH_RATE * (1.0 + 0.5 * octave)
    key = int(np.floor(phase))
    a = cv2.remap(_grid(seed, octave, key), mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)
    frac = phase - key
    if frac < 1e-6:
        return a
    b = cv2.remap(_grid(seed, octave, key + 1), mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)
    w = np.float32(frac * frac * (3.0 - 2.0 * frac))  # smoothstep: no visible jolt at key frames
    return a * (1.0 - w) + b * w


def _fbm(width: int, height: int, t: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(all octaves, the coarse ones only) in [0, 1]; the coarse sum shades the clouds."""
    total = np.zeros((height, width), np.float32)
    coarse = total
    norm = 0.0
    for o in range(OCTAVES):
        amp = PERSISTENCE ** o
        total += amp * _octave(width, height, t, seed, o)
        norm += amp
        if o == 2:
            coarse = total / norm
    return total / norm, coarse


def clouds(width: int, height: int, t: float = 0.0, seed: int = 0) -> np.ndarray:
    """Fractal clouds in a blue sky, uint8 height x width x 3 RGB. Deterministic in
    (width, height, t, seed); a small change of t gives a slightly moved, slightly
    changed sky (about a minute of t per noticeable change of shape)."""
    if width < 1 or height < 1:
        raise ValueError(f"clouds size must be positive, got {width}x{height}")
    # Clouds are soft: the sky is drawn at most MAX_NOISE_WIDTH wide and upscaled smoothly,
    # which keeps the live source cheap at any resolution.
    scale = min(1.0, MAX_NOISE_WIDTH / width)
    nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
    img = (np.clip(_sky(nw, nh, t, seed), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if (nw, nh) != (width, height):
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)
    return img


def _sky(width: int, height: int, t: float, seed: int) -> np.ndarray:
    d, coarse = _fbm(width, height, t, seed)
    # Contrast around the mean, then a soft threshold: blue gaps between puffy clouds.
    d = (d - 0.5) * 2.4 + 0.5
    cover = np.clip((d - 0.5) / 0.22, 0.0, 1.0)
    cover = cover * cover * (3.0 - 2.0 * cover)
    # Light from above: a cloud is brighter where the density below it is larger than above
    # (its sunlit top) and greyer underneath; thick cores stay bright.
    shift = max(1, width // 80)
    below = np.concatenate([coarse[shift:], np.repeat(coarse[-1:], shift, axis=0)])[:height]
    light = np.clip(0.75 + 8.0 * (below - coarse) + 0.6 * (d - 0.5), 0.0, 1.0)[..., None]
    cloud = CLOUD_SHADE + (CLOUD_LIT - CLOUD_SHADE) * light
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None] ** 0.8
    sky = SKY_TOP + (SKY_HORIZON - SKY_TOP) * ys
    return sky + (cloud - sky) * cover[..., None]
