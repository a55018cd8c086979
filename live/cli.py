"""What every command line shares (`python -m live` and the tools): a user mistake is one
line on stderr and exit code 2, never argparse's usage dump or a traceback; anything
unexpected is exit code 1 with the traceback in the log. Standard library only, so a
command can say what is wrong before torch has loaded."""
from __future__ import annotations

import argparse
import logging
import math
import re
import signal
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, NoReturn

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
WORKING_MAX = 4096     # largest side of a live working size or an exported step
PICTURE_MAX = 16384    # largest side of an offline picture (tiled, so memory is bounded)


class UsageError(ValueError):
    """A wrong flag, value or combination of flags."""


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line (UsageError), like every other bad input."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise UsageError(f"{message} ({self.prog} --help lists the flags)")


def parse_size(text: str, flag: str = "--size", limit: int = WORKING_MAX) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (w, h), each side 32..limit."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"{flag} '{text}' must be WIDTHxHEIGHT, e.g. 320x240")
    w, h = int(m[1]), int(m[2])
    if not (32 <= w <= limit and 32 <= h <= limit):
        raise UsageError(f"{flag} {w}x{h} is out of range (each side 32..{limit})")
    return w, h


def finite(text: str) -> float:
    """An argparse type: a finite number (NaN and infinity are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
    return value


def finite_pair(text: str) -> tuple[float, float]:
    """An argparse type: two finite numbers, 'X,Y'."""
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"'{text}' must be two numbers, X,Y")
    return finite(parts[0].strip()), finite(parts[1].strip())


def positive(text: str) -> float:
    """An argparse type: a finite number above zero."""
    value = finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def stop_signals() -> Iterator[None]:
    """Ctrl+C and SIGTERM raise KeyboardInterrupt in the main thread from the first
    moment (even where a parent ignored SIGINT), so a start-up that loads a network and
    builds an engine stops at once; loops that finish files install their own handlers
    on top. The previous handlers come back on leaving (tests call main() in-process)."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def user_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean "the user asked for something impossible" (exit 2)."""
    from models import ModelError
    from .audio.features import AudioError
    from .dream.clip import ClipError
    from .dream.files import OutputError
    from .dream.objectives import ObjectiveError
    from .dream.settings import SettingsError
    return UsageError, SettingsError, ModelError, ObjectiveError, OutputError, ClipError, AudioError


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def run(main: Callable[[], int | None]) -> NoReturn:
    """Call main() and turn the outcome into an exit code (for the tools' __main__)."""
    try:
        code = main() or EXIT_OK
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except Exception as exc:
        from .dream.files import WriteError
        if isinstance(exc, user_errors()):
            fail(str(exc).strip("'\""))
        if isinstance(exc, WriteError):  # disk full and the like: one line, exit 1
            print(f"error: {exc}", file=sys.stderr)
        else:
            logging.getLogger("dreamcam").exception("unexpected failure")
        code = EXIT_FAILURE
    raise SystemExit(code)
