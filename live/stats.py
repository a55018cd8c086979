"""What the running installation measures about itself: display frame rate and the
capture-to-screen latency of the live picture (for the HUD and the summary at exit)."""
from __future__ import annotations

import time
from collections import deque

import numpy as np


class Stats:
    """Display fps and capture-to-screen latency of the live layer, for the HUD and the
    summary logged at exit."""

    def __init__(self) -> None:
        self.latencies: deque[float] = deque(maxlen=2000)   # seconds
        self.frame_times: deque[float] = deque(maxlen=120)
        self.frames = 0
        self.started = time.perf_counter()

    def frame(self, now: float) -> None:
        self.frames += 1
        self.frame_times.append(now)

    @property
    def fps(self) -> float:
        t = self.frame_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def latency_ms(self, q: float = 50) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else 0.0
