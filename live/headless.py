"""The installation without a window: the same pipeline, recorded to a video. Every
video frame waits for its dream step, so the video shows the dream even on a slow
machine; Ctrl+C and SIGTERM finish the file, which is written under a temporary name
and renamed when complete."""
from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pygame

from .app import App
from .compositor import Compositor
from .dream.files import OutputError, finish, partial_name, prepare_output
from .stats import Stats
from .window import write_png

log = logging.getLogger(__name__)

RECORD_FPS = 15.0             # headless videos: one dream step per video frame
FIRST_DREAM_TIMEOUT = 180.0   # give up when no dream comes for this long


def run_headless(app: App, frames: int | None, record: str | Path, png: str | Path | None = None,
                 seconds: float | None = None) -> int:
    """The same pipeline without a window: one video frame per dream step (each frame
    waits for its dream), blended as on screen, until `frames` are written (None: no
    limit) or `seconds` have passed. The video is written under a temporary name and
    renamed when it is finished: Ctrl+C / SIGTERM finish the file, a power cut leaves
    no half file under the final name. Returns the exit code."""
    record = prepare_output(record, "--record")
    size = (app.cfg.render.width, app.cfg.render.height)
    tmp = partial_name(record)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if record.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(tmp), fourcc, RECORD_FPS, size)
    if not writer.isOpened():
        raise OutputError(f"--record '{record}': cannot write a video there (use an .mp4 or .avi path in a writable folder)")
    deadline = None if seconds is None else time.monotonic() + seconds
    surface = pygame.Surface(size, 0, 32)
    comp = Compositor()
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    written, seq = 0, 0
    last_progress = time.monotonic()
    app.dreamer.adaptive.enabled = False  # not real time: every frame waits for its dream anyway
    app.state.headless = True             # remotes: no screen to snapshot
    total = "" if frames is None else f"/{frames}"
    length = f"{frames} frames" if frames is not None else f"{seconds:g} s" if seconds else "until stopped"
    log.info("recording %s of %dx%d to %s (source: %s%s)", length, *size, record,
             app.plan.description, ", clouds while it is absent" if app.plan.is_camera else "")
    app.start()
    app.stats = Stats()
    try:
        while (frames is None or written < frames) and not stop.is_set() and app.state.running:
            now = time.monotonic()
            app.notifier.ping(now)
            if deadline is not None and now >= deadline:
                break
            new_seq, dream = app.dreamer.dreams.wait(seq, timeout=0.5)
            if new_seq == seq or dream is None:
                if time.monotonic() - last_progress > FIRST_DREAM_TIMEOUT:
                    raise RuntimeError(f"no dream for {FIRST_DREAM_TIMEOUT:.0f}s; giving up")
                continue
            seq, last_progress = new_seq, time.monotonic()
            if dream.frame is not None:
                comp.set_live(dream.frame.image)
            comp.set_dream(dream.image)
            view = app.state.view()
            comp.draw(surface, replace(view, blend=view.blend * dream.blend, crossfade=False, hud=False, help=False,
                                       message=""))
            rgb = np.frombuffer(pygame.image.tobytes(surface, "RGB"), np.uint8).reshape(size[1], size[0], 3)
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            app.remotes.preview.offer_rgb(rgb)
            written += 1
            if written % 25 == 0:
                log.info("recorded %d%s frames", written, total)
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        app.stop()
        writer.release()
        if written:
            finish(tmp, record)
        else:
            tmp.unlink(missing_ok=True)
    if stop.is_set() or app.fatal:
        log.info("stopped early: %d%s frames", written, total)
    if written and png is not None:
        write_png(surface, Path(png))
    log.info("wrote %s (%d frames%s); %s", record, written, f", still {png}" if png and written else "",
             app.summary(display=False))
    return app.exit_code
