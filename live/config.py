"""config.toml -> frozen dataclasses, the one source of truth for every setting.

Validation is driven by the dataclasses themselves (field types, plus `choices`/`range`
metadata), so a new setting is one line here and one commented line in config.toml.
Every refusal is a `ConfigError` with one line naming the file, the key, what was wrong
and what is allowed."""
from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import models

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config.toml"


class ConfigError(ValueError):
    """A setting that cannot be used; the message is the one line the user sees."""


def choice(default: Any, *choices: Any) -> Any:
    return field(default=default, metadata={"choices": choices})


def bounded(default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    return field(default=default, metadata={"range": (lo, hi)})


@dataclass(frozen=True)
class SourceConfig:
    source: str = "auto"               # "auto", "clouds", a camera index ("0") or a file path
    width: int = bounded(1280, 16, 7680)
    height: int = bounded(720, 16, 4320)
    fps: float = bounded(30.0, 1, 240)
    loop: bool = True                  # loop video files
    reconnect_seconds: float = bounded(2.0, 0.1, 600)


@dataclass(frozen=True)
class DreamConfig:
    model: str = "efficientnet_lite0"
    layer: str = "blocks.10"
    objective: str = "amplify"
    size: tuple[int, int] = (320, 240)
    steps_per_frame: int = bounded(1, 1, 100)
    strength: float = bounded(0.012, 0.0, 0.5)   # step size, picture units per step
    jitter: int = bounded(8, 0, 64)
    decay: float = bounded(0.92, 0.0, 1.0)       # how much of the carried dream survives a frame
    grad_norm: str = choice("laplacian", "mean", "laplacian")  # laplacian: broader, steadier (tools/coherence)
    momentum: float = bounded(0.8, 0.0, 0.99)    # average each frame's step with the last ones: no shimmer
    limit: float = bounded(0.3, 0.01, 1.0)       # largest carried dream per pixel (picture units)
    precision: str = choice("auto", "auto", "fp32", "bf16", "fp16")
    backend: str = choice("torch", "torch", "onnx", "compile", "auto")
    device: str = choice("auto", "auto", "cpu", "cuda")
    adaptive: bool = True                        # lower the working size when steps fall behind
    target_steps_per_second: float = bounded(8.0, 0.5, 240)
    zoom: float = bounded(1.02, 1.0, 1.2)        # z key: zoom per pass of the endless-zoom drift


@dataclass(frozen=True)
class RenderConfig:
    fullscreen: bool = True
    display: int = bounded(0, 0, 16)
    width: int = bounded(1280, 64, 7680)          # window size when not fullscreen
    height: int = bounded(720, 64, 4320)
    blend: float = bounded(0.85, 0.0, 1.0)        # 0 = live picture, 1 = pure dream
    crossfade: bool = True                        # interpolate between dream frames
    scale: str = choice("fill", "fill", "letterbox")
    mirror: bool = True
    hud: bool = False
    fps: int = bounded(60, 5, 240)


@dataclass(frozen=True)
class MotionConfig:
    enabled: bool = True                          # motion level scales the dream (live/motion.py)
    flow: bool = True                             # warp the carried dream along optical flow
    flow_preset: str = choice("ultrafast", "ultrafast", "fast", "medium")
    fb_check: bool = True                         # forward-backward flow check (occlusions)
    cut_confidence: float = bounded(0.3, 0.0, 1.0)  # mean flow confidence below which a frame is a cut
    denoise: float = bounded(0.5, 0.0, 0.95)      # temporal averaging of the still camera picture
    still: float = bounded(4.0, 0.0, 10000)       # px/s of flow (working size) that still counts as still
    moving: float = bounded(40.0, 0.1, 10000)     # px/s that counts as full motion
    attack: float = bounded(0.25, 0.0, 60)        # s: how fast the dream gives way to motion
    release: float = bounded(3.0, 0.0, 600)       # s: how fast it grows back in stillness
    moving_gain: float = bounded(0.4, 0.0, 2.0)   # step size multiplier at full motion
    moving_carry: float = bounded(0.85, 0.0, 1.0)  # carried-dream (decay) multiplier at full motion
    moving_blend: float = bounded(0.5, 0.0, 1.0)  # render blend multiplier at full motion


@dataclass(frozen=True)
class AttractConfig:
    enabled: bool = True                          # drift into the endless zoom when nobody moves
    idle_seconds: float = bounded(60.0, 1, 86400)
    fade_in: float = bounded(8.0, 0.1, 600)       # s from the room into the zoom
    fade_out: float = bounded(1.5, 0.1, 600)      # s to bring the room back on motion
    zoom: float = bounded(1.01, 1.0, 1.2)         # zoom per dream pass
    rotate: float = bounded(0.1, -10, 10)         # degrees turned per dream pass
    preset_seconds: float = bounded(30.0, 1, 86400)  # next preset this often while attracting
    gain: float = bounded(2.0, 0.0, 10.0)         # step-size multiplier at full zoom


@dataclass(frozen=True)
class KioskConfig:
    enabled: bool = False
    preset_seconds: float = bounded(90.0, 5, 86400)  # presets advance on this timer
    snapshots: bool = False                          # privacy: off in kiosk unless enabled


@dataclass(frozen=True)
class OutputConfig:
    snapshots: str = "snapshots"
    recordings: str = "recordings"


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
class Preset:
    name: str = "preset"
    layer: str = "blocks.10"
    objective: str = "amplify"
    strength: float = bounded(0.012, 0.0, 0.5)
    blend: float = bounded(0.85, 0.0, 1.0)


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    dream: DreamConfig = field(default_factory=DreamConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    kiosk: KioskConfig = field(default_factory=KioskConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    attract: AttractConfig = field(default_factory=AttractConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    log: LogConfig = field(default_factory=LogConfig)
    presets: tuple[Preset, ...] = ()


# -- building and checking ---------------------------------------------------------------

def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, converted value) for the small set of types config.toml uses."""
    origin = typing.get_origin(tp)
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            return False, value
        converted = []
        for v, a in zip(value, args):
            ok, cv = _type_ok(v, a)
            if not ok:
                return False, value
            converted.append(cv)
        return True, tuple(converted)
    if origin in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            ok, cv = _type_ok(value, a)
            if ok:
                return ok, cv
        return False, value
    raise TypeError(f"unsupported config type {tp}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        return "[" + ", ".join(_type_name(a) for a in typing.get_args(tp)) + "]"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _build(cls: type, table: Any, where: str, origin: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{origin}: [{where}] must be a table of settings")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{origin}: unknown key '{where}.{unknown[0]}'; valid keys in [{where}]: "
                          f"{', '.join(fields)}")
    values = {}
    for name, value in table.items():
        f, key = fields[name], f"{where}.{name}"
        ok, value = _type_ok(value, hints[name])
        if not ok:
            raise ConfigError(f"{origin}: '{key}' must be {_type_name(hints[name])}, got {table[name]!r}")
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{origin}: '{key}' = {value!r} is not allowed; choose one of "
                              f"{', '.join(map(str, choices))}")
        lo, hi = f.metadata.get("range", (None, None))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{origin}: '{key}' = {value!r} is out of range; allowed {lo} to {hi}")
        values[name] = value
    return cls(**values)


def from_dict(data: dict, origin: str = "config") -> Config:
    sections = {f.name: f for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"{origin}: unknown section [{unknown[0]}]; valid sections: "
                          f"{', '.join('[' + s + ']' for s in sections)}")
    built: dict[str, Any] = {}
    for name, value in data.items():
        if name == "presets":
            if not isinstance(value, list):
                raise ConfigError(f"{origin}: 'presets' must be a list of [[presets]] tables")
            built[name] = tuple(_build(Preset, p, f"presets[{i}]", origin) for i, p in enumerate(value))
        else:
            cls = typing.get_type_hints(Config)[name]
            built[name] = _build(cls, value, name, origin)
    cfg = Config(**built)
    _check_cross(cfg, origin)
    return cfg


def _check_cross(cfg: Config, origin: str) -> None:
    if cfg.motion.moving <= cfg.motion.still:
        raise ConfigError(f"{origin}: 'motion.moving' = {cfg.motion.moving} must be above 'motion.still' = "
                          f"{cfg.motion.still}")
    w, h = cfg.dream.size
    if not (32 <= w <= 4096 and 32 <= h <= 4096):
        raise ConfigError(f"{origin}: 'dream.size' = [{w}, {h}] is out of range; each side 32 to 4096")
    try:
        layers = models.layers_of(cfg.dream.model)
    except models.ModelError as exc:
        raise ConfigError(f"{origin}: 'dream.model': {exc}") from None
    for key, layer in [("dream.layer", cfg.dream.layer)] + [
            (f"presets[{i}].layer", p.layer) for i, p in enumerate(cfg.presets)]:
        if layer not in layers:
            raise ConfigError(f"{origin}: '{key}' = '{layer}' does not exist in {cfg.dream.model}; "
                              f"valid layers: {', '.join(layers)}")


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


def load(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Read config.toml (or `path`), apply `--set` overrides, validate everything."""
    path = Path(path) if path else DEFAULT_PATH
    origin = str(path)
    if not path.is_file():
        raise ConfigError(f"{origin}: config file not found; pass --config with an existing file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc}); fix the line it names") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}: not a text file; pass a TOML config file") from None
    for text in overrides:
        (section, key), value = parse_override(text)
        if section == "presets":
            raise ConfigError(f"--set '{text}': presets are edited in the config file, not with --set")
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"--set '{text}': [{section}] is not a table")
        data[section][key] = value
    return from_dict(data, origin if not overrides else f"{origin} (with --set)")


def replace(cfg: Any, **changes: Any) -> Any:
    return dataclasses.replace(cfg, **changes)
