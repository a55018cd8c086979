"""Adaptive quality: the working size follows the source's aspect (the pixel count is the
compute budget) and steps down a ladder when the dream falls below its target rate, and
back up when the larger size would meet it with headroom. Time is passed in."""
from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np

from .dream.images import fit_aspect  # noqa: F401 - the working size's shape lives in the core

ADAPTIVE_SCALES = (1.0, 0.8, 0.7, 0.5)  # 320x240 -> 256x192 -> 224x168 -> 160x120


def adaptive_ladder(size: tuple[int, int], scales: tuple[float, ...] = ADAPTIVE_SCALES) -> list[tuple[int, int]]:
    """Working sizes to step down through, keeping the aspect (multiples of 8, >= 32)."""
    w, h = size
    out: list[tuple[int, int]] = []
    for s in scales:
        cand = (max(32, int(round(w * s / 8)) * 8), max(32, int(round(h * s / 8)) * 8))
        if s == 1.0:
            cand = (w, h)
        if cand not in out:
            out.append(cand)
    return out


class AdaptiveSize:
    """Lowers the working size when dream steps/s fall below the target, and raises it
    again when the larger size would still meet the target with headroom."""

    def __init__(self, size: tuple[int, int], target: float, enabled: bool = True,
                 settle_seconds: float = 3.0, headroom: float = 1.25, window: int = 6, warmup: int = 2):
        self.ladder = adaptive_ladder(size)
        self.target = target
        self.enabled = enabled
        self.settle = settle_seconds      # wait this long after a change before stepping down again
        self.headroom = headroom          # stepping up needs the larger size to beat target * headroom
        self.warmup = warmup              # the first steps at a new size are slow (kernel set-up)
        self.level = 0
        self.deepest = 0                  # the smallest size (largest level) used so far
        self.floor = 0                    # largest size allowed (raised after CUDA out of memory)
        self._skip = 0
        self._rates: deque[float] = deque(maxlen=window)
        self._changed: float | None = None     # when the size last changed (or rates began)

    @property
    def size(self) -> tuple[int, int]:
        return self.ladder[self.level]

    def set_base(self, size: tuple[int, int]) -> bool:
        """A new full size (the source's aspect changed); keeps the level. True if changed."""
        ladder = adaptive_ladder(size)
        if ladder == self.ladder:
            return False
        self.ladder = ladder
        self.level = min(self.level, len(ladder) - 1)
        self.floor = min(self.floor, self.level)
        self._rates.clear()
        return True

    def step_down_for_memory(self) -> tuple[int, int] | None:
        """One size down, and never back up above it in this run; None at the bottom."""
        if self.level >= len(self.ladder) - 1:
            return None
        self.level += 1
        self.deepest = max(self.deepest, self.level)
        self.floor = self.level
        self._rates.clear()
        self._changed = None
        return self.size

    def update(self, steps_per_second: float, now: float,
               ready: Callable[[tuple[int, int]], bool] = lambda size: True) -> tuple[int, int] | None:
        """Feed one measured rate; returns the new working size when it should change.
        Only a size whose step is `ready` is chosen: a size whose fast step is still being
        built would dream with the slower stand-in and look like a reason to go lower."""
        if not self.enabled:
            return None
        if self._skip > 0:
            self._skip -= 1
            return None
        self._rates.append(steps_per_second)
        if self._changed is None:
            self._changed = now
        if len(self._rates) < self._rates.maxlen or now - self._changed < self.settle:
            return None
        rate = float(np.median(self._rates))
        new = self.level
        if rate < self.target and self.level < len(self.ladder) - 1:
            new = self.level + 1
        elif self.level > self.floor and now - self._changed >= 3 * self.settle:  # up slowly: no see-saw
            (w0, h0), (w1, h1) = self.ladder[self.level], self.ladder[self.level - 1]
            if rate * (w0 * h0) / (w1 * h1) >= self.target * self.headroom:
                new = self.level - 1
        if new == self.level or not ready(self.ladder[new]):
            return None
        self.level = new
        self.deepest = max(self.deepest, new)
        self._rates.clear()
        self._changed = now
        self._skip = self.warmup
        return self.size
