"""Kiosk supervision: a watchdog thread that restarts a capture or dream thread that has
stopped showing signs of life, and the systemd notify protocol for the main loop.

Python cannot kill a thread, and an OpenCV read or a GPU call can block for ever. So a
stalled worker is *abandoned* (told to stop, and it publishes nothing more if it ever
wakes up) and a fresh one takes over its hand-over slot. If the same worker keeps
stalling, restarting threads is not helping (a wedged driver holds the device): the
watchdog then gives up and the app exits with code 1, so the service manager restarts
the whole process. The main loop itself is watched by systemd (WatchdogSec) through
systemd.py; see deploy/dreamcam.service."""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

log = logging.getLogger(__name__)


class Heartbeat:
    """When a worker last showed it is alive (time.monotonic()). A float assignment is
    atomic, so the worker beats without a lock. Before a call that is legitimately slow
    (building an engine, the first step after a change, which may export an ONNX graph)
    the worker announces it with `expect(seconds)`, so it is not mistaken for a stall."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.grace_until = 0.0

    def beat(self) -> None:
        self.last = time.monotonic()
        self.grace_until = 0.0

    def expect(self, seconds: float) -> None:
        self.beat()
        self.grace_until = self.last + seconds

    def age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.last

    def silent(self, stall_seconds: float, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.age(now) > stall_seconds and now > self.grace_until


class Worker(Protocol):
    heartbeat: Heartbeat

    def is_alive(self) -> bool: ...

    @property
    def ident(self) -> int | None: ...


@dataclass
class Watched:
    """One supervised worker. `current()` gives the live instance (it changes on each
    restart); `restart()` abandons it and starts a fresh one."""
    name: str
    current: Callable[[], Worker]
    restart: Callable[[], None]
    stall_seconds: float
    restarts: deque[float] = field(default_factory=deque)


class Watchdog(threading.Thread):
    """Checks every `check_seconds` that each watched worker is alive and has beaten
    within its `stall_seconds`; restarts it otherwise. More than `max_restarts` restarts
    of one worker within `window_seconds` is unrecoverable: `on_fatal(reason)` is called
    once and supervision ends."""

    def __init__(self, check_seconds: float = 1.0, max_restarts: int = 5, window_seconds: float = 3600.0,
                 on_fatal: Callable[[str], None] | None = None):
        super().__init__(name="watchdog", daemon=True)
        self.check_seconds = check_seconds
        self.max_restarts = max_restarts
        self.window = window_seconds
        self.on_fatal = on_fatal
        self.watched: list[Watched] = []
        self.fatal: str | None = None
        self.restarts = 0
        self._stop_event = threading.Event()

    def watch(self, name: str, current: Callable[[], Worker], restart: Callable[[], None],
              stall_seconds: float) -> None:
        self.watched.append(Watched(name, current, restart, stall_seconds))

    def stop(self, timeout: float = 2.0) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def run(self) -> None:
        while not self._stop_event.wait(self.check_seconds):
            try:
                self.check()
            except Exception:  # the supervisor must not die of a supervised worker's bug
                log.exception("watchdog check failed")
            if self.fatal is not None:
                return

    def check(self, now: float | None = None) -> list[str]:
        """One round: restart what is dead or stalled; returns the names restarted."""
        if self.fatal is not None:
            return []
        now = time.monotonic() if now is None else now
        restarted = []
        for w in self.watched:
            worker = w.current()
            if worker.ident is None:          # not started yet
                continue
            age = worker.heartbeat.age(now)
            if worker.is_alive() and not worker.heartbeat.silent(w.stall_seconds, now):
                continue
            why = "died" if not worker.is_alive() else f"stalled (no heartbeat for {age:.0f}s)"
            while w.restarts and now - w.restarts[0] > self.window:
                w.restarts.popleft()
            if len(w.restarts) >= self.max_restarts:
                self._give_up(f"the {w.name} thread {why} again after {len(w.restarts)} restarts within "
                              f"{self.window / 60:.0f} min; exiting so the service manager restarts the process")
                return restarted
            log.error("%s thread %s; restarting it", w.name, why)
            w.restarts.append(now)
            self.restarts += 1
            w.restart()
            restarted.append(w.name)
        return restarted

    def _give_up(self, reason: str) -> None:
        self.fatal = reason
        log.critical("%s", reason)
        if self.on_fatal is not None:
            self.on_fatal(reason)
