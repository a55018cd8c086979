"""Headless recording of a video file, frame-exact: every frame of the file in order,
dreamed and composed as tools.dream CLIP OUT.mp4 does it (live/dream/clip.py), at the
file's frame rate and size, no mirror, no crop, with its sound. The capture and dream
threads stay off (nothing is real time here); the remotes run, so the operator's blend
(and a quit) still reach the recording, and the preview shows it. Cameras and clouds keep
the real-time recorder (headless.py)."""
from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pygame

from .app import App
from .audio.clip import follow_soundtrack
from .dream.clip import ClipDreamer, ClipReader, dream_clip, frames_to_write, working_size
from .dream.files import WriteError
from .window import write_png

log = logging.getLogger(__name__)

EXIT_WRITE_FAILED = 1


class ClipRecording:
    """The file source dreamed frame by frame into `record`."""

    def __init__(self, app: App, path: Path, frames: int | None):
        self.app, self.frames = app, frames
        self.reader = ClipReader(path, "source")
        info = self.reader.info
        engine = app.dreamer.engine
        engine.configure(size=working_size(app.dreamer.base_size, info.size))   # [dream]'s budget on this device
        self.dreamer = ClipDreamer(engine, info.fps, app.cfg.motion, app.cfg.attract, app.cfg.render.blend)
        self.music = follow_soundtrack(app.cfg, path, info.fps, engine, app.commands)
        self.stop = threading.Event()
        self.written = 0
        self.last: np.ndarray | None = None

    def keep_going(self) -> bool:
        self.app.notifier.ping(time.monotonic())
        return not self.stop.is_set() and self.app.state.running

    def composed(self, frame: np.ndarray, blend: float | None) -> np.ndarray:
        """One frame through the ClipDreamer, counted and offered to the preview."""
        rgb = self.dreamer(frame, blend)
        self.app.dreamer.count_pass(self.dreamer.engine.info.get("backend"))
        self.app.remotes.preview.offer_rgb(rgb)
        for out in self.app.outputs:
            out.offer_rgb(rgb)
        self.last = rgb
        return rgb

    def run(self, record: str | Path) -> int:
        total = frames_to_write(self.reader.info, self.frames)

        def progress(n: int) -> None:
            self.written = n
            if n % 25 == 0:
                log.info("recorded %d%s frames", n, f"/{total}" if total else "")

        return dream_clip(self.reader, self.composed, record, self.frames, what="--record", on_frame=progress,
                          blend=lambda: self.app.state.view().blend, keep_going=self.keep_going, before=self.music)


def run_clip(app: App, frames: int | None, record: str | Path, png: str | Path | None = None,
             seconds: float | None = None) -> int:
    """Record the file source frame-exactly: `frames` (or `seconds` of it at its rate, or
    all of it). Ctrl+C / SIGTERM finish the file. Returns the exit code."""
    rec = ClipRecording(app, app.plan.video, frames)
    info = rec.reader.info
    if seconds is not None:
        rec.frames = min(rec.frames or 1 << 62, max(1, round(seconds * float(info.fps))))
    handlers = {sig: signal.signal(sig, lambda *_: rec.stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    app.state.headless = True
    log.info("recording %s frame by frame: %dx%d at %s fps, %s frames, to %s", info.path.name, *info.size,
             info.fps, rec.frames or "all", record)
    app.remotes.start()
    app.notifier.ready()
    failed = None
    try:
        rec.run(record)
    except WriteError as exc:
        failed = str(exc)
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        rec.reader.close()
        app.stop()
    if failed:
        log.error("%s", failed)
        return EXIT_WRITE_FAILED
    if rec.stop.is_set():
        log.info("stopped early: %d frames", rec.written)
    if png is not None and rec.last is not None:
        h, w = rec.last.shape[:2]
        try:
            write_png(pygame.image.frombuffer(rec.last.tobytes(), (w, h), "RGB"), Path(png), "--png")
        except WriteError as exc:
            log.error("%s", exc)
            return EXIT_WRITE_FAILED
    log.info("wrote %s (%d frames, frame-exact); %s", record, rec.written, app.summary(display=False))
    return app.exit_code
