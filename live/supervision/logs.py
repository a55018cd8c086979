"""Logging for weeks-long unattended runs: the console plus a size-capped rotating file,
so the log never fills the disk and the last days are always there to read. Uncaught
exceptions in any thread and Python warnings go to the same log, so nothing a kiosk
says is lost on a console nobody reads."""
from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from pathlib import Path

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

log = logging.getLogger("live")


class LogFileError(ValueError):
    """The log file cannot be written; the message is the one line the user sees."""


def setup(level: str = "INFO", file: str | Path | None = None, max_bytes: int = 5_000_000,
          backups: int = 5) -> Path | None:
    """Console (stderr) and, when `file` is given, a rotating file; returns the file's path.
    Idempotent: calling it again replaces the handlers it added before."""
    level = level.upper()
    if level not in LEVELS:
        raise LogFileError(f"log level '{level}' is not one of {', '.join(LEVELS)}")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    path = None
    if file:
        path = Path(file).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(PrivateRotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups,
                                                       encoding="utf-8"))
        except OSError as exc:
            raise LogFileError(f"log file '{file}': cannot write there ({exc.strerror or exc}); give a "
                               f"writable path with --log-file or log.file, or log.file = \"\" for none") from None
    root = logging.getLogger()
    for handler in list(root.handlers):  # the app may be set up again in-process (tests, CLI)
        if getattr(handler, "_dreamcam", False):
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        handler._dreamcam = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    threading.excepthook = _thread_excepthook
    return path


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Log files only their owner can read (0600): the log holds the web remote's
    generated token, and a file each user on the machine can read would give it away.
    Every file it opens (the first, and each new one after a rotation) is made so."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)   # a file from before, made under another umask
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    """A thread that dies of an exception says so in the log (the watchdog restarts it)."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    log.critical("thread %s died", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback))




def flush() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
