"""What every video out shares (NDI, a virtual camera): the window loop and the headless
recorder offer every frame they make (copied at most `fps` a second); a thread of its own
sends the newest one, at most `fps` a second, so the display never waits for a receiver.
While nobody watches (a sink can tell) nothing is copied or sent. The size is the first frame's; a frame of another
size (a window resized) is scaled to it. A sink that fails ends its output with one log
line, never the show."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager
from typing import Callable

import cv2
import numpy as np
import pygame

from .capture import Slot

log = logging.getLogger(__name__)

OFFER_EARLY = 0.9      # an offer is taken this share of a send period after the last one


class OutputUnavailable(RuntimeError):
    """A video out that cannot run here: the reason, in one line."""


class Sink(AbstractContextManager):
    """One opened output: `send(frame)` and whether anybody watches."""

    def send(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def watched(self) -> bool:
        return True


class FrameOutput:
    """`offer_surface` / `offer_rgb` from the renderer; `start()` / `stop()` from the app.
    Subclasses say their pixel layout ("BGRA" or "RGB") and open their sink."""
    pixel = "BGRA"
    kind = "video out"

    def __init__(self, name: str, fps: float, now: Callable[[], float] = time.monotonic):
        self.name, self.fps, self.now = name, fps, now
        self._next_offer = 0.0
        self.slot: Slot[np.ndarray] = Slot()     # newest frame, in `pixel` layout
        self.size: tuple[int, int] | None = None
        self.sent = 0
        self.watched = True    # the sender thread knows: nothing is copied while nobody watches
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def maybe(cls, enabled: bool, *args) -> "FrameOutput | None":
        """The output when asked for and possible; else None (with one line when asked for)."""
        if not enabled:
            return None
        try:
            return cls(*args)
        except OutputUnavailable as exc:
            log.warning("%s; carrying on without it", exc)
            return None

    def open(self, w: int, h: int) -> Sink:
        raise NotImplementedError

    def _wanted(self) -> bool:
        """Copy a frame only while somebody watches and at most `fps` a second: the window
        draws 60 a second, an output sends 30, and each copy is the whole screen. Taken a
        little early, so the sender never finds only a frame a period old."""
        if not self.watched and self.size is not None:
            return False
        t = self.now()
        if t < self._next_offer:
            return False
        self._next_offer = t + OFFER_EARLY / self.fps
        return True

    def offer_surface(self, surface: pygame.Surface) -> None:
        if not self._wanted():
            return
        w, h = surface.get_size()   # read-only bytes: the sender thread makes a writable copy if needed
        data = np.frombuffer(pygame.image.tobytes(surface, self.pixel), np.uint8)
        self.slot.put(data.reshape(h, w, len(self.pixel)))

    def offer_rgb(self, rgb: np.ndarray) -> None:
        if not self._wanted():
            return
        self.slot.put(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA) if self.pixel == "BGRA" else rgb)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.kind, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        log.info("%s '%s': %d frames sent", self.kind, self.name, self.sent)

    def _run(self) -> None:
        try:
            self._send_all()
        except Exception as exc:   # the output failing must not end the show
            log.error("%s stopped: %s", self.kind, exc)

    def _send_all(self) -> None:
        seq, frame = 0, None
        while frame is None and not self._stop.is_set():
            seq, frame = self.slot.wait(seq, timeout=0.5)
        if frame is None:
            return
        h, w = frame.shape[:2]
        self.size = (w, h)
        period, due = 1.0 / self.fps, time.monotonic()
        with self.open(w, h) as sink:
            log.info("%s '%s' at %dx%d, up to %g fps", self.kind, self.name, w, h, self.fps)
            while not self._stop.wait(max(0.0, due - time.monotonic())):   # at most fps frames a second
                due = max(due + period, time.monotonic())
                if frame.shape[:2] != (h, w):
                    frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
                elif not frame.flags.writeable:   # cyndilib refuses read-only buffers
                    frame = frame.copy()
                self.watched = sink.watched()
                if self.watched:
                    sink.send(frame)
                    self.sent += 1
                new, img = self.slot.wait(seq, timeout=0.5)
                if new != seq and img is not None:
                    seq, frame = new, img
