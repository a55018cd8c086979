"""config.toml -> frozen dataclasses, the one source of truth for every setting.

The dream's own sections ([dream], [motion], [attract]) are defined beside the dream core
(live/dream/settings.py); the installation's sections are here. Both are validated by the
same code (field types plus `choices`/`range` metadata), so a new setting is one line in
a dataclass and one commented line in config.toml. Every refusal is a `ConfigError` with
one line naming the file, the key, what was wrong and what is allowed."""
from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import models
from .audio import FEATURES
from .schedule import Hours, ScheduleError, parse_days, parse_time
from .dream.settings import (AttractSettings, DreamSettings, MotionSettings, SettingsError, bounded, build,
                             choice, like)

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config.toml"

ConfigError = SettingsError  # one kind of refusal, whichever section it comes from


@dataclass(frozen=True)
class SourceConfig:
    source: str = "auto"               # "auto", "clouds", a camera index ("0") or a file path
    width: int = bounded(1280, 16, 7680)
    height: int = bounded(720, 16, 4320)
    fps: float = bounded(30.0, 1, 240)
    loop: bool = True                  # loop video files
    reconnect_seconds: float = bounded(2.0, 0.1, 600)


@dataclass(frozen=True)
class RenderConfig:
    fullscreen: bool = True
    display: int = bounded(0, 0, 16)
    width: int = bounded(1280, 64, 7680)          # window size when not fullscreen
    height: int = bounded(720, 64, 4320)
    blend: float = bounded(0.85, 0.0, 1.0)        # 0 = live picture, 1 = pure dream
    crossfade: bool = True                        # interpolate between dream frames
    scale: str = choice("fill", "fill", "letterbox")
    mirror: bool | str = choice("auto", "auto", True, False)   # auto: cameras only (files, pictures, clouds as they are)
    hud: bool = False
    fps: int = bounded(60, 5, 240)
    picture_fps: float = bounded(30.0, 0.0, 240.0)   # new camera pictures composed a second at most; 0 = all


def mirrored(mirror: bool | str, camera: bool) -> bool:
    """render.mirror for a source: `auto` mirrors cameras (people see themselves as in a
    mirror) and never files, pictures or clouds (text and scenes stay the right way round)."""
    return camera if mirror == "auto" else bool(mirror)


@dataclass(frozen=True)
class KioskConfig:
    enabled: bool = False
    preset_seconds: float = bounded(90.0, 5, 86400)  # presets advance on this timer
    snapshots: bool = False                          # privacy: off in kiosk unless enabled


@dataclass(frozen=True)
class OutputConfig:
    snapshots: str = "snapshots"
    recordings: str = "recordings"
    ndi: bool = False                 # send the composed picture as an NDI source (needs cyndilib)
    ndi_name: str = "Dreamcam"        # the source's name in Resolume, TouchDesigner, OBS
    ndi_fps: float = bounded(30.0, 1.0, 240.0)   # at most this many frames a second (each costs an encode)
    virtualcam: bool = False          # the picture as a webcam (pyvirtualcam, v4l2loopback)
    virtualcam_device: str = ""       # e.g. "/dev/video10"; "" = the first loopback device


@dataclass(frozen=True)
class WatchdogConfig:
    enabled: bool = True                              # restart a capture or dream thread that stops beating
    capture_seconds: float = bounded(10.0, 0.2, 86400)  # silence of the capture thread before a restart
    dream_seconds: float = bounded(60.0, 0.2, 86400)    # of the dream thread (a new engine's first step is slow)
    max_restarts: int = bounded(5, 1, 1000)           # more per thread within an hour: exit 1, the service restarts


@dataclass(frozen=True)
class LogConfig:
    file: str = "logs/dreamcam.log"                   # rotating log file, relative to the working dir; "" = none
    level: str = choice("INFO", "DEBUG", "INFO", "WARNING", "ERROR")
    max_mb: float = bounded(5.0, 0.01, 10000)         # size at which the file rotates
    backups: int = bounded(5, 0, 1000)                # rotated files kept: dreamcam.log.1 ...


@dataclass(frozen=True)
class OscConfig:
    enabled: bool = False
    host: str = "127.0.0.1"                           # beyond localhost only with `allow` (OSC has no password)
    port: int = bounded(9000, 0, 65535)               # UDP; 0 = any free port (tests)
    reply_port: int = bounded(0, 0, 65535)            # state changes go back here; 0 = the port the client sent from
    allow: str = ""                                   # comma-separated client addresses allowed beyond localhost


@dataclass(frozen=True)
class RemoteConfig:
    enabled: bool = False
    host: str = "127.0.0.1"                           # beyond localhost only with a strong token
    port: int = bounded(8765, 0, 65535)               # 0 = any free port (tests)
    token: str = ""                                   # "" = a strong one generated at start, logged, QR on the HUD
    stream_fps: float = bounded(8.0, 1, 30)           # MJPEG preview rate (encoded only while someone watches)
    stream_width: int = bounded(640, 160, 1920)       # MJPEG preview width in pixels


@dataclass(frozen=True)
class MidiConfig:
    enabled: bool = False
    backend: str = choice("auto", "auto", "alsa", "jack")   # python-rtmidi's API; auto = ALSA on Linux
    port: str = ""                                    # part of the input port's name; "" = the first one
    mapping: str = ""                                 # mapping file; "" = ~/.config/dreamcam/midi.toml (learn saves there)


@dataclass(frozen=True)
class ScheduleConfig:
    enabled: bool = False
    days: str = "daily"                               # e.g. "tue-sun", "mon,wed,fri", "daily"
    open: str = "10:00"                               # local time
    close: str = "18:00"                              # at or before `open`: past midnight
    picture: str = ""                                 # shown while closed; "" = a black screen


@dataclass(frozen=True)
class SouvenirConfig:
    enabled: bool = False                             # privacy: off unless the gallery says so
    minutes: float = bounded(15.0, 1.0, 10080.0)      # how long a souvenir's link works; then it is deleted
    seconds: float = bounded(20.0, 3.0, 120.0)        # how long the QR code stays on screen
    folder: str = "souvenirs"
    max_mb: float = bounded(500.0, 1.0, 100000.0)     # disk cap: the oldest souvenirs go first


@dataclass(frozen=True)
class AudioRule:
    """[[audio.map]]: one sound feature driving one setting or one action."""
    feature: str = choice("beat", *FEATURES)
    setting: str = ""                                 # level..onset: scaled onto lo..hi; beat: pulsed
    action: str = ""                                  # run on every `every`-th beat (or rise past half way)
    lo: float | None = None                           # the setting's travel; absent = its whole range
    hi: float | None = None
    amount: float = bounded(1.0, 0.0, 20.0)           # a beat's pulse: the setting x (1 + amount) ...
    seconds: float = bounded(0.3, 0.01, 10.0)         # ... falling back with this time constant
    every: int = bounded(1, 1, 1024)


@dataclass(frozen=True)
class AudioConfig:
    enabled: bool = False
    source: str = choice("auto", "auto", "clip", "mic")   # auto: a clip dreamed frame by frame its soundtrack, live the microphone
    device: str = ""                                  # the microphone: part of its name or its number; "" = the default
    map: tuple[AudioRule, ...] = (AudioRule(setting="blend"),)


@dataclass(frozen=True)
class Preset:
    """[[presets]]: a named set of the live settings, each declared where it belongs."""
    name: str = "preset"
    layer: str = like(DreamSettings, "layer")
    objective: str = like(DreamSettings, "objective")
    strength: float = like(DreamSettings, "strength")
    blend: float = like(RenderConfig, "blend")


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    dream: DreamSettings = field(default_factory=DreamSettings)
    render: RenderConfig = field(default_factory=RenderConfig)
    kiosk: KioskConfig = field(default_factory=KioskConfig)
    motion: MotionSettings = field(default_factory=MotionSettings)
    attract: AttractSettings = field(default_factory=AttractSettings)
    output: OutputConfig = field(default_factory=OutputConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    log: LogConfig = field(default_factory=LogConfig)
    osc: OscConfig = field(default_factory=OscConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)
    midi: MidiConfig = field(default_factory=MidiConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    souvenir: SouvenirConfig = field(default_factory=SouvenirConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    presets: tuple[Preset, ...] = ()


def from_dict(data: dict, origin: str = "config") -> Config:
    sections = {f.name: f for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"{origin}: unknown section [{unknown[0]}]; valid sections: "
                          f"{', '.join('[' + s + ']' for s in sections)}")
    built: dict[str, Any] = {}
    try:
        for name, value in data.items():
            if name == "presets":
                if not isinstance(value, list):
                    raise ConfigError("'presets' must be a list of [[presets]] tables")
                built[name] = tuple(build(Preset, p, f"presets[{i}]") for i, p in enumerate(value))
            else:
                built[name] = build(typing.get_type_hints(Config)[name], value, name)
        cfg = Config(**built)
        _check_cross(cfg)
    except SettingsError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    return cfg


MIN_TOKEN = 16   # characters of a configured token that may guard a remote beyond localhost


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False  # a host name or 0.0.0.0: reachable from elsewhere


def _check_remotes(cfg: Config) -> None:
    """Anything listening beyond localhost must be protected: the web remote by a strong
    token, OSC (which has no password) by a list of the client addresses allowed."""
    r, o = cfg.remote, cfg.osc
    if r.token and (not r.token.strip() or len(set(r.token)) == 1 or r.token != r.token.strip()):
        raise ConfigError("'remote.token' is blank, one repeated character or has spaces around it: give a "
                          f"real secret (at least {MIN_TOKEN} characters), or leave it empty for a generated one")
    if r.enabled and not is_loopback(r.host) and r.token and len(r.token) < MIN_TOKEN:
        raise ConfigError(f"'remote.token' has {len(r.token)} characters; listening beyond localhost "
                          f"(remote.host = '{r.host}') needs at least {MIN_TOKEN}, or leave it empty for a generated one")
    if o.enabled and not is_loopback(o.host) and not o.allow.strip():
        raise ConfigError(f"'osc.host' = '{o.host}' listens beyond localhost; list the senders allowed in "
                          "'osc.allow' (e.g. \"192.168.1.20\"), OSC has no password")
    for a in filter(None, (x.strip() for x in o.allow.split(","))):
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise ConfigError(f"'osc.allow': '{a}' is not an IP address") from None


def opening_hours(s: ScheduleConfig) -> Hours | None:
    """The [schedule] as Hours (None when off); a malformed day or time is one line naming its key."""
    if not s.enabled:
        return None
    try:
        days = parse_days(s.days)
    except ScheduleError as exc:
        raise ConfigError(f"'schedule.days' = '{s.days}': {exc}") from None
    times = {}
    for key in ("open", "close"):
        try:
            times[key] = parse_time(getattr(s, key))
        except ScheduleError as exc:
            raise ConfigError(f"'schedule.{key}': {exc}") from None
    if s.picture and not Path(s.picture).expanduser().is_file():
        raise ConfigError(f"'schedule.picture' = '{s.picture}' is not a file; give a picture, or \"\" for black")
    return Hours(days, times["open"], times["close"])


def _check_cross(cfg: Config) -> None:
    _check_remotes(cfg)
    opening_hours(cfg.schedule)
    if cfg.souvenir.enabled and not cfg.remote.enabled:
        raise ConfigError("'souvenir.enabled' needs the web remote (remote.enabled = true): the souvenirs' "
                          "links are served on its port")
    if cfg.motion.moving <= cfg.motion.still:
        raise ConfigError(f"'motion.moving' = {cfg.motion.moving} must be above 'motion.still' = {cfg.motion.still}")
    try:
        layers = models.layers_of(cfg.dream.model)
    except models.ModelError as exc:
        raise ConfigError(f"'dream.model': {exc}") from None
    for key, layer in [("dream.layer", cfg.dream.layer)] + [
            (f"presets[{i}].layer", p.layer) for i, p in enumerate(cfg.presets)]:
        try:
            models.check_layer(layer, layers, cfg.dream.model)
        except models.ModelError as exc:
            raise ConfigError(f"'{key}': {exc}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` with the value parsed as TOML (bare words count as strings)."""
    path, sep, raw = text.partition("=")
    keys = [k.strip() for k in path.split(".")]
    if not sep or len(keys) != 2 or not all(keys):
        raise ConfigError(f"--set '{text}': expected section.key=value, e.g. --set dream.layer=blocks.7")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word such as blocks.7 or clouds
    return keys, value


def read(path: str | Path | None = None) -> tuple[dict, str]:
    """The TOML table of a config file and its name for messages."""
    path = Path(path) if path else DEFAULT_PATH
    origin = str(path)
    if path.is_dir():
        raise ConfigError(f"{origin}: is a directory; pass --config with a TOML file")
    if not path.is_file():
        raise ConfigError(f"{origin}: config file not found; pass --config with an existing file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), origin
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc}); fix the line it names") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}: not a text file; pass a TOML config file") from None


def load(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Read config.toml (or `path`), apply `--set` overrides, validate everything."""
    data, origin = read(path)
    for text in overrides:
        (section, key), value = parse_override(text)
        if section == "presets":
            raise ConfigError(f"--set '{text}': presets are edited in the config file, not with --set")
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"--set '{text}': [{section}] is not a table")
        data[section][key] = value
    return from_dict(data, origin if not overrides else f"{origin} (with --set)")
