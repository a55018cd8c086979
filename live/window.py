"""The pygame display: fullscreen on a chosen monitor (borderless, cursor hidden) or a
resizable window; whether a display exists at all; and snapshots of what is on it.
Imports no torch, so `python -m live` on a screenless box says so at once."""
from __future__ import annotations

import io
import logging
import os
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pygame

from .dream.files import atomic, cause

if TYPE_CHECKING:
    from .config import RenderConfig

log = logging.getLogger(__name__)


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


def write_png(surface: pygame.Surface, path: Path, what: str = "snapshot") -> Path:
    """Encode in memory, then write via a temporary name and rename: every write is
    checked (a full disk is a WriteError naming the file) and there is never a
    half-written file under the name."""
    data = io.BytesIO()
    pygame.image.save(surface, data, "x.png")
    with atomic(path, what) as tmp:
        tmp.write_bytes(data.getvalue())
    return path


def snapshot(surface: pygame.Surface, folder: str | Path, background: bool = True,
             on_error: Callable[[str], None] | None = None) -> Path:
    """PNG of what is on screen into `folder`; the copy is taken now, the file written in
    the background so the display does not stutter. A failure is logged (and told to
    `on_error`, for the screen); the show goes on."""
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
            if on_error is not None:
                on_error(f"snapshot failed: {cause(exc)}")

    threading.Thread(target=work, name="snapshot", daemon=True).start()
    return path
