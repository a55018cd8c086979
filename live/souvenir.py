"""Visitor souvenirs: the picture on screen, saved at full resolution under a one-time name
with 128 random bits in it, served on the web remote's port without the token at
/souvenir/NAME.jpg until it expires, then deleted. No listing and nothing else without
the token; expired files go at start too, and a disk cap holds (oldest first). Off by
default ([souvenir] enabled): a visitor's picture is personal data.

The clock is injected (time.time: expiry must survive a restart), so tests need no waiting."""
from __future__ import annotations

import logging
import re
import secrets
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from .dream.files import atomic
from .dream.images import jpeg

log = logging.getLogger(__name__)

TOKEN_BYTES = 16                           # 128 random bits in each name
NAME = re.compile(r"[A-Za-z0-9_-]{22}")    # what token_urlsafe(16) gives; anything else is 404 at once
JPEG_QUALITY = 92
PATH = "/souvenir/"                        # on the web remote's port: the one path served without the token


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


class Souvenirs:
    """`save(token, rgb)` writes a souvenir, `file(token)` finds a live one (else None)."""

    def __init__(self, folder: str | Path, minutes: float, max_mb: float, clock: Callable[[], float] = time.time):
        self.folder, self.clock = Path(folder).expanduser(), clock
        self.ttl, self.cap = minutes * 60.0, int(max_mb * 2 ** 20)
        self.sweep()

    def _path(self, token: str) -> Path | None:
        return self.folder / f"{token}.jpg" if NAME.fullmatch(token) else None

    def save(self, token: str, rgb: np.ndarray) -> Path:
        path = self._path(token)
        if path is None:
            raise ValueError("not a souvenir token")
        data = jpeg(rgb, JPEG_QUALITY)
        with atomic(path) as tmp:
            tmp.write_bytes(data)
        self.sweep()
        return path

    def file(self, token: str) -> Path | None:
        """The souvenir's file while it lives; an expired one is deleted on the spot."""
        path = self._path(token)
        if path is None or not path.is_file():
            return None
        if self._expired(path):
            path.unlink(missing_ok=True)
            return None
        return path

    def _expired(self, path: Path) -> bool:
        try:
            return self.clock() - path.stat().st_mtime >= self.ttl
        except OSError:
            return True

    def sweep(self) -> None:
        """Expired souvenirs deleted; then the oldest ones until the folder is under the cap."""
        if not self.folder.is_dir():
            return
        files = sorted((p for p in self.folder.glob("*.jpg") if NAME.fullmatch(p.stem)), key=lambda p: p.stat().st_mtime)
        kept = []
        for p in files:
            if self._expired(p):
                p.unlink(missing_ok=True)
            else:
                kept.append(p)
        total = sum(p.stat().st_size for p in kept)
        while kept and total > self.cap:
            oldest = kept.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)
            log.info("souvenir %s deleted early: the folder is over its %d MB cap", oldest.name[:6], self.cap >> 20)


class SouvenirWriter:
    """Souvenirs saved on a thread of their own: the JPEG and two fsyncs (the file, then its
    folder) ran on the display's thread, and on a kiosk's SD card an fsync can take longer
    than many frames: the live picture stopped while a visitor waited for the code.
    `submit` hands a picture over; `poll` returns what has finished since, as (token, the
    file's path or the error), so the code is shown only once the file is there."""

    def __init__(self, store: Souvenirs):
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="souvenir")
        self._pending: list[tuple[str, Future]] = []

    def submit(self, token: str, rgb: np.ndarray) -> None:
        """Save `rgb` (not changed afterwards by the caller) as the souvenir `token`."""
        self._pending.append((token, self._pool.submit(self.store.save, token, rgb)))

    def poll(self) -> list[tuple[str, Path | Exception]]:
        finished = [p for p in self._pending if p[1].done()]
        self._pending = [p for p in self._pending if p not in finished]
        return [(token, future.exception() or future.result()) for token, future in finished]

    def close(self) -> None:
        """Finish what was handed over (a visitor may be about to scan it), then stop."""
        self._pool.shutdown(wait=True)
