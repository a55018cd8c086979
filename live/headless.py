"""The installation without a window: the same pipeline, recorded to a video. Every
video frame waits for its dream step, so the video shows the dream even on a slow
machine; Ctrl+C and SIGTERM finish the file. The video goes through the one writer
(live/dream/video.py): written under a temporary name and renamed when complete, every
write checked; a full disk stops the recording with one line and exit code 1, keeping
what was complete."""
from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pygame

from .app import App
from .compositor import Compositor
from .dream.files import WriteError
from .dream.video import VideoWriter
from .stats import Stats
from .window import write_png

log = logging.getLogger(__name__)

RECORD_FPS = 15.0             # headless videos: one dream step per video frame
FIRST_DREAM_TIMEOUT = 180.0   # give up when no dream comes for this long
EXIT_WRITE_FAILED = 1


class Recording:
    """One headless recording: dreams -> blended frames -> the video."""

    def __init__(self, app: App, video: VideoWriter, frames: int | None, seconds: float | None):
        self.app, self.video, self.frames = app, video, frames
        self.size = video.size
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.surface = pygame.Surface(self.size, 0, 32)
        self.comp = Compositor()
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        """Record until the frames are written, the time is up, or a stop is asked."""
        app, seq = self.app, 0
        last_progress = time.monotonic()
        total = "" if self.frames is None else f"/{self.frames}"
        while (self.frames is None or self.written < self.frames) and not self.stop.is_set() and app.state.running:
            now = time.monotonic()
            app.notifier.ping(now)
            if self.deadline is not None and now >= self.deadline:
                break
            new_seq, dream = app.dreamer.dreams.wait(seq, timeout=0.5)
            if new_seq == seq or dream is None:
                if time.monotonic() - last_progress > FIRST_DREAM_TIMEOUT:
                    raise RuntimeError(f"no dream for {FIRST_DREAM_TIMEOUT:.0f}s; giving up")
                continue
            seq, last_progress = new_seq, time.monotonic()
            rgb = self.draw(dream)
            app.remotes.preview.offer_rgb(rgb)
            for out in app.outputs:
                out.offer_rgb(rgb)
            self.video.write(rgb)
            self.written += 1
            if self.written % 25 == 0:
                log.info("recorded %d%s frames", self.written, total)

    def draw(self, dream) -> np.ndarray:
        """The frame as on screen (no HUD, no crossfade): RGB, the video's size."""
        if dream.frame is not None:
            self.comp.set_live(dream.frame.image)
        self.comp.set_dream(dream.picture)
        view = self.app.state.view()
        self.comp.draw(self.surface, replace(view, crossfade=False, hud=False, help=False, message=""))
        w, h = self.size
        return np.frombuffer(pygame.image.tobytes(self.surface, "RGB"), np.uint8).reshape(h, w, 3)


def run_headless(app: App, frames: int | None, record: str | Path, png: str | Path | None = None,
                 seconds: float | None = None) -> int:
    """The same pipeline without a window: one video frame per dream step (each frame
    waits for its dream), blended as on screen, until `frames` are written (None: no
    limit) or `seconds` have passed. Ctrl+C / SIGTERM finish the file; a write that fails
    ends the run with one line and exit code 1. Returns the exit code. A video file is
    recorded frame-exactly instead (headless_clip.py)."""
    if app.plan.video is not None:
        from .headless_clip import run_clip
        return run_clip(app, frames, record, png, seconds)
    size = (app.cfg.render.width, app.cfg.render.height)
    expected = frames if frames is not None else round(seconds * RECORD_FPS) if seconds else None
    video = VideoWriter(record, RECORD_FPS, size, what="--record", frames=expected)
    rec = Recording(app, video, frames, seconds)
    handlers = {sig: signal.signal(sig, lambda *_: rec.stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    app.dreamer.adaptive.enabled = False  # not real time: every frame waits for its dream anyway
    app.state.headless = True             # remotes: no screen to snapshot
    length = f"{frames} frames" if frames is not None else f"{seconds:g} s" if seconds else "until stopped"
    log.info("recording %s of %dx%d to %s (source: %s%s)", length, *size, video.path,
             app.plan.description, ", clouds while it is absent" if app.plan.is_camera else "")
    app.start()
    app.stats = Stats()
    failed = None
    try:
        with video:
            rec.run()
    except WriteError as exc:
        failed = str(exc)
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        app.stop()
    if failed:
        log.error("%s", failed)
        return EXIT_WRITE_FAILED
    if not rec.written:
        log.info("nothing recorded; %s", app.summary(display=False))
        return app.exit_code
    if rec.stop.is_set() or app.fatal:
        log.info("stopped early: %d%s frames", rec.written, "" if frames is None else f"/{frames}")
    if png is not None:
        try:
            write_png(rec.surface, Path(png), "--png")
        except WriteError as exc:
            log.error("%s", exc)
            return EXIT_WRITE_FAILED
    log.info("wrote %s (%d frames%s); %s", video.path, rec.written, f", still {png}" if png else "",
             app.summary(display=False))
    return app.exit_code
