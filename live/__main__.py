"""`python -m live`: the installation (fullscreen with config.toml), or a headless
recording with --headless. Exit codes: 0 ok, 2 bad configuration or arguments (one clear
line), 1 unexpected failure."""
from __future__ import annotations

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # keep the console to our own lines

import argparse
import logging
import sys
from pathlib import Path

from . import logs

log = logging.getLogger("live")

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
VIDEO_SUFFIXES = (".mp4", ".avi")
HEADLESS_HINT = "python -m live --headless --frames 150 --record out/dreamcam.mp4"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m live", description="Dreamcam: a live webcam DeepDream installation.")
    p.add_argument("--config", help="config file (default: config.toml of the project)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config setting for this run, e.g. --set dream.layer=blocks.7 (repeatable)")
    p.add_argument("--source", help="camera index, video or image path, clouds, or auto (default: source.source)")
    p.add_argument("--window", action="store_true", help="a window instead of fullscreen")
    p.add_argument("--kiosk", action="store_true", help="kiosk mode: only Ctrl+Shift+Q quits, presets on a timer")
    p.add_argument("--seconds", type=float, help="quit by itself after this many seconds (demos, measurements)")
    p.add_argument("--headless", action="store_true", help="no window: record a video (needs --record)")
    p.add_argument("--frames", type=positive_int, default=150, help="headless: frames to record (default 150)")
    p.add_argument("--record", metavar="OUT.mp4", help="headless: the video to write (.mp4 or .avi)")
    p.add_argument("--png", metavar="OUT.png", help="headless: also write the last frame as a PNG")
    p.add_argument("--log-file", help="also log to this file (rotated, size-capped)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


class UsageError(ValueError):
    """A wrong combination of command-line flags."""


def check_args(args: argparse.Namespace) -> None:
    if args.headless and not args.record:
        raise UsageError("--headless needs --record OUT.mp4 (the video to write)")
    if args.record and not args.headless:
        raise UsageError("--record works with --headless; in the window press s for snapshots")
    if args.record and Path(args.record).suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"--record '{args.record}': use a file name ending in .mp4 or .avi")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.setup("DEBUG" if args.verbose else "INFO", args.log_file)
    try:
        check_args(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.headless:  # before the heavy imports, so a headless box hears it at once
        from .render import display_problem
        problem = display_problem()
        if problem:
            print(f"error: {problem}; record headless instead: {HEADLESS_HINT}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        import models
        from . import config
        from .app import App
        from .capture import SourceError
        from .objectives import ObjectiveError
    except Exception:
        log.exception("unexpected failure while loading")
        return EXIT_FAILURE
    try:
        overrides = list(args.set)
        if args.window:
            overrides.append("render.fullscreen=false")
        if args.kiosk:
            overrides.append("kiosk.enabled=true")
        cfg = config.load(args.config, overrides)
        app = App(cfg, args.source)
        if args.headless:
            return app.run_headless(args.frames, args.record, args.png)
        return app.run_window(args.seconds)
    except (config.ConfigError, SourceError, models.ModelError, ObjectiveError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        log.info("interrupted")
        return EXIT_OK
    except Exception:
        log.exception("unexpected failure")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
