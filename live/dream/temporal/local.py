"""Local (per-pixel) motion response: a few walkers must not make the whole room "moving".

The global response (motion.py) turns one number for the whole picture (the 90th
percentile of the flow) into one level, so anyone walking anywhere made the still floor
and walls give up their dream. Here the level is a map at working size:

    flow (backward, px per frame)  ->  |flow - camera's own| / dt  (px/s)
      x evidence: the picture really changed there (DIS spreads a walker's flow over the
        flat floor around it; where nothing changed beyond sensor noise it is not motion)
      -> max filter (`dilate`) + Gaussian (`sigma`): a walker counts as a whole
      -> target = (m - still) / (moving - still), clipped to 0..1
      -> level: the previous level moved along the flow (it travels with the walker),
         then per pixel attack/release towards the target (time comes in as dt)
      -> gain / carry / blend maps = lerp(1, moving_*, level)

Attract mode keys on the whole room: `room` is a high percentile of the motion map (one
walker anywhere is motion), fed to the existing MotionResponse for its idle timer and
attract weight only."""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..settings import AttractSettings, MotionSettings
from .flow import camera_shift, shift_image, warp_image
from .motion import MotionResponse, MotionState, lerp

ROOM_PERCENTILE = 99.5   # of the motion map: the room moves when a small part of it does
CHANGE_SIGMA = 1.5       # px at 320 wide: blur of the frame difference (the evidence)


class LocalMotion:
    """Motion map with per-pixel attack/release; `update(flow, dt, ...)` once per dream
    step. Time is passed in (dt), never read from a clock."""

    def __init__(self, motion: MotionSettings = MotionSettings(), attract: AttractSettings = AttractSettings()):
        self.s = motion
        self.room_response = MotionResponse(motion, attract)  # idle timer and attract weight
        self.level: np.ndarray | None = None
        self.pan = 0.0                         # smoothed 0..1: how fast the camera itself moves
        self.map: np.ndarray | None = None     # the last smoothed motion map, px/s
        self.shift: np.ndarray | None = None   # the camera's own motion in the last flow, px

    def reset(self) -> None:
        self.level = self.map = None
        self.pan = 0.0
        self.room_response.reset()

    def _scaled(self, width: int) -> tuple[float, int]:
        k = width / 320.0     # sigma and dilate are given for a 320-wide working size
        return self.s.sigma * k, max(0, int(round(self.s.dilate * k)))

    def evidence(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        """0..1 per pixel: how much the grey picture really changed beyond sensor noise."""
        d = cv2.absdiff(prev, cur).astype(np.float32)
        d = cv2.GaussianBlur(d, (0, 0), CHANGE_SIGMA * cur.shape[1] / 320.0)
        x = np.clip((d - self.s.change_floor) * (1.0 / self.s.change_range), 0.0, 1.0)
        return x * x * (3.0 - 2.0 * x)

    def motion_map(self, flow: np.ndarray, dt: float, prev: np.ndarray | None = None,
                   cur: np.ndarray | None = None) -> np.ndarray:
        """Backward flow (px/frame) -> smoothed motion in px/s, h x w float32; the two grey
        frames of that flow (optional) gate it by real change."""
        s = self.s
        shift = self.shift = camera_shift(flow) if s.compensate else None
        rel = flow if shift is None else flow - shift
        mag = cv2.magnitude(np.ascontiguousarray(rel[..., 0]), np.ascontiguousarray(rel[..., 1]))
        mag *= 1.0 / max(dt, 1e-6)
        if s.change_range > 0 and prev is not None and cur is not None and prev.shape == cur.shape:
            if shift is not None and float(np.abs(shift).max()) > 0.05:
                prev = shift_image(prev, shift)
            mag *= self.evidence(prev, cur)
        sigma, radius = self._scaled(flow.shape[1])
        if radius > 0:
            mag = cv2.dilate(mag, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
        if sigma > 0:
            mag = cv2.GaussianBlur(mag, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        return mag

    def target(self, m: np.ndarray) -> np.ndarray:
        s = self.s
        return np.clip((m - s.still) * (1.0 / max(s.moving - s.still, 1e-6)), 0.0, 1.0).astype(np.float32)

    def _pan(self, dt: float, cut: bool) -> None:
        """The camera's own speed as a 0..1 level (attack/release as the map's). A panning
        camera is not a visitor: the dream is carried along with the scene, but each step
        re-dreams the moved picture, and at full strength that change (not the warp) made
        the dream swim on a pan (warp error 2x the input's at 320x240, 10 steps/s); a pan
        steps as gently as motion does, so the dream rides along with the scene."""
        if cut or self.shift is None or dt <= 0.0:
            goal = 0.0 if not cut else self.pan
        else:
            goal = float(self.target(np.float32(np.hypot(*self.shift) / dt)))
        tau = self.s.attack if goal > self.pan else self.s.release
        self.pan += (goal - self.pan) * (1.0 - math.exp(-dt / tau) if tau > 0 and dt > 0 else 1.0)

    def update(self, flow: np.ndarray | None, dt: float, cut: bool = False, size: tuple[int, int] | None = None,
               prev: np.ndarray | None = None, cur: np.ndarray | None = None) -> MotionState:
        """`flow`: backward working-size flow since the previous step (None: nothing to
        compare with yet; then `size` (w, h) gives the map's size); `prev`/`cur`: the grey
        frames of that flow. A cut counts as full motion everywhere."""
        dt = max(0.0, float(dt))
        self.shift = None
        h, w = flow.shape[:2] if flow is not None else (size[1], size[0])
        if self.level is None or self.level.shape != (h, w):
            self.level = np.zeros((h, w), np.float32)
        goal, room = None, 0.0
        if cut:
            goal, room = np.ones((h, w), np.float32), math.inf
        elif flow is not None and dt > 0.0:
            self.map = self.motion_map(flow, dt, prev, cur)
            goal = self.target(self.map)
            room = float(np.percentile(self.map[::2, ::2], ROOM_PERCENTILE))
            if self.shift is not None:   # a panning or bumped camera is not an empty room either
                room = max(room, float(np.hypot(*self.shift)) / dt)
        level = self.level
        if flow is not None and not cut:
            level = warp_image(level, flow)  # the level travels with what moves
        if goal is not None and dt > 0.0:
            s = self.s
            ka = 1.0 - math.exp(-dt / s.attack) if s.attack > 0 else 1.0
            kr = 1.0 - math.exp(-dt / s.release) if s.release > 0 else 1.0
            level = level + (goal - level) * np.where(goal > level, np.float32(ka), np.float32(kr))
        self.level = level.astype(np.float32, copy=False)
        self._pan(dt, cut)
        g = self.room_response.update(room, dt, cut)
        s = self.s
        steady = np.maximum(self.level, np.float32(self.pan))
        return MotionState(level=self.level, gain=lerp(1.0, s.moving_gain, steady),
                           carry=lerp(1.0, s.moving_carry, self.level), blend=lerp(1.0, s.moving_blend, self.level),
                           attract=g.attract, idle=g.idle, preset_due=g.preset_due, motion=room, cut=cut, room=room)
