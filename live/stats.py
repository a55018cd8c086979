"""What the running installation measures about itself: display frame rate and the
capture-to-screen latency of the live picture (for the HUD and the summary at exit)."""
from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path

import numpy as np

from .dream.files import atomic


class Stats:
    """Display fps and capture-to-screen latency of the live layer, for the HUD and the
    summary logged at exit."""

    def __init__(self) -> None:
        self.latencies: deque[float] = deque(maxlen=2000)   # seconds
        self.frame_times: deque[float] = deque(maxlen=120)
        self.picture_times: deque[float] = deque(maxlen=120)   # new camera pictures composed
        self.frames = self.pictures = 0
        self.started = time.perf_counter()

    def frame(self, now: float) -> None:
        self.frames += 1
        self.frame_times.append(now)

    def picture(self, now: float) -> None:
        self.pictures += 1
        self.picture_times.append(now)

    @property
    def fps(self) -> float:
        return _rate(self.frame_times)

    @property
    def picture_fps(self) -> float:
        """New camera pictures on screen a second (render.picture_fps caps it; display fps
        counts every presented frame)."""
        return _rate(self.picture_times)

    def latency_ms(self, q: float = 50) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else 0.0


STATS_KEYS = ("display_fps", "dream_steps_per_second", "working_size", "latency_ms_median", "latency_ms_p95",
              "backend", "precision")  # the contract (DESIGN.md); more keys may follow them


def write_stats(path: str | Path, figures: dict) -> Path:
    """The session's figures as JSON, written atomically (never a half file)."""
    missing = [k for k in STATS_KEYS if k not in figures]
    if missing:
        raise KeyError(f"session figures lack {missing}")
    with atomic(path) as tmp:
        tmp.write_text(json.dumps(figures, indent=1) + "\n")
    return Path(path)


def _rate(times: deque[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
