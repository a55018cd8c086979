"""A soundtrack as features per video frame, each 0..1: level (RMS), low / mid / high bands
(mel energy below 200 Hz, to 2 kHz, above), onset strength (spectral flux) and beats
(librosa's beat tracker), so frame i of a clip reacts to the sound heard while it shows.

librosa is the optional `audio` extra; a missing one is an `AudioError` line."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ..dream.files import cause

SR = 22050                 # analysis sample rate
HOP = 256                  # ~11.6 ms per analysis frame: beats placed well within a video frame
N_FFT = 2048
BANDS = {"low": (0.0, 200.0), "mid": (200.0, 2000.0), "high": (2000.0, SR / 2)}
SNAP = 0.12               # s: how far a tracked beat may move onto a hit
TOP = 99                   # level and bands are scaled so this percentile of the clip is 1


class AudioError(ValueError):
    """No sound to follow (no soundtrack, undecodable, librosa missing): one line."""


def librosa():
    logging.getLogger("numba").setLevel(logging.WARNING)   # its compiler's debug lines are not ours
    try:
        import librosa as lr
    except ImportError:
        raise AudioError("audio reactivity needs librosa: pip install 'dreamcam[audio]'") from None
    return lr


@dataclass(frozen=True)
class Features:
    """Per video frame: `values[name][i]` in 0..1 and the frames on a beat."""
    fps: float
    values: dict[str, np.ndarray]
    beats: np.ndarray                  # video frame indices of the beats, ascending
    tempo: float                       # beats per minute (0: none found)

    @property
    def frames(self) -> int:
        return len(self.values["level"])

    def at(self, i: int) -> dict[str, float]:
        """The features of video frame i (past the end: silence)."""
        if i >= self.frames:
            return {name: 0.0 for name in self.values}
        return {name: float(v[i]) for name, v in self.values.items()}


def soundtrack(path: str | Path) -> np.ndarray:
    """The first audio stream of a video as mono float32 at SR, its sample 0 at the video's
    time 0 (a stream starting later is padded with silence, one starting earlier cut)."""
    try:
        with av.open(str(path)) as box:
            if not box.streams.audio:
                raise AudioError(f"'{path}' has no soundtrack to follow; give a clip with sound or set audio.source = \"mic\"")
            stream = box.streams.audio[0]
            video = box.streams.video[0] if box.streams.video else None
            start = float(video.start_time * video.time_base) if video is not None and video.start_time else 0.0
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
            chunks, first = [], None
            for frame in box.decode(stream):
                if first is None and frame.time is not None:
                    first = frame.time
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except (OSError, av.FFmpegError) as exc:
        raise AudioError(f"the soundtrack of '{path}' cannot be decoded ({cause(exc)})") from None
    y = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    shift = int(round(((first or 0.0) - start) * SR))
    return np.concatenate([np.zeros(shift, np.float32), y]) if shift > 0 else y[-shift:]


def _scaled(x: np.ndarray) -> np.ndarray:
    top = float(np.percentile(x, TOP)) if x.size else 0.0
    return np.clip(x / top, 0.0, 1.0) if top > 1e-9 else np.zeros_like(x)


def _per_frame(x: np.ndarray, fps: float, frames: int) -> np.ndarray:
    """Analysis frames -> video frames: the loudest analysis value while frame i shows."""
    edges = np.round(np.arange(frames + 1) / fps * SR / HOP).astype(int)
    out = np.zeros(frames, np.float32)
    for i in range(frames):
        a, b = edges[i], max(edges[i + 1], edges[i] + 1)
        if a < len(x):
            out[i] = x[a:b].max()
    return out


def snapped(beats: np.ndarray, onsets: np.ndarray, reach: float = SNAP) -> np.ndarray:
    """Each tracked beat moved onto the nearest onset within `reach` seconds: the tracker
    keeps an even tempo (its beats drift a little off the hits, most at the ends), the
    onsets say where the hits are."""
    if not len(onsets):
        return beats
    nearest = onsets[np.abs(onsets[None, :] - beats[:, None]).argmin(1)] if len(beats) else beats
    return np.where(np.abs(nearest - beats) <= reach, nearest, beats)


def analyse(y: np.ndarray, fps: float, frames: int) -> Features:
    """Features of mono samples `y` (at SR) for `frames` video frames at `fps`."""
    lr = librosa()
    y = np.concatenate([y, np.zeros(max(0, N_FFT - len(y)), np.float32)])
    mel = lr.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=64)
    freqs = lr.mel_frequencies(n_mels=64, fmax=SR / 2)
    values = {"level": _scaled(lr.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP)[0])}
    for name, (lo, hi) in BANDS.items():
        values[name] = _scaled(np.sqrt(mel[(freqs >= lo) & (freqs < hi)].sum(0)))
    onset = lr.onset.onset_strength(S=lr.power_to_db(mel), sr=SR, hop_length=HOP)
    values["onset"] = np.clip(onset / max(float(onset.max()), 1e-9), 0.0, 1.0)
    tempo, beat_times = lr.beat.beat_track(onset_envelope=onset, sr=SR, hop_length=HOP, units="time")
    peaks = lr.onset.onset_detect(onset_envelope=onset, sr=SR, hop_length=HOP, units="time")
    beats = np.unique(np.round(snapped(np.asarray(beat_times), peaks) * fps).astype(int))
    beats = beats[(beats >= 0) & (beats < frames)]
    per_frame = {name: _per_frame(v, fps, frames) for name, v in values.items()}
    per_frame["beat"] = np.zeros(frames, np.float32)
    per_frame["beat"][beats] = 1.0
    return Features(float(fps), per_frame, beats, float(np.atleast_1d(tempo)[0]) if len(beats) else 0.0)
