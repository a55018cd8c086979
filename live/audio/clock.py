"""The DJ's tempo: MIDI clock (24 pulses a quarter note, as a mixer, Ableton Live or a drum
machine sends it) as beats. The beat is the first pulse of each quarter counted from Start;
while pulses come it is the beat the rules follow, exact where a microphone guesses."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

import numpy as np

PPQN = 24              # MIDI clock pulses per quarter note
QUIET = 0.5            # s without a pulse: the clock has stopped


class BeatClock:
    """`message(kind)` from the MIDI thread ('clock', 'start', 'continue', 'stop');
    `take()` from the rules' thread: 1.0 once per beat."""

    def __init__(self, now: Callable[[], float] = time.monotonic):
        self.now = now
        self.ticks = self.beats = 0
        self._taken = 0
        self._last: float | None = None
        self._stopped = False
        self._gaps: deque[float] = deque(maxlen=PPQN * 2)
        self._lock = threading.Lock()

    def message(self, kind: str) -> None:
        with self._lock:
            if kind == "start":
                self.ticks, self._stopped = 0, False
            elif kind == "continue":
                self._stopped = False
            elif kind == "stop":
                self._stopped = True
            elif kind == "clock":
                t = self.now()
                if self._last is not None:
                    self._gaps.append(t - self._last)
                self._last = t
                if self.ticks % PPQN == 0:
                    self.beats += 1
                self.ticks += 1

    def running(self) -> bool:
        with self._lock:
            return not self._stopped and self._last is not None and self.now() - self._last < QUIET

    def take(self) -> float:
        with self._lock:
            beat = self.beats > self._taken
            self._taken = self.beats
        return float(beat)

    @property
    def bpm(self) -> float:
        """The tempo the pulses say (0 before two of them)."""
        with self._lock:
            gaps = list(self._gaps)
        return 60.0 / (float(np.median(gaps)) * PPQN) if gaps and np.median(gaps) > 0 else 0.0
