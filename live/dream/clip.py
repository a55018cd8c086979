"""Frame-exact video dreaming: every frame of a clip, in order, through the live pipeline
(engine, temporal coherence, motion response, the overlay), with dt = 1 / the clip's
frame rate. `tools.dream CLIP OUT.mp4` and the headless recorder with a video file both
use it, so output frame i is always dreamed from input frame i: no threads, no clock.

`ClipReader` decodes the clip (PyAV), `ClipDreamer` turns one clip frame into one
composed frame, `dream_clip` runs the two into the one VideoWriter (with the clip's
sound)."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np

from models import Backbone
from .engine import DreamEngine
from .files import cause
from .images import fit_aspect
from .settings import AttractSettings, DreamSettings, MotionSettings
from .temporal.coherent import TemporalDream
from .temporal.overlay import Overlay
from .video import VideoWriter

CLIP_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")
MIN_SIDE = 32              # the smallest picture the network can dream on
FALLBACK_FPS = Fraction(25)


class ClipError(ValueError):
    """A clip that cannot be dreamed (missing, not a video, too small): one line."""


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    size: tuple[int, int]        # (w, h) of the decoded frames
    fps: Fraction
    frames: int                  # frames the container announces (an estimate; 0 = unknown)


def is_clip(path: str | Path) -> bool:
    return Path(str(path)).suffix.lower() in CLIP_SUFFIXES


class ClipReader:
    """Every frame of a video file, in order, as uint8 RGB. Opening decodes the first
    frame, so a file that is not a video, or is too small, fails here with one line."""

    def __init__(self, path: str | Path, what: str = "clip"):
        p = Path(path)
        if p.is_dir():
            raise ClipError(f"{what} '{path}' is a directory; give a video file")
        if not p.is_file():
            raise ClipError(f"{what} '{path}' does not exist")
        try:
            self._container = av.open(str(p))
        except (OSError, av.FFmpegError) as exc:
            raise ClipError(f"{what} '{path}' cannot be read as a video ({cause(exc)})") from None
        if not self._container.streams.video:
            self.close()
            raise ClipError(f"{what} '{path}' has no video stream; give a video file")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = self._decode(stream)
        try:
            first = next(self._frames)
        except (StopIteration, av.FFmpegError, OSError):
            self.close()
            raise ClipError(f"{what} '{path}' has no frame that decodes; is it a video?") from None
        h, w = first.shape[:2]
        if min(w, h) < MIN_SIDE:
            self.close()
            raise ClipError(f"{what} '{path}' is {w}x{h}, smaller than {MIN_SIDE}x{MIN_SIDE}; give a larger clip")
        self._first: np.ndarray | None = first
        fps = stream.average_rate or stream.guessed_rate or FALLBACK_FPS
        frames = stream.frames or (round(float(stream.duration * stream.time_base * fps))
                                   if stream.duration else 0)
        self.info = ClipInfo(p, (w, h), Fraction(fps), int(frames))

    def _decode(self, stream) -> Iterator[np.ndarray]:
        for frame in self._container.decode(stream):
            yield frame.to_ndarray(format="rgb24")

    def __iter__(self) -> Iterator[np.ndarray]:
        """The frames not yet read (the first one included); a frame that fails to decode
        part-way ends the clip there."""
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        try:
            yield from self._frames
        except (av.FFmpegError, OSError):
            return

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "ClipReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ClipDreamer:
    """One clip frame in, one composed frame out: TemporalDream (flow, motion response,
    attract) with dt = 1/fps, then the Overlay at the frame's own size. No mirror, no
    crop. `blend` is the operator's blend (render.blend); the motion response's
    multiplier comes with each DreamFrame."""

    def __init__(self, engine: DreamEngine, fps: float | Fraction, motion: MotionSettings, attract: AttractSettings,
                 blend: float, overlay: Overlay | None = None):
        self.engine = engine
        self.temporal = TemporalDream(engine, motion, attract)
        self.overlay = overlay or Overlay()
        self.dt = 1.0 / float(fps)
        self.blend = blend

    def __call__(self, frame: np.ndarray, blend: float | None = None) -> np.ndarray:
        self.temporal(frame, self.dt)
        last = self.temporal.last   # dreamed from this very frame: its grey, not one made again
        return self.overlay.compose(frame, last, self.blend if blend is None else blend,
                                    current_grey=None if last is None else last.grey)


def working_size(budget: tuple[int, int], frame_size: tuple[int, int]) -> tuple[int, int]:
    """The dream's working size for a clip: `budget`'s pixels, the clip's shape (as live)."""
    return fit_aspect(budget, frame_size[0] / frame_size[1])


def clip_engine(backbone: Backbone, dream: DreamSettings, frame_size: tuple[int, int], seed: int | None = None,
                budget: tuple[int, int] | None = None) -> DreamEngine:
    """The engine a frame-exact clip is dreamed with: [dream] as it applies on the backbone's
    device, at the clip's shape with that device's pixel budget (or `budget`), the real
    backend from the first frame."""
    d = dream.on(backbone.device.type)
    return DreamEngine(backbone, settings=d, size=working_size(budget or d.size, frame_size), seed=seed)


def frames_to_write(info: ClipInfo, limit: int | None) -> int | None:
    """How many frames the output will have, as far as known beforehand (for the bar)."""
    if limit is not None and info.frames:
        return min(limit, info.frames)
    return limit or info.frames or None


def dream_clip(reader: ClipReader, dreamer: Callable[[np.ndarray, float | None], np.ndarray], out: str | Path, limit: int | None = None,
               what: str = "OUT", on_frame: Callable[[int], None] | None = None,
               blend: Callable[[], float] | None = None, keep_going: Callable[[], bool] | None = None,
               before: Callable[[int], object] | None = None) -> int:
    """Dream the clip into `out` at its frame rate and size, with its sound. `limit`: at
    most this many frames; `blend()` gives the operator's blend per frame (a remote may
    change it); `keep_going()` false stops early; `before(i)` runs first for frame i (the
    soundtrack's settings, live/audio/clip.py). Ctrl+C (or any error) keeps the frames
    finished so far as a playable video (VideoWriter). `dreamer(frame, blend)` is a
    ClipDreamer (or one wrapped by the caller). Returns the frames written."""
    info = reader.info
    written = 0
    with VideoWriter(out, info.fps, info.size, what=what, frames=frames_to_write(info, limit),
                     audio_from=info.path) as video:
        for frame in reader:
            if (limit is not None and written >= limit) or (keep_going is not None and not keep_going()):
                break
            if before is not None:
                before(written)
            video.write(dreamer(frame, None if blend is None else blend()))
            written += 1
            if on_frame is not None:
                on_frame(written)
    return written
