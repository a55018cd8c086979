"""Motion drives the dream: stillness lets it grow, motion brings back the live picture,
and an empty room drifts into the endless zoom (attract mode).

`MotionResponse` turns a raw motion measure (pixels per second of optical flow) into a
smoothed 0..1 level with separate attack/release times (motion is noticed quickly, the
dream grows back slowly) and an idle timer with a smooth attract weight. `TemporalDream`
is the per-frame glue the dreamer calls: flow -> motion -> engine -> (attract feedback)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from .flow import FlowResult, FlowTracker, warp_image, zoom_flow


@dataclass(frozen=True)
class MotionSettings:
    """The [motion] and [attract] knobs MotionResponse needs (mirrors live.config)."""
    still: float = 4.0            # px/s of flow below which the scene counts as still
    moving: float = 40.0          # px/s at which the scene counts as fully moving
    attack: float = 0.25          # s: time constant when motion starts (the dream gives way)
    release: float = 3.0          # s: time constant when the scene stills (the dream grows back)
    moving_gain: float = 0.4      # step-size multiplier at full motion
    moving_carry: float = 0.85    # multiplier of the carried dream's decay at full motion
    moving_blend: float = 0.5     # render-blend multiplier at full motion
    attract: bool = True          # enter attract mode when nobody moves
    idle_seconds: float = 60.0    # s of stillness before attract mode
    fade_in: float = 8.0          # s to drift from the room into the zoom
    fade_out: float = 1.5         # s to bring the room back once someone moves
    zoom: float = 1.01            # attract: zoom per dream pass (>1 = into the picture)
    rotate: float = 0.1           # attract: degrees turned per pass
    preset_seconds: float = 30.0  # attract: advance to the next preset this often
    attract_gain: float = 2.0     # attract: step-size multiplier at full zoom (nothing to stay true to)

    @classmethod
    def from_config(cls, motion, attract=None) -> "MotionSettings":
        """From live.config's MotionConfig / AttractConfig (any object with the fields)."""
        names = {f for f in cls.__dataclass_fields__}
        values = {k: getattr(motion, k) for k in names if hasattr(motion, k)}
        if attract is not None:
            values.update({k: getattr(attract, k) for k in names if hasattr(attract, k)})
            values["attract"] = getattr(attract, "enabled", True)
            if hasattr(attract, "gain"):
                values["attract_gain"] = attract.gain
        return cls(**values)


@dataclass
class MotionState:
    """What this frame's motion means for the dream and the renderer."""
    level: float = 0.0          # smoothed motion, 0 = still, 1 = fully moving
    gain: float = 1.0           # multiply the engine's step size by this
    carry: float = 1.0          # multiply the engine's decay (carried dream) by this
    blend: float = 1.0          # multiply the renderer's dream blend by this
    attract: float = 0.0        # 0 = live room, 1 = endless zoom; smooth in between
    idle: float = 0.0           # seconds since someone last moved
    preset_due: bool = False    # attract mode: time to show the next preset
    motion: float = 0.0         # raw motion this frame, px/s
    cut: bool = False           # this frame was a scene cut


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


class MotionResponse:
    """Motion level with attack/release smoothing, its mapping to dream multipliers, and
    the idle timer behind attract mode. Time is passed in (dt), so tests need no clock."""

    def __init__(self, settings: MotionSettings = MotionSettings()):
        self.s = settings
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
        s = self.s
        dt = max(0.0, float(dt))
        goal = 1.0 if cut else self.target(motion)
        tau = s.attack if goal > self.level else s.release
        self.level += (goal - self.level) * (1.0 - math.exp(-dt / tau) if tau > 0 else 1.0)

        active = cut or goal > 0.0
        self.idle = 0.0 if active else self.idle + dt
        if s.attract and not active and self.idle >= s.idle_seconds:
            self._attract = min(1.0, self._attract + dt / s.fade_in)
        else:
            self._attract = max(0.0, self._attract - dt / s.fade_out)
        preset_due = False
        if self._attract >= 1.0:
            self._preset_clock += dt
            if self._preset_clock >= s.preset_seconds:
                self._preset_clock, preset_due = 0.0, True
        else:
            self._preset_clock = 0.0

        lv = self.level
        return MotionState(level=lv, gain=_lerp(1.0, s.moving_gain, lv), carry=_lerp(1.0, s.moving_carry, lv),
                           blend=_lerp(1.0, s.moving_blend, lv), attract=_smoothstep(self._attract),
                           idle=self.idle, preset_due=preset_due, motion=motion, cut=cut)


def attract_input(frame: np.ndarray, previous: np.ndarray | None, weight: float,
                  zflow: np.ndarray) -> np.ndarray:
    """What the engine dreams on in attract mode: the camera picture crossfaded with the
    previous dream zoomed a little (feeding the output back in: the endless zoom)."""
    if previous is None or weight <= 0.0 or previous.shape != frame.shape:
        return frame
    fed = warp_image(previous, zflow, interp=cv2.INTER_CUBIC)  # linear would blur the zoom away
    if weight >= 1.0:
        return fed
    return (frame.astype(np.float32) * (1.0 - weight) + fed.astype(np.float32) * weight + 0.5).astype(np.uint8)


@dataclass
class TemporalDream:
    """Per-frame glue around a DreamEngine: optical flow warps the carried dream, motion
    scales step size and carry, attract mode feeds the dream back with a zoom.

    `out, state = temporal(frame)`; the renderer multiplies its blend by `state.blend`,
    the app advances presets when `state.preset_due`."""
    engine: object                       # live.engine.DreamEngine
    settings: MotionSettings = field(default_factory=MotionSettings)
    use_flow: bool = True                # warp the carried dream along the flow
    use_motion: bool = True              # motion level scales the dream
    flow_preset: str = "ultrafast"
    fb_check: bool = True
    cut_confidence: float = 0.3
    denoise: float = 0.5                 # 0..1: temporal averaging of the still camera picture

    def __post_init__(self) -> None:
        self.tracker = FlowTracker(self.engine.size, preset=self.flow_preset, fb_check=self.fb_check,
                                   cut_confidence=self.cut_confidence)
        self.response = MotionResponse(self.settings)
        self.previous: np.ndarray | None = None
        self._steady: np.ndarray | None = None
        self.state = MotionState()
        self._last_time: float | None = None
        if self.use_flow:
            self.engine.warp = self.tracker.warp

    @classmethod
    def from_config(cls, engine, cfg) -> "TemporalDream":
        """From a live.config.Config: its [motion] and [attract] sections."""
        m = cfg.motion
        return cls(engine, MotionSettings.from_config(m, cfg.attract), use_flow=m.flow, use_motion=m.enabled,
                   flow_preset=m.flow_preset, fb_check=m.fb_check, cut_confidence=m.cut_confidence,
                   denoise=m.denoise)

    def reset(self) -> None:
        """Forget the dream, the flow history and the motion state (e.g. 'r' key)."""
        self.engine.reset()
        self.tracker.reset()
        self.response.reset()
        self.previous = None
        self._steady = None

    def __call__(self, frame: np.ndarray, dt: float | None = None) -> tuple[np.ndarray, MotionState]:
        now = time.monotonic()
        if dt is None:
            dt = 0.0 if self._last_time is None else now - self._last_time
        self._last_time = now
        if tuple(self.tracker.size) != tuple(self.engine.size):  # adaptive size changed
            self.tracker = FlowTracker(self.engine.size, preset=self.flow_preset, fb_check=self.fb_check,
                                       cut_confidence=self.cut_confidence)
            if self.use_flow:
                self.engine.warp = self.tracker.warp
            self.previous = self._steady = None
        w, h = self.engine.size
        small = frame if frame.shape[:2] == (h, w) else _resize(frame, (w, h))
        result: FlowResult | None = self.tracker.update(small)
        motion = 0.0 if result is None or dt <= 0 else result.motion / dt
        cut = bool(result is not None and result.cut)
        state = self.response.update(motion, dt, cut)
        if not self.use_motion:
            state.gain = state.carry = state.blend = 1.0
        if cut:
            self.engine.reset()

        flow = result.flow if (self.use_flow and result is not None and not cut) else None
        a = state.attract
        base = self._denoise(small, result, state.level)
        if a > 0.0:
            zf = zoom_flow((w, h), self.settings.zoom, self.settings.rotate)
            base = attract_input(base, self.previous, a, zf)
            # the dream now lives in the fed-back picture: carry less of the residual,
            # and move what is carried with the zoom
            state.carry *= 1.0 - a
            state.gain *= 1.0 + (self.settings.attract_gain - 1.0) * a
            flow = zf if flow is None else ((1.0 - a) * flow + a * zf).astype(np.float32)
            if result is not None and flow is not result.flow:
                self.tracker.last = FlowResult(flow, result.confidence, result.motion, result.change, cut)
        out = self.engine.dream(base, flow=flow, gain=state.gain, carry=state.carry)
        self.previous = out
        self.state = state
        return out, state

    def _denoise(self, small: np.ndarray, result: FlowResult | None, level: float) -> np.ndarray:
        """Motion-compensated running average of the camera picture where the flow holds
        and the scene is still: sensor noise would otherwise shimmer through the dream
        (and be dreamed on). Where the flow fails or people move it is the live picture."""
        cur = small.astype(np.float32)
        if self.denoise <= 0 or result is None or result.cut or self._steady is None \
                or self._steady.shape != cur.shape:
            self._steady = cur
            return small
        weight = (self.denoise * (1.0 - level)) * result.confidence[..., None]
        self._steady = cur + weight * (warp_image(self._steady, result.flow, interp=cv2.INTER_CUBIC) - cur)
        return np.clip(self._steady + 0.5, 0, 255).astype(np.uint8)  # cubic may overshoot


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    interp = cv2.INTER_AREA if frame.shape[1] > size[0] else cv2.INTER_LINEAR
    return cv2.resize(frame, size, interpolation=interp)
