"""Capture thread: camera, video file, still image or the built-in clouds, handed over
through a newest-frame slot so a slow consumer never sees a backlog.

A live installation must not die from a camera hiccup: a camera that is absent at start,
unplugged mid-run or returning bad frames is replaced by the clouds source while the
thread retries it with a doubling back-off, and it switches back by itself. Each such
event is logged once, not once per frame. A read that blocks for ever (some camera
drivers do) cannot be interrupted from Python: the thread beats a heartbeat every loop,
and the watchdog (supervision/watchdog.py) replaces a silent thread with a fresh one (`respawn`)."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

import numpy as np

from .sources import CloudsSource, Source, SourcePlan
from .supervision.watchdog import Heartbeat

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
BAD_FRAMES_LIMIT = 10      # consecutive bad reads before a source counts as lost
MAX_EVENTS = 200           # source events kept in memory for the HUD and tests (weeks of flapping)
SLEEP_POLL = 0.5           # seconds between looks at the opening hours while asleep


@dataclass(frozen=True)
class Frame:
    """One captured picture. `timestamp` is time.perf_counter() when it was read, so the
    renderer can measure capture-to-screen latency."""
    image: np.ndarray          # uint8 HxWx3 RGB, read-only
    number: int                # increases by one per published frame, across source switches
    timestamp: float
    source: str                # what produced it, e.g. "camera 0" or "clouds"


T = TypeVar("T")


class Slot(Generic[T]):
    """Holds only the newest item. A reader asks for something newer than the sequence
    number it already has and gets the newest one; older items are simply dropped."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._seq = 0

    def put(self, item: T) -> None:
        with self._cond:
            self._item = item
            self._seq += 1
            self._cond.notify_all()

    def latest(self) -> tuple[int, T | None]:
        """(sequence number, newest item) without waiting; (0, None) before the first."""
        with self._cond:
            return self._seq, self._item

    def wait(self, after: int, timeout: float | None = None) -> tuple[int, T | None]:
        """Wait until an item newer than sequence `after` exists (or the timeout passes)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after, timeout)
            return self._seq, self._item


def _valid(img: object) -> bool:
    return (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3
            and img.shape[2] == 3 and img.shape[0] >= 8 and img.shape[1] >= 8)


class Capture(threading.Thread):
    """Reads the source at its pace and publishes only the newest Frame into `slot`.

    When the source fails (cannot open, raises, or gives BAD_FRAMES_LIMIT bad frames in a
    row) the thread switches to `fallback` (clouds), retries the source after
    `reconnect_seconds`, doubling up to MAX_BACKOFF_SECONDS, and switches back when it
    opens again."""

    def __init__(self, plan: SourcePlan, reconnect_seconds: float = 2.0,
                 fallback: Callable[[], Source] | None = None, max_backoff: float = MAX_BACKOFF_SECONDS,
                 asleep: Callable[[], bool] = lambda: False):
        super().__init__(name="capture", daemon=True)
        self.plan = plan
        self.asleep = asleep            # outside opening hours: the source is closed (the camera released)
        self.slot: Slot[Frame] = Slot()
        self.reconnect_seconds = reconnect_seconds
        self.max_backoff = max(max_backoff, reconnect_seconds)
        self.fallback_opener = fallback or (lambda: CloudsSource())
        self.status = "starting"        # for the HUD: which source is showing and why
        self.events: list[str] = []     # the last MAX_EVENTS logged source events, in order
        self.heartbeat = Heartbeat()    # beaten every loop; the watchdog reads it
        self.reconnects = 0             # times the source came back after failing (health)
        self._stop_event = threading.Event()
        self._number = 0

    def stop(self, timeout: float = 2.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def respawn(self) -> "Capture":
        """A fresh (not yet started) capture thread that takes over this one's slot, frame
        numbering and event log. This one is told to stop and publishes nothing more, even
        if the read it is stuck in returns one day; it closes its source when it does."""
        self._stop_event.set()
        new = Capture(self.plan, self.reconnect_seconds, self.fallback_opener, self.max_backoff, self.asleep)
        new.slot, new.events, new._number = self.slot, self.events, self._number
        new.reconnects = self.reconnects
        return new

    def _sleep(self, *sources: Source | None) -> None:
        """Outside opening hours: the sources closed (the camera released), then a pause."""
        for source in sources:
            if source is not None:
                source.close()
        self.status = "asleep: outside opening hours"
        self._stop_event.wait(SLEEP_POLL)

    def _event(self, level: int, text: str) -> None:
        self.events.append(text)
        if len(self.events) > MAX_EVENTS:
            del self.events[:len(self.events) - MAX_EVENTS]
        log.log(level, text)

    def _publish(self, img: np.ndarray, name: str) -> None:
        if self._stop_event.is_set():  # stopped or abandoned: the slot belongs to another thread
            return
        self._number += 1
        if img.flags.writeable:
            img.flags.writeable = False  # consumers share it; nobody may draw on it
        self.slot.put(Frame(img, self._number, time.perf_counter(), name))

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.heartbeat.beat()
            try:
                self._loop()
            except Exception:  # a bug here must not end the show: log it, start over
                log.exception("capture thread failed; restarting it")
                self._stop_event.wait(1.0)

    def _loop(self) -> None:
        primary: Source | None = None
        fallback: Source | None = None
        backoff = self.reconnect_seconds
        next_retry = 0.0
        bad = 0
        next_due = time.perf_counter()
        first = True
        while not self._stop_event.is_set():
            self.heartbeat.beat()
            if self.asleep():
                self._sleep(primary, fallback)
                primary = fallback = None
                first, next_retry = True, 0.0   # waking opens the source again at once (not a reconnect)
                continue
            now = time.perf_counter()
            if primary is None and now >= next_retry:
                try:
                    primary = self.plan.opener()
                except Exception as exc:  # absent camera, vanished file: keep the show going
                    if first:
                        what = "no camera found" if self.plan.auto else f"{self.plan.description} unavailable ({exc})"
                        self._event(logging.WARNING, f"{what}; showing the built-in clouds source, "
                                                     f"retrying every {backoff:g}s and up")
                    else:
                        backoff = min(backoff * 2, self.max_backoff)
                        log.debug("retry of %s failed (%s); next in %.1fs", self.plan.description, exc, backoff)
                    next_retry = now + backoff
                else:
                    if not first:
                        self.reconnects += 1
                        self._event(logging.INFO, f"{primary.name} is back; switching to it")
                    backoff = self.reconnect_seconds
                    bad = 0
                    if fallback is not None:
                        fallback.close()
                        fallback = None
                first = False
            if primary is None and fallback is None:
                fallback = self.fallback_opener()
            source = primary or fallback
            self.status = source.name if source is primary else f"clouds ({self.plan.description} unavailable)"
            try:
                img = source.read()
                reason = "bad frames"
            except Exception as exc:
                img, reason = None, f"{type(exc).__name__}: {exc}"
                if source is primary:
                    bad = BAD_FRAMES_LIMIT - 1
            if _valid(img):
                bad = 0
                self._publish(img, source.name)
            elif source is primary:
                bad += 1
                if bad >= BAD_FRAMES_LIMIT:
                    self._event(logging.WARNING, f"{primary.name} lost ({reason}); showing clouds, "
                                                 f"retrying in {backoff:g}s")
                    try:
                        primary.close()
                    except Exception:
                        pass
                    primary = None
                    next_retry = time.perf_counter() + backoff
                else:
                    time.sleep(0.01)  # the renderer keeps the last good frame meanwhile
                    continue
            period = source.period
            if period > 0:
                next_due += period
                delay = next_due - time.perf_counter()
                if delay > 0:
                    self._stop_event.wait(delay)
                elif delay < -period:
                    next_due = time.perf_counter()  # fell behind: don't try to catch up
            else:
                next_due = time.perf_counter()
        for s in (primary, fallback):
            if s is not None:
                s.close()
