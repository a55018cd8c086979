"""Temporal coherence around a DreamEngine, one frame at a time: optical flow warps the
carried dream, motion scales step and carry, a still camera picture is denoised along
the flow, and attract mode feeds the dream back with a zoom. The dreamer thread and the
frame-exact clip renderer both call `TemporalDream`; time comes in as dt."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..engine import DreamEngine
from ..images import feed_back, resize_image, times_map
from ..settings import AttractSettings, MotionSettings
from .flow import FlowResult, FlowTracker, quieted, resize_flow, zoom_flow
from .local import LocalMotion
from .motion import MotionResponse, MotionState
from .overlay import DreamFrame


def attract_input(frame: np.ndarray, previous: np.ndarray | None, weight: float, attract: AttractSettings) -> np.ndarray:
    """What the engine dreams on in attract mode: the camera picture crossfaded with the
    previous dream zoomed a little (feeding the output back in: the endless zoom)."""
    if previous is None or weight <= 0.0 or previous.shape != frame.shape:
        return frame
    return feed_back(previous, attract.zoom, attract.rotate, frame, weight)


def _at(state: MotionState, size: tuple[int, int]) -> MotionState:
    """The motion response's maps (measured at the flow's size) at the working size."""
    maps = {k: resize_image(v, size) for k in ("level", "gain", "carry", "blend")
            if isinstance(v := getattr(state, k), np.ndarray)}
    return replace(state, **maps) if maps else state


@dataclass
class TemporalDream:
    """Per-frame glue around a DreamEngine: optical flow warps the carried dream, motion
    scales step size and carry, attract mode feeds the dream back with a zoom.

    `out, state = temporal(frame, dt)`; the app advances presets when
    `state.preset_due`. `temporal.last` is the same step as a `DreamFrame` (dream, the
    picture it was dreamed on, blend map, the camera frame's grey, attract weight) for
    `Overlay.compose`; None before the first step and after a reset."""
    engine: DreamEngine
    motion: MotionSettings = field(default_factory=MotionSettings)
    attract: AttractSettings = field(default_factory=AttractSettings)

    def __post_init__(self) -> None:
        self.response = MotionResponse(self.motion, self.attract)
        self.local = LocalMotion(self.motion, self.attract) if self.motion.local else None
        self.state = MotionState()
        self.last: DreamFrame | None = None
        self._track(self.engine.size)

    def _track(self, size: tuple[int, int]) -> None:
        """A fresh flow history (at start and after a size change). Flow and motion are
        measured at the size one step dreams on: the working size, or its tile when a
        larger picture is dreamed a tile at a time (their cost stays the step's; the
        flow of walkers and of a still room needs no finer grid) and brought up to it."""
        m = self.motion
        self.size = tuple(size)
        self.tracker = FlowTracker(self.engine.step_size(size), preset=m.flow_preset, fb_check=m.fb_check,
                                   cut_confidence=m.cut_confidence)
        if m.flow:
            self.engine.warp = self.tracker.warp
        self.previous: np.ndarray | None = None
        self._steady: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the dream, the flow history and the motion state (e.g. 'r' key)."""
        self.engine.reset()
        self.response.reset()
        if self.local is not None:
            self.local.reset()
        self._track(self.engine.size)
        self.last = None

    def __call__(self, frame: np.ndarray, dt: float) -> tuple[np.ndarray, MotionState]:
        """Dream one camera frame `dt` seconds after the previous one."""
        if self.size != tuple(self.engine.size):  # adaptive size changed
            self._track(self.engine.size)
        w, h = self.size
        small = resize_image(frame, (w, h))
        result: FlowResult | None = self.tracker.update(small)   # grey at the tracker's size
        cut = bool(result is not None and result.cut)
        state = self._respond(result, dt, cut)
        if cut:
            self.engine.reset()
        elif result is not None:   # the dream and the denoiser move along the flow without its noise
            moving = state.level if isinstance(state.level, np.ndarray) else None
            flow = quieted(result.flow, moving=moving)
            if self.tracker.size == self.size:
                self.tracker.steer(flow)
            else:
                self.tracker.steer(resize_flow(flow, self.size), resize_image(result.confidence, self.size))
            result = self.tracker.last
        state = _at(state, self.size)

        flow = result.flow if (self.motion.flow and result is not None and not cut) else None
        a = state.attract
        base = self._denoise(small, result, state.level)
        if a > 0.0:
            zf = zoom_flow((w, h), self.attract.zoom, self.attract.rotate)
            base = attract_input(base, self.previous, a, self.attract)
            # the dream now lives in the fed-back picture: carry less of the residual,
            # and move what is carried with the zoom
            state.carry *= 1.0 - a
            state.gain *= 1.0 + (self.attract.gain - 1.0) * a
            flow = zf if flow is None else ((1.0 - a) * flow + a * zf).astype(np.float32)
            if result is not None and flow is not result.flow:
                self.tracker.steer(flow)
        out = self.engine.dream(base, flow=flow, gain=state.gain, carry=state.carry)
        self.previous = out
        self.state = state
        self.last = DreamFrame(out, base, state.blend, self.tracker.grey, state.attract, self._carried())
        return out, state

    def _carried(self) -> np.ndarray | None:
        """The engine's carried residual on this frame as an HWC array (a view, no copy), for
        the overlay's crossfade; on the CPU only (on CUDA it would be a second wait for the
        device each frame: the overlay measures its own flow there)."""
        c = self.engine.carried
        if c is None or c.device.type != "cpu" or c.dtype != torch.float32:
            return None
        return c[0].permute(1, 2, 0).numpy()

    def _respond(self, result: FlowResult | None, dt: float, cut: bool) -> MotionState:
        """This step's motion response: per pixel (maps) or for the whole picture."""
        if self.local is not None:
            state = self.local.update(None if result is None else result.flow, dt, cut, self.tracker.size,
                                      self.tracker.before, self.tracker.grey)
        else:
            state = self.response.update(0.0 if result is None or dt <= 0 else result.motion / dt, dt, cut)
        if not self.motion.enabled:
            state.gain = state.carry = state.blend = 1.0
        return state

    def _denoise(self, small: np.ndarray, result: FlowResult | None, level: float | np.ndarray) -> np.ndarray:
        """Motion-compensated running average of the camera picture where the flow holds
        and the scene is still: sensor noise would otherwise shimmer through the dream
        (and be dreamed on). Where the flow fails or people move it is the live picture."""
        cur = small.astype(np.float32)
        if self.motion.denoise <= 0 or result is None or result.cut or self._steady is None \
                or self._steady.shape != cur.shape:
            self._steady = cur
            return small
        weight = (self.motion.denoise * (1.0 - level) * result.confidence).astype(np.float32, copy=False)
        self._steady = cur + times_map(self.tracker.move(self._steady, result.flow) - cur, weight)
        return np.clip(self._steady + 0.5, 0, 255).astype(np.uint8)  # cubic may overshoot

