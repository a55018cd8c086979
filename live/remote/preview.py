"""The newest composited output frame, for the MJPEG preview at /stream.mjpg. The window
loop and the headless recorder offer every frame they make; the frame is copied (scaled
down) only while a client watches and at most `fps` times a second, so an unwatched
stream costs the renderer one comparison per frame."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import cv2
import numpy as np
import pygame

from ..capture import Slot
from ..dream.images import jpeg  # noqa: F401  (the stream's encoder, re-exported for web.py)


class Preview:
    """A newest-frame slot of small RGB pictures, filled only while someone watches."""

    def __init__(self, fps: float = 8.0, width: int = 640, clock: Callable[[], float] = time.monotonic):
        self.slot: Slot[np.ndarray] = Slot()
        self.period = 1.0 / fps
        self.width = width
        self.clock = clock
        self._watchers = 0
        self._due = 0.0
        self._lock = threading.Lock()

    @property
    def watchers(self) -> int:
        return self._watchers

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Held by each stream client while it is connected."""
        with self._lock:
            self._watchers += 1
        try:
            yield
        finally:
            with self._lock:
                self._watchers -= 1

    def _wanted(self) -> bool:
        if not self._watchers:
            return False
        now = self.clock()
        if now < self._due:
            return False
        self._due = now + self.period
        return True

    def offer_surface(self, surface: pygame.Surface) -> None:
        """The window loop's screen after drawing (called every display frame)."""
        if not self._wanted():
            return
        w, h = surface.get_size()
        if w > self.width:
            surface = pygame.transform.smoothscale(surface, (self.width, max(1, round(h * self.width / w))))
            w, h = surface.get_size()
        self.slot.put(np.frombuffer(pygame.image.tobytes(surface, "RGB"), np.uint8).reshape(h, w, 3))

    def offer_rgb(self, rgb: np.ndarray) -> None:
        """A recorded frame (uint8 HxWx3 RGB)."""
        if not self._wanted():
            return
        h, w = rgb.shape[:2]
        if w > self.width:
            rgb = cv2.resize(rgb, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_AREA)
        self.slot.put(np.ascontiguousarray(rgb))

