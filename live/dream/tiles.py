"""A working size above one step's budget, dreamed one tile at a time.

The step's cost is its pixel count; the dream's strokes are as fine as the picture it is
dreamed on. Stepping one budget-sized tile of a larger working picture per frame, round
robin, gives the larger picture's strokes (the network sees its objects at that picture's
scale) at the step cost of the budget: each part of the picture is stepped every few
frames, and the carried dream (decay 1 where the room is still) adds those steps up.
Each visit moves the tile by a random offset, so the step's own border (its padding)
never falls on the same seam twice."""
from __future__ import annotations

import math
import random

from .images import fit_aspect

OFFSET = 0.25   # of the tile's side: how far a visit moves it from its grid cell
# Measured (640x480 in 320x240 tiles, n = 4; late strength on the still part / flicker x the
# input's): pedestrians.mp4 first 150 frames x1 9.6 / 1.18, x2 19.2 / 1.35, x2.5 21.5 / 1.43;
# all frames x2 21.4 / 1.20, x2.5 23.4 / 1.25; its 1280x720 50 fps stand-in, 300 frames, x2
# 19.1 / 1.33, x2.5 21.0 / 1.40 (the targets: >= 20, <= 1.5).
VISIT_POWER = 0.66   # 4 ** 0.66 = 2.5


def tile_size(size: tuple[int, int], budget: tuple[int, int]) -> tuple[int, int]:
    """The tile one step dreams on: `budget`'s pixels in `size`'s shape, or the whole
    working size when that is within the budget (or no budget is set: [0, 0])."""
    w, h = size
    if budget[0] * budget[1] <= 0 or w * h <= budget[0] * budget[1]:
        return size
    tw, th = fit_aspect(budget, w / h)
    return min(tw, w), min(th, h)


def visit_gain(size: tuple[int, int], tile: tuple[int, int]) -> float:
    """How much larger a tile's step is than the whole picture's: each part of the picture
    is stepped once in n frames (n = its pixels over the tile's), and the momentum spreads
    each visit's change over the frames after it. n ** VISIT_POWER: a step n times larger
    flickers, sqrt(n) grows too slowly for a short clip (docs/depth.md)."""
    return (size[0] * size[1] / (tile[0] * tile[1])) ** VISIT_POWER


def grid(size: tuple[int, int], tile: tuple[int, int]) -> list[tuple[int, int]]:
    """Origins of the fewest tiles that cover the picture, spread evenly (row by row)."""
    (w, h), (tw, th) = size, tile
    nx, ny = math.ceil(w / tw), math.ceil(h / th)
    xs = [round(i * (w - tw) / max(1, nx - 1)) for i in range(nx)]
    ys = [round(j * (h - th) / max(1, ny - 1)) for j in range(ny)]
    return [(x, y) for y in ys for x in xs]


def tile_at(size: tuple[int, int], tile: tuple[int, int], index: int, rng: random.Random) -> tuple[int, int]:
    """Origin (x, y) of visit `index`: its grid cell, round robin, moved at random by up
    to OFFSET of the tile and kept inside the picture."""
    cells = grid(size, tile)
    x, y = cells[index % len(cells)]
    dx, dy = (int(OFFSET * t) for t in tile)
    x += rng.randint(-dx, dx) if dx else 0
    y += rng.randint(-dy, dy) if dy else 0
    return min(max(0, x), size[0] - tile[0]), min(max(0, y), size[1] - tile[1])
