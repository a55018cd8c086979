"""The pygame display: fullscreen on a chosen monitor (borderless, cursor hidden) or a
resizable window; whether a display exists at all; and snapshots of what is on it.
Imports no torch, so `python -m live` on a screenless box says so at once."""
from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pygame

from .dream.files import atomic, cause

if TYPE_CHECKING:
    from .config import RenderConfig

log = logging.getLogger(__name__)

SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "software rasterizer", "lavapipe")
GL_RENDERER = 0x1F01


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


def gl_renderer() -> str | None:
    """The OpenGL renderer SDL would draw the window with (its GL_RENDERER string, e.g.
    "llvmpipe (LLVM 15.0.6, 256 bits)"), read from a hidden 1x1 OpenGL window; None when
    there is no OpenGL. Leaves the display initialised (same driver) with no window."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("GL")
    if not name:
        return None
    driver = pygame.display.get_driver()
    try:
        pygame.display.set_mode((1, 1), pygame.OPENGL | pygame.HIDDEN)
        gl = ctypes.CDLL(name)  # the library SDL loaded: its context is current on this thread
        gl.glGetString.restype = ctypes.c_char_p
        gl.glGetString.argtypes = [ctypes.c_uint]
        value = gl.glGetString(GL_RENDERER)
        return value.decode(errors="replace") if value else None
    except (pygame.error, OSError, AttributeError):
        return None
    finally:  # a fresh video subsystem (a new window, placed anew) reads SDL's framebuffer hint anew
        pygame.display.quit()
        _init_driver(driver)


def _init_driver(driver: str) -> None:
    """pygame.display.init() on `driver` (once seen to fall back to 'offscreen' under load)."""
    previous = os.environ.get("SDL_VIDEODRIVER")
    os.environ["SDL_VIDEODRIVER"] = driver
    try:
        for attempt in range(3):
            try:
                pygame.display.init()
                return
            except pygame.error:
                if attempt == 2:
                    raise
                time.sleep(0.5)
    finally:
        if previous is None:
            os.environ.pop("SDL_VIDEODRIVER", None)
        else:
            os.environ["SDL_VIDEODRIVER"] = previous


def choose_framebuffer() -> None:
    """On X11, SDL copies the window's pixels into an OpenGL texture whenever it finds any
    OpenGL, a software one (Mesa's llvmpipe under Xvfb or without a GPU driver) included:
    that costs more CPU than the drawing itself. Where OpenGL is software, ask for the plain
    X11 shared-memory framebuffer instead (measured under Xvfb: display.flip 1.7 ms of the
    main thread plus ~5 ms of llvmpipe threads -> 0.1 ms). A real GPU keeps SDL's default;
    SDL_FRAMEBUFFER_ACCELERATION set by the user is left alone."""
    if "SDL_FRAMEBUFFER_ACCELERATION" in os.environ or pygame.display.get_driver() != "x11":
        return
    renderer = gl_renderer()
    if renderer and any(s in renderer.lower() for s in SOFTWARE_GL):
        os.environ["SDL_FRAMEBUFFER_ACCELERATION"] = "0"
        log.info("display: OpenGL is software here (%s); drawing through X11 shared memory instead", renderer)


class Window:
    """The pygame display: fullscreen on a chosen monitor (borderless, cursor hidden) or
    a resizable window."""

    def __init__(self, cfg: RenderConfig, title: str = "Dreamcam"):
        pygame.display.init()
        choose_framebuffer()
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
