"""The picture people see: the newest full-resolution camera frame with the newest dream
on it. One function for the window, the headless recorder and the frame-exact clip
renderer, so all three show the same thing.

Today's rule is the whole-frame blend the window has always drawn:
`screen = current + blend * dream.blend * (up(dream.image) - current)`, the dream
upscaled linearly to the camera's size."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class DreamFrame:
    """What one dream step hands to whoever composes the picture."""
    image: np.ndarray            # uint8 h x w x 3 RGB, the dream at the working size
    base: np.ndarray             # uint8 h x w x 3 RGB, the (denoised) picture it was dreamed on
    blend: np.ndarray | float = 1.0   # the motion response's blend multiplier (h x w map or scalar)


def upscale(img: np.ndarray, size: tuple[int, int], interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """`img` at `size` (w, h); the same array when it is that size already."""
    if (img.shape[1], img.shape[0]) == tuple(size):
        return img
    return cv2.resize(img, tuple(size), interpolation=interpolation)


def _weight(blend: float, dream: DreamFrame, size: tuple[int, int]) -> np.ndarray | float:
    """The per-pixel (h x w x 1) or scalar weight of the dream at `size`."""
    local = dream.blend
    if isinstance(local, np.ndarray) and local.ndim >= 2:
        m = upscale(local.astype(np.float32), size)
        return np.clip(blend * m, 0.0, 1.0)[..., None]
    return min(1.0, max(0.0, blend * float(local)))


class Overlay:
    """current (camera frame, any size) + DreamFrame -> the composed picture."""

    def compose(self, current: np.ndarray, dream: DreamFrame | None, blend: float) -> np.ndarray:
        """uint8 RGB at current's size: the camera picture with the dream on it."""
        if dream is None:
            return current
        h, w = current.shape[:2]
        weight = _weight(blend, dream, (w, h))
        if np.isscalar(weight) and weight <= 0.0:
            return current
        up = upscale(dream.image, (w, h))
        if np.isscalar(weight) and weight >= 1.0:
            return up
        cur = current.astype(np.float32)
        out = cur + weight * (up.astype(np.float32) - cur)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
