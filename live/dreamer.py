"""Dream thread: takes the newest captured frame, runs one engine pass, publishes the
newest dream with its timings.

It only ever reads: frames from the capture slot and settings from the shared state
(a `DreamSettings` snapshot per pass), so setting changes apply between steps and data
flows one way. Faults never end the show: an exception or non-finite values are logged,
the engine is rebuilt, and meanwhile an empty dream tells the renderer to show the live
picture. CUDA out of memory steps the working size down instead. A step that never
returns is the watchdog's to notice (the heartbeat) and replace (`respawn`).

The working size follows the source's aspect: `dream.size` gives the pixel budget, the
shape is the picture's (else a 16:9 camera is squashed into 4:3 and the dream's creatures
come out 1.33x wide once the renderer stretches it back)."""
from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

import cv2
import numpy as np
import torch

from .capture import Frame, Slot
from .engine import DreamEngine
from .watchdog import Heartbeat

if TYPE_CHECKING:
    from .motion import TemporalDream

log = logging.getLogger(__name__)

ADAPTIVE_SCALES = (1.0, 0.8, 0.7, 0.5)  # 320x240 -> 256x192 -> 224x168 -> 160x120
FAULT_BACKOFF = (0.5, 10.0)              # first and longest pause before rebuilding the engine
SLOW_STEP_GRACE = 600.0                  # s the watchdog allows for building an engine or the first
                                         # step after a change (an ONNX export on a slow CPU)


@dataclass(frozen=True)
class DreamSettings:
    """What the dreamer reads from the shared state before each pass."""
    layer: str
    objective: str
    strength: float
    zoom: bool = False           # endless-zoom drift: feed the dream back with a small zoom
    zoom_factor: float = 1.02
    noise: bool = False          # dream from noise instead of the camera
    frozen: bool = False         # keep dreaming on the frame held when frozen
    reset: int = 0               # bumped by the 'r' key: forget the carried dream


class SettingsSource(Protocol):
    def dream_settings(self) -> DreamSettings: ...


@dataclass(frozen=True)
class Dream:
    """One published dream. `image` None means no dream is available (a fault): the
    renderer then shows the live picture alone."""
    image: np.ndarray | None     # uint8 h x w x 3 RGB at the working size
    number: int
    frame: Frame | None          # the captured frame it was dreamed from
    ms: float                    # ms per dream pass (engine.last_ms)
    steps_per_second: float      # dream steps actually done per second of wall time
    size: tuple[int, int]
    info: dict                   # engine.info: layer, backend, device, precision, ...
    blend: float = 1.0           # motion response: multiplies the operator's blend
    preset_due: bool = False     # attract mode asks for the next preset


def fit_aspect(size: tuple[int, int], aspect: float) -> tuple[int, int]:
    """The working size with `size`'s pixel count (the compute budget) and the picture's
    aspect (width / height), each side a multiple of 8 and at least 32."""
    w = math.sqrt(size[0] * size[1] * aspect)
    return max(32, int(round(w / 8)) * 8), max(32, int(round(w / aspect / 8)) * 8)


def adaptive_ladder(size: tuple[int, int], scales: tuple[float, ...] = ADAPTIVE_SCALES) -> list[tuple[int, int]]:
    """Working sizes to step down through, keeping the aspect (multiples of 8, >= 32)."""
    w, h = size
    out: list[tuple[int, int]] = []
    for s in scales:
        cand = (max(32, int(round(w * s / 8)) * 8), max(32, int(round(h * s / 8)) * 8))
        if s == 1.0:
            cand = (w, h)
        if cand not in out:
            out.append(cand)
    return out


class AdaptiveSize:
    """Lowers the working size when dream steps/s fall below the target, and raises it
    again when the larger size would still meet the target with headroom."""

    def __init__(self, size: tuple[int, int], target: float, enabled: bool = True,
                 settle_seconds: float = 3.0, headroom: float = 1.25, window: int = 6, warmup: int = 2):
        self.ladder = adaptive_ladder(size)
        self.target = target
        self.enabled = enabled
        self.settle = settle_seconds      # wait this long after a change before stepping down again
        self.headroom = headroom          # stepping up needs the larger size to beat target * headroom
        self.warmup = warmup              # the first steps at a new size are slow (kernel set-up)
        self.level = 0
        self.floor = 0                    # largest size allowed (raised after CUDA out of memory)
        self._skip = 0
        self._rates: deque[float] = deque(maxlen=window)
        self._changed: float | None = None     # when the size last changed (or rates began)

    @property
    def size(self) -> tuple[int, int]:
        return self.ladder[self.level]

    def set_base(self, size: tuple[int, int]) -> bool:
        """A new full size (the source's aspect changed); keeps the level. True if changed."""
        ladder = adaptive_ladder(size)
        if ladder == self.ladder:
            return False
        self.ladder = ladder
        self.level = min(self.level, len(ladder) - 1)
        self.floor = min(self.floor, self.level)
        self._rates.clear()
        return True

    def step_down_for_memory(self) -> tuple[int, int] | None:
        """One size down, and never back up above it in this run; None at the bottom."""
        if self.level >= len(self.ladder) - 1:
            return None
        self.level += 1
        self.floor = self.level
        self._rates.clear()
        self._changed = None
        return self.size

    def update(self, steps_per_second: float, now: float | None = None) -> tuple[int, int] | None:
        """Feed one measured rate; returns the new working size when it should change."""
        if not self.enabled:
            return None
        now = time.monotonic() if now is None else now
        if self._skip > 0:
            self._skip -= 1
            return None
        self._rates.append(steps_per_second)
        if self._changed is None:
            self._changed = now
        if len(self._rates) < self._rates.maxlen or now - self._changed < self.settle:
            return None
        rate = float(np.median(self._rates))
        new = self.level
        if rate < self.target and self.level < len(self.ladder) - 1:
            new = self.level + 1
        elif self.level > self.floor and now - self._changed >= 3 * self.settle:  # up slowly: no see-saw
            (w0, h0), (w1, h1) = self.ladder[self.level], self.ladder[self.level - 1]
            if rate * (w0 * h0) / (w1 * h1) >= self.target * self.headroom:
                new = self.level - 1
        if new == self.level:
            return None
        self.level = new
        self._rates.clear()
        self._changed = now
        self._skip = self.warmup
        return self.size


def zoom_image(img: np.ndarray, factor: float) -> np.ndarray:
    """The picture magnified about its centre (the endless-zoom feedback)."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), 0.0, factor)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def noise_image(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Grey-ish colour noise to start a dream that is purely the network's."""
    w, h = size
    small = rng.uniform(80, 176, size=(max(2, h // 4), max(2, w // 4), 3)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) + rng.normal(0, 12, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


EngineFactory = Callable[[tuple[int, int], DreamSettings], DreamEngine]
FlowFn = Callable[[np.ndarray, tuple[int, int]], "np.ndarray | None"]
TemporalFactory = Callable[[DreamEngine], "TemporalDream"]  # live.motion: flow + motion around an engine


class Dreamer(threading.Thread):
    """newest frame -> engine -> newest Dream in `self.dreams`.

    `make_engine(size, settings)` builds an engine (at start and after a fault).
    `flow(frame_image, working_size)`, when given, returns working-size optical flow from
    the previous frame for `engine.dream(frame, flow)`: the seam for live/flow.py.
    `size` is the configured working size: its pixel count is kept, its shape follows the
    frames (`aspect`, width / height, is the expected one before the first frame)."""

    def __init__(self, make_engine: EngineFactory, frames: Slot[Frame], settings: SettingsSource,
                 size: tuple[int, int], steps_per_frame: int = 1, target_steps_per_second: float = 8.0,
                 adaptive: bool = True, flow: FlowFn | None = None, seed: int = 0,
                 aspect: float | None = None, temporal: TemporalFactory | None = None):
        super().__init__(name="dreamer", daemon=True)
        self.make_engine = make_engine
        self.frames = frames
        self.settings = settings
        self.steps_per_frame = steps_per_frame
        self.base_size = (int(size[0]), int(size[1]))
        start = fit_aspect(self.base_size, aspect) if aspect else self.base_size
        self.adaptive = AdaptiveSize(start, target_steps_per_second, adaptive)
        self.flow = flow
        self.make_temporal = temporal
        self._temporal = None  # live.motion.TemporalDream around the current engine
        self.dreams: Slot[Dream] = Slot()
        self.engine: DreamEngine | None = None
        self.heartbeat = Heartbeat()       # beaten every loop; the watchdog reads it
        self.faults = 0
        self.restarts = 0
        self.steps = 0
        self._rng = np.random.default_rng(seed)
        self._stop_event = threading.Event()
        self._abandoned = False
        self._applied: DreamSettings | None = None
        self._feedback: np.ndarray | None = None   # last dream, for zoom / noise feedback
        self._bad_setting: tuple | None = None
        self._times: deque[tuple[float, int]] = deque(maxlen=32)
        self._number = 0
        self._held: Frame | None = None
        self._shape: tuple[int, int] | None = None  # source picture (h, w) the size was fitted to
        self._slow_next = True                      # the next step may be slow (new engine/size/layer)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def respawn(self) -> "Dreamer":
        """A fresh (not yet started) dream thread that takes over this one's dream slot,
        working size and counters. This one is abandoned: it publishes nothing more, and
        its engine's hooks come off the shared network now (it may be stuck in a step)."""
        self._abandoned = True
        self._stop_event.set()
        new = Dreamer(self.make_engine, self.frames, self.settings, self.base_size, self.steps_per_frame,
                      self.adaptive.target, self.adaptive.enabled, self.flow,
                      temporal=self.make_temporal)
        new.adaptive, new.dreams, new._rng, new._shape = self.adaptive, self.dreams, self._rng, self._shape
        new.faults, new.steps, new._number = self.faults, self.steps, self._number
        new.restarts = self.restarts + 1
        if self.engine is not None:
            try:
                self.engine.close()
            except Exception:
                log.debug("closing the stalled engine failed", exc_info=True)
        return new

    def _publish(self, dream: Dream) -> None:
        if not self._stop_event.is_set():  # stopped or abandoned: the slot belongs to another thread
            self.dreams.put(dream)

    # -- one pass -----------------------------------------------------------------------
    def _apply(self, s: DreamSettings) -> None:
        """Bring the engine to the settings; a setting the engine refuses is logged once
        and the previous one kept."""
        eng, old = self.engine, self._applied
        changes = {}
        if old is None or (s.layer, s.objective) != (old.layer, old.objective):
            changes.update(layer=s.layer, objective=s.objective)
        if old is None or s.strength != old.strength:
            changes["step_size"] = s.strength
        if changes:
            try:
                eng.configure(**changes)
            except Exception as exc:
                key = (s.layer, s.objective, s.strength)
                if key != self._bad_setting:
                    log.warning("dream setting refused (%s); keeping %s / %s", exc, eng.layer, eng.objective)
                    self._bad_setting = key
                if "step_size" in changes:
                    eng.configure(step_size=s.strength)
        if old is not None and s.reset != old.reset:
            eng.reset()
            self._temporal = None  # fresh flow history and motion state too
            self._feedback = None
        if s.noise and (old is None or not old.noise):
            eng.reset()
            self._feedback = noise_image(eng.size, self._rng)
            log.info("dreaming from noise")
        if old is not None and old.noise and not s.noise and not s.zoom:
            self._feedback = None
        self._applied = s

    def _fit(self, frame: Frame) -> None:
        """Match the working size's aspect to the source picture (once per picture size)."""
        shape = frame.image.shape[:2]
        if shape == self._shape:
            return
        self._shape = shape
        h, w = shape
        if self.adaptive.set_base(fit_aspect(self.base_size, w / h)):
            log.info("working size %dx%d for the %dx%d source (the pixels of %dx%d, the source's aspect)",
                     *self.adaptive.size, w, h, *self.base_size)

    def _input(self, frame: Frame, s: DreamSettings) -> np.ndarray:
        """The camera picture, or (zoom drift / noise) the previous dream fed back."""
        if (s.zoom or s.noise) and self._feedback is not None:
            self.engine.reset()  # the dream already lives in the fed-back picture
            fb = self._feedback
            if fb.shape[1::-1] != tuple(self.engine.size):
                fb = cv2.resize(fb, self.engine.size, interpolation=cv2.INTER_LINEAR)
            return zoom_image(fb, s.zoom_factor) if s.zoom else fb
        return frame.image

    def _next_frame(self, seq: int, s: DreamSettings) -> tuple[int, Frame | None]:
        if s.frozen and self._held is not None:
            return seq, self._held           # keep dreaming on the held frame
        if (s.zoom or s.noise) and self._feedback is not None:
            new_seq, frame = self.frames.latest()  # feedback does not wait for the camera
            if frame is not None:
                self._held = frame
                return new_seq, frame
        new_seq, frame = self.frames.wait(seq, timeout=0.25)
        if new_seq == seq:
            return seq, None
        self._held = frame
        return new_seq, frame

    def _rate(self) -> float:
        """Dream steps per second of wall time over the recent passes."""
        if len(self._times) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._times[0], self._times[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def step_once(self, frame: Frame) -> Dream:
        """One dream pass on `frame` with the current settings; publishes the dream."""
        s = self.settings.dream_settings()
        self._fit(frame)
        if self.engine is None:
            self.heartbeat.expect(SLOW_STEP_GRACE)
            self.engine = self.make_engine(self.adaptive.size, s)
            self._applied = None
            self._slow_next = True
        elif tuple(self.engine.size) != self.adaptive.size:
            self.engine.configure(size=self.adaptive.size)
            self._slow_next = True
        old = self._applied
        self._apply(s)
        if old is None or (s.layer, s.objective) != (old.layer, old.objective):
            self._slow_next = True
        eng = self.engine
        img = self._input(frame, s)
        if self._slow_next:
            self.heartbeat.expect(SLOW_STEP_GRACE)
        blend, preset_due = 1.0, False
        if self.make_temporal is not None and not (s.zoom or s.noise):
            if self._temporal is None or self._temporal.engine is not eng:
                self._temporal = self.make_temporal(eng)
            out, motion = self._temporal(img)  # flow warp, motion response, attract mode
            blend, preset_due = motion.blend, motion.preset_due
        else:
            flow = self.flow(img, eng.size) if self.flow is not None else None
            out = eng.dream(img, flow=flow) if flow is not None else eng.dream(img)
        self.heartbeat.beat()
        self._slow_next = False
        w, h = eng.size
        if not (isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (h, w, 3)):
            raise RuntimeError(f"engine returned {getattr(out, 'dtype', type(out))} "
                               f"{getattr(out, 'shape', '')} instead of {w}x{h} RGB")
        if getattr(eng, "residual", 0) is None:  # the engine dropped a non-finite step
            raise FloatingPointError("the dream step produced non-finite values")
        self.steps += self.steps_per_frame
        self._times.append((time.perf_counter(), self.steps))
        if s.zoom or s.noise:
            self._feedback = out
        self._number += 1
        dream = Dream(out, self._number, frame, eng.last_ms, self._rate(), (w, h), eng.info,
                      blend, preset_due)
        self._publish(dream)
        if eng.last_ms > 0:
            new_size = self.adaptive.update(1000.0 * self.steps_per_frame / eng.last_ms)
            if new_size is not None:
                log.info("adaptive quality: working size %dx%d -> %dx%d (%.1f ms/step, target %.1f steps/s)",
                         w, h, *new_size, eng.last_ms, self.adaptive.target)
                eng.configure(size=new_size)
                self._slow_next = True
        return dream

    # -- the thread ---------------------------------------------------------------------
    def run(self) -> None:
        seq = 0
        pause = FAULT_BACKOFF[0]
        last_error = ""
        while not self._stop_event.is_set():
            self.heartbeat.beat()
            frame = None
            fault: str | None = None
            out_of_memory = False
            try:
                s = self.settings.dream_settings()
                seq, frame = self._next_frame(seq, s)
                if frame is None:
                    continue
                self.step_once(frame)
                if last_error:
                    log.info("dreaming again (%d dream faults so far)", self.faults)
                    last_error = ""
                pause = FAULT_BACKOFF[0]
            except Exception as exc:
                if self._stop_event.is_set():
                    break
                self.faults += 1
                fault = f"{type(exc).__name__}: {exc}"
                out_of_memory = isinstance(exc, torch.cuda.OutOfMemoryError)
                if fault != last_error and not out_of_memory:  # once per fault, not once per retry
                    log.error("dream step failed (%s); showing the live picture and restarting the engine", fault,
                              exc_info=not isinstance(exc, FloatingPointError))  # non-finite: no code to point at
            # Recovery runs after the except block: the traceback (which holds the failed
            # engine through its frames) is gone by now, so the engine can be freed.
            if fault is None:
                continue
            if out_of_memory and self._out_of_memory():
                continue
            if fault != last_error and out_of_memory:  # at the smallest size already
                log.error("dream step failed (%s) at the smallest working size; restarting the engine", fault)
            last_error = fault
            self._number += 1
            self._publish(Dream(None, self._number, frame, 0.0, 0.0, self.adaptive.size, {}))
            self.heartbeat.beat()
            self._stop_event.wait(pause)
            pause = min(pause * 2, FAULT_BACKOFF[1])
            self._restart()
        if self._abandoned and self.engine is not None:
            self.engine.close()  # woke up after the watchdog replaced it: leave no hooks behind

    def _out_of_memory(self) -> bool:
        """CUDA out of memory: a smaller working size for the rest of the run, a fresh
        engine at once. False at the smallest size (then it is an ordinary fault)."""
        old = self.adaptive.size
        new = self.adaptive.step_down_for_memory()
        if new is None:
            return False
        log.warning("CUDA out of memory at %dx%d; working size down to %dx%d for the rest of this run",
                    *old, *new)
        self._restart()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return True

    def _restart(self) -> None:
        """Throw the engine away and build a fresh one (its hooks closed first). A full
        garbage collection frees the old engine's tensors now even if a traceback or a
        wrapper holds it in a reference cycle: weeks of occasional faults must not pile
        up engines (the soak with --fault-every showed ~1 MB per restart without it)."""
        old, self.engine = self.engine, None
        self._applied = None
        self._feedback = None
        if old is not None:
            try:
                old.close()
            except Exception:
                log.debug("closing the failed engine failed too", exc_info=True)
            del old
        gc.collect()
        self.restarts += 1
