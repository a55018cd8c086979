"""Dream thread: takes the newest captured frame, runs one engine pass, publishes the
newest dream with its timings.

It only ever reads: frames from the capture slot and settings from the shared state
(a `LiveSettings` snapshot per pass), so setting changes apply between steps and data
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
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from . import STARTED
from .adaptive import AdaptiveSize, fit_aspect
from .capture import SLEEP_POLL, Frame, Slot
from .dream import DreamEngine, DreamSettings
from .dream.gpu import is_out_of_memory, release_memory
from .dream.images import feed_back, noise, resize_image
from .dream.temporal.coherent import TemporalDream
from .dream.temporal.flow import grey
from .dream.temporal.overlay import DreamFrame
from .state import LiveSettings
from .supervision.watchdog import Heartbeat

log = logging.getLogger(__name__)

FAULT_BACKOFF = (0.5, 10.0)              # first and longest pause before rebuilding the engine
REVERT_AFTER = 3                          # faults in a row with new settings before they are taken back
SLOW_STEP_GRACE = 600.0                  # s the watchdog allows for building an engine or the first
                                         # step after a change (an ONNX export on a slow CPU)


class SettingsSource(Protocol):
    def live_settings(self) -> LiveSettings: ...


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
    blend: float = 1.0           # motion response's blend multiplier, its mean over the picture (HUD, tests)
    preset_due: bool = False     # attract mode asks for the next preset
    picture: DreamFrame | None = None   # what the compositor's Overlay puts on the live picture


EngineFactory = Callable[[tuple[int, int], LiveSettings], DreamEngine]
Revert = Callable[[LiveSettings], None]   # back to settings that dreamed (through the command layer)
TemporalFactory = Callable[[DreamEngine], TemporalDream]  # flow + motion around an engine
Clock = Callable[[], float]


class Dreamer(threading.Thread):
    """newest frame -> engine -> newest Dream in `self.dreams`.

    `make_engine(size, settings)` builds an engine (at start and after a fault);
    `temporal(engine)`, when given, wraps it in flow and motion (TemporalDream).
    `dream.size` is the working size's pixel budget, its shape follows the frames
    (`aspect`, width / height, is the expected one before the first frame). `clock`
    gives the time between frames (injected, so tests need no wall clock)."""

    def __init__(self, make_engine: EngineFactory, frames: Slot[Frame], settings: SettingsSource,
                 dream: DreamSettings = DreamSettings(), aspect: float | None = None,
                 temporal: TemporalFactory | None = None, clock: Clock = time.monotonic, seed: int = 0,
                 revert: Revert | None = None):
        super().__init__(name="dreamer", daemon=True)
        self.revert = revert
        self._good: LiveSettings | None = None    # the settings of the last step that worked
        self._failing = 0                          # faults in a row since then
        self.make_engine = make_engine
        self.frames = frames
        self.settings = settings
        self.config = dream
        self.steps_per_frame = dream.steps_per_frame
        self.base_size = dream.size
        start = fit_aspect(self.base_size, aspect) if aspect else self.base_size
        self.adaptive = AdaptiveSize(start, dream.target_steps_per_second, dream.adaptive)
        self.make_temporal = temporal
        self.clock = clock
        self._temporal: TemporalDream | None = None
        self._last_time: float | None = None
        self.dreams: Slot[Dream] = Slot()
        self.engine: DreamEngine | None = None
        self.heartbeat = Heartbeat()       # beaten every loop; the watchdog reads it
        self.faults = 0
        self.restarts = 0
        self.steps = 0
        self.first_dream_at: float | None = None   # time.perf_counter() of the first dream
        self._rng = np.random.default_rng(seed)
        self._stop_event = threading.Event()
        self._abandoned = False
        self._applied: LiveSettings | None = None
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
        new = Dreamer(self.make_engine, self.frames, self.settings, self.config,
                      temporal=self.make_temporal, clock=self.clock, revert=self.revert)
        new._good = self._good
        new.adaptive, new.dreams, new._rng, new._shape = self.adaptive, self.dreams, self._rng, self._shape
        new.faults, new.steps, new._number = self.faults, self.steps, self._number
        new.first_dream_at = self.first_dream_at
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
    def _apply(self, s: LiveSettings) -> None:
        """Bring the engine to the settings; a setting the engine refuses is logged once
        and the previous one kept."""
        eng, old = self.engine, self._applied
        if old is None or (s.layer, s.objective) != (old.layer, old.objective):
            self._slow_next = True
            try:
                eng.configure(layer=s.layer, objective=s.objective)
            except Exception as exc:
                if (s.layer, s.objective) != self._bad_setting:
                    log.warning("dream setting refused (%s); keeping %s / %s", exc, eng.layer, eng.objective)
                    self._bad_setting = (s.layer, s.objective)
        if old is None or s.strength != old.strength:
            eng.configure(strength=s.strength)
        if old is not None and s.reset != old.reset:
            eng.reset()
            self._temporal = None  # fresh flow history and motion state too
            self._feedback = None
        if s.noise and (old is None or not old.noise):
            eng.reset()
            self._feedback = noise(*eng.size, seed=int(self._rng.integers(1 << 31)))
            log.info("dreaming from noise")
        if old is not None and old.noise and not s.noise and not s.zooming:
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

    def _feeding_back(self, s: LiveSettings) -> bool:
        return (s.zooming or s.noise) and self._feedback is not None

    def _input(self, frame: Frame, s: LiveSettings) -> np.ndarray:
        """The camera picture, or (zoom drift / noise) the previous dream fed back."""
        if not self._feeding_back(s):
            return frame.image
        self.engine.reset()  # the dream already lives in the fed-back picture
        fb = resize_image(self._feedback, self.engine.size)
        return feed_back(fb, s.zoom if s.zooming else 1.0)

    def _next_frame(self, seq: int, s: LiveSettings) -> tuple[int, Frame | None]:
        if s.frozen and self._held is not None:
            return seq, self._held           # keep dreaming on the held frame
        if self._feeding_back(s):
            new_seq, frame = self.frames.latest()  # feedback does not wait for the camera
            if frame is not None:
                self._held = frame
                return new_seq, frame
        new_seq, frame = self.frames.wait(seq, timeout=0.25)
        if new_seq == seq:
            return seq, None
        self._held = frame
        return new_seq, frame

    @property
    def steps_per_second(self) -> float:
        """Dream steps per second over the recent passes (the HUD's and the health page's)."""
        return self._rate()

    def _rate(self) -> float:
        """Dream steps per second of wall time over the recent passes."""
        if len(self._times) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._times[0], self._times[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def _ready_engine(self, s: LiveSettings) -> DreamEngine:
        """The engine at the current working size with the current settings applied."""
        if self.engine is None:
            self.heartbeat.expect(SLOW_STEP_GRACE)
            self.engine = self.make_engine(self.adaptive.size, s)
            self._applied = None
            self._slow_next = True
        elif tuple(self.engine.size) != self.adaptive.size:
            self.engine.configure(size=self.adaptive.size)
            self._slow_next = True
        self._apply(s)
        if self._slow_next:  # new engine, size or layer: every size adaptive may pick, built ahead
            self.engine.prepare([self.engine.size] + (self.adaptive.ladder if self.adaptive.enabled else []))
        if self._slow_next:
            self.heartbeat.expect(SLOW_STEP_GRACE)
        return self.engine

    def _dream(self, eng: DreamEngine, img: np.ndarray, s: LiveSettings) -> tuple[DreamFrame, bool]:
        """(the dream step as the Overlay's DreamFrame, preset due) for one picture."""
        now = self.clock()
        dt, self._last_time = (0.0 if self._last_time is None else now - self._last_time), now
        if self.make_temporal is None or self._feeding_back(s):
            out = eng.dream(img)
            base = resize_image(img, eng.size)
            # fed back (zoom, noise): the dream lives in its own picture, shown whole
            whole = 1.0 if self._feeding_back(s) else 0.0
            return DreamFrame(out, base, 1.0, grey(base, eng.size), whole), False
        if self._temporal is None or self._temporal.engine is not eng:
            self._temporal = self.make_temporal(eng)
        _, motion = self._temporal(img, dt)  # flow warp, motion response, attract mode
        return self._temporal.last, motion.preset_due

    def step_once(self, frame: Frame) -> Dream:
        """One dream pass on `frame` with the current settings; publishes the dream."""
        s = self.settings.live_settings()
        self._fit(frame)
        eng = self._ready_engine(s)
        picture, preset_due = self._dream(eng, self._input(frame, s), s)
        out = picture.image
        self.heartbeat.beat()
        self._slow_next = False
        w, h = eng.size
        if not (isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (h, w, 3)):
            raise RuntimeError(f"engine returned {getattr(out, 'dtype', type(out))} "
                               f"{getattr(out, 'shape', '')} instead of {w}x{h} RGB")
        if getattr(eng, "residual", 0) is None:  # the engine dropped a non-finite step
            raise FloatingPointError("the dream step produced non-finite values")
        self.count_pass(eng.info.get("backend"))
        if s.zooming or s.noise:
            self._feedback = out
        self._number += 1
        dream = Dream(out, self._number, frame, eng.last_ms, self._rate(), (w, h), eng.info,
                      float(np.mean(picture.blend)), preset_due, picture)
        self._publish(dream)
        self._adapt(eng)
        return dream

    def count_pass(self, backend: str | None) -> None:
        """One dream pass done: the step count, the first dream's time and the recent rate
        (the HUD's and health page's), also for the frame-exact recorder that steps the
        engine itself."""
        self.steps += self.steps_per_frame
        now = time.perf_counter()
        if self.first_dream_at is None:
            self.first_dream_at = now
            log.info("first dream %.1f s after the start (%s)", now - STARTED, backend)
        self._times.append((now, self.steps))

    def _adapt(self, eng: DreamEngine) -> None:
        if eng.last_ms <= 0 or not eng.settled():  # a stand-in's or a trial's speed is not the size's speed
            return
        new_size = self.adaptive.update(1000.0 * self.steps_per_frame / eng.last_ms, self.clock(), eng.ready)
        if new_size is not None:
            log.info("adaptive quality: working size %dx%d -> %dx%d (%.1f ms/step, target %.1f steps/s)",
                     *eng.size, *new_size, eng.last_ms, self.adaptive.target)
            eng.configure(size=new_size)
            self._slow_next = True

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
                s = self.settings.live_settings()
                if s.asleep:                        # outside opening hours: no steps, next to no CPU
                    self._stop_event.wait(SLEEP_POLL)
                    continue
                seq, frame = self._next_frame(seq, s)
                if frame is None:
                    continue
                self.step_once(frame)
                self._good, self._failing = s, 0
                if last_error:
                    log.info("dreaming again (%d dream faults so far)", self.faults)
                    last_error = ""
                pause = FAULT_BACKOFF[0]
            except Exception as exc:
                if self._stop_event.is_set():
                    break
                self.faults += 1
                fault = f"{type(exc).__name__}: {exc}"
                out_of_memory = is_out_of_memory(exc)  # PyTorch's, ONNX Runtime's, cuDNN's, cuBLAS's
                if fault != last_error and not out_of_memory:  # once per fault, not once per retry
                    log.error("dream step failed (%s); showing the live picture and restarting the engine", fault,
                              exc_info=not isinstance(exc, FloatingPointError))  # non-finite: no code to point at
            # Recovery runs after the except block: the traceback (which holds the failed
            # engine through its frames) is gone by now, so the engine can be freed.
            if fault is None:
                continue
            if out_of_memory and self._out_of_memory():
                continue
            self._take_back(s, fault)
            if fault != last_error and out_of_memory:  # at the smallest size already
                log.error("dream step failed (%s) at the smallest working size; restarting the engine", fault)
            last_error = fault
            self._number += 1
            self._publish(Dream(None, self._number, frame, 0.0, 0.0, self.adaptive.size, {}))
            self.heartbeat.beat()
            self._stop_event.wait(pause)
            pause = min(pause * 2, FAULT_BACKOFF[1])
            self._restart()
        if self.engine is not None:
            self.engine.close()  # stopped, or woke up after the watchdog replaced it: no hooks left behind

    def _take_back(self, s: LiveSettings, fault: str) -> None:
        """Settings that make every step fail (whatever got past the checks) are taken
        back to the last ones that dreamed, with one line, instead of a frozen picture."""
        self._failing += 1
        good = self._good
        if self.revert is None or good is None or self._failing < REVERT_AFTER:
            return
        if (s.layer, s.objective, s.strength) == (good.layer, good.objective, good.strength):
            return   # not the settings' fault
        log.warning("dream steps keep failing with layer %s, objective '%s', strength %g (%s); back to %s, '%s', %g",
                    s.layer, s.objective, s.strength, fault, good.layer, good.objective, good.strength)
        self._failing = 0
        self.revert(good)

    def _out_of_memory(self) -> bool:
        """Out of device memory: a smaller working size for the rest of the run, a fresh
        engine at once. False at the smallest size (then it is an ordinary fault). The old
        engine is let go (and collected) before the allocator's cache is emptied, so its
        memory really goes back."""
        old = self.adaptive.size
        new = self.adaptive.step_down_for_memory()
        if new is None:
            return False
        log.warning("CUDA out of memory at %dx%d; working size down to %dx%d for the rest of this run",
                    *old, *new)
        self._restart()
        release_memory()
        return True

    def _restart(self) -> None:
        """Throw the engine away and build a fresh one (its hooks closed first). A full
        garbage collection frees the old engine's tensors now even if a traceback or a
        wrapper holds it in a reference cycle: weeks of occasional faults must not pile
        up engines (the soak with --fault-every showed ~1 MB per restart without it)."""
        old, self.engine = self.engine, None
        self._temporal = None  # it holds the engine too (and its flow history belongs to it)
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
