"""Backends of the dream step, looked up by name: each factory turns the eager
`DreamStep` into a callable `step(x, strength) -> x'` for one working size. The engine
knows nothing else about them; a new runtime is one file and one line in `BACKENDS`
(plus `EXPORTED` when it runs the ONNX export: then pool.py builds it per size, in the
background in the live installation, and `backend = "auto"` weighs it).

Imports are deferred, so the eager backend never loads ONNX Runtime, OpenVINO or the compiler."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from models import Backbone
from ..step import DreamStep

Step = Callable[[torch.Tensor, float], torch.Tensor]


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
    steps = CompiledSteps(backbone, step)
    steps.want(spec.size)  # start compiling the working size now
    return steps


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


def build(name: str, backbone: Backbone, step: DreamStep, spec: StepSpec) -> Step:
    if name not in BACKENDS:
        raise ValueError(f"backend '{name}' is unknown; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name](backbone, step, spec)
