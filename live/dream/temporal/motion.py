"""Motion drives the dream: stillness lets it grow, motion brings back the live picture,
and an empty room drifts into the endless zoom (attract mode).

`MotionResponse` turns a raw motion measure (pixels per second of optical flow) into a
smoothed 0..1 level with separate attack/release times (motion is noticed quickly, the
dream grows back slowly) and an idle timer with a smooth attract weight. Time is passed
in (dt), never read from a clock."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..settings import AttractSettings, MotionSettings


@dataclass
class MotionState:
    """What this frame's motion means for the dream and the renderer. With the local
    (per-pixel) response, level/gain/carry/blend are h x w float32 maps at working size."""
    level: float | np.ndarray = 0.0   # smoothed motion, 0 = still, 1 = fully moving
    gain: float | np.ndarray = 1.0    # multiply the engine's step by this
    carry: float | np.ndarray = 1.0   # multiply the engine's decay (carried dream) by this
    blend: float | np.ndarray = 1.0   # multiply the renderer's dream blend by this
    attract: float = 0.0        # 0 = live room, 1 = endless zoom; smooth in between
    idle: float = 0.0           # seconds since someone last moved
    preset_due: bool = False    # attract mode: time to show the next preset
    motion: float = 0.0         # raw motion this frame, px/s
    cut: bool = False           # this frame was a scene cut
    room: float = 0.0           # motion of the whole room, px/s (what attract mode keys on)


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def lerp(a: float, b: float, t):
    """a..b at t (a number, or a map: then a float32 map)."""
    return a + (b - a) * t


class MotionResponse:
    """Motion level with attack/release smoothing, its mapping to dream multipliers, and
    the idle timer behind attract mode. Time is passed in (dt), so tests need no clock."""

    def __init__(self, motion: MotionSettings = MotionSettings(), attract: AttractSettings = AttractSettings()):
        self.s = motion
        self.a = attract
        self.level = 0.0
        self.idle = 0.0
        self._attract = 0.0      # linear ramp 0..1; the state reports its smoothstep
        self._preset_clock = 0.0

    def reset(self) -> None:
        self.level, self.idle, self._attract, self._preset_clock = 0.0, 0.0, 0.0, 0.0

    def target(self, motion: float) -> float:
        """Raw motion (px/s) -> 0..1 before smoothing."""
        s = self.s
        if not math.isfinite(motion):
            return 1.0
        return min(1.0, max(0.0, (motion - s.still) / max(s.moving - s.still, 1e-6)))

    def update(self, motion: float, dt: float, cut: bool = False) -> MotionState:
        s, a = self.s, self.a
        dt = max(0.0, float(dt))
        goal = 1.0 if cut else self.target(motion)
        tau = s.attack if goal > self.level else s.release
        self.level += (goal - self.level) * (1.0 - math.exp(-dt / tau) if tau > 0 else 1.0)

        active = cut or goal > 0.0
        self.idle = 0.0 if active else self.idle + dt
        if a.enabled and not active and self.idle >= a.idle_seconds:
            self._attract = min(1.0, self._attract + dt / a.fade_in)
        else:
            self._attract = max(0.0, self._attract - dt / a.fade_out)
        preset_due = False
        if self._attract >= 1.0:
            self._preset_clock += dt
            if self._preset_clock >= a.preset_seconds:
                self._preset_clock, preset_due = 0.0, True
        else:
            self._preset_clock = 0.0

        lv = self.level
        return MotionState(level=lv, gain=lerp(1.0, s.moving_gain, lv), carry=lerp(1.0, s.moving_carry, lv),
                           blend=lerp(1.0, s.moving_blend, lv), attract=_smoothstep(self._attract),
                           idle=self.idle, preset_due=preset_due, motion=motion, cut=cut, room=motion)
