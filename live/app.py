"""Wiring of the live installation: capture -> dreamer -> render, the shared state the
keys change, presets (and their kiosk timer), snapshots, the headless recorder, and the
kiosk supervision (a watchdog that restarts a stalled capture or dream thread; exit code
1 when that does not help, so the service manager restarts the process).

Data flows one way. The controls (main thread) change the State; the dreamer and the
renderer read frozen snapshots of it (`dream_settings()`, `view()`), so no module reaches
back upstream and a setting changes between dream steps, never in the middle of one."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import pygame
import torch

import models
from . import controls
from . import objectives as objectives_mod
from .capture import Capture, plan_source
from .config import Config, ConfigError, Preset
from .dreamer import Dream, Dreamer, DreamSettings
from .engine import DreamEngine
from .files import finish, partial_name
from .motion import TemporalDream
from .render import Compositor, View, Window, snapshot, write_png
from .watchdog import SystemdNotifier, Watchdog

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE = 0, 1
RECORD_FPS = 15.0             # headless videos: one dream step per video frame
STRENGTH_STEP = 1.25          # +/- multiply or divide the strength by this
BLEND_STEP = 0.05
HUD_PERIOD = 0.25             # seconds between HUD text updates
FIRST_DREAM_TIMEOUT = 180.0   # headless: give up when no dream comes for this long


@dataclass
class State:
    """The one small shared object the keys change. Actions are the method names in the
    controls table; readers take snapshots (`dream_settings`, `view`)."""
    layers: tuple[str, ...]
    presets: tuple[Preset, ...] = ()
    layer: str = "blocks.10"
    objective: str = "amplify"
    strength: float = 0.012
    blend: float = 0.85
    zoom_factor: float = 1.02
    mirror: bool = True
    crossfade: bool = True
    scale: str = "fill"
    hud: bool = False
    help: bool = False
    fullscreen: bool = True
    frozen: bool = False
    zoom: bool = False
    noise: bool = False
    preset: int = -1              # -1: the [dream] settings, not a preset
    resets: int = 0
    snapshots: int = 0            # requests; the renderer takes one per increment
    running: bool = True
    kiosk: bool = False
    snapshots_allowed: bool = True
    message: str = ""
    message_time: float = 0.0
    preset_time: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_config(cls, cfg: Config) -> "State":
        d, r, k = cfg.dream, cfg.render, cfg.kiosk
        return cls(layers=models.layers_of(d.model), presets=cfg.presets, layer=d.layer,
                   objective=d.objective, strength=d.strength, blend=r.blend, zoom_factor=d.zoom,
                   mirror=r.mirror, crossfade=r.crossfade, scale=r.scale, hud=r.hud,
                   fullscreen=r.fullscreen, kiosk=k.enabled, snapshots_allowed=(not k.enabled or k.snapshots))

    # -- snapshots for the readers --------------------------------------------------------
    def dream_settings(self) -> DreamSettings:
        with self._lock:
            return DreamSettings(self.layer, self.objective, self.strength, self.zoom, self.zoom_factor,
                                 self.noise, self.frozen, self.resets)

    def view(self) -> View:
        with self._lock:
            return View(self.blend, self.mirror, self.crossfade, self.scale, self.hud, self.help,
                        self.message, self.message_time)

    @property
    def preset_name(self) -> str:
        return self.presets[self.preset].name if 0 <= self.preset < len(self.presets) else "-"

    def say(self, text: str) -> None:
        """A short notice on screen (and in the log)."""
        log.info("%s", text)
        with self._lock:
            self.message, self.message_time = text, time.monotonic()

    # -- actions (see controls.BINDINGS) --------------------------------------------------
    def quit(self) -> None:
        self.running = False

    def toggle_fullscreen(self) -> None:
        self.fullscreen = not self.fullscreen

    def toggle_freeze(self) -> None:
        self.frozen = not self.frozen
        self.say("frozen" if self.frozen else "live")

    def select_preset(self, index: int) -> None:
        if not self.presets:
            self.say("no presets in the config")
            return
        if index >= len(self.presets):
            self.say(f"there are {len(self.presets)} presets")
            return
        p = self.presets[index]
        with self._lock:
            self.preset = index
            self.layer, self.objective, self.strength, self.blend = p.layer, p.objective, p.strength, p.blend
            self.preset_time = time.monotonic()
        self.say(f"preset {index + 1}: {p.name}")

    def advance_if_due(self, seconds: float, now: float | None = None) -> bool:
        """Kiosk playlist: the next preset once the current one has shown `seconds`."""
        now = time.monotonic() if now is None else now
        if self.presets and now - self.preset_time >= seconds:
            self.next_preset()
            return True
        return False

    def next_preset(self) -> None:
        if self.presets:
            self.select_preset((self.preset + 1) % len(self.presets))

    def previous_preset(self) -> None:
        if self.presets:
            self.select_preset((self.preset - 1) % len(self.presets) if self.preset >= 0 else len(self.presets) - 1)

    def _move_layer(self, step: int) -> None:
        i = self.layers.index(self.layer) if self.layer in self.layers else 0
        self.layer = self.layers[min(max(i + step, 0), len(self.layers) - 1)]
        self.say(f"layer {self.layer}")

    def deeper(self) -> None:
        self._move_layer(+1)

    def shallower(self) -> None:
        self._move_layer(-1)

    def stronger(self) -> None:
        self.strength = min(0.5, self.strength * STRENGTH_STEP)
        self.say(f"strength {self.strength:.4f}")

    def weaker(self) -> None:
        self.strength = max(0.0005, self.strength / STRENGTH_STEP)
        self.say(f"strength {self.strength:.4f}")

    def more_dream(self) -> None:
        self.blend = round(min(1.0, self.blend + BLEND_STEP), 3)
        self.say(f"blend {self.blend:.2f}")

    def less_dream(self) -> None:
        self.blend = round(max(0.0, self.blend - BLEND_STEP), 3)
        self.say(f"blend {self.blend:.2f}")

    def toggle_zoom(self) -> None:
        self.zoom = not self.zoom
        self.say("endless zoom on" if self.zoom else "endless zoom off")

    def toggle_noise(self) -> None:
        self.noise = not self.noise
        self.say("dreaming from noise" if self.noise else "dreaming on the camera")

    def reset_dream(self) -> None:
        self.resets += 1
        self.say("dream reset")

    def snapshot(self) -> None:
        if not self.snapshots_allowed:
            self.say("snapshots are off in kiosk mode")
            return
        self.snapshots += 1

    def toggle_hud(self) -> None:
        self.hud = not self.hud

    def toggle_help(self) -> None:
        self.help = not self.help

    def toggle_mirror(self) -> None:
        self.mirror = not self.mirror


class LayerChannels:
    """Channels of each dreamable layer, measured once by a small forward pass, so that
    `channel:N` beyond a layer's width is refused at start with one line instead of an
    IndexError in the middle of the show."""

    def __init__(self, backbone: models.Backbone):
        self.backbone = backbone
        self._counts: dict[str, int] | None = None

    def __call__(self, layer: str) -> int:
        if self._counts is None:
            self._counts = self._measure()
        return self._counts[layer]

    def _measure(self) -> dict[str, int]:
        bb, counts = self.backbone, {}
        side = max(64, *bb.input_size)
        handles = [bb.module(name).register_forward_hook(
                       lambda _m, _i, out, name=name: counts.__setitem__(name, int(out.shape[1])))
                   for name in bb.layers]
        try:
            with torch.no_grad():
                bb.net(bb.normalize(torch.zeros(1, 3, side, side, device=bb.device)))
        finally:
            for h in handles:
                h.remove()
        return counts


def check_presets(cfg: Config, backbone: models.Backbone) -> None:
    """Refuse, at start, a [dream] or preset objective that cannot be understood or names
    a channel the layer does not have."""
    channels = LayerChannels(backbone)
    d = cfg.dream
    checks = [("dream.objective", d.objective, d.layer)] + [
        (f"presets[{i}] ('{p.name}'): objective", p.objective, p.layer) for i, p in enumerate(cfg.presets)]
    for where, objective, layer in checks:
        try:
            objectives_mod.parse(objective, layer, backbone.layers, backbone.class_index, channels)
        except (objectives_mod.ObjectiveError, models.ModelError) as exc:
            raise ConfigError(f"{where} '{objective}': {exc}") from None


def check_output(path: str | Path, what: str) -> Path:
    """Say in one line why a file could not be written at `path`, without creating
    anything (called before the heavy start-up, so a typo does not cost a minute)."""
    path = Path(path)
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} '{path}': cannot create the folder, '{existing}' is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} '{path}': cannot create the folder, '{existing}' is not writable")
    return path


def prepare_output(path: str | Path, what: str) -> Path:
    """Create the folder a file will be written to, or say in one line why not."""
    path = check_output(path, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{what} '{path}': cannot create the folder ({exc.strerror or exc})") from None
    return path


class Stats:
    """Display fps and capture-to-screen latency of the live layer, for the HUD and the
    summary logged at exit."""

    def __init__(self) -> None:
        self.latencies: deque[float] = deque(maxlen=2000)   # seconds
        self.frame_times: deque[float] = deque(maxlen=120)
        self.frames = 0
        self.started = time.perf_counter()

    def frame(self, now: float) -> None:
        self.frames += 1
        self.frame_times.append(now)

    @property
    def fps(self) -> float:
        t = self.frame_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def latency_ms(self, q: float = 50) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else 0.0


class App:
    """Builds the pipeline from a Config and runs it in a window or headless."""

    def __init__(self, cfg: Config, source: str | None = None, backbone: models.Backbone | None = None):
        self.cfg = cfg
        self.plan = plan_source(source if source is not None else cfg.source.source, cfg.source)
        self.backbone = backbone or models.load(cfg.dream.model, cfg.dream.device)
        check_presets(cfg, self.backbone)
        self.state = State.from_config(cfg)
        self.capture = Capture(self.plan, cfg.source.reconnect_seconds)
        d = cfg.dream
        # Cameras and the clouds come at the configured source shape; files show theirs
        # with the first frame, and the dreamer refits the working size then.
        shaped = self.plan.is_camera or self.plan.description == "clouds"
        aspect = cfg.source.width / cfg.source.height if shaped else None
        self.dreamer = Dreamer(self.make_engine, self.capture.slot, self.state, d.size,
                               steps_per_frame=d.steps_per_frame,
                               target_steps_per_second=d.target_steps_per_second, adaptive=d.adaptive,
                               aspect=aspect, temporal=lambda eng: TemporalDream.from_config(eng, cfg))
        # Build the first engine now, so a bad layer/objective stops the start with one line.
        self.dreamer.engine = self.make_engine(self.dreamer.adaptive.size, self.state.dream_settings())
        self.stats = Stats()
        self.watchdog: Watchdog | None = None
        self.notifier = SystemdNotifier()
        self.motion_blend = 1.0         # the newest dream's motion response (stillness: more dream)
        self.fatal: str | None = None   # set when supervision gives up: the run ends with exit code 1

    def make_engine(self, size: tuple[int, int], s: DreamSettings) -> DreamEngine:
        d = self.cfg.dream
        return DreamEngine(self.backbone, layer=s.layer, size=size, steps_per_frame=d.steps_per_frame,
                           step_size=s.strength, jitter=d.jitter, objective=s.objective,
                           precision=d.precision, backend=d.backend, decay=d.decay, grad_norm=d.grad_norm,
                           momentum=d.momentum, limit=d.limit)

    def start(self) -> None:
        self.capture.start()
        self.dreamer.start()
        w = self.cfg.watchdog
        if w.enabled:
            self.watchdog = Watchdog(check_seconds=min(1.0, w.capture_seconds / 4, w.dream_seconds / 4),
                                     max_restarts=w.max_restarts, on_fatal=self._give_up)
            self.watchdog.watch("capture", lambda: self.capture, self.restart_capture, w.capture_seconds)
            self.watchdog.watch("dream", lambda: self.dreamer, self.restart_dreamer, w.dream_seconds)
            self.watchdog.start()
        self.notifier.ready()

    def stop(self) -> None:
        self.notifier.stopping()
        if self.watchdog is not None:
            self.watchdog.stop()
        self.dreamer.stop()
        self.capture.stop()
        if self.dreamer.engine is not None:
            self.dreamer.engine.close()

    # -- supervision (called from the watchdog thread) -------------------------------------
    def restart_capture(self) -> None:
        """A fresh capture thread on the same frame slot; the stalled one is abandoned."""
        self.capture = self.capture.respawn()
        self.capture.start()

    def restart_dreamer(self) -> None:
        """A fresh dream thread on the same dream slot; the stalled one is abandoned."""
        self.dreamer = self.dreamer.respawn()
        self.dreamer.start()

    def _give_up(self, reason: str) -> None:
        self.fatal = reason
        self.state.quit()

    @property
    def exit_code(self) -> int:
        return EXIT_FAILURE if self.fatal else EXIT_OK

    # -- HUD ------------------------------------------------------------------------------
    def hud_lines(self, dream: Dream | None) -> tuple[str, ...]:
        s, st = self.state, self.stats
        info = dream.info if dream is not None and dream.info else {}
        spf = self.cfg.dream.steps_per_frame
        ms = (dream.ms / spf) if dream is not None and dream.ms else 0.0
        rate = dream.steps_per_second if dream is not None else 0.0
        size = "x".join(map(str, dream.size)) if dream is not None else "-"
        level = self.dreamer.adaptive.level
        flags = [n for n, on in (("FROZEN", s.frozen), ("ZOOM", s.zoom), ("NOISE", s.noise),
                                 ("mirror", s.mirror), ("kiosk", s.kiosk)) if on]
        return (
            f"display {st.fps:.0f} fps   live latency {st.latency_ms():.0f} ms",
            f"dream {rate:.1f} steps/s   {ms:.0f} ms/step   {size}" + (f" (adaptive -{level})" if level else ""),
            f"layer {s.layer}   objective {s.objective}",
            f"strength {s.strength:.4f}   blend {s.blend:.2f}   preset {s.preset_name}",
            f"backend {info.get('backend', '-')}   device {info.get('device', '-')}   "
            f"precision {info.get('precision', '-')}",
            f"source {self.capture.status}" + (f"   [{' '.join(flags)}]" if flags else ""),
        )

    def summary(self, display: bool = True) -> str:
        """One line for the log at exit: the measured rates of this run."""
        st = self.stats
        seconds = time.perf_counter() - st.started
        dream_rate = self.dreamer.steps / seconds if seconds > 0 else 0.0
        shown = (f"{st.frames} display frames ({st.frames / max(seconds, 1e-9):.1f} fps), live latency median "
                 f"{st.latency_ms(50):.0f} ms, p95 {st.latency_ms(95):.0f} ms, " if display else "")
        return (f"session {seconds:.1f}s: {shown}{self.dreamer.steps} dream steps ({dream_rate:.1f} steps/s), "
                f"dream faults {self.dreamer.faults}, thread restarts {self.watchdog.restarts if self.watchdog else 0}")

    # -- window ---------------------------------------------------------------------------
    def run_window(self, seconds: float | None = None) -> int:
        """The installation. Returns the exit code."""
        cfg, state = self.cfg, self.state
        window = Window(cfg.render)
        comp = Compositor()
        clock = pygame.time.Clock()
        help_lines = controls.help_lines(state.kiosk)
        live_seq = dream_seq = snaps_done = 0
        dream: Dream | None = None
        hud: tuple[str, ...] = ()
        hud_due = 0.0
        deadline = None if seconds is None else time.monotonic() + seconds
        previous = signal.signal(signal.SIGTERM, lambda *_: state.quit())
        self.start()
        self.stats = Stats()
        try:
            while state.running:
                for event in pygame.event.get():
                    if event.type == pygame.QUIT and not state.kiosk:
                        state.quit()
                    elif event.type == pygame.KEYDOWN:
                        controls.handle(event, state, state.kiosk)
                    elif event.type in (pygame.VIDEORESIZE, pygame.WINDOWSIZECHANGED):
                        window.resized()
                if state.fullscreen != window.fullscreen:
                    window.set_fullscreen(state.fullscreen)
                shown = self.frame_step(window.screen, comp, help_lines, (live_seq, dream_seq), hud)
                (live_seq, dream_seq), new_frame, new_dream = shown
                if new_dream is not None:
                    dream = new_dream
                window.present()
                now = time.perf_counter()
                self.stats.frame(now)
                if new_frame is not None:
                    self.stats.latencies.append(now - new_frame.timestamp)
                if state.snapshots != snaps_done:
                    snaps_done = state.snapshots
                    path = snapshot(window.screen, cfg.output.snapshots)
                    state.say(f"snapshot {path.name}")
                mono = time.monotonic()
                if mono >= hud_due:
                    hud, hud_due = self.hud_lines(dream), mono + HUD_PERIOD
                if state.kiosk:
                    state.advance_if_due(cfg.kiosk.preset_seconds, mono)
                if deadline is not None and mono >= deadline:
                    state.quit()
                self.notifier.ping(mono)
                clock.tick(cfg.render.fps)
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()
            window.close()
            log.info("%s", self.summary())
        return self.exit_code

    def frame_step(self, target: pygame.Surface, comp: Compositor, help_lines: list[tuple[str, str]],
                   seqs: tuple[int, int], hud: tuple[str, ...]):
        """Draw one display frame from the newest picture and dream (never waits)."""
        live_seq, dream_seq = seqs
        state = self.state
        new_frame = new_dream = None
        seq, frame = self.capture.slot.latest()
        if seq != live_seq and frame is not None and not state.frozen:
            comp.set_live(frame.image)
            live_seq, new_frame = seq, frame
        seq, dream = self.dreamer.dreams.latest()
        if seq != dream_seq and dream is not None:
            comp.set_dream(dream.image)
            dream_seq, new_dream = seq, dream
            self.motion_blend = dream.blend
            if dream.preset_due and state.presets:
                state.next_preset()  # attract mode slowly rotates presets
        view = state.view()
        view = replace(view, blend=view.blend * self.motion_blend)
        comp.draw(target, view, hud, help_lines if view.help else None)
        return (live_seq, dream_seq), new_frame, new_dream

    # -- headless -------------------------------------------------------------------------
    def run_headless(self, frames: int | None, record: str | Path, png: str | Path | None = None,
                     seconds: float | None = None) -> int:
        """The same pipeline without a window: one video frame per dream step (each frame
        waits for its dream), blended as on screen, until `frames` are written (None: no
        limit) or `seconds` have passed. The video is written under a temporary name and
        renamed when it is finished: Ctrl+C / SIGTERM finish the file, a power cut leaves
        no half file under the final name. Returns the exit code."""
        record = prepare_output(record, "--record")
        size = (self.cfg.render.width, self.cfg.render.height)
        tmp = partial_name(record)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if record.suffix.lower() == ".avi" else "mp4v"))
        writer = cv2.VideoWriter(str(tmp), fourcc, RECORD_FPS, size)
        if not writer.isOpened():
            raise ConfigError(f"--record '{record}': cannot write a video there (use an .mp4 or .avi path in a writable folder)")
        deadline = None if seconds is None else time.monotonic() + seconds
        surface = pygame.Surface(size, 0, 32)
        comp = Compositor()
        stop = threading.Event()
        handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        written, seq = 0, 0
        last_progress = time.monotonic()
        self.dreamer.adaptive.enabled = False  # not real time: every frame waits for its dream anyway
        total = "" if frames is None else f"/{frames}"
        length = f"{frames} frames" if frames is not None else f"{seconds:g} s" if seconds else "until stopped"
        log.info("recording %s of %dx%d to %s (source: %s%s)", length, *size, record,
                 self.plan.description, ", clouds while it is absent" if self.plan.is_camera else "")
        self.start()
        self.stats = Stats()
        try:
            while (frames is None or written < frames) and not stop.is_set() and self.state.running:
                now = time.monotonic()
                self.notifier.ping(now)
                if deadline is not None and now >= deadline:
                    break
                new_seq, dream = self.dreamer.dreams.wait(seq, timeout=0.5)
                if new_seq == seq or dream is None:
                    if time.monotonic() - last_progress > FIRST_DREAM_TIMEOUT:
                        raise RuntimeError(f"no dream for {FIRST_DREAM_TIMEOUT:.0f}s; giving up")
                    continue
                seq, last_progress = new_seq, time.monotonic()
                if dream.frame is not None:
                    comp.set_live(dream.frame.image)
                comp.set_dream(dream.image)
                view = self.state.view()
                comp.draw(surface, View(view.blend * dream.blend, view.mirror, False, view.scale))
                rgb = np.frombuffer(pygame.image.tobytes(surface, "RGB"), np.uint8).reshape(size[1], size[0], 3)
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                written += 1
                if written % 25 == 0:
                    log.info("recorded %d%s frames", written, total)
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
            self.stop()
            writer.release()
            if written:
                finish(tmp, record)
            else:
                tmp.unlink(missing_ok=True)
        if stop.is_set() or self.fatal:
            log.info("stopped early: %d%s frames", written, total)
        if written and png is not None:
            write_png(surface, Path(png))
        log.info("wrote %s (%d frames%s); %s", record, written, f", still {png}" if png and written else "",
                 self.summary(display=False))
        return self.exit_code
