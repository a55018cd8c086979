"""Backward warps that leave the still part of a picture alone. The dream's flow is 0
exactly where nothing moves (`flow.quieted` snaps what is left of a still room's noise to
0): there a bicubic warp gives the picture back as it was, so only the blocks where
something moves are resampled. On a camera that does not move that is most of the
picture; the dream thread warped its carried dream, its momentum and the denoiser's
running average (three bicubic remaps of the working size, 2.7 ms each at 736x416 on one
thread of AVX2 code) every frame, all three along the same flow, which is planned once."""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

BLOCK = 32            # px: the grain of what is resampled and what is kept
WHOLE_SHARE = 0.85    # above this share of moving blocks one remap of the whole picture is cheaper

@lru_cache(maxsize=32)
def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (xs, ys), cached per size (read-only: callers must not write)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def moving_blocks(flow: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """(rows, cols) bool: which block x block squares of an h x w x 2 flow move at all.
    On the float's bits with the sign shifted out (-0.0 is still): 0.3 ms at 736x416,
    a tenth of numpy's `any` over the last axis."""
    h, w = flow.shape[:2]
    rows, cols = -(-h // block), -(-w // block)
    bits = np.zeros((rows * block, cols * block * 2), np.uint32)
    bits[:h, :w * 2] = np.ascontiguousarray(flow, np.float32).view(np.uint32).reshape(h, w * 2) << 1
    return bits.reshape(rows, block, cols, block * 2).max(axis=(1, 3)) > 0


def spans(blocks: np.ndarray, h: int, w: int, block: int = BLOCK) -> list[tuple[slice, slice]]:
    """The moving blocks as runs along each row of blocks (fewer, larger remaps)."""
    out = []
    for r, row in enumerate(blocks):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], row.astype(np.int8), [0]))))
        for c0, c1 in zip(edges[::2], edges[1::2]):
            out.append((slice(r * block, min(h, (r + 1) * block)), slice(c0 * block, min(w, c1 * block))))
    return out


class FlowRemap:
    """One flow's backward warp (`img` sampled at (x, y) + flow[y, x]), planned once for
    every picture moved along it. The same numbers as one `cv2.remap` of the whole
    picture: remap is pixel by pixel, and where the flow is 0 it samples whole pixels,
    where the bicubic and bilinear kernels are the picture itself."""

    def __init__(self, flow: np.ndarray, block: int = BLOCK):
        self.flow = flow
        h, w = flow.shape[:2]
        blocks = moving_blocks(flow, block)
        self.whole = bool(blocks.mean() > WHOLE_SHARE)
        self.parts = [(slice(0, h), slice(0, w))] if self.whole else spans(blocks, h, w, block)   # [] if still
        self._maps: list[tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def moving(self) -> float:
        """Share of the picture that is resampled."""
        h, w = self.flow.shape[:2]
        return sum((ys.stop - ys.start) * (xs.stop - xs.start) for ys, xs in self.parts) / float(h * w)

    def _part_maps(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._maps is None:
            xs, ys = pixel_grid(*self.flow.shape[:2])
            self._maps = [(xs[p] + self.flow[p][..., 0], ys[p] + self.flow[p][..., 1]) for p in self.parts]
        return self._maps

    def __call__(self, img: np.ndarray, interp: int = cv2.INTER_LINEAR, border: int = cv2.BORDER_REPLICATE,
                 fresh: bool = True) -> np.ndarray:
        """`img` (h x w [x c]) moved along the flow. `fresh`: never `img` itself (False: the
        caller makes a new array of it anyway, so a picture that does not move is not copied)."""
        if img.shape[:2] != self.flow.shape[:2]:
            raise ValueError(f"flow is {self.flow.shape[1]}x{self.flow.shape[0]} but the picture is "
                             f"{img.shape[1]}x{img.shape[0]}")
        maps = self._part_maps()
        if self.whole:
            return cv2.remap(img, *maps[0], interp, borderMode=border)
        if not self.parts:
            return img.copy() if fresh else img
        out = img.copy()
        for part, (mx, my) in zip(self.parts, maps):
            dst = out[part]
            dst[...] = cv2.remap(img, mx, my, interp, borderMode=border).reshape(dst.shape)
        return out


class Planned:
    """The plan of the last flow seen (the residual, the momentum and the denoiser are
    moved along one flow object a frame)."""

    def __init__(self) -> None:
        self.last: FlowRemap | None = None

    def __call__(self, flow: np.ndarray) -> FlowRemap:
        if self.last is None or self.last.flow is not flow:
            self.last = FlowRemap(flow)
        return self.last
