"""Where pictures come from: a camera by index, a video file paced at its own frame rate,
a still picture, or the built-in drifting clouds; and `plan_source`, which turns the
`source` setting into a way to (re)open one. Files must be usable at start (exit code 2
with one line otherwise); cameras may come and go (capture.py retries them)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

# FFmpeg (inside OpenCV) prints its own stderr lines ("moov atom not found") when a file is
# not a video; our one-line errors name the problem instead. Read at FFmpeg's first use.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2
import numpy as np

from .config import SourceConfig
from .dream.clouds import clouds

# OpenCV prints a warning per failed camera open; the retry loop logs its own one line.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
CLOUDS_MAX_WIDTH = 320     # clouds are soft: render them small, the screen scales them up
CLOUDS_MAX_FPS = 15.0      # they drift slowly; more frames would only take CPU from the dream
SOURCE_MIN = 32            # smallest side of a usable picture (the smallest working size)


class SourceError(ValueError):
    """A source that cannot be used (missing file, unreadable video); one line for the user."""


class Source(Protocol):
    name: str
    period: float  # seconds between frames for pacing; 0 when the device paces itself

    def read(self) -> np.ndarray | None:
        """The next RGB frame, or None for a bad read."""

    def close(self) -> None: ...


def check_file(path: Path, spec: str | Path) -> None:
    """One line for a source path that is not a file."""
    if path.is_dir():
        raise SourceError(f"source '{spec}' is a directory; give a video or picture file inside it")
    if not path.is_file():
        raise SourceError(f"source '{spec}': no such file; give a camera index, a video or image path, or clouds")


def check_size(img: np.ndarray, spec: str | Path, what: str) -> None:
    """A picture smaller than the smallest working size cannot be dreamed on: bad input."""
    h, w = img.shape[:2]
    if w < SOURCE_MIN or h < SOURCE_MIN:
        raise SourceError(f"source '{spec}': the {what} is {w}x{h}, smaller than the smallest working size "
                          f"{SOURCE_MIN}x{SOURCE_MIN}; give a larger one")


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
        check_file(self.path, path)
        self._cap = cv2.VideoCapture(str(self.path))
        first = self.read_raw()
        if first is None:
            self._cap.release()
            raise SourceError(f"source '{path}': cannot be read as a video or image")
        if min(first.shape[:2]) < SOURCE_MIN:
            self._cap.release()
            check_size(first, path, "video")
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
            if not self.path.is_file():  # removed or unmounted: lost, like an unplugged camera
                return None
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
        check_file(self.path, path)
        img = _bgr_to_rgb(cv2.imread(str(self.path), cv2.IMREAD_COLOR))
        if img is None:
            raise SourceError(f"source '{path}': cannot be read as an image")
        check_size(img, path, "picture")
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
        self._clouds = clouds  # the one generator, shared with the offline tools
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


@dataclass(frozen=True)
class SourcePlan:
    """How to (re)open the configured source. Cameras may be absent and are retried;
    files and clouds must open at start or the run stops with exit code 2."""
    opener: Callable[[], Source]
    description: str
    is_camera: bool
    auto: bool = False
    video: Path | None = None   # a video file: headless recordings dream it frame by frame


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
    return SourcePlan(lambda: VideoSource(path, cfg.loop), path.name, is_camera=False, video=path)
