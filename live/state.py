"""The one small shared state that keys and remotes change, and the actions that
change it. Readers (the dreamer, the renderer) take frozen snapshots of it
(`live_settings`, `view`), so a setting changes between dream steps, never in the
middle of one. Time comes from an injected clock."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import models
from .config import Config, Preset, RenderConfig, mirrored
from .dream.settings import DreamSettings
from .souvenir import new_token

log = logging.getLogger(__name__)

STRENGTH_STEP = 1.25          # +/- multiply or divide the strength by this
BLEND_STEP = 0.05


@dataclass(frozen=True)
class LiveSettings:
    """What the dreamer reads from the shared state before each pass."""
    layer: str
    objective: str
    strength: float
    zooming: bool = False        # endless-zoom drift: feed the dream back with a small zoom
    zoom: float = DreamSettings.zoom   # magnification per pass while zooming
    noise: bool = False          # dream from noise instead of the camera
    frozen: bool = False         # keep dreaming on the frame held when frozen
    reset: int = 0               # bumped by the 'r' key: forget the carried dream
    asleep: bool = False         # outside opening hours: no dream steps


@dataclass(frozen=True)
class View:
    """What the renderer reads from the shared state each display frame."""
    blend: float = RenderConfig.blend   # 0 = live picture only, 1 = dream only
    mirror: bool = False
    crossfade: bool = True
    scale: str = "fill"          # fill | letterbox
    hud: bool = False
    help: bool = False
    message: str = ""            # a short notice (preset name, snapshot saved)
    message_time: float = 0.0    # time.monotonic() when the notice was given


@dataclass
class State:
    """The one small shared object every control changes, through the command layer
    (live/commands.py: its actions are methods here); readers take snapshots
    (`live_settings`, `view`)."""
    layers: tuple[str, ...]
    presets: tuple[Preset, ...] = ()
    layer: str = DreamSettings.layer
    objective: str = DreamSettings.objective
    strength: float = DreamSettings.strength
    blend: float = RenderConfig.blend
    zoom: float = DreamSettings.zoom   # magnification per pass of the endless-zoom drift
    mirror: bool = True
    crossfade: bool = True
    scale: str = "fill"
    hud: bool = False
    help: bool = False
    fullscreen: bool = True
    frozen: bool = False
    zooming: bool = False
    noise: bool = False
    preset: int = -1              # -1: the [dream] settings, not a preset
    resets: int = 0
    snapshots: int = 0            # requests; the renderer takes one per increment
    running: bool = True
    kiosk: bool = False
    snapshots_allowed: bool = True
    headless: bool = False        # a recording: no screen to snapshot
    midi_learn: bool = False      # armed: the next MIDI control moved binds to the last-changed setting
    asleep: bool = False          # outside opening hours ([schedule]); the app sets it
    schedule_request: str = ""    # "wake" or "sleep" asked by staff; the app takes it
    souvenirs_allowed: bool = False   # [souvenir] enabled
    souvenir_requests: list = field(default_factory=list)   # tokens asked for; the renderer takes them
    message: str = ""
    message_time: float = 0.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)  # injected in tests
    preset_time: float | None = None   # when the current preset was chosen (clock time)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        if self.preset_time is None:
            self.preset_time = self.clock()

    @classmethod
    def from_config(cls, cfg: Config, clock: Callable[[], float] = time.monotonic, camera: bool = True) -> "State":
        """The state at start; `camera`: the source is a camera (render.mirror = auto mirrors it)."""
        d, r, k = cfg.dream, cfg.render, cfg.kiosk
        return cls(layers=models.layers_of(d.model), presets=cfg.presets, layer=d.layer, clock=clock,
                   objective=d.objective, strength=d.strength, blend=r.blend, zoom=d.zoom,
                   mirror=mirrored(r.mirror, camera), crossfade=r.crossfade, scale=r.scale, hud=r.hud,
                   fullscreen=r.fullscreen, kiosk=k.enabled, snapshots_allowed=(not k.enabled or k.snapshots),
                   souvenirs_allowed=cfg.souvenir.enabled)

    # -- snapshots for the readers --------------------------------------------------------
    def live_settings(self) -> LiveSettings:
        with self._lock:
            return LiveSettings(self.layer, self.objective, self.strength, self.zooming, self.zoom,
                                self.noise, self.frozen, self.resets, self.asleep)

    def view(self) -> View:
        with self._lock:
            return View(self.blend, self.mirror, self.crossfade, self.scale, self.hud, self.help,
                        self.message, self.message_time)

    @property
    def lock(self) -> threading.RLock:
        """Held while several settings change together (commands.set_many), so a reader's
        snapshot never shows half of them; re-entrant, as the actions take it too."""
        return self._lock

    @property
    def preset_name(self) -> str:
        return self.presets[self.preset].name if 0 <= self.preset < len(self.presets) else "-"

    def say(self, text: str) -> None:
        """A short notice on screen (and in the log)."""
        log.info("%s", text)
        with self._lock:
            self.message, self.message_time = text, self.clock()

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
            self.preset_time = self.clock()
        self.say(f"preset {index + 1}: {p.name}")

    def advance_if_due(self, seconds: float) -> bool:
        """Kiosk playlist: the next preset once the current one has shown `seconds`."""
        if self.presets and self.clock() - self.preset_time >= seconds:
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
        self.zooming = not self.zooming
        self.say("endless zoom on" if self.zooming else "endless zoom off")

    def toggle_noise(self) -> None:
        self.noise = not self.noise
        self.say("dreaming from noise" if self.noise else "dreaming on the camera")

    def wake(self) -> None:
        with self._lock:
            self.schedule_request = "wake"

    def sleep(self) -> None:
        with self._lock:
            self.schedule_request = "sleep"

    def souvenir(self) -> str:
        """A visitor's souvenir of the picture on screen: its one-time token (the renderer saves it)."""
        token = new_token()
        with self._lock:
            self.souvenir_requests.append(token)
        return token

    def take_souvenir_requests(self) -> list[str]:
        with self._lock:
            taken, self.souvenir_requests = self.souvenir_requests, []
            return taken

    def take_schedule_request(self) -> str:
        with self._lock:
            request, self.schedule_request = self.schedule_request, ""
            return request

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
        self.say("mirror on" if self.mirror else "mirror off")

    def toggle_midi_learn(self) -> None:
        self.midi_learn = not self.midi_learn
        self.say("MIDI learn: move a control" if self.midi_learn else "MIDI learn off")
