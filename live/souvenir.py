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
