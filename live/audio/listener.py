"""The same features as a clip's, as the sound arrives (a microphone, a line in): blocks of
samples in from the audio thread, hop by hop (~11.6 ms) a spectrum, the three bands, the
level and the onset strength (the rise of the log-mel spectrum, as librosa's), each scaled
by its own recent top (it forgets over ~10 s, so a quiet room and a loud set both span
0..1). A beat is an onset well above the last second's (mean + 2 standard deviations) at
least BEAT_GAP after the one before: heard within a hop, not a tracker's look-ahead."""
from __future__ import annotations

import threading
from collections import deque

import numpy as np

from .features import BANDS, HOP, N_FFT, SR, librosa

FORGET = 10.0          # s: the recent top halves this often
BEAT_GAP = 0.25        # s: at most 240 beats a minute
HISTORY = 1.0          # s of onset strength a beat is judged against
SPREAD = 2.0           # standard deviations above the mean that make an onset a beat
N_MELS = 64


class Listener:
    """`feed(samples)` from the audio thread; `take()` the newest features (beat: 1 when one
    came since the last take) from the thread that applies them."""

    def __init__(self, sr: int = SR):
        self.sr, self.hop = sr, max(1, round(sr * HOP / SR))
        self.n_fft = max(256, round(sr * N_FFT / SR))
        lr = librosa()
        self._mel = lr.filters.mel(sr=sr, n_fft=self.n_fft, n_mels=N_MELS).astype(np.float32)
        freqs = lr.mel_frequencies(n_mels=N_MELS, fmax=sr / 2)
        self._bands = {name: (freqs >= lo) & (freqs < hi) for name, (lo, hi) in BANDS.items()}
        self._window = np.hanning(self.n_fft).astype(np.float32)
        self._buf = np.zeros(self.n_fft, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._prev: np.ndarray | None = None
        hops_per_s = sr / self.hop
        self._keep = 0.5 ** (1.0 / (FORGET * hops_per_s))
        self._top = {name: 1e-6 for name in ("level", "low", "mid", "high", "onset")}
        self._onsets: deque[float] = deque(maxlen=max(8, round(HISTORY * hops_per_s)))
        self._gap = round(BEAT_GAP * hops_per_s)
        self._since_beat = self._gap
        self.hops = 0
        self._latest = {name: 0.0 for name in self._top}
        self._beats = 0
        self._taken = 0
        self._lock = threading.Lock()

    def feed(self, samples: np.ndarray) -> None:
        x = np.concatenate([self._pending, np.asarray(samples, np.float32).reshape(-1)])
        n = len(x) // self.hop
        for k in range(n):
            self._hop(x[k * self.hop:(k + 1) * self.hop])
        self._pending = x[n * self.hop:]

    def take(self) -> dict[str, float]:
        with self._lock:
            out = dict(self._latest, beat=float(self._beats > self._taken))
            self._taken = self._beats
        return out

    @property
    def beats(self) -> int:
        return self._beats

    def _hop(self, chunk: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf[len(chunk):], chunk])
        power = np.abs(np.fft.rfft(self._buf * self._window)) ** 2
        mel = self._mel @ power
        logmel = 10.0 * np.log10(np.maximum(mel, 1e-10))
        onset = 0.0 if self._prev is None else float(np.maximum(logmel - self._prev, 0.0).mean())
        self._prev = logmel
        raw = {"level": float(np.sqrt(np.mean(self._buf ** 2))), "onset": onset,
               **{name: float(np.sqrt(mel[m].sum())) for name, m in self._bands.items()}}
        beat = self._is_beat(onset)
        with self._lock:
            for name, v in raw.items():
                self._top[name] = max(v, self._top[name] * self._keep)
                self._latest[name] = min(v / self._top[name], 1.0)
            self._beats += beat
        self.hops += 1

    def _is_beat(self, onset: float) -> bool:
        past = np.asarray(self._onsets) if self._onsets else np.zeros(1)
        self._onsets.append(onset)
        self._since_beat += 1
        if self._since_beat < self._gap or len(past) < self._onsets.maxlen // 2:
            return False
        if onset > past.mean() + SPREAD * past.std() and onset > 1e-3:
            self._since_beat = 0
            return True
        return False
