"""The one command layer. Every action of the key table and every live setting is a named
command with a typed, range-checked argument; keys (controls.py), OSC, MIDI and the web
remote (live/remote/) all go through `Commands`, so they cannot disagree about what a
value means or which values are allowed. A bad value is refused with a `CommandError`
naming the command and what is allowed; nothing is applied, nothing crashes.

Ranges come from the one source of truth, the settings dataclasses (DreamSettings,
RenderConfig) through settings.check; the allowed layers and presets come from the
state (the model's layers, the config's presets)."""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from models import ModelError, check_layer

from .config import ConfigError, RenderConfig
from .dream.settings import DreamSettings, SettingsError, check
from .state import State

log = logging.getLogger(__name__)

MAX_TEXT = 200           # longest string argument (an objective such as "amplify + 0.5*class:goldfish")
NO_VALUE = object()      # an action's (absent) argument


class CommandError(ValueError):
    """A command or value that cannot be used; the message is the reason, for the sender."""


@dataclass(frozen=True)
class Command:
    """One named command. A setting takes a value and sets `attr` on the state; an action
    takes none and calls the state's method of the same name."""
    name: str
    type: type | None            # bool | int | float | str for settings; None for actions
    help: str
    attr: str = ""               # the state attribute a setting sets
    source: tuple[type, str] | None = None  # (settings dataclass, field): the range lives there
    changes: str = ""            # the setting an action changes (MIDI learn binds to it)
    kiosk: bool = True           # allowed from a remote in kiosk mode

    @property
    def is_setting(self) -> bool:
        return self.type is not None


def _setting(name: str, tp: type, help: str, attr: str = "", source: tuple[type, str] | None = None,
             kiosk: bool = True) -> Command:
    return Command(name, tp, help, attr or name, source, kiosk=kiosk)


def _action(name: str, help: str, changes: str = "", kiosk: bool = True) -> Command:
    return Command(name, None, help, changes=changes, kiosk=kiosk)


SETTINGS: tuple[Command, ...] = (
    _setting("layer", str, "the layer dreamed (low: strokes, high: eyes and animals)"),
    _setting("objective", str, "amplify | channel:N | class:NAME | LAYER:N, joined with +"),
    _setting("strength", float, "step size per dream step", source=(DreamSettings, "strength")),
    _setting("blend", float, "0 = live picture only, 1 = dream only", source=(RenderConfig, "blend")),
    _setting("preset", int, "preset by number, 1-based"),
    _setting("zoom", float, "magnification per pass of the endless zoom", source=(DreamSettings, "zoom")),
    _setting("zooming", bool, "endless-zoom drift on/off"),
    _setting("freeze", bool, "hold the live picture (the dream keeps growing on it)", attr="frozen"),
    _setting("noise", bool, "dream from noise instead of the camera"),
    _setting("mirror", bool, "mirror the picture"),
    _setting("hud", bool, "show the HUD"),
    _setting("help", bool, "show the help overlay"),
    _setting("fullscreen", bool, "fullscreen or window", kiosk=False),
)

ACTIONS: tuple[Command, ...] = (
    _action("quit", "quit the installation (never from a remote in kiosk mode)", kiosk=False),
    _action("toggle_fullscreen", "fullscreen or window", "fullscreen", kiosk=False),
    _action("toggle_freeze", "freeze frame on/off", "freeze"),
    _action("next_preset", "next preset", "preset"),
    _action("previous_preset", "previous preset", "preset"),
    _action("deeper", "deeper layer", "layer"),
    _action("shallower", "shallower layer", "layer"),
    _action("stronger", "stronger dream (x1.25)", "strength"),
    _action("weaker", "weaker dream (/1.25)", "strength"),
    _action("more_dream", "more dream in the blend (+0.05)", "blend"),
    _action("less_dream", "more live picture in the blend (-0.05)", "blend"),
    _action("toggle_zoom", "endless-zoom drift on/off", "zooming"),
    _action("toggle_noise", "dream from noise on/off", "noise"),
    _action("reset_dream", "forget the carried dream"),
    _action("snapshot", "a PNG of the screen (the window; not headless)"),
    _action("toggle_hud", "HUD on/off", "hud"),
    _action("toggle_help", "help overlay on/off", "help"),
    _action("toggle_mirror", "mirror on/off", "mirror"),
    _action("souvenir", "a visitor's souvenir: the picture on screen, shown as a QR code to take home"),
    _action("wake", "wake the installation now, outside opening hours (until the next opening or closing)"),
    _action("sleep", "put the installation to sleep now (until the next opening or closing)"),
    _action("toggle_midi_learn", "MIDI learn: then move a control; it binds to the last-changed setting"),
)

COMMANDS: dict[str, Command] = {c.name: c for c in SETTINGS + ACTIONS}
# What a controller (a MIDI fader or pad, the music) may drive: every setting a number can
# stand for, every action but learn mode.
SCALABLE: tuple[str, ...] = tuple(c.name for c in SETTINGS if c.name != "objective")
TRIGGERS: tuple[str, ...] = tuple(c.name for c in ACTIONS if c.name != "toggle_midi_learn")


def field_range(cmd: Command) -> tuple[float | None, float | None]:
    """(lo, hi) of a setting's dataclass field, or (None, None)."""
    if cmd.source is None:
        return None, None
    cls, name = cmd.source
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.metadata.get("range", (None, None))


def check_span(setting: str, lo: Any, hi: Any, where: str) -> None:
    """A controller's lo..hi for a setting (a MIDI fader's, a sound feature's): numbers
    inside the setting's own range, or absent (the whole range)."""
    flo, fhi = field_range(COMMANDS[setting])
    for key, v in (("lo", lo), ("hi", hi)):
        if v is not None and (flo is None or isinstance(v, bool) or not isinstance(v, (int, float))
                              or not flo <= v <= fhi):
            raise ConfigError(f"{where}: '{key}' = {v!r} must be a number in {setting}'s range {flo} to {fhi}")


def _coerce(cmd: Command, value: Any) -> Any:
    """The value in the command's type, or a CommandError (OSC sends 0/1 for toggles and
    floats for everything, so integral numbers count as bools and ints)."""
    tp, num = cmd.type, isinstance(value, (int, float)) and not isinstance(value, bool)
    x = _finite(cmd, value) if num else None
    if tp is bool:
        if isinstance(value, bool) or (num and x in (0.0, 1.0)):
            return bool(value)
        raise CommandError(f"'{cmd.name}' must be true/false (or 1/0), got {_shown(value)}")
    if tp is int:
        if num and x.is_integer():
            return int(value)
        raise CommandError(f"'{cmd.name}' must be a whole number, got {_shown(value)}")
    if tp is float:
        if num:
            return x
        raise CommandError(f"'{cmd.name}' must be a number, got {_shown(value)}")
    if not isinstance(value, str) or not value.strip():
        raise CommandError(f"'{cmd.name}' must be a non-empty string, got {value!r}")
    if len(value) > MAX_TEXT or not value.isprintable():
        raise CommandError(f"'{cmd.name}' must be printable text of at most {MAX_TEXT} characters")
    return value.strip()


def _finite(cmd: Command, value: int | float) -> float:
    """A number as a finite float, or a CommandError: NaN, infinity and integers beyond a
    float's range (JSON and OSC can carry a 400-digit integer) are refused, not crashed on."""
    try:
        x = float(value)
    except OverflowError:
        raise CommandError(f"'{cmd.name}' = {_shown(value)} is too large a number") from None
    if not math.isfinite(x):
        raise CommandError(f"'{cmd.name}' = {value!r} is not a finite number")
    return x


def _shown(value: Any, most: int = 40) -> str:
    """A value for a refusal's message, cut short (a 400-digit number is no message)."""
    try:
        text = repr(value)
    except ValueError:     # an integer too long for str() at all
        text = "a very long number"
    return text if len(text) <= most else text[:most] + "..."


ObjectiveCheck = Callable[[str, str], None]   # (objective, layer) -> None, raises when it cannot be dreamed


class Commands:
    """Runs commands on one State, one at a time (keys, OSC, MIDI and the web come from
    different threads). `check_objective` (from the app, which has the network) refuses
    an objective the layer cannot dream before it reaches the dreamer."""

    def __init__(self, state: State, check_objective: ObjectiveCheck | None = None):
        self.state = state
        self.check_objective = check_objective
        self.last_setting = ""       # the setting changed last (MIDI learn binds a control to it)
        self.last_action = ""        # the action run last (MIDI learn binds a note to it)
        self._lock = threading.RLock()

    # -- what there is -------------------------------------------------------------------
    def describe(self, cmd: Command) -> str:
        """The allowed values of a command, in words (for --osc-list and refusals)."""
        s = self.state
        if cmd.name == "layer":
            return f"one of {s.layers[0]} ... {s.layers[-1]} ({len(s.layers)} layers)"
        if cmd.name == "preset":
            return f"1 to {len(s.presets)}" + "".join(f", {i + 1}={p.name}" for i, p in enumerate(s.presets))
        if cmd.type is float:
            lo, hi = field_range(cmd)
            return f"{lo} to {hi}"
        if cmd.type is bool:
            return "on/off"
        if cmd.type is str:
            return "text"
        return "-"

    # -- checking --------------------------------------------------------------------------
    def command(self, name: Any) -> Command:
        if not isinstance(name, str) or name not in COMMANDS:
            shown = name if isinstance(name, str) and len(name) <= 40 else "?"
            raise CommandError(f"unknown command '{shown}'; known: {', '.join(COMMANDS)}")
        return COMMANDS[name]

    def _allowed(self, cmd: Command, source: str) -> None:
        s = self.state
        if s.kiosk and not cmd.kiosk and source != "key":
            raise CommandError(f"'{cmd.name}' is not allowed from a remote in kiosk mode")
        if cmd.name == "snapshot" and s.headless:
            raise CommandError("no screen to snapshot in a headless recording (the video is the output)")
        if cmd.name == "snapshot" and not s.snapshots_allowed:
            raise CommandError("snapshots are off in kiosk mode (kiosk.snapshots)")
        if cmd.name == "souvenir" and not s.souvenirs_allowed:
            raise CommandError("souvenirs are off ([souvenir] enabled = false)")
        if cmd.name == "souvenir" and s.headless:
            raise CommandError("no screen to take a souvenir of in a headless recording")

    def check(self, name: Any, value: Any) -> tuple[Command, Any]:
        """(command, value converted and range-checked) or a CommandError."""
        cmd = self.command(name)
        if not cmd.is_setting:
            raise CommandError(f"'{cmd.name}' is an action, not a setting")
        value = _coerce(cmd, value)
        s = self.state
        if cmd.source is not None:
            cls, fname = cmd.source
            try:
                value = check(cls, fname, value)
            except SettingsError as exc:
                raise CommandError(str(exc)) from None
        elif cmd.name == "layer":
            try:
                check_layer(value, s.layers)
            except ModelError as exc:
                raise CommandError(f"'layer': {exc}") from None
        elif cmd.name == "preset" and not 1 <= value <= len(s.presets):
            raise CommandError(f"'preset' = {value} is out of range; allowed 1 to {len(s.presets)}"
                               if s.presets else "there are no presets in the config")
        return cmd, value

    def _check_pair(self, values: dict[str, Any]) -> None:
        """The objective must be dreamable at the layer both will have after the request."""
        if self.check_objective is None or not {"layer", "objective"} & set(values):
            return
        s = self.state
        base = s.presets[values["preset"] - 1] if "preset" in values else s
        layer, objective = values.get("layer", base.layer), values.get("objective", base.objective)
        try:
            self.check_objective(objective, layer)
        except Exception as exc:
            what = "objective" if "objective" in values else "layer"
            raise CommandError(f"'{what}': objective '{objective}' at {layer}: {exc}") from None

    # -- running ---------------------------------------------------------------------------
    def run(self, name: Any, value: Any = NO_VALUE, source: str = "key") -> str:
        """Run one command (an action, or a setting with its value); returns its name.
        Refused commands raise CommandError and change nothing."""
        if value is not NO_VALUE:
            return self.set_many({name: value}, source)[0]
        cmd = self.command(name)
        if cmd.is_setting:
            raise CommandError(f"'{cmd.name}' needs a value: {self.describe(cmd)}")
        with self._lock:
            self._allowed(cmd, source)
            getattr(self.state, cmd.name)()
            if cmd.name != "toggle_midi_learn":
                self.last_action = cmd.name
            self.last_setting = cmd.changes or self.last_setting
        return cmd.name

    def souvenir(self, source: str = "remote") -> str:
        """The souvenir action, answering its one-time token (the web remote's reply has its URL)."""
        with self._lock:
            self._allowed(self.command("souvenir"), source)
            self.last_action = "souvenir"
            return self.state.souvenir()

    def set_many(self, changes: dict, source: str = "remote") -> list[str]:
        """Set several settings at once: all are checked first, then all applied together
        (a reader never sees half of them); one bad value refuses the whole request."""
        if not isinstance(changes, dict) or not changes:
            raise CommandError("expected one or more settings, e.g. {\"strength\": 0.02}")
        return self.together(changes, (), source)

    def together(self, changes: dict, actions: Sequence[str] = (), source: str = "remote") -> list[str]:
        """Actions, then settings on top of them (a preset, then its strength), all or none
        (an OSC bundle): everything is checked before anything is applied, so one bad value
        or one action not allowed refuses the lot."""
        with self._lock:
            checked = [self.check(name, value) for name, value in changes.items()]
            self._check_pair({cmd.name: value for cmd, value in checked})
            acts = [self.command(name) for name in actions]
            for cmd in acts:
                if cmd.is_setting:
                    raise CommandError(f"'{cmd.name}' needs a value: {self.describe(cmd)}")
            for cmd in [c for c, _ in checked] + acts:
                self._allowed(cmd, source)
            for cmd in acts:
                self.run(cmd.name, NO_VALUE, source)
            checked.sort(key=lambda cv: cv[0].name != "preset")   # a preset first, the rest on top of it
            with self.state.lock:
                for cmd, value in checked:
                    if cmd.name == "preset":
                        self.state.select_preset(value - 1)
                    else:
                        setattr(self.state, cmd.attr, value)
            if checked:
                self.last_setting = checked[-1][0].name
        return [cmd.name for cmd, _ in checked] + [cmd.name for cmd in acts]

    def try_run(self, name: Any, value: Any = NO_VALUE, source: str = "remote") -> str | None:
        """run(), with a refusal logged at debug level and returned as its reason."""
        try:
            self.run(name, value, source)
            return None
        except CommandError as exc:
            log.debug("%s command refused: %s", source, exc)
            return str(exc)

    def scale(self, name: str, x: float, lo: float | None = None, hi: float | None = None) -> Any:
        """The value at position x (0..1) of a setting's travel (a MIDI fader): numbers over
        lo..hi (default: the field's whole range), layers and presets along their lists,
        true from half way. The result is still checked when it is run."""
        cmd, s, x = self.command(name), self.state, min(max(float(x), 0.0), 1.0)
        if cmd.type is bool:
            return x >= 0.5
        if cmd.name == "layer":
            return s.layers[round(x * (len(s.layers) - 1))]
        if cmd.name == "preset":
            return 1 + round(x * (len(s.presets) - 1)) if s.presets else 1
        flo, fhi = field_range(cmd)
        if flo is None or fhi is None:
            raise CommandError(f"'{cmd.name}' cannot be driven by a fader")
        lo, hi = flo if lo is None else lo, fhi if hi is None else hi
        return lo + x * (hi - lo)

    # -- what the remotes show ---------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """Every setting's current value (preset 1-based, 0 = the [dream] settings)."""
        s = self.state
        with s.lock:
            out = {c.name: getattr(s, c.attr) for c in SETTINGS if c.name != "preset"}
            out["preset"] = s.preset + 1
        return out

    def public_state(self) -> dict[str, Any]:
        """values() plus what a remote shows beside them (names, notices, kiosk)."""
        s = self.state
        return {**self.values(), "preset_name": s.preset_name, "presets": [p.name for p in s.presets],
                "layers": list(s.layers), "kiosk": s.kiosk, "message": s.message, "snapshots": s.snapshots,
                "midi_learn": s.midi_learn, "souvenirs": s.souvenirs_allowed}
