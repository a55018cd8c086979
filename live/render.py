"""pygame renderer: the live picture and the dream, blended, crossfaded and scaled to the
screen, with the HUD and the help overlay.

It never waits for the dream. Each new picture is scaled once, when it arrives, into a
surface in the screen's format; every display frame is then three blits (dream, the
next dream faded in, the live picture faded over), which holds the display rate at
1280x720 while a 10 Hz dream still looks fluid. The same Compositor draws the headless
recordings onto an off-screen surface."""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pygame

from .files import finish, partial_name

if TYPE_CHECKING:  # not at run time: the no-display check must not wait for torch to load
    from .config import RenderConfig

log = logging.getLogger(__name__)

HUD_COLOR = (235, 235, 235)
PANEL_RGBA = (0, 0, 0, 160)
MESSAGE_SECONDS = 2.5


@dataclass(frozen=True)
class View:
    """What the renderer reads from the shared state each display frame."""
    blend: float = 0.85          # 0 = live picture only, 1 = dream only
    mirror: bool = False
    crossfade: bool = True
    scale: str = "fill"          # fill | letterbox
    hud: bool = False
    help: bool = False
    message: str = ""            # a short notice (preset name, snapshot saved)
    message_time: float = 0.0    # time.monotonic() when the notice was given


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
        pygame.font.init()
        self.font_px = font_px
        self.live, self.prev, self.cur = Layer(), Layer(), Layer()
        self._live_img: np.ndarray | None = None
        self._dream_imgs: list[np.ndarray] = []      # [previous, current]
        self._has_dream = False
        self._arrived = 0.0
        self._interval = 0.1                         # EMA of time between dreams (crossfade length)
        self._key: tuple | None = None               # (target size, scale, mirror, live size)
        self._crop = (0.0, 0.0, 1.0, 1.0)
        self.rect = pygame.Rect(0, 0, 1, 1)
        self._fonts: dict[int, pygame.font.Font] = {}
        self._hud_cache: tuple[tuple, pygame.Surface] | None = None
        self._help_cache: tuple[tuple, pygame.Surface] | None = None
        self._msg_cache: tuple[str, pygame.Surface] | None = None
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
            self._text_center(target, "waiting for the first picture ...")
        else:
            self._refresh(target, view)
            if view.scale == "letterbox":
                target.fill((0, 0, 0))
            self._blend(target, view, now)
        if view.hud and hud_lines:
            self._draw_hud(target, tuple(hud_lines))
        if view.message and now - view.message_time < MESSAGE_SECONDS:
            self._draw_message(target, view.message)
        if view.help and help_lines:
            self._draw_help(target, help_lines)

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

    # -- text -----------------------------------------------------------------------------
    def _font(self, target: pygame.Surface, scale: float = 1.0) -> pygame.font.Font:
        px = int((self.font_px or max(14, target.get_height() // 38)) * scale)
        if px not in self._fonts:
            self._fonts[px] = pygame.font.Font(None, px)
        return self._fonts[px]

    def _panel(self, rows: list[pygame.Surface], pad: int) -> pygame.Surface:
        w = max(r.get_width() for r in rows) + 2 * pad
        h = sum(r.get_height() for r in rows) + 2 * pad
        panel = pygame.Surface((w, h), pygame.SRCALPHA)
        panel.fill(PANEL_RGBA)
        y = pad
        for r in rows:
            panel.blit(r, (pad, y))
            y += r.get_height()
        return panel

    def _draw_hud(self, target: pygame.Surface, lines: tuple[str, ...]) -> None:
        key = (lines, target.get_height())
        if self._hud_cache is None or self._hud_cache[0] != key:
            font = self._font(target)
            self._hud_cache = (key, self._panel([font.render(t, True, HUD_COLOR) for t in lines], 8))
        target.blit(self._hud_cache[1], (10, 10))

    def _draw_help(self, target: pygame.Surface, lines: list[tuple[str, str]]) -> None:
        key = (tuple(lines), target.get_size())
        if self._help_cache is None or self._help_cache[0] != key:
            font = self._font(target, 1.15)
            keys_w = max(font.size(k)[0] for k, _ in lines) + 24
            rows = [font.render("Dreamcam keys", True, (255, 220, 120))]
            for k, text in lines:
                row = pygame.Surface((keys_w + font.size(text)[0], font.get_linesize()), pygame.SRCALPHA)
                row.blit(font.render(k, True, (255, 220, 120)), (0, 0))
                row.blit(font.render(text, True, HUD_COLOR), (keys_w, 0))
                rows.append(row)
            self._help_cache = (key, self._panel(rows, 16))
        panel = self._help_cache[1]
        tw, th = target.get_size()
        target.blit(panel, ((tw - panel.get_width()) // 2, max(0, (th - panel.get_height()) // 2)))

    def _draw_message(self, target: pygame.Surface, text: str) -> None:
        if self._msg_cache is None or self._msg_cache[0] != text:
            font = self._font(target, 1.3)
            self._msg_cache = (text, self._panel([font.render(text, True, HUD_COLOR)], 10))
        panel = self._msg_cache[1]
        tw, th = target.get_size()
        target.blit(panel, ((tw - panel.get_width()) // 2, th - panel.get_height() - th // 12))

    def _text_center(self, target: pygame.Surface, text: str) -> None:
        surf = self._font(target, 1.3).render(text, True, HUD_COLOR)
        tw, th = target.get_size()
        target.blit(surf, ((tw - surf.get_width()) // 2, (th - surf.get_height()) // 2))


# -- the window ---------------------------------------------------------------------------

def display_problem() -> str | None:
    """None when a window can be opened here, else one line saying why not. Without a
    display SDL quietly falls back to an invisible off-screen driver; that counts as none
    unless SDL_VIDEODRIVER asked for it."""
    if (sys.platform.startswith("linux") and not os.environ.get("SDL_VIDEODRIVER")
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
            and not os.path.exists("/dev/dri")):  # no X, no Wayland, no KMS console
        return "no display (DISPLAY and WAYLAND_DISPLAY are not set)"
    try:
        pygame.display.init()
    except pygame.error as exc:
        return f"no display ({exc})"
    driver = pygame.display.get_driver()
    if driver in ("offscreen", "dummy") and os.environ.get("SDL_VIDEODRIVER") != driver:
        pygame.display.quit()
        return "no display (DISPLAY/WAYLAND_DISPLAY not set or not reachable)"
    return None


class Window:
    """The pygame display: fullscreen on a chosen monitor (borderless, cursor hidden) or
    a resizable window."""

    def __init__(self, cfg: RenderConfig, title: str = "Dreamcam"):
        pygame.display.init()
        pygame.font.init()
        pygame.display.set_caption(title)
        self.cfg = cfg
        self.fullscreen = cfg.fullscreen
        self.screen = self._open(self.fullscreen)

    def _display_index(self) -> int:
        count = pygame.display.get_num_displays()
        if self.cfg.display >= count:
            log.warning("render.display = %d but only %d display(s); using display 0", self.cfg.display, count)
            return 0
        return self.cfg.display

    def _open(self, fullscreen: bool) -> pygame.Surface:
        d = self._display_index()
        if fullscreen:
            size = pygame.display.get_desktop_sizes()[d]
            screen = pygame.display.set_mode(size, pygame.FULLSCREEN | pygame.NOFRAME, display=d)
        else:
            screen = pygame.display.set_mode((self.cfg.width, self.cfg.height), pygame.RESIZABLE, display=d)
        pygame.mouse.set_visible(not fullscreen)
        log.info("display: %s %dx%d on display %d (%s)", "fullscreen" if fullscreen else "window",
                 *screen.get_size(), d, pygame.display.get_driver())
        return screen

    def set_fullscreen(self, on: bool) -> None:
        if on != self.fullscreen:
            self.fullscreen = on
            self.screen = self._open(on)

    def resized(self) -> None:
        """After a VIDEORESIZE: pick up the new screen surface."""
        self.screen = pygame.display.get_surface()

    def present(self) -> None:
        pygame.display.flip()

    def close(self) -> None:
        pygame.display.quit()


# -- snapshots ----------------------------------------------------------------------------

def write_png(surface: pygame.Surface, path: Path) -> Path:
    """Write via a temporary name and rename, so there is never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(path)
    pygame.image.save(surface, str(tmp))
    return finish(tmp, path)


def snapshot(surface: pygame.Surface, folder: str | Path, background: bool = True) -> Path:
    """PNG of what is on screen into `folder`; the copy is taken now, the file written in
    the background so the display does not stutter."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]
    path = Path(folder) / f"dreamcam-{stamp}.png"
    copy = surface.copy()
    if not background:
        return write_png(copy, path)

    def work() -> None:
        try:
            write_png(copy, path)
            log.info("snapshot saved: %s", path)
        except Exception as exc:
            log.error("snapshot failed: %s", exc)

    threading.Thread(target=work, name="snapshot", daemon=True).start()
    return path
