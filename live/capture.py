"""Capture thread: camera, video file, still image or the built-in clouds, handed over
through a newest-frame slot so a slow consumer never sees a backlog.

A live installation must not die from a camera hiccup: a camera that is absent at start,
unplugged mid-run or returning bad frames is replaced by the clouds source while the
thread retries it with a doubling back-off, and it switches back by itself. Each such
event is logged once, not once per frame. A read that blocks for ever (some camera
drivers do) cannot be interrupted from Python: the thread beats a heartbeat every loop,
and the watchdog (live/watchdog.py) replaces a silent thread with a fresh one (`respawn`)."""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generic, Protocol, TypeVar

# FFmpeg (inside OpenCV) prints its own stderr lines ("moov atom not found") when a file is
# not a video; our one-line errors name the problem instead. Read at FFmpeg's first use.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2
import numpy as np

from .config import SourceConfig
from .watchdog import Heartbeat

log = logging.getLogger(__name__)

# OpenCV prints a warning per failed camera open; the retry loop logs its own one line.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
CLOUDS_MAX_WIDTH = 320     # clouds are soft: render them small, the screen scales them up
CLOUDS_MAX_FPS = 15.0      # they drift slowly; more frames would only take CPU from the dream
MAX_BACKOFF_SECONDS = 30.0
BAD_FRAMES_LIMIT = 10      # consecutive bad reads before a source counts as lost
MAX_EVENTS = 200           # source events kept in memory for the HUD and tests (weeks of flapping)


class SourceError(ValueError):
    """A source that cannot be used (missing file, unreadable video); one line for the user."""


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


# -- sources ------------------------------------------------------------------------------

class Source(Protocol):
    name: str
    period: float  # seconds between frames for pacing; 0 when the device paces itself

    def read(self) -> np.ndarray | None:
        """The next RGB frame, or None for a bad read."""

    def close(self) -> None: ...


def _bgr_to_rgb(img: np.ndarray | None) -> np.ndarray | None:
    if img is None or img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        return None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class CameraSource:
    """A camera by index, asked for the configured size and rate."""

    def __init__(self, index: int, width: int, height: int, fps: float):
        self.name = f"camera {index}"
        self.period = 0.0
        self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"no camera at index {index}")
        self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._cap.set(cv2.CAP_PROP_FPS, fps)
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queued one
        if self.read() is None:
            self._cap.release()
            raise SourceError(f"camera {index} opened but gives no pictures")

    def read(self) -> np.ndarray | None:
        ok, img = self._cap.read()
        return _bgr_to_rgb(img) if ok else None

    def close(self) -> None:
        self._cap.release()


class VideoSource:
    """A video file, paced at its own frame rate; looped, or held on its last frame."""

    def __init__(self, path: str | Path, loop: bool = True):
        self.path = Path(path)
        self.name = self.path.name
        self.loop = loop
        if not self.path.is_file():
            raise SourceError(f"source '{path}': no such file; give a camera index, a video or image path, or clouds")
        self._cap = cv2.VideoCapture(str(self.path))
        first = self.read_raw()
        if first is None:
            self._cap.release()
            raise SourceError(f"source '{path}': cannot be read as a video or image")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.period = 1.0 / fps if 1.0 <= fps <= 240.0 else 1.0 / 25.0
        self._last = first
        self._pending: np.ndarray | None = first

    def read_raw(self) -> np.ndarray | None:
        ok, img = self._cap.read()
        return _bgr_to_rgb(img) if ok else None

    def read(self) -> np.ndarray | None:
        if self._pending is not None:
            img, self._pending = self._pending, None
            return img
        img = self.read_raw()
        if img is None:  # end of file
            if not self.loop:
                return self._last
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            img = self.read_raw()
            if img is None:  # some containers cannot seek: open again
                self._cap.release()
                self._cap = cv2.VideoCapture(str(self.path))
                img = self.read_raw()
        if img is not None:
            self._last = img
        return img

    def close(self) -> None:
        self._cap.release()


class ImageSource:
    """A still picture, repeated at the configured rate so the dream keeps deepening."""

    def __init__(self, path: str | Path, fps: float = 30.0):
        self.path = Path(path)
        self.name = self.path.name
        self.period = 1.0 / fps
        if not self.path.is_file():
            raise SourceError(f"source '{path}': no such file; give a camera index, a video or image path, or clouds")
        img = _bgr_to_rgb(cv2.imread(str(self.path), cv2.IMREAD_COLOR))
        if img is None:
            raise SourceError(f"source '{path}': cannot be read as an image")
        img.flags.writeable = False
        self._img = img

    def read(self) -> np.ndarray | None:
        return self._img

    def close(self) -> None:
        pass


class CloudsSource:
    """Drifting clouds in a blue sky (fractal noise, slowly evolving): the show that
    always works, with no camera and no files."""

    def __init__(self, width: int = 640, height: int = 360, fps: float = 30.0, seed: int = 0):
        from .clouds import clouds  # the one generator, shared with the offline renderer

        self._clouds = clouds
        scale = min(1.0, CLOUDS_MAX_WIDTH / width)
        self.size = (max(32, round(width * scale)), max(32, round(height * scale)))
        self.name = "clouds"
        self.period = 1.0 / min(fps, CLOUDS_MAX_FPS)
        self.seed = seed
        self._t0 = time.perf_counter()

    def read(self) -> np.ndarray | None:
        return self._clouds(self.size[0], self.size[1], t=time.perf_counter() - self._t0, seed=self.seed)

    def close(self) -> None:
        pass


# -- choosing a source --------------------------------------------------------------------

@dataclass(frozen=True)
class SourcePlan:
    """How to (re)open the configured source. Cameras may be absent and are retried;
    files and clouds must open at start or the run stops with exit code 2."""
    opener: Callable[[], Source]
    description: str
    is_camera: bool
    auto: bool = False


def plan_source(spec: str, cfg: SourceConfig) -> SourcePlan:
    """Turn `source` from the config or --source into a plan; checks files now."""
    spec = str(spec).strip()
    if spec == "auto" or spec.isdigit():
        index = 0 if spec == "auto" else int(spec)
        return SourcePlan(lambda: CameraSource(index, cfg.width, cfg.height, cfg.fps),
                          f"camera {index}", is_camera=True, auto=(spec == "auto"))
    if spec == "clouds":
        return SourcePlan(lambda: CloudsSource(cfg.width, cfg.height, cfg.fps), "clouds", is_camera=False)
    path = Path(spec).expanduser()
    if path.suffix.lower() in IMAGE_SUFFIXES:
        ImageSource(path, cfg.fps)  # fail now, with one line, if it cannot be read
        return SourcePlan(lambda: ImageSource(path, cfg.fps), path.name, is_camera=False)
    VideoSource(path, cfg.loop).close()
    return SourcePlan(lambda: VideoSource(path, cfg.loop), path.name, is_camera=False)


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
                 fallback: Callable[[], Source] | None = None, max_backoff: float = MAX_BACKOFF_SECONDS):
        super().__init__(name="capture", daemon=True)
        self.plan = plan
        self.slot: Slot[Frame] = Slot()
        self.reconnect_seconds = reconnect_seconds
        self.max_backoff = max(max_backoff, reconnect_seconds)
        self.fallback_opener = fallback or (lambda: CloudsSource())
        self.status = "starting"        # for the HUD: which source is showing and why
        self.events: list[str] = []     # the last MAX_EVENTS logged source events, in order
        self.heartbeat = Heartbeat()    # beaten every loop; the watchdog reads it
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
        new = Capture(self.plan, self.reconnect_seconds, self.fallback_opener, self.max_backoff)
        new.slot, new.events, new._number = self.slot, self.events, self._number
        return new

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
