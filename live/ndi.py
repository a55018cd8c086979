"""Video out for VJ software: the composed picture as an NDI source (cyndilib, which carries
its own NDI runtime), so Resolume, TouchDesigner or OBS take it like a camera. Optional:
without cyndilib, `[output] ndi = true` is one log line and the show goes on.

The window loop and the headless recorder offer every frame they make; a thread of its own
sends the newest one, at most `fps` a second (each is compressed here), so the display
never waits for the network. While no receiver is
connected nothing is copied or sent (the source stays listed). The source's size is the
first frame's; a frame of another size (a window resized) is scaled to it."""
from __future__ import annotations

import logging
import threading
import time
from fractions import Fraction

import cv2
import numpy as np
import pygame

from .capture import Slot

log = logging.getLogger(__name__)


class NdiUnavailable(RuntimeError):
    """cyndilib cannot be imported or cannot start here: the reason, in one line."""


class NdiOutput:
    """`offer_surface` / `offer_rgb` from the renderer; `start()` / `stop()` from the app."""

    def __init__(self, name: str, fps: float = 30.0):
        try:
            import cyndilib  # noqa: F401  (the NDI runtime comes with it)
        except ImportError as exc:
            raise NdiUnavailable(f"NDI output needs cyndilib ({exc}); pip install cyndilib") from None
        self.name, self.fps = name, fps
        self.slot: Slot[np.ndarray] = Slot()     # newest frame, BGRA
        self.size: tuple[int, int] | None = None
        self.sent = 0
        self.watched = True    # a receiver is connected (the sender thread knows): nothing is copied otherwise
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def maybe(cls, enabled: bool, name: str, fps: float) -> "NdiOutput | None":
        """The output when asked for and possible; else None (with one line when asked for)."""
        if not enabled:
            return None
        try:
            return cls(name, fps)
        except NdiUnavailable as exc:
            log.warning("%s; carrying on without it", exc)
            return None

    def offer_surface(self, surface: pygame.Surface) -> None:
        if not self.watched and self.size is not None:
            return
        w, h = surface.get_size()   # read-only bytes: the sender thread makes the writable copy NDI wants
        self.slot.put(np.frombuffer(pygame.image.tobytes(surface, "BGRA"), np.uint8).reshape(h, w, 4))

    def offer_rgb(self, rgb: np.ndarray) -> None:
        if not self.watched and self.size is not None:
            return
        self.slot.put(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ndi", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        log.info("NDI source '%s': %d frames sent", self.name, self.sent)

    def _run(self) -> None:
        try:
            self._send_all()
        except Exception as exc:   # the runtime failing must not end the show
            log.error("NDI output stopped: %s", exc)

    def _send_all(self) -> None:
        from cyndilib import FourCC
        from cyndilib.sender import Sender
        from cyndilib.video_frame import VideoSendFrame
        seq, frame = 0, None
        while frame is None and not self._stop.is_set():
            seq, frame = self.slot.wait(seq, timeout=0.5)
        if frame is None:
            return
        h, w = frame.shape[:2]
        self.size = (w, h)
        sender = Sender(self.name)
        vf = VideoSendFrame()
        vf.set_resolution(w, h)
        vf.set_frame_rate(Fraction(self.fps).limit_denominator(1001))
        vf.set_fourcc(FourCC.BGRA)
        sender.set_video_frame(vf)
        period = 1.0 / self.fps
        due = time.monotonic()
        with sender:
            log.info("NDI source '%s' at %dx%d, up to %g fps", self.name, w, h, self.fps)
            while not self._stop.wait(max(0.0, due - time.monotonic())):   # at most fps frames a second
                due = max(due + period, time.monotonic())
                if frame.shape[:2] != (h, w):
                    frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
                elif not frame.flags.writeable:   # cyndilib refuses read-only buffers
                    frame = frame.copy()
                self.watched = sender.get_num_connections(0) > 0
                if self.watched:
                    sender.write_video(frame.ravel())
                    self.sent += 1
                new, img = self.slot.wait(seq, timeout=0.5)
                if new != seq and img is not None:
                    seq, frame = new, img
