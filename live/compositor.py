"""The compositor: the live picture with the dream on it (the dream core's Overlay: the
dream's detail moved to the newest camera frame, crossfaded between dreams), scaled to a
pygame surface (the screen, or an off-screen surface for recordings), with the text
panels of hud.py on top.

It never waits for the dream. The picture is composed and scaled once, when a new camera
frame or a new dream arrives (or the blend changes), into a surface in the screen's
format; every display frame is then one blit, which holds the display rate at 1280x720
while a 10 Hz dream still looks fluid. The same Compositor draws the headless recordings
onto an off-screen surface.

`picture_fps` caps how often a new camera picture is composed (the window's: every
picture of a 50 fps clip kept its thread at half a core of 2, and the dream 15% slower);
the display still presents at its own rate, and the newest picture always comes next."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pygame

from .dream.temporal.overlay import DreamFrame, Overlay
from .hud import MESSAGE_SECONDS, Panels
from .state import View


def placement(src: tuple[int, int], dst: tuple[int, int], mode: str) -> tuple[tuple[float, float, float, float], pygame.Rect]:
    """Where a src-sized picture goes on a dst-sized screen keeping its aspect: the
    visible part of the source as fractions (x0, y0, x1, y1), and the screen rect.
    `fill` crops the source to cover the screen; `letterbox` shows all of it."""
    sw, sh = src
    dw, dh = dst
    if mode == "fill":
        scale = max(dw / sw, dh / sh)
        fx = (1.0 - dw / (sw * scale)) / 2.0
        fy = (1.0 - dh / (sh * scale)) / 2.0
        return (fx, fy, 1.0 - fx, 1.0 - fy), pygame.Rect(0, 0, dw, dh)
    scale = min(dw / sw, dh / sh)
    w, h = max(1, round(sw * scale)), max(1, round(sh * scale))
    return (0.0, 0.0, 1.0, 1.0), pygame.Rect((dw - w) // 2, (dh - h) // 2, w, h)


class Layer:
    """One picture stream (live or dream), scaled once per new picture into a surface in
    the target's format. OpenCV does the crop, resize and mirror into reused buffers
    (faster than pygame's smoothscale); one blit converts to the screen's format."""

    def __init__(self) -> None:
        self.surface: pygame.Surface | None = None
        self._buf: np.ndarray | None = None
        self._flip: np.ndarray | None = None

    def update(self, img: np.ndarray, crop: tuple[float, float, float, float], rect: pygame.Rect,
               template: pygame.Surface, mirror: bool) -> None:
        h, w = img.shape[:2]
        x0, y0, x1, y1 = crop
        px0, py0 = min(w - 1, round(x0 * w)), min(h - 1, round(y0 * h))
        px1, py1 = max(px0 + 1, round(x1 * w)), max(py0 + 1, round(y1 * h))
        part = img[py0:py1, px0:px1]
        size = rect.size
        if self.surface is None or self.surface.get_size() != size:
            self.surface = pygame.Surface(size, 0, template)
        shape = (size[1], size[0], 3)
        if self._buf is None or self._buf.shape != shape:
            self._buf = np.empty(shape, np.uint8)
            self._flip = np.empty(shape, np.uint8)
        if part.shape == shape:
            np.copyto(self._buf, part)
        else:
            interp = cv2.INTER_AREA if part.shape[1] > size[0] else cv2.INTER_LINEAR
            cv2.resize(part, size, dst=self._buf, interpolation=interp)
        out = self._buf
        if mirror:
            cv2.flip(self._buf, 1, dst=self._flip)
            out = self._flip
        # a surface header over the buffer (no copy); the blit is the one format conversion
        self.surface.blit(pygame.image.frombuffer(out, size, "RGB"), (0, 0))


class Compositor:
    """Draws live + dream (+ HUD, help, notices) onto a target surface."""

    def __init__(self, font_px: int | None = None, picture_fps: float = 0.0):
        """`picture_fps`: new camera pictures composed a second at most (0: every one)."""
        self.panels = Panels(font_px)
        self.period = 1.0 / picture_fps if picture_fps > 0 else 0.0
        self._due = float("-inf")                    # when the next camera picture may be composed
        self.took_live = False                       # the last draw composed the newest camera picture
        self.live = Layer()
        self.overlay = Overlay()
        self._live_img: np.ndarray | None = None
        self._dream: DreamFrame | None = None
        self._dreams = 0                             # dreams arrived (a crossfade needs two)
        self._arrived = 0.0
        self._interval = 0.1                         # EMA of time between dreams (crossfade length)
        self._key: tuple | None = None               # (target size, scale, mirror, live size)
        self._blend: float | None = None             # the blend the live layer's picture was composed with
        self._crop = (0.0, 0.0, 1.0, 1.0)
        self.rect = pygame.Rect(0, 0, 1, 1)
        self._template: pygame.Surface | None = None
        self._dirty = False
        self._dream_dirty = False

    # -- pictures -------------------------------------------------------------------------
    def set_live(self, img: np.ndarray) -> None:
        self._live_img = img
        self._dirty = True

    def set_dream(self, dream: DreamFrame | None, now: float | None = None) -> None:
        """A new dream (None = no dream available: show the live picture)."""
        now = time.monotonic() if now is None else now
        self._dream_dirty = True
        if dream is None:
            self._dream, self._dreams = None, 0
            return
        if self._dreams and self._arrived:
            self._interval += 0.3 * (min(now - self._arrived, 1.0) - self._interval)
        self._arrived = now
        self._dream = dream
        self.overlay.arrive(dream)
        self._dreams += 1

    def _refresh(self, target: pygame.Surface, view: View, now: float) -> None:
        """Compose and upload when something new arrived (or the blend changed); re-place
        everything when the screen, the scale mode, the mirror or the live picture's size
        changed."""
        live = self._live_img
        key = (target.get_size(), view.scale, view.mirror, live.shape[:2])
        all_new = key != self._key or self._template is None or self._template.get_bitsize() != target.get_bitsize()
        if all_new:
            self._template = target
            self._crop, self.rect = placement((live.shape[1], live.shape[0]), target.get_size(), view.scale)
            self._key = key
        # composing costs a flow, a warp and an upscale: once per camera frame (at most
        # picture_fps a second), not per display frame; the crossfade moves on with the
        # camera's frames. A new dream alone is composed at once only when it would show
        # at once (no crossfade, or no camera frame came during its whole fade: frozen)
        u = self.crossfade_weight(view, now)
        self.took_live = False
        if all_new or self._blend != view.blend or (self._dirty and now >= self._due - 0.25 * self.period) \
                or (self._dream_dirty and u >= 1.0):
            picture = self.overlay.compose(live, self._dream, view.blend, u)
            self.live.update(picture, self._crop, self.rect, self._template, view.mirror)
            self._blend = view.blend
            self.took_live = self._dirty
            # on a steady schedule: a camera at the cap's own rate, a little early, is not
            # held back a display frame; one late picture does not delay the next
            if self._dirty and self.period:
                self._due = max(self._due + self.period, now)
            self._dirty = self._dream_dirty = False

    # -- drawing --------------------------------------------------------------------------
    def draw(self, target: pygame.Surface, view: View, hud_lines: tuple[str, ...] = (),
             help_lines: list[tuple[str, str]] | None = None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._live_img is None:
            target.fill((0, 0, 0))
            self.panels.text_center(target, "waiting for the first picture ...")
        else:
            self._refresh(target, view, now)
            if view.scale == "letterbox":
                target.fill((0, 0, 0))
            target.blit(self.live.surface, self.rect)
        message = view.message if now - view.message_time < MESSAGE_SECONDS else ""
        self.panels.draw(target, hud_lines if view.hud else (), message, help_lines if view.help else None)

    def crossfade_weight(self, view: View, now: float) -> float:
        """How far the newest dream has faded in over the previous one (0..1)."""
        if not view.crossfade or self._dreams < 2:
            return 1.0
        return min(1.0, max(0.0, (now - self._arrived) / max(self._interval, 1e-3)))
