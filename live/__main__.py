"""`python -m live`: the installation (fullscreen with config.toml), or a headless
recording with --headless. Exit codes: 0 ok, 2 bad configuration or arguments (one clear
line, never a traceback), 1 unexpected or unrecoverable failure (the traceback is in the
log; a service manager should restart the process)."""
from __future__ import annotations

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # keep the console to our own lines
# OpenMP's default wait policy keeps idle threads spinning. In the installation the dream
# shares two cores with the renderer, the capture and the export child, and torch's
# two-thread step then collapsed (119 ms -> 1520 ms under load; 182 -> 139 ms with one busy
# process beside it); passive threads sleep instead. It costs a lone torch step (42 -> 77 ms
# on a quiet machine), so only the installation sets it, and the tools (alone on the
# machine) keep OpenMP's default. Read once, when torch loads: it must come first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import logging
import sys
import time
from pathlib import Path

from .cli import (EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, Parser, UsageError, positive, positive_int,
                  stop_signals, user_errors)
from .supervision import logs

log = logging.getLogger("live")

VIDEO_SUFFIXES = (".mp4", ".avi")
HEADLESS_HINT = "python -m live --headless --frames 150 --record out/dreamcam.mp4"
DEFAULT_FRAMES = 150       # a headless recording's length when neither --frames nor --seconds says
KIOSK_DISPLAY_WAIT = 60.0   # seconds a kiosk waits for the desktop at boot before giving up


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m live", description="Dreamcam: a live webcam DeepDream installation.")
    p.add_argument("--config", help="config file (default: config.toml of the project)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config setting for this run, e.g. --set dream.layer=blocks.7 (repeatable)")
    p.add_argument("--source", help="camera index, video or image path, clouds, or auto (default: source.source)")
    p.add_argument("--window", action="store_true", help="a window instead of fullscreen")
    p.add_argument("--kiosk", action="store_true", help="kiosk mode: only Ctrl+Shift+Q quits, presets on a timer")
    p.add_argument("--seconds", type=positive,
                   help="quit by itself after this many seconds (demos, measurements, soak runs)")
    p.add_argument("--stats", metavar="FILE.json",
                   help="at exit, write the session's figures as JSON (display fps, dream steps/s, working size, "
                        "latency median and p95, backend, precision; display figures null when headless)")
    p.add_argument("--headless", action="store_true", help="no window: record a video (needs --record)")
    p.add_argument("--frames", type=positive_int, default=None,
                   help=f"headless: frames to record (default {DEFAULT_FRAMES}; with --seconds alone, as many as it takes)")
    p.add_argument("--record", metavar="OUT.mp4", help="headless: the video to write (.mp4 or .avi)")
    p.add_argument("--png", metavar="OUT.png", help="headless: also write the last frame as a PNG")
    p.add_argument("--osc-list", action="store_true",
                   help="print the OSC addresses with their argument types and ranges, and exit")
    p.add_argument("--log-file", help='log to this file, rotated and size-capped (default: log.file of the '
                                      'config, logs/dreamcam.log; "" for none)')
    p.add_argument("--log-level", type=str.upper, choices=logs.LEVELS,
                   help="DEBUG, INFO, WARNING or ERROR (default: log.level of the config, INFO)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (short for --log-level DEBUG)")
    return p


def check_args(args: argparse.Namespace) -> None:
    if args.headless and not args.record:
        raise UsageError("--headless needs --record OUT.mp4 (the video to write)")
    if args.record and not args.headless:
        raise UsageError("--record works with --headless; in the window press s for snapshots")
    if args.record and Path(args.record).suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"--record '{args.record}': use a file name ending in .mp4 or .avi")
    if args.png and not args.headless:
        raise UsageError("--png works with --headless --record; in the window press s for snapshots")
    if args.png and Path(args.png).suffix.lower() != ".png":
        raise UsageError(f"--png '{args.png}': use a file name ending in .png")
    if args.source is not None and not args.source.strip():
        raise UsageError("--source is empty; give a camera index, a video or image path, clouds or auto")


def wait_for_display(kiosk: bool) -> str | None:
    """None when a window can be opened; a kiosk starting at boot may be ahead of its
    desktop, so it keeps asking for a while before saying why not."""
    from .window import display_problem

    deadline = time.monotonic() + (KIOSK_DISPLAY_WAIT if kiosk else 0.0)
    while True:
        problem = display_problem()
        if problem is None or time.monotonic() >= deadline:
            return problem
        time.sleep(2.0)


def print_osc_list(cfg) -> None:
    """The OSC address table (--osc-list), for building a TouchOSC or Open Stage Control layout."""
    from .commands import Commands
    from .remote.osc import address_table
    from .state import State

    o = cfg.osc
    try:
        _osc_table(o, address_table(Commands(State.from_config(cfg))))
    except BrokenPipeError:   # piped into head: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _osc_table(o, table: str) -> None:
    print(f"OSC over UDP {o.host}:{o.port} ([osc] enabled = {str(o.enabled).lower()}); state changes go back "
          f"to the last sender{f' on port {o.reply_port}' if o.reply_port else ''}; refusals as /dreamcam/error <text>.")
    print("Actions (type -) run on a message with no argument or a non-zero one; 0 (a button's release) is ignored.")
    print(table, flush=True)



def headless_frames(frames: int | None, seconds: float | None) -> int | None:
    """--frames as given; else DEFAULT_FRAMES, unless --seconds alone says how long (a
    `--seconds 600` recording ran 150 frames, 6 s at 25 fps, and stopped)."""
    if frames is not None:
        return frames
    return None if seconds else DEFAULT_FRAMES


def main(argv: list[str] | None = None) -> int:
    """The exit code. Ctrl+C and SIGTERM are honoured from the first moment: during the
    start-up (imports, the network, the engine) they end the run at once with code 0."""
    with stop_signals():
        try:
            return _main(argv)
        except KeyboardInterrupt:
            log.info("interrupted")
            return EXIT_OK


def _main(argv: list[str] | None) -> int:
    try:
        args = parser().parse_args(argv)
        check_args(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    level = "DEBUG" if args.verbose else args.log_level
    logs.setup(level or "INFO")  # the console now; the file once the config is read
    log.debug("starting (pid %d)", os.getpid())
    if not args.headless and not args.osc_list:  # before the heavy imports, so a headless box hears it at once
        problem = wait_for_display(args.kiosk)
        if problem:
            print(f"error: {problem}; record headless instead: {HEADLESS_HINT}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        from . import config
        from .app import App
        from .dream.files import check_output
        from .headless import run_headless
        from .sources import SourceError
        from .stats import write_stats
        from .windowed import run_window
        bad_input = (*user_errors(), SourceError, logs.LogFileError)
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
        lc = cfg.log
        logs.setup(level or lc.level, args.log_file if args.log_file is not None else lc.file,
                   max_bytes=int(lc.max_mb * 1_000_000), backups=lc.backups)
        if args.headless:  # where the results go, before the heavy start-up
            check_output(args.record, "--record")
            if args.png:
                check_output(args.png, "--png")
        if args.osc_list:
            print_osc_list(cfg)
            return EXIT_OK
        if args.stats:
            check_output(args.stats, "--stats")
        app = App(cfg, args.source)
        try:
            if args.headless:
                return run_headless(app, headless_frames(args.frames, args.seconds), args.record, args.png,
                                    args.seconds)
            return run_window(app, args.seconds)
        finally:
            if args.stats:
                write_stats(args.stats, app.figures(display=not args.headless))
                log.info("session figures written to %s", args.stats)
    except bad_input as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception:
        log.exception("unexpected failure")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
