"""MIDI control (mido + python-rtmidi, both optional): a control change (CC) sets a setting,
scaled from 0..127 onto the setting's range (or a narrower lo..hi in the mapping); a note
runs an action. Learn mode (the l key, or the toggle_midi_learn command): the next control
moved binds to the setting changed last (a CC) or the action run last (a note), and the
mapping is saved at once, atomically, to the mapping file (`[midi] mapping`, by default
~/.config/dreamcam/midi.toml). No MIDI backend or no device is one log line, never fatal.

The port's callback is `MidiControl.handle`, which tests feed real mido messages."""
from __future__ import annotations

import logging
import os
import sys
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..commands import SCALABLE, TRIGGERS as ACTIONS, Commands, check_span
from ..audio.clock import BeatClock
from ..config import ConfigError, MidiConfig
from ..dream.files import atomic

log = logging.getLogger(__name__)

BACKENDS = {"auto": "mido.backends.rtmidi", "alsa": "mido.backends.rtmidi/LINUX_ALSA",
            "jack": "mido.backends.rtmidi/UNIX_JACK"}


@contextmanager
def c_stderr_silenced() -> Iterator[None]:
    """ALSA and JACK print their own complaints straight to fd 2 (several lines each);
    the one log line says it instead. Used only at start, before the other threads run."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def default_mapping_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dreamcam" / "midi.toml"


@dataclass(frozen=True)
class CC:
    """A control change (channel 1-16, control 0-127) driving a setting over lo..hi."""
    channel: int
    control: int
    setting: str
    lo: float | None = None
    hi: float | None = None


@dataclass
class Mapping:
    ccs: dict[tuple[int, int], CC] = field(default_factory=dict)
    notes: dict[tuple[int, int], str] = field(default_factory=dict)   # (channel, note) -> action

    def to_toml(self) -> str:
        lines = ["# Dreamcam MIDI mapping (written by learn mode; editable). Channels are 1-16.", ""]
        for c in self.ccs.values():
            extra = "".join(f"\n{k} = {v!r}" for k, v in (("lo", c.lo), ("hi", c.hi)) if v is not None)
            lines += ["[[cc]]", f"channel = {c.channel}", f"control = {c.control}", f'setting = "{c.setting}"{extra}', ""]
        for (ch, note), action in self.notes.items():
            lines += ["[[note]]", f"channel = {ch}", f"note = {note}", f'action = "{action}"', ""]
        return "\n".join(lines)


def _int(entry: dict, key: str, lo: int, hi: int, where: str) -> int:
    v = entry.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError(f"{where}: '{key}' must be a whole number {lo}-{hi}, got {v!r}")
    return v


def _cc(entry: Any, where: str) -> CC:
    if not isinstance(entry, dict) or entry.get("setting") not in SCALABLE:
        raise ConfigError(f"{where}: 'setting' must be one of {', '.join(SCALABLE)}")
    cc = CC(_int(entry, "channel", 1, 16, where), _int(entry, "control", 0, 127, where), entry["setting"],
            entry.get("lo"), entry.get("hi"))
    check_span(cc.setting, cc.lo, cc.hi, where)
    return cc


def load_mapping(path: Path) -> Mapping:
    """The mapping file, validated (one line naming the file and entry when it is wrong);
    an absent file is an empty mapping."""
    if not path.exists():
        return Mapping()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"{path}: not a readable TOML MIDI mapping ({exc}); fix or delete it") from None
    m = Mapping()
    for i, entry in enumerate(data.get("cc", [])):
        cc = _cc(entry, f"{path}: cc[{i}]")
        m.ccs[(cc.channel, cc.control)] = cc
    for i, entry in enumerate(data.get("note", [])):
        where = f"{path}: note[{i}]"
        if not isinstance(entry, dict) or entry.get("action") not in ACTIONS:
            raise ConfigError(f"{where}: 'action' must be one of {', '.join(ACTIONS)}")
        m.notes[(_int(entry, "channel", 1, 16, where), _int(entry, "note", 0, 127, where))] = entry["action"]
    return m


class MidiControl:
    """Turns MIDI messages into commands; `start()` opens an input port if there is one."""

    def __init__(self, cfg: MidiConfig, commands: Commands, mapping_path: Path | None = None):
        self.cfg = cfg
        self.commands = commands
        self.path = mapping_path or (Path(cfg.mapping).expanduser() if cfg.mapping else default_mapping_path())
        self.mapping = load_mapping(self.path)
        self.port: Any = None
        self.handled = self.refused = self.dropped = 0
        self.clock = BeatClock()

    # -- the port ------------------------------------------------------------------------------
    def start(self) -> None:
        with c_stderr_silenced():
            self._open()

    def _open(self) -> None:
        try:
            import mido
            backend = mido.Backend(BACKENDS[self.cfg.backend], load=True)
            names = backend.get_input_names()
        except Exception as exc:   # no mido, no rtmidi, no ALSA sequencer, no JACK server ...
            log.warning("MIDI off: no MIDI backend (%s)", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return
        wanted = [n for n in names if self.cfg.port.lower() in n.lower()]
        if not wanted:
            log.warning("MIDI off: no input %s(inputs: %s)", f"matching '{self.cfg.port}' " if self.cfg.port else "",
                        ", ".join(names) or "none")
            return
        try:
            self.port = backend.open_input(wanted[0], callback=self.handle)
        except Exception as exc:
            log.warning("MIDI off: cannot open '%s' (%s)", wanted[0], exc)
            return
        log.info("MIDI input '%s'; mapping %s (%d controls, %d notes)", wanted[0], self.path,
                 len(self.mapping.ccs), len(self.mapping.notes))

    def stop(self) -> None:
        if self.port is not None:
            self.port.close()
            self.port = None

    # -- messages (the port's callback; runs on the MIDI thread) ---------------------------------
    def handle(self, msg: Any) -> None:
        """One mido message: learn, a mapped setting or action, or nothing. Never raises."""
        try:
            kind = getattr(msg, "type", "")
            if kind == "control_change":
                self._control(msg.channel + 1, msg.control, msg.value)
            elif kind == "note_on" and msg.velocity > 0:
                self._note(msg.channel + 1, msg.note)
            elif kind in ("clock", "start", "continue", "stop"):
                self.clock.message(kind)          # the tempo, for [audio] (live/audio/clock.py)
        except Exception:
            self.dropped += 1
            log.debug("MIDI message dropped: %r", msg, exc_info=True)

    def _control(self, channel: int, control: int, value: int) -> None:
        if self.commands.state.midi_learn:
            setting = self.commands.last_setting
            if self._learnable(setting in SCALABLE, "change a setting first (e.g. + or ]), then move the control"):
                self.mapping.ccs[(channel, control)] = CC(channel, control, setting)
                self._learned(f"CC {control} (channel {channel}) -> {setting}")
            return
        cc = self.mapping.ccs.get((channel, control))
        if cc is not None:
            self._count(self.commands.try_run(cc.setting, self.commands.scale(cc.setting, value / 127, cc.lo, cc.hi),
                                              source="midi"))

    def _note(self, channel: int, note: int) -> None:
        if self.commands.state.midi_learn:
            action = self.commands.last_action
            if self._learnable(action in ACTIONS, "press a key for an action first, then the pad"):
                self.mapping.notes[(channel, note)] = action
                self._learned(f"note {note} (channel {channel}) -> {action}")
            return
        action = self.mapping.notes.get((channel, note))
        if action is not None:
            self._count(self.commands.try_run(action, source="midi"))

    def _learnable(self, ok: bool, hint: str) -> bool:
        if not ok:
            self.commands.state.say(f"MIDI learn: {hint}")
        return ok

    def _count(self, refusal: str | None) -> None:
        self.handled += 1
        self.refused += refusal is not None

    def _learned(self, what: str) -> None:
        self.commands.state.midi_learn = False
        try:
            with atomic(self.path) as tmp:
                tmp.write_text(self.mapping.to_toml(), encoding="utf-8")
            self.commands.state.say(f"MIDI: {what}, saved")
            log.info("MIDI learn: %s, saved to %s", what, self.path)
        except OSError as exc:
            self.commands.state.say(f"MIDI: {what} (not saved: {exc})")
