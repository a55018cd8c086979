"""The dream's settings as frozen dataclasses: the one source of truth for every default
and allowed range. config.toml's [dream], [motion] and [attract] sections are these
classes; the engine and the motion response take them (or check single values against
them), so a default or a range is written down exactly once.

Validation is driven by the dataclasses themselves (field types, plus `choices`/`range`
metadata): a new setting is one line here and one commented line in config.toml. Every
refusal is a `SettingsError` with one line naming the key, what was wrong and what is
allowed. Numbers must be finite: NaN passes every `<` test, so it is refused by name."""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any


class SettingsError(ValueError):
    """A setting that cannot be used; the message is the one line the user sees."""


def choice(default: Any, *choices: Any) -> Any:
    return field(default=default, metadata={"choices": choices})


def bounded(default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    """A number (or each number of a tuple) between lo and hi, inclusive."""
    return field(default=default, metadata={"range": (lo, hi)})


def like(cls: type, name: str) -> Any:
    """A field with the same default and allowed values as `cls.name`: a preset's strength
    is [dream] strength, declared once."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return field(default=f.default, metadata=f.metadata)


# -- the dream core's sections -------------------------------------------------------------

@dataclass(frozen=True)
class DreamSettings:
    """[dream]: what to dream and how hard."""
    model: str = "efficientnet_lite0"
    layer: str = "blocks.10"
    objective: str = "amplify"
    size: tuple[int, int] = bounded((640, 480), 32, 4096)  # pixel budget; the shape follows the source
    gpu_size: tuple[int, int] = bounded((640, 480), 32, 4096)  # the budget where the dream runs on CUDA
    tile: tuple[int, int] = bounded((320, 240), 0, 4096)  # one step's pixel budget; a larger working size is dreamed a tile at a time
    gpu_tile: tuple[int, int] = bounded((0, 0), 0, 4096)  # the same on CUDA ([0, 0]: the whole picture)
    steps_per_frame: int = bounded(1, 1, 100)
    strength: float = bounded(0.012, 0.0, 0.5)   # step size, picture units per step
    jitter: int = bounded(8, 0, 64)
    decay: float = bounded(1.0, 0.0, 1.0)        # share of the carried dream kept per step where the room is still
    grad_norm: str = choice("auto", "mean", "laplacian", "mixed", "auto")  # laplacian: broader, steadier
    momentum: float = bounded(0.8, 0.0, 0.99)    # average each frame's step with the last ones: no shimmer
    limit: float = bounded(0.3, 0.01, 1.0)       # soft ceiling of the carried dream per pixel (picture units)
    decorrelate: float = bounded(0.5, 0.0, 2.0)  # natural hues instead of rainbow fringes (0 = off)
    precision: str = choice("auto", "auto", "fp32", "bf16", "fp16")
    backend: str = choice("auto", "auto", "torch", "onnx", "openvino", "compile")
    device: str = choice("auto", "auto", "cpu", "cuda")
    adaptive: bool = True                        # lower the working size when steps fall behind
    target_steps_per_second: float = bounded(8.0, 0.5, 240)
    zoom: float = bounded(1.02, 1.0, 1.2)        # z key: zoom per pass of the endless-zoom drift

    def on(self, device: str) -> "DreamSettings":
        """[dream] as it applies on `device` ("cpu", "cuda"): `size` and `tile` are the
        working size's and one step's pixel budgets there. Both dream a 640x480-class
        picture by default, so the strokes come near the screen's resolution; the CPU
        steps a quarter of it at a time (320x240: its step is 4x cheaper), a GPU the whole
        (on an H200 a 640x480 fp16 step took 8.7 ms). Adaptive quality steps down from there."""
        if device != "cuda":
            return self
        return dataclasses.replace(self, size=self.gpu_size, tile=self.gpu_tile)


@dataclass(frozen=True)
class MotionSettings:
    """[motion]: the dream flows with the scene and gives way where people move."""
    enabled: bool = True                          # motion scales the dream
    flow: bool = True                             # warp the carried dream along optical flow
    flow_preset: str = choice("ultrafast", "ultrafast", "fast", "medium")
    fb_check: bool = True                         # forward-backward flow check: a disagreeing pixel takes the camera's motion
    cut_confidence: float = bounded(0.3, 0.0, 1.0)  # mean flow confidence below which a frame is a cut
    denoise: float = bounded(0.5, 0.0, 0.95)      # temporal averaging of the still camera picture
    local: bool = True                            # per-pixel response (walkers show through, the room dreams on)
    still: float = bounded(6.0, 0.0, 10000)       # px/s of flow (at the step's size, smoothed) that still counts as still
    moving: float = bounded(20.0, 0.1, 10000)     # px/s that counts as full motion
    sigma: float = bounded(3.0, 0.0, 50)          # px (at 320 wide): blur of the motion map
    dilate: int = bounded(3, 0, 50)               # px (at 320 wide): a walker's flow spreads this far first
    change_floor: float = bounded(4.0, 0.0, 255)  # grey levels of frame change that are sensor noise, not motion
    change_range: float = bounded(6.0, 0.0, 255)  # change above the floor that fully confirms the flow (0: no check)
    compensate: bool = True                       # a shaking or panning camera is not a visitor (median flow removed)
    attack: float = bounded(0.15, 0.0, 60)        # s: how fast the dream gives way to motion
    release: float = bounded(1.5, 0.0, 600)       # s: how fast it grows back in stillness
    moving_gain: float = bounded(0.4, 0.0, 2.0)   # step size multiplier at full motion
    moving_carry: float = bounded(0.85, 0.0, 1.0)  # carried-dream (decay) multiplier at full motion
    moving_blend: float = bounded(0.5, 0.0, 1.0)  # render blend multiplier at full motion


@dataclass(frozen=True)
class AttractSettings:
    """[attract]: nobody moving for a while -> drift into the endless zoom."""
    enabled: bool = True
    idle_seconds: float = bounded(60.0, 1, 86400)
    fade_in: float = bounded(8.0, 0.1, 600)       # s from the room into the zoom
    fade_out: float = bounded(1.5, 0.1, 600)      # s to bring the room back on motion
    zoom: float = bounded(1.01, 1.0, 1.2)         # zoom per dream pass
    rotate: float = bounded(0.1, -10, 10)         # degrees turned per dream pass
    preset_seconds: float = bounded(30.0, 1, 86400)  # next preset this often while attracting
    gain: float = bounded(2.0, 0.0, 10.0)         # step-size multiplier at full zoom


# -- checking ------------------------------------------------------------------------------

def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, converted value) for the small set of types the settings use."""
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            return False, value
        pairs = [_type_ok(v, a) for v, a in zip(value, args)]
        return all(ok for ok, _ in pairs), tuple(v for _, v in pairs)
    if origin in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            ok, cv = _type_ok(value, a)
            if ok:
                return ok, cv
        return False, value
    raise TypeError(f"unsupported settings type {tp}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is tuple:
        return "[" + ", ".join(_type_name(a) for a in typing.get_args(tp)) + "]"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _numbers(value: Any) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _table_of(tp: Any) -> type | None:
    """The settings class of a `tuple[Cls, ...]` field (a TOML array of tables), else None."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis and dataclasses.is_dataclass(args[0]):
        return args[0]
    return None


def check(cls: type, name: str, value: Any, where: str = "") -> Any:
    """`value` for field `name` of `cls`, converted (int -> float, list -> tuple, a list of
    tables -> a tuple of settings), or a SettingsError naming `where.name`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    key = f"{where}.{name}" if where else name
    if name not in fields:
        section = f" in [{where}]" if where else ""
        raise SettingsError(f"unknown key '{key}'; valid keys{section}: {', '.join(fields)}")
    f, tp = fields[name], typing.get_type_hints(cls)[name]
    item = _table_of(tp)
    if item is not None:
        if not isinstance(value, list):
            raise SettingsError(f"'{key}' must be a list of [[{key}]] tables")
        return tuple(build(item, t, f"{key}[{i}]") for i, t in enumerate(value))
    ok, converted = _type_ok(value, tp)
    if not ok:
        raise SettingsError(f"'{key}' must be {_type_name(tp)}, got {value!r}")
    nums = [v for v in _numbers(converted) if isinstance(v, float)]
    if any(not math.isfinite(v) for v in nums):
        raise SettingsError(f"'{key}' = {value!r} is not a finite number")
    choices = f.metadata.get("choices")
    if choices and converted not in choices:
        raise SettingsError(f"'{key}' = {converted!r} is not allowed; choose one of {', '.join(map(str, choices))}")
    lo, hi = f.metadata.get("range", (None, None))
    if any((lo is not None and v < lo) or (hi is not None and v > hi) for v in _numbers(converted)):
        shown = list(converted) if isinstance(converted, tuple) else converted
        raise SettingsError(f"'{key}' = {shown!r} is out of range; allowed {lo} to {hi}")
    return converted


def build(cls: type, table: Any, where: str) -> Any:
    """An instance of `cls` from a table of (some of) its fields, every value checked."""
    if not isinstance(table, dict):
        raise SettingsError(f"[{where}] must be a table of settings")
    return cls(**{name: check(cls, name, value, where) for name, value in table.items()})


def changed(settings: Any, where: str = "", **changes: Any) -> Any:
    """A copy of a settings instance with `changes`, every value checked."""
    cls = type(settings)
    return dataclasses.replace(settings, **{k: check(cls, k, v, where) for k, v in changes.items()})
