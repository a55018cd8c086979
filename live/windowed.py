"""The installation on a screen: the main thread's loop of keys -> state, newest picture
and dream -> compositor -> display, at the display rate, never waiting for the dream."""
from __future__ import annotations

import logging
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pygame

from . import controls
from .app import App
from .capture import Frame
from .compositor import Compositor
from .dreamer import Dream
from .hud import hud_lines
from .souvenir import SouvenirWriter
from .stats import Stats
from .window import Window, snapshot

log = logging.getLogger(__name__)

HUD_PERIOD = 0.25             # seconds between HUD text updates
SLEEP_FPS = 4                 # display rate outside opening hours (the black screen or the picture)


class WindowLoop:
    """One run of the window; `run()` returns the exit code."""

    def __init__(self, app: App, seconds: float | None = None):
        self.app = app
        self.seconds = seconds
        self.help_lines = controls.help_lines(app.state.kiosk, app.state.snapshots_allowed)
        self.live_seq = self.dream_seq = self.snaps_done = 0
        self.pending: Frame | None = None   # the newest camera frame, until it is composed
        self.dream: Dream | None = None
        self.hud: tuple[str, ...] = ()
        self.hud_due = 0.0
        self.comp: Compositor | None = None
        self.souvenir_until = 0.0     # monotonic time the souvenir's QR code goes away
        self.souvenir_writer: SouvenirWriter | None = None   # made for the first souvenir
        self.sleeping: tuple[tuple[int, int], pygame.Surface | None] | None = None   # (screen size, fitted picture)

    def run(self) -> int:
        app, state = self.app, self.app.state
        window = Window(app.cfg.render)
        comp = self.comp = Compositor(picture_fps=app.cfg.render.picture_fps)
        clock = pygame.time.Clock()
        deadline = None if self.seconds is None else time.monotonic() + self.seconds
        previous = signal.signal(signal.SIGTERM, lambda *_: state.quit())
        app.start()
        comp.panels.qr = app.remotes.url   # the web remote's address and token, beside the HUD
        app.stats = Stats()
        try:
            while state.running:
                self.events(window)
                if app.tick_schedule():
                    self.sleep_screen(window)
                    self.offer(window)
                    window.present()
                    self.housekeeping(window, deadline)
                    clock.tick(SLEEP_FPS)
                    continue
                new_frame = self.draw(window.screen, comp)
                self.offer(window)
                window.present()
                now = time.perf_counter()
                app.stats.frame(now)
                if new_frame is not None:
                    app.stats.picture(now)
                    app.stats.latencies.append(now - new_frame.timestamp)
                self.housekeeping(window, deadline)
                clock.tick(app.cfg.render.fps)
        finally:
            signal.signal(signal.SIGTERM, previous)
            if self.souvenir_writer is not None:
                self.souvenir_writer.close()
            app.stop()
            window.close()
            log.info("%s", app.summary())
        return app.exit_code

    def events(self, window: Window) -> None:
        app, state = self.app, self.app.state
        for event in pygame.event.get():
            if event.type == pygame.QUIT and not state.kiosk:
                state.quit()
            elif event.type == pygame.KEYDOWN:
                controls.handle(event, app.commands, state.kiosk)
            elif event.type in (pygame.VIDEORESIZE, pygame.WINDOWSIZECHANGED):
                window.resized()
        if state.fullscreen != window.fullscreen:
            window.set_fullscreen(state.fullscreen)

    def offer(self, window: Window) -> None:
        """The screen as drawn to whoever watches it elsewhere: the web preview, NDI (asleep too,
        so a VJ's mixer shows the closed screen, not the last dream)."""
        self.app.remotes.preview.offer_surface(window.screen)
        for out in self.app.outputs:
            out.offer_surface(window.screen)

    def take_souvenir(self, window: Window, token: str) -> None:
        """The picture on screen without the HUD, help or notices, at the screen's resolution,
        handed to the souvenir thread to be saved under its one-time name."""
        app, panels = self.app, self.comp.panels
        clean = pygame.Surface(window.screen.get_size(), 0, 32)
        shown, panels.souvenir = panels.souvenir, None
        self.comp.draw(clean, replace(app.state.view(), hud=False, help=False, message=""))
        panels.souvenir = shown
        w, h = clean.get_size()
        rgb = np.frombuffer(pygame.image.tobytes(clean, "RGB"), np.uint8).reshape(h, w, 3)
        url = app.remotes.souvenir_url(token)
        if url is None:
            app.state.say("souvenirs need the web remote, and it is not running")
            return
        if self.souvenir_writer is None:
            self.souvenir_writer = SouvenirWriter(app.souvenirs)
        self.souvenir_writer.submit(token, rgb)   # its code shows once the file is there

    def souvenir_saved(self, token: str, result: Path | Exception, now: float) -> None:
        """A souvenir's file is written: its QR code and the consent line shown for a while
        (or, if it could not be written, a notice)."""
        app = self.app
        if isinstance(result, Exception):
            log.error("souvenir not saved: %s", result)
            app.state.say("the souvenir could not be saved")
            return
        url = app.remotes.souvenir_url(token)
        if url is None:
            return
        minutes = app.cfg.souvenir.minutes
        self.comp.panels.souvenir = (url, f"kept {minutes:g} min on this machine, then deleted; scan only if you agree")
        self.souvenir_until = now + app.cfg.souvenir.seconds
        log.info("souvenir %s... saved (%s), its link works for %g min", token[:6], result.name, minutes)

    def sleep_screen(self, window: Window) -> None:
        """Outside opening hours: black, or [schedule] picture fitted to the screen."""
        screen = window.screen
        screen.fill((0, 0, 0))
        picture = self.app.cfg.schedule.picture
        if picture and (self.sleeping is None or self.sleeping[0] != screen.get_size()):
            try:
                self.sleeping = (screen.get_size(), fitted(pygame.image.load(picture), screen.get_size()))
            except (pygame.error, OSError) as exc:
                log.warning("schedule.picture '%s' cannot be shown (%s); black instead", picture, exc)
                self.sleeping = (screen.get_size(), None)
        if picture and self.sleeping[1] is not None:
            img = self.sleeping[1]
            screen.blit(img, img.get_rect(center=screen.get_rect().center))

    def draw(self, target: pygame.Surface, comp: Compositor) -> Frame | None:
        """Draw one display frame from the newest picture and dream (never waits);
        returns the camera frame shown for the first time, if any."""
        app, state = self.app, self.app.state
        seq, frame = app.capture.slot.latest()
        if seq != self.live_seq and frame is not None and not state.frozen:
            comp.set_live(frame.image)
            self.live_seq, self.pending = seq, frame
        seq, dream = app.dreamer.dreams.latest()
        if seq != self.dream_seq and dream is not None:
            comp.set_dream(dream.picture)
            self.dream_seq, self.dream = seq, dream
            if dream.preset_due and state.presets:
                state.next_preset()  # attract mode slowly rotates presets
        view = state.view()   # the motion response's blend map travels in dream.picture
        comp.draw(target, view, self.hud, self.help_lines if view.help else None)
        new_frame, self.pending = (self.pending, None) if comp.took_live else (None, self.pending)
        return new_frame

    def housekeeping(self, window: Window, deadline: float | None) -> None:
        """Snapshots, the HUD's text, the kiosk playlist, the time limit, systemd."""
        app, state = self.app, self.app.state
        if state.snapshots != self.snaps_done:
            self.snaps_done = state.snapshots
            path = snapshot(window.screen, app.cfg.output.snapshots, on_error=state.say)
            state.say(f"snapshot {path.name}")
        mono = time.monotonic()
        for token in state.take_souvenir_requests():
            self.take_souvenir(window, token)
        for token, result in self.souvenir_writer.poll() if self.souvenir_writer else ():
            self.souvenir_saved(token, result, mono)
        if self.comp.panels.souvenir and mono >= self.souvenir_until:
            self.comp.panels.souvenir = None
        if mono >= self.hud_due:
            self.hud = hud_lines(state, app.stats, self.dream, app.capture.status, app.dreamer.adaptive.level,
                                 app.cfg.dream.steps_per_frame)
            self.hud_due = mono + HUD_PERIOD
        if state.kiosk:
            state.advance_if_due(app.cfg.kiosk.preset_seconds)
        if deadline is not None and mono >= deadline:
            state.quit()
        app.notifier.ping(mono)


def fitted(img: pygame.Surface, size: tuple[int, int]) -> pygame.Surface:
    """The picture scaled to fit inside `size`, its shape kept."""
    k = min(size[0] / img.get_width(), size[1] / img.get_height())
    return pygame.transform.smoothscale(img, (max(1, round(img.get_width() * k)), max(1, round(img.get_height() * k))))


def run_window(app: App, seconds: float | None = None) -> int:
    """The installation in a window or fullscreen. Returns the exit code."""
    return WindowLoop(app, seconds).run()
