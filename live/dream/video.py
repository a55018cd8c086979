"""The one video writer (PyAV): the headless recorder, tools.dream's zoom videos and its
frame-exact clips all write through it, so every video gets the same care.

- H.264 in .mp4 (libx264, or MPEG-4 part 2 where FFmpeg lacks it), MJPEG in .avi.
- Written under the hidden partial name and renamed only when finished (trailer, fsync,
  rename): the final name never holds a broken file.
- Every encode and write is checked. The .mp4 is fragmented (a fragment per second, each
  playable on its own), so when the disk fills up the writer stops at once, cuts the file
  back to its last complete fragment and keeps it as `NAME.incomplete.mp4`; the caller gets
  one `WriteError` line naming the file, the cause and what was kept (exit code 1).
- Free space is checked once the first second is encoded: a warning when the requested
  length will not fit.
- `audio_from=clip` copies (remuxes, no re-encoding) the clip's first audio stream, in
  step with the video and cut to the written length."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import struct
import threading
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np

from .files import OutputError, WriteError, cause, finish, partial_name, prepare_output

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi")
KEYFRAME_SECONDS = 1.0       # a keyframe (and an .mp4 fragment) this often: at most this much is lost
# Each packet goes to disk as it is muxed (so a full disk is noticed at once); an .mp4 is a
# fragment per keyframe, its header written with the first fragment (so it can hold the
# edit list that keeps the sound's priming samples in step).
FORMAT_OPTIONS = {".mp4": {"movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof",
                           "flush_packets": "1"},
                  ".avi": {"flush_packets": "1"}}
ENCODERS = {".mp4": ("libx264", "mpeg4"), ".avi": ("mjpeg",)}
ENCODER_OPTIONS = {"libx264": {"crf": "20", "preset": "veryfast", "bf": "0"},   # no B-frames: video starts at 0, in step with sound
                   "mpeg4": {"qmin": "2", "qmax": "5"}, "mjpeg": {"qmin": "2", "qmax": "5"}}
FFmpegError = av.FFmpegError


def disk_free(folder: Path) -> int:
    """Bytes free for this user in `folder`."""
    return shutil.disk_usage(folder).free


def incomplete_name(path: Path) -> Path:
    """Where the playable part of a recording that could not be finished is kept."""
    return path.with_name(f"{path.stem}.incomplete{path.suffix}")


def frame_rate(fps: float | Fraction) -> Fraction:
    """29.97002997 -> 30000/1001: the exact rate a video file stores."""
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    if not rate > 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    return rate


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


class VideoWriter:
    """`with VideoWriter(path, fps, (w, h)) as video: video.write(rgb)`: on leaving, the
    finished video gets its name (also after Ctrl+C: what is finished is kept). A failed
    write raises WriteError, after keeping the complete part (see the module doc).
    `frames`: the length asked for, for the free-space warning. `what` names the file in
    messages (a flag such as --record, or OUT)."""

    def __init__(self, path: str | Path, fps: float | Fraction, size: tuple[int, int], *, what: str = "video",
                 frames: int | None = None, audio_from: str | Path | None = None,
                 free_bytes: Callable[[Path], int] = disk_free):
        self.path = prepare_output(path, what)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in VIDEO_SUFFIXES:
            raise OutputError(f"{what} '{path}': use a file name ending in {' or '.join(VIDEO_SUFFIXES)}")
        self.what, self.size, self.rate = what, size, frame_rate(fps)
        self.expected, self.free_bytes = frames, free_bytes
        self.tmp = partial_name(self.path)
        self.frames = 0                      # frames given to write()
        self.failed: str | None = None       # the one line of the first failure
        self._video_bytes = self._video_packets = 0
        self._space_checked = frames is None
        try:
            self._container = av.open(str(self.tmp), "w", options=FORMAT_OPTIONS[self.suffix])
        except (OSError, FFmpegError) as exc:
            raise OutputError(f"{what} '{path}': cannot write a video there ({cause(exc)})") from None
        try:
            self._stream = self._add_video()
            self._audio = AudioCopy(audio_from, self._container, what) if audio_from else None
        except BaseException:
            self._container.close()
            self.tmp.unlink(missing_ok=True)
            raise

    def _add_video(self) -> av.VideoStream:
        w, h = self.size
        gop = max(1, round(float(self.rate) * KEYFRAME_SECONDS))
        for name in ENCODERS[self.suffix]:
            if name not in av.codecs_available:
                continue
            stream = self._container.add_stream(name, rate=self.rate)
            stream.width, stream.height = w, h
            odd = w % 2 or h % 2    # 4:2:0 needs even sides; x264 takes 4:4:4 for odd ones
            stream.pix_fmt = "yuvj420p" if name == "mjpeg" else "yuv444p" if odd and name == "libx264" else "yuv420p"
            stream.codec_context.gop_size = gop
            stream.options = dict(ENCODER_OPTIONS[name])
            return stream
        raise OutputError(f"{self.what} '{self.path}': FFmpeg here has no encoder for {self.suffix} "
                          f"({', '.join(ENCODERS[self.suffix])})")

    # -- writing ------------------------------------------------------------------------------
    def write(self, rgb: np.ndarray) -> None:
        """Encode one uint8 RGB frame of the writer's size."""
        if self.failed:
            raise WriteError(self.failed)
        if rgb.shape != (self.size[1], self.size[0], 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frame {rgb.shape} {rgb.dtype} does not fit a {self.size[0]}x{self.size[1]} RGB video")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        self.frames += 1
        try:
            with whole():
                self._mux(self._stream.encode(frame))
                if self._audio is not None:
                    self._audio.pump(self.frames / self.rate)
        except (OSError, FFmpegError) as exc:
            self._fail(exc)

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._video_bytes += packet.size
            self._video_packets += 1
            self._container.mux(packet)
        if not self._space_checked and self._video_packets >= self._stream.codec_context.gop_size:
            self._space_checked = True
            self._check_space()

    def _check_space(self) -> None:
        """Warn when the rest of the requested recording will not fit on the disk."""
        per_frame = self._video_bytes / max(1, self._video_packets)
        need = per_frame * max(0, self.expected - self.frames) * 1.1
        free = self.free_bytes(self.path.parent)
        if need > free:
            log.warning("%s '%s': %d frames need about %s more but only %s is free there; the recording "
                        "stops when the disk is full, keeping what was finished", self.what, self.path,
                        self.expected, _mb(need), _mb(free))

    # -- finishing ----------------------------------------------------------------------------
    def close(self) -> Path | None:
        """Flush the encoder, write the trailer, fsync and rename: the finished video under
        its name (None when no frame was written: nothing is left behind)."""
        if self.failed:
            return None
        if self.frames == 0:
            self.discard()
            return None
        try:
            self._mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.pump(self.frames / self.rate, final=True)
            self._container.close()
            self._close_audio()
            return finish(self.tmp, self.path)
        except (OSError, FFmpegError) as exc:
            self._fail(exc)
        return None

    def discard(self) -> None:
        """Stop without a file: the partial is removed."""
        self._release()
        self.tmp.unlink(missing_ok=True)

    def _release(self) -> None:
        try:
            self._container.close()
        except (OSError, FFmpegError):
            pass  # the trailer could not be written; the file is closed all the same
        self._close_audio()

    def _close_audio(self) -> None:
        if self._audio is not None:
            self._audio.close()

    def _fail(self, exc: BaseException) -> None:
        """The first failed write: stop, keep the complete part, raise one line."""
        self.failed = f"{self.what} '{self.path}': cannot write ({cause(exc)}) after {self.frames} frames"
        self._release()
        self.failed += f"; {salvage(self.tmp, incomplete_name(self.path), self.rate)}"
        raise WriteError(self.failed) from None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if isinstance(exc, WriteError) or self.failed:
            return
        self.close()   # also after Ctrl+C or an error elsewhere: the finished frames are kept


# -- keeping what was complete -------------------------------------------------------------------

def mp4_complete_length(path: Path) -> int:
    """Bytes of `path` up to the end of its last complete fragment (moof + mdat): the
    leading part that plays. 0 when not even one fragment is complete."""
    size = path.stat().st_size
    pos = end = 0
    with open(path, "rb") as f:
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            length, kind = struct.unpack(">I4s", head[:8])
            if length == 1 and len(head) == 16:
                length = struct.unpack(">Q", head[8:16])[0]
            if length < 8 or pos + length > size:
                break
            pos += length
            if kind == b"mdat":
                end = pos
    return end


def avi_complete_length(path: Path) -> int:
    """Bytes of `path` up to the end of the last complete chunk (frame) of its movi list."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos, movi = 12, None                       # after "RIFF" size "AVI "
        while movi is None and pos + 12 <= size:
            f.seek(pos)
            kind, length, sub = struct.unpack("<4sI4s", f.read(12))
            if kind == b"LIST" and sub == b"movi":
                movi = pos + 12
            pos += 8 + length + (length & 1)
        pos = end = movi or 0
        while movi is not None and pos + 8 <= size:
            f.seek(pos)
            kind, length = struct.unpack("<4sI", f.read(8))
            if pos + 8 + length > size:
                break
            pos = end = pos + 8 + length + (length & 1)
    return min(end, size)


COMPLETE_LENGTH = {".mp4": mp4_complete_length, ".avi": avi_complete_length}


def count_frames(path: Path) -> int:
    """Video packets that can be read from `path` (no decoding: cheap for long files)."""
    n = 0
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                return 0
            for packet in c.demux(video=0):
                n += packet.size > 0
    except (OSError, FFmpegError):
        pass
    return n


def salvage(tmp: Path, dest: Path, rate: Fraction) -> str:
    """After a failed write: cut `tmp` back to what plays and keep it as `dest`. Returns
    what was kept, for the error line."""
    try:
        os.truncate(tmp, COMPLETE_LENGTH[tmp.suffix.lower()](tmp))
        frames = count_frames(tmp)
        if frames == 0:
            tmp.unlink(missing_ok=True)
            return "nothing playable was written"
        finish(tmp, dest)
    except OSError as exc:
        return f"what was written is in {tmp} ({cause(exc)} while keeping it)"
    return f"the first {frames} frames ({float(frames / rate):.1f} s) are kept in {dest}"


# -- the clip's sound --------------------------------------------------------------------------

class AudioCopy:
    """The first audio stream of a clip, copied packet by packet into `output` in step with
    the video written so far. Timestamps keep their distance from the clip's first video
    frame, so picture and sound stay in sync; nothing is re-encoded."""

    def __init__(self, clip: str | Path, output: av.container.OutputContainer, what: str):
        try:
            self._input = av.open(str(clip))
        except (OSError, FFmpegError) as exc:
            raise OutputError(f"{what}: cannot read the sound of '{clip}' ({cause(exc)})") from None
        self.stream = None
        if not self._input.streams.audio:
            log.info("%s has no sound; the video is silent", clip)
            return
        src = self._input.streams.audio[0]
        if src.codec_context.name not in output.supported_codecs:
            self._input.close()
            raise OutputError(f"{what}: the sound of '{clip}' ({src.codec_context.name}) cannot be copied into "
                              f"this kind of file; use another suffix")
        self.stream = output.add_stream_from_template(src)
        self._output, self._src = output, src
        video = self._input.streams.video
        start = video[0].start_time if video and video[0].start_time is not None else 0
        self._offset = start * video[0].time_base if video else Fraction(0)   # seconds of the first frame
        self._packets = self._input.demux(src)
        self._next: av.Packet | None = None

    def _take(self) -> av.Packet | None:
        if self._next is None:
            for packet in self._packets:
                if packet.size and packet.pts is not None:
                    self._next = packet
                    break
        return self._next

    def pump(self, until: Fraction, final: bool = False) -> None:
        """Copy the packets that start before `until` seconds of video."""
        if self.stream is None:
            return
        while (packet := self._take()) is not None:
            start = packet.pts * packet.time_base - self._offset
            if start >= until:
                break
            shift = int(self._offset / packet.time_base)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self.stream
            self._next = None
            self._output.mux(packet)
        if final:
            self.close()

    def close(self) -> None:
        if self._input is not None:
            self._input.close()
            self._input = None


@contextmanager
def whole() -> Iterator[None]:
    """Ctrl+C and SIGTERM wait until the block is done (main thread only): an interrupt
    between encoding a frame and muxing its packets lost them, and when they held the
    first keyframe the partial video kept no frame that decodes (a rare empty partial)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    asked: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _: asked.append(signum)) for sig in DEFERRED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for sig in dict.fromkeys(asked):
        handler = previous[sig]
        if callable(handler):
            handler(sig, None)       # Python's own raises KeyboardInterrupt; an app's may set a flag
        elif handler == signal.SIG_DFL:
            signal.raise_signal(sig)


DEFERRED = (signal.SIGINT, signal.SIGTERM)
