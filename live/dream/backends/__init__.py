"""Backends of the dream step, looked up by name: each factory turns the eager
`DreamStep` into a callable `step(x, strength) -> x'` for one working size (tools). The
engine holds `Steps` (below): the step for every working size, however built; it knows
no backend by name. A new runtime is one file and one line in `BACKENDS` (plus
`EXPORTED` when it runs the ONNX export: then pool.py builds it per size, in the
background in the live installation, and `backend = "auto"` weighs it).

Imports are deferred, so the eager backend never loads ONNX Runtime, OpenVINO or the compiler."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import torch

from models import Backbone
from ..step import DreamStep
from . import threads

Step = Callable[[torch.Tensor, float], torch.Tensor]
Size = tuple[int, int]
EAGER = "torch"


@runtime_checkable
class Steps(Protocol):
    """What the engine dreams with for one layer, objective, normalisation, precision and
    backend choice: a step for each working size, built however the backend builds."""

    def __call__(self, x: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor: ...

    def want(self, size: Size) -> None:
        """Have `size` built ahead (a size change then finds its step ready)."""

    def ready(self, size: Size) -> bool:
        """Nothing left to build at `size`: its speed is the real one."""

    def decided(self, size: Size) -> bool:
        """Ready, and no trial between backends under way at `size`."""

    def wait(self, size: Size, timeout: float | None = None) -> bool:
        """Block until `size` is ready (tools and tests, never the live dream)."""

    def current(self, size: Size) -> Step | None:
        """The step that runs at `size` now (None: the eager one stands in)."""

    def running(self, size: Size) -> str:
        """The backend that dreams at `size` (a pool: the one that ran its last step)."""

    def precision_of(self, name: str, asked: str) -> str:
        """The precision backend `name` runs when `asked` is asked for."""

    def building(self) -> list[Size]: ...

    def pause(self) -> None:
        """Another layer is dreamed now: stop building, keep what is built."""

    def close(self) -> None: ...


class Eager:
    """Steps of the eager torch step: the same step at every size, always ready."""

    def __init__(self, step: DreamStep):
        self.step = step

    def __call__(self, x: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
        threads.use(EAGER)
        return self.step(x, strength)

    def want(self, size: Size) -> None:
        pass

    def ready(self, size: Size) -> bool:
        return True

    decided = ready

    def wait(self, size: Size, timeout: float | None = None) -> bool:
        return True

    def current(self, size: Size) -> Step:
        return self.step

    def running(self, size: Size) -> str:
        return EAGER

    def precision_of(self, name: str, asked: str) -> str:
        return asked

    def building(self) -> list[Size]:
        return []

    def pause(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class StepSpec:
    """What a backend builds: the step's settings (its cache key) at one working size."""
    layer: str
    objective: str
    grad_norm: str
    size: tuple[int, int]


def _torch(backbone: Backbone, step: DreamStep, spec: StepSpec) -> Step:
    return step


def _onnx(backbone: Backbone, step: DreamStep, spec: StepSpec) -> Step:
    from .onnx import onnx_step
    return onnx_step(backbone, step, spec.layer, spec.objective, spec.size, spec.grad_norm)


def _openvino(backbone: Backbone, step: DreamStep, spec: StepSpec) -> Step:
    from .openvino import openvino_step
    return openvino_step(backbone, step, spec.layer, spec.objective, spec.size, spec.grad_norm)


def _compile(backbone: Backbone, step: DreamStep, spec: StepSpec) -> Step:
    from .compiled import CompiledSteps
    return CompiledSteps(backbone, step).at(spec.size)   # compiling starts now


Factory = Callable[[Backbone, DreamStep, StepSpec], Step]
BACKENDS: dict[str, Factory] = {"torch": _torch, "onnx": _onnx, "openvino": _openvino, "compile": _compile}
EXPORTED = ("openvino", "onnx")  # run the ONNX export: the engine builds them per size in pool.py
                                 # (the factories above build one at once, for tools)


def exported_module(name: str):
    """The module of an exported backend: prepare() (export, validate), on_disk(), load()."""
    if name == "onnx":
        from . import onnx
        return onnx
    if name == "openvino":
        from . import openvino
        return openvino
    raise ValueError(f"backend '{name}' does not run the ONNX export")


def pooled(name: str) -> bool:
    """Is `name` built per size by a StepPool (exports in the background, auto's trial)?"""
    return name == "auto" or name in EXPORTED


def steps_for(name: str, backbone: Backbone, step: DreamStep, spec: StepSpec, pool: Callable[[], Steps]) -> Steps:
    """The engine's Steps for backend `name` (`pool` makes or finds the StepPool)."""
    if pooled(name):
        return pool()
    if name == "compile":
        from .compiled import CompiledSteps
        threads.use(name)      # before a compile starts: its graphs guard on the count
        steps = CompiledSteps(backbone, step)
        steps.at(spec.size)    # compiling starts now
        return steps
    known(name)
    return Eager(step)


def known(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend '{name}' is unknown; choose one of {', '.join(BACKENDS)}")
    return name


def build(name: str, backbone: Backbone, step: DreamStep, spec: StepSpec) -> Step:
    return BACKENDS[known(name)](backbone, step, spec)
