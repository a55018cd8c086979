"""Wiring of the live installation: capture -> dreamer -> compositor around the shared
state, and its supervision (a watchdog that restarts a stalled capture or dream thread;
exit code 1 when that does not help, so the service manager restarts the process).
The loops that run it are windowed.py (the screen) and headless.py (a recording).

Data flows one way. The controls change the State; the dreamer and the renderer read
frozen snapshots of it, so no module reaches back upstream."""
from __future__ import annotations

import logging
import time

import cv2

import models
from . import STARTED
from .capture import Capture
from .commands import CommandError, Commands
from .config import Config, ConfigError, opening_hours
from .dream import DreamEngine, objectives
from .dream.backends.onnx import cpu_threads
from .dream.backends.threads import opencv_threads
from .dream.temporal.coherent import TemporalDream
from .dreamer import Dreamer, LiveSettings
from .audio.follower import Follower
from .audio.microphone import Microphone
from .audio.rules import check_rules
from .ndi import NdiOutput
from .video_out import FrameOutput
from .virtualcam import VirtualCamera
from .remote import Remotes
from .schedule import Schedule
from .souvenir import Souvenirs
from .sources import plan_source
from .state import State
from .stats import Stats
from .supervision.health import Health
from .supervision.systemd import SystemdNotifier
from .supervision.watchdog import Watchdog

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE = 0, 1


def check_presets(cfg: Config, backbone: models.Backbone) -> None:
    """Refuse, at start, a [dream] or preset objective that cannot be understood or names
    a channel the layer does not have."""
    d = cfg.dream
    checks = [("dream.objective", d.objective, d.layer)] + [
        (f"presets[{i}] ('{p.name}'): objective", p.objective, p.layer) for i, p in enumerate(cfg.presets)]
    for where, objective, layer in checks:
        try:
            objectives.for_backbone(objective, layer, backbone)
        except (objectives.ObjectiveError, models.ModelError) as exc:
            raise ConfigError(f"{where} '{objective}': {exc}") from None


class App:
    """Builds the pipeline from a Config and runs it in a window or headless."""

    def __init__(self, cfg: Config, source: str | None = None, backbone: models.Backbone | None = None):
        self.cfg = cfg
        self.plan = plan_source(source if source is not None else cfg.source.source, cfg.source)
        self.backbone = backbone or models.load(cfg.dream.model, cfg.dream.device)
        check_presets(cfg, self.backbone)
        self.state = State.from_config(cfg, camera=self.plan.is_camera)
        self.commands = Commands(self.state, self.check_objective)   # keys, OSC, MIDI and the web
        self.health = Health(self.health_figures)
        sv = cfg.souvenir
        self.souvenirs = Souvenirs(sv.folder, sv.minutes, sv.max_mb) if sv.enabled else None
        self.remotes = Remotes(cfg, self.commands, self.health, self.souvenirs)
        o, fps = cfg.output, min(cfg.output.ndi_fps, cfg.render.fps)
        self.outputs: list[FrameOutput] = [out for out in (NdiOutput.maybe(o.ndi, o.ndi_name, fps),
                                                           VirtualCamera.maybe(o.virtualcam, o.virtualcam_device, fps))
                                           if out is not None]   # video outs: the picture leaves the window
        if cfg.audio.enabled:
            check_rules(cfg.audio.map)                 # a rule that drives nothing stops the start with one line
        self.microphone: Microphone | None = None    # live runs only (a clip recorded frame by frame hears its own)
        self.follower: Follower | None = None
        self.schedule = Schedule(opening_hours(cfg.schedule))
        self.capture = Capture(self.plan, cfg.source.reconnect_seconds, asleep=lambda: self.state.asleep)
        d = self.dream = cfg.dream.on(self.backbone.device.type)   # [dream] as it applies on this device
        # Cameras and the clouds come at the configured source shape; files show theirs
        # with the first frame, and the dreamer refits the working size then.
        shaped = self.plan.is_camera or self.plan.description == "clouds"
        aspect = cfg.source.width / cfg.source.height if shaped else None
        self.dreamer = Dreamer(self.make_engine, self.capture.slot, self.state, d, aspect=aspect,
                               temporal=lambda eng: TemporalDream(eng, cfg.motion, cfg.attract),
                               revert=self.revert_settings)
        # Build the first engine now, so a bad layer/objective stops the start with one line.
        self.dreamer.engine = self.make_engine(self.dreamer.adaptive.size, self.state.live_settings())
        self.stats = Stats()
        self.watchdog: Watchdog | None = None
        self.notifier = SystemdNotifier()
        self.fatal: str | None = None   # set when supervision gives up: the run ends with exit code 1

    def make_engine(self, size: tuple[int, int], s: LiveSettings) -> DreamEngine:
        """An engine with the [dream] settings and the live layer, objective and strength."""
        return DreamEngine(self.backbone, settings=self.dream, layer=s.layer, size=size,
                           objective=s.objective, strength=s.strength, background=True)

    def revert_settings(self, good: LiveSettings) -> None:
        """The dreamer's way back to settings that dreamed: through the command layer, so
        every remote hears of it."""
        try:
            self.commands.set_many({"layer": good.layer, "objective": good.objective, "strength": good.strength},
                                   source="dreamer")
            self.state.say(f"back to {good.layer} / {good.objective}: the new settings kept failing")
        except CommandError as exc:
            log.error("could not take the failing settings back: %s", exc)

    def check_objective(self, objective: str, layer: str) -> None:
        """Refuse (raise) an objective the layer cannot dream, before it reaches the dreamer."""
        objectives.for_backbone(objective, layer, self.backbone)

    def start(self) -> None:
        if (n := opencv_threads(cpu_threads())) is not None:
            cv2.setNumThreads(n)
        self.tick_schedule()   # closed at start: not one frame read nor one step dreamed
        self.health.start()
        self.remotes.start()
        for out in self.outputs:
            out.start()
        self._follow_music()
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

    def _follow_music(self) -> None:
        """[audio] live: the microphone's features and, while one runs, the MIDI clock's beats."""
        a = self.cfg.audio
        if not a.enabled or a.source == "clip":
            return
        self.microphone = Microphone.maybe(a)
        clock = self.remotes.midi.clock if self.remotes.midi is not None else None
        if self.microphone is None and clock is None:
            return
        if self.microphone is not None:
            self.microphone.start()
        self.follower = Follower(a.map, self.commands, self.microphone.listener if self.microphone else None, clock)
        self.follower.start()

    def stop(self) -> None:
        self.notifier.stopping()
        self.health.stop()
        self.remotes.stop()
        for out in self.outputs:
            out.stop()
        if self.follower is not None:
            self.follower.stop()
        if self.microphone is not None:
            self.microphone.stop()
        if self.watchdog is not None:
            self.watchdog.stop()
        self.dreamer.stop()
        self.capture.stop()
        if self.dreamer.engine is not None:
            self.dreamer.engine.close()

    def tick_schedule(self) -> bool:
        """Staff's wake/sleep requests, then the opening hours, into state.asleep (the
        capture releases the camera and the dreamer idles while it is set); True when asleep."""
        request = self.state.take_schedule_request()
        if request == "wake":
            self.schedule.wake()
        elif request == "sleep":
            self.schedule.sleep()
        asleep = self.schedule.asleep()
        if asleep != self.state.asleep:
            self.state.asleep = asleep
            log.info("%s", "asleep: outside opening hours (camera released, no dreaming)" if asleep
                     else "awake: opening hours")
        return asleep

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

    def summary(self, display: bool = True) -> str:
        """One line for the log at exit: the measured rates of this run."""
        st = self.stats
        seconds = time.perf_counter() - st.started
        dream_rate = self.dreamer.steps / seconds if seconds > 0 else 0.0
        shown = (f"{st.frames} display frames ({st.frames / max(seconds, 1e-9):.1f} fps), live latency median "
                 f"{st.latency_ms(50):.0f} ms, p95 {st.latency_ms(95):.0f} ms, " if display else "")
        return (f"session {seconds:.1f}s: {shown}{self.dreamer.steps} dream steps ({dream_rate:.1f} steps/s), "
                f"dream faults {self.dreamer.faults}, thread restarts {self.watchdog.restarts if self.watchdog else 0}")

    def health_figures(self) -> dict:
        """The figures /api/health reports now (recent rates, not the session's averages)."""
        d = self.dreamer
        info = d.engine.info if d.engine is not None else {}
        shown = self.stats.frames > 0
        return {"display_fps": round(self.stats.fps, 2) if shown else None,
                "dream_steps_per_second": round(d.steps_per_second, 2), "working_size": list(d.adaptive.size),
                "backend": info.get("backend"), "restarts": self.watchdog.restarts if self.watchdog else 0,
                "camera_reconnects": self.capture.reconnects, "faults": d.faults, "dream_steps": d.steps}

    def figures(self, display: bool = True) -> dict:
        """The session's figures for --stats (DESIGN.md): rates over the time since the
        first dream; the display's figures are None for a headless run."""
        st, d = self.stats, self.dreamer
        now = time.perf_counter()
        first = d.first_dream_at
        dreaming = now - first if first is not None else 0.0
        _, last = d.dreams.latest()
        info = (last.info if last is not None and last.info else None) or (d.engine.info if d.engine else {})
        seconds = now - st.started
        return {
            "display_fps": round(st.frames / seconds, 2) if display and seconds > 0 else None,
            "dream_steps_per_second": round(d.steps / dreaming, 2) if dreaming > 0 else 0.0,
            "working_size": list(d.adaptive.size),
            "latency_ms_median": round(st.latency_ms(50), 1) if display and st.latencies else None,
            "latency_ms_p95": round(st.latency_ms(95), 1) if display and st.latencies else None,
            "backend": info.get("backend"), "precision": info.get("precision"),
            "seconds": round(seconds, 2), "dream_steps": d.steps,
            "first_dream_seconds": round(first - STARTED, 2) if first is not None else None,
            "working_size_smallest": list(d.adaptive.ladder[min(d.adaptive.deepest, len(d.adaptive.ladder) - 1)]),
            "adaptive_level": d.adaptive.level, "dream_faults": d.faults,
            "picture_fps": round(st.pictures / seconds, 2) if display and seconds > 0 else None,
        }
