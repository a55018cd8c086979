"""Backends of the dream step. The engine holds `Steps` (below): the step for every
working size, however built, made by `steps_for(name, ...)`; it knows no backend by name.
A new runtime is one file, its name in `BACKENDS` and a branch in `steps_for` (or in
`EXPORTED` when it runs the ONNX export: then pool.py builds it per size, in the
background in the live installation, and `backend = "auto"` weighs it).

Imports are deferred, so the eager backend never loads ONNX Runtime, OpenVINO or the compiler."""
from __future__ import annotations

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


BACKENDS = ("torch", "onnx", "openvino", "compile")
EXPORTED = ("openvino", "onnx")  # run the ONNX export: pool.py builds them per size, auto weighs them


def exported_module(name: str):
    """The module of an exported backend: prepare() (export, validate), on_disk(), load()."""
    if name == "onnx":
        from . import onnx
        return onnx
    if name == "openvino":
        from . import openvino
        return openvino
    raise ValueError(f"backend '{name}' does not run the ONNX export")


def steps_for(name: str, backbone: Backbone, step: DreamStep, size: Size, pool: Callable[[], Steps]) -> Steps:
    """The engine's Steps for backend `name` (`pool` makes or finds the StepPool)."""
    if name == "auto" or name in EXPORTED:
        return pool()
    if name == "compile":
        from .compiled import CompiledSteps
        threads.use(name)      # before a compile starts: its graphs guard on the count
        steps = CompiledSteps(backbone, step)
        steps.at(size)         # compiling starts now
        return steps
    if name != EAGER:
        raise ValueError(f"backend '{name}' is unknown; choose one of {', '.join(BACKENDS)}")
    return Eager(step)
