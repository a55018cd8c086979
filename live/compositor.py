"""The compositor: the live picture and the dream, blended, crossfaded and scaled to a
pygame surface (the screen, or an off-screen surface for recordings), with the text
panels of hud.py on top.

It never waits for the dream. Each new picture is scaled once, when it arrives, into a
surface in the screen's format; every display frame is then three blits (dream, the
next dream faded in, the live picture faded over), which holds the display rate at
1280x720 while a 10 Hz dream still looks fluid. The same Compositor draws the headless
recordings onto an off-screen surface."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pygame

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

    def __init__(self, font_px: int | None = None):
        self.panels = Panels(font_px)
        self.live, self.prev, self.cur = Layer(), Layer(), Layer()
        self._live_img: np.ndarray | None = None
        self._dream_imgs: list[np.ndarray] = []      # [previous, current]
        self._has_dream = False
        self._arrived = 0.0
        self._interval = 0.1                         # EMA of time between dreams (crossfade length)
        self._key: tuple | None = None               # (target size, scale, mirror, live size)
        self._crop = (0.0, 0.0, 1.0, 1.0)
        self.rect = pygame.Rect(0, 0, 1, 1)
        self._template: pygame.Surface | None = None
        self._live_dirty = False
        self._dream_dirty = False

    # -- pictures -------------------------------------------------------------------------
    def set_live(self, img: np.ndarray) -> None:
        self._live_img = img
        self._live_dirty = True

    def set_dream(self, img: np.ndarray | None, now: float | None = None) -> None:
        """A new dream frame (None = no dream available: show the live picture)."""
        now = time.monotonic() if now is None else now
        if img is None:
            self._has_dream = False
            self._dream_imgs = []
            return
        if self._has_dream and self._arrived:
            self._interval += 0.3 * (min(now - self._arrived, 1.0) - self._interval)
        self._arrived = now
        self._dream_imgs = (self._dream_imgs[-1:] + [img])
        self.prev, self.cur = self.cur, self.prev
        self._dream_dirty = True
        self._has_dream = True

    def _refresh(self, target: pygame.Surface, view: View) -> None:
        """Upload whatever is new; re-place everything when the screen, the scale mode,
        the mirror or the live picture's size changed."""
        live = self._live_img
        key = (target.get_size(), view.scale, view.mirror, live.shape[:2])
        all_new = key != self._key or self._template is None or self._template.get_bitsize() != target.get_bitsize()
        if all_new:
            self._template = target
            self._crop, self.rect = placement((live.shape[1], live.shape[0]), target.get_size(), view.scale)
            self._key = key
        if all_new or self._live_dirty:
            self.live.update(live, self._crop, self.rect, self._template, view.mirror)
            self._live_dirty = False
        if self._dream_imgs and (all_new or self._dream_dirty):
            self.cur.update(self._dream_imgs[-1], self._crop, self.rect, self._template, view.mirror)
            if all_new and len(self._dream_imgs) > 1:
                self.prev.update(self._dream_imgs[0], self._crop, self.rect, self._template, view.mirror)
            self._dream_dirty = False

    # -- drawing --------------------------------------------------------------------------
    def draw(self, target: pygame.Surface, view: View, hud_lines: tuple[str, ...] = (),
             help_lines: list[tuple[str, str]] | None = None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._live_img is None:
            target.fill((0, 0, 0))
            self.panels.text_center(target, "waiting for the first picture ...")
        else:
            self._refresh(target, view)
            if view.scale == "letterbox":
                target.fill((0, 0, 0))
            self._blend(target, view, now)
        message = view.message if now - view.message_time < MESSAGE_SECONDS else ""
        self.panels.draw(target, hud_lines if view.hud else (), message, help_lines if view.help else None)

    def crossfade_weight(self, view: View, now: float) -> float:
        """How far the newest dream has faded in over the previous one (0..1)."""
        if not view.crossfade or len(self._dream_imgs) < 2 or self.prev.surface is None:
            return 1.0
        return min(1.0, max(0.0, (now - self._arrived) / max(self._interval, 1e-3)))

    def _blend(self, target: pygame.Surface, view: View, now: float) -> None:
        """screen = (1 - blend) * live + blend * ((1 - u) * previous dream + u * newest dream)."""
        live = self.live.surface
        b = view.blend if self._has_dream and self.cur.surface is not None else 0.0
        if b <= 0.0:
            live.set_alpha(None)
            target.blit(live, self.rect)
            return
        u = self.crossfade_weight(view, now)
        cur = self.cur.surface
        if u < 1.0:
            prev = self.prev.surface
            prev.set_alpha(None)
            target.blit(prev, self.rect)
            cur.set_alpha(round(255 * u))
        else:
            cur.set_alpha(None)
        target.blit(cur, self.rect)
        if b < 1.0:
            live.set_alpha(round(255 * (1.0 - b)))
            target.blit(live, self.rect)
