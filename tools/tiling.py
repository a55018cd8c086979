"""Tiled gradients: a picture of any size dreams at the memory of one tile.

As in the TensorFlow DeepDream tutorial the tile borders move to a random place on every
step so they never show, but here the tile *grid* is shifted instead of the picture
being rolled: a roll wraps the picture round and puts a hard seam inside it, and the
network's response to that seam swamped the real gradient. Each tile is also computed
with a margin of context around it whose gradient is thrown away, so the network sees
across tile borders. Each tile's raw gradient comes from the engine's own
`DreamStep.raw_gradient`; the sum is normalised once over the whole picture."""
from __future__ import annotations

import random
from typing import Callable

import torch

from live.engine import DreamStep
from live.prior import normalize_grad

Transform = Callable[[torch.Tensor], torch.Tensor]

# Total stride of the networks' deepest layers. Strided convolutions sample the picture on
# a grid tied to one of its ends: TF "same" padding (EfficientNet-Lite) ties it to the
# last pixel, PyTorch padding to the first. A crop must keep both ends on the picture's
# grid, or it sees a shifted sampling phase and its gradient is a different one.
STRIDE = 32


def tile_spans(length: int, tile: int, offset: int = 0) -> list[tuple[int, int]]:
    """(start, end) pieces covering [0, length), cut every `tile` pixels starting at
    `offset`; a piece shorter than a quarter tile joins its neighbour (no slivers for the
    network to choke on), so pieces are at most 1.25 tiles long."""
    if length <= tile:
        return [(0, length)]
    cuts = [c for c in range(offset % tile, length, tile) if 0 < c < length]
    bounds = [0] + cuts + [length]
    keep = [0]
    for b in bounds[1:-1]:
        if b - keep[-1] >= tile // 4 and length - b >= tile // 4:
            keep.append(b)
    keep.append(length)
    return list(zip(keep[:-1], keep[1:]))


def tiled_gradient(step: DreamStep, x: torch.Tensor, tile: int, rng: random.Random,
                   transform: Transform | None = None, margin: int | None = None) -> torch.Tensor:
    """The normalised ascent direction for x (1,3,H,W), computed tile by tile.

    A picture that fits in one tile is one call (the caller's jitter already moves it).
    Each tile is computed with `margin` pixels of context (default tile/8, grown to
    keep the sampling grid, see STRIDE) and weighted
    by its share of the picture, so the sum approximates the gradient of the objective
    averaged over the whole picture, whatever the tiling."""
    h, w = x.shape[-2:]
    if h <= tile and w <= tile:
        return normalize_grad(step.raw_gradient(x, transform), step.grad_norm)
    m = tile // 8 if margin is None else margin
    g = torch.zeros_like(x, dtype=torch.float32)
    ys = tile_spans(h, tile, rng.randrange(tile))
    xs = tile_spans(w, tile, rng.randrange(tile))
    for y0, y1 in ys:
        for x0, x1 in xs:
            cy0, cy1 = _aligned(y0 - m, y1 + m, h)
            cx0, cx1 = _aligned(x0 - m, x1 + m, w)
            share = (cy1 - cy0) * (cx1 - cx0) / (h * w)
            gt = step.raw_gradient(x[:, :, cy0:cy1, cx0:cx1], transform)
            g[:, :, y0:y1, x0:x1] = gt[:, :, y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0] * share
    return normalize_grad(g, step.grad_norm)


def _aligned(start: int, end: int, length: int) -> tuple[int, int]:
    """Grow [start, end) so start is a multiple of STRIDE and end is a multiple of STRIDE
    before the picture's end (both clipped to the picture)."""
    start = max(0, start - start % STRIDE)
    end = min(length, end)
    return start, end + (length - end) % STRIDE
