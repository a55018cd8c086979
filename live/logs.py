"""Logging for weeks-long unattended runs: the console plus a size-capped rotating file,
so the log never fills the disk and the last days are always there to read."""
from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup(level: str = "INFO", file: str | Path | None = None, max_bytes: int = 5_000_000,
          backups: int = 5) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):  # idempotent: the app may be restarted in-process
        if getattr(handler, "_dreamcam", False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if file:
        path = Path(file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes,
                                                             backupCount=backups, encoding="utf-8"))
    for handler in handlers:
        handler._dreamcam = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(level.upper())
