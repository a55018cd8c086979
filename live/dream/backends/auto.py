"""`backend = "auto"` and `precision = "auto"`: measure the candidates on this machine for
these settings and pick the fastest (once per process and key)."""
from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np
import torch

from . import Step

log = logging.getLogger(__name__)

_DECISIONS: dict[tuple, str] = {}


def time_step(step: Step, size: tuple[int, int], device: torch.device, strength: float, n: int = 3) -> float:
    """Median ms of n calls after one warm-up (a compiled step is timed once it is ready)."""
    w, h = size
    x = torch.rand(1, 3, h, w, device=device).contiguous(memory_format=torch.channels_last)
    if hasattr(step, "wait") and not step.wait(timeout=600):
        raise RuntimeError("the compiled step is not available")
    step(x, strength)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step(x, strength)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def fastest(what: str, key: tuple, candidates: tuple[str, ...], timer: Callable[[str], float]) -> str:
    """The candidate with the smallest `timer(candidate)`; one that fails is skipped."""
    if key in _DECISIONS:
        return _DECISIONS[key]
    timings = {}
    for c in candidates:
        try:
            timings[c] = timer(c)
        except Exception as exc:  # an export that fails must not stop the show
            log.warning("%s %s unavailable: %s", what, c, exc)
    choice = min(timings, key=timings.get)
    log.info("%s auto: %s (ms/step %s)", what, choice, ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    _DECISIONS[key] = choice
    return choice
