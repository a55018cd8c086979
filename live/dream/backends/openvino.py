"""The dream step run by OpenVINO (Intel's runtime; on any x86 CPU, and on the Intel
integrated GPUs of many mini PCs): the same ONNX export as the onnx backend (onnx.py),
validated against PyTorch like it, the strength a graph input.

Measured on this 2-core CPU (qa.bench): about twice as fast per step as ONNX Runtime
on the same file. Two settings matter:
* the precision is always asked for explicitly (f32): on CPUs with AVX512-BF16 OpenVINO
  silently defaults to bf16, which fails validation here (66% of the values off, max 0.6);
* threads = usable cores, no pinning, one stream, LATENCY: pinned threads fight the
  renderer and the capture thread for the two cores.

Compiled models are kept by OpenVINO in the user's cache folder (CACHE_DIR), so a second
start loads a blob instead of compiling (about a second less)."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import torch

from models import Backbone
from ..step import DreamStep
from . import onnx as ob
from .cache import cache_dir
from .trace import ExportError, in_layout_of, on_cpu
from .validate import check, compare, describe

log = logging.getLogger(__name__)

CACHE = "openvino"
_core = None
_core_lock = threading.Lock()


def version() -> str:
    import openvino
    return openvino.__version__.split("-")[0]


def core():
    """One OpenVINO Core per process, compiling into the user's cache folder."""
    global _core
    with _core_lock:
        if _core is None:
            import openvino as ov
            c = ov.Core()
            folder = cache_dir(CACHE)
            folder.mkdir(parents=True, exist_ok=True)
            c.set_property({"CACHE_DIR": str(folder)})
            _core = c
        return _core


def pick_device(torch_device: torch.device) -> str:
    """OpenVINO's GPU plugin when an Intel GPU is there (and the picture is not on CUDA), else CPU."""
    if torch_device.type == "cpu" and any(d.startswith("GPU") for d in core().available_devices):
        return "GPU"
    return "CPU"


def compile_config(device: str) -> dict:
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints
    cfg = {hints.performance_mode: hints.PerformanceMode.LATENCY,
           hints.inference_precision: ov.Type.f32}  # never the bf16 default of AVX512-BF16 CPUs
    if device == "CPU":
        cfg[props.inference_num_threads] = ob.cpu_threads()
        cfg[hints.enable_cpu_pinning] = False  # pinned threads starve the renderer and the capture
        cfg[props.num_streams] = 1
    return cfg


class OvStep:
    """Callable like DreamStep: step(x, strength) -> x' (torch tensors on x's device). One
    compiled model, one reused request; input and output are OpenVINO tensors over torch's
    own buffers (no copies)."""

    def __init__(self, path: Path, device: str = "CPU"):
        import openvino as ov
        self._ov = ov
        self.path = Path(path)
        self.device = device
        t0 = time.perf_counter()
        # compile_model(path), not read_model + compile: OpenVINO then hashes the file for
        # its cache and skips reading the ONNX at all when the blob is there.
        self.compiled = core().compile_model(str(self.path), device, compile_config(device))
        self.seconds = time.perf_counter() - t0
        names = [p.get_any_name() for p in self.compiled.inputs]
        if names != list(ob.INPUTS) or self.compiled.outputs[0].get_any_name() != ob.OUTPUT:
            raise ExportError(f"{self.path.name}: unexpected graph signature {names}")
        self.request = self.compiled.create_infer_request()
        self._strength = np.zeros((), np.float32)
        self.request.set_input_tensor(1, ov.Tensor(self._strength, shared_memory=True))

    def __call__(self, x: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
        given = x
        x = x.to("cpu", torch.float32).contiguous()  # the engine's tensors are channels_last
        out = torch.empty_like(x)
        self._strength[()] = float(strength)  # shared with the request
        self.request.set_input_tensor(0, self._ov.Tensor(x.numpy(), shared_memory=True))
        self.request.set_output_tensor(0, self._ov.Tensor(out.numpy(), shared_memory=True))
        self.request.infer()  # releases the GIL: the renderer keeps drawing
        return in_layout_of(given, out)


def stamp_path(onnx_path: Path, device: str) -> Path:
    """Beside the ONNX file: 'this file passed validation under this OpenVINO version and
    device'."""
    return onnx_path.with_name(f"{onnx_path.stem}.openvino-{version()}-{device}.ok")


def validate(onnx_path: Path, step: DreamStep, size: tuple[int, int], torch_device: torch.device) -> str:
    """Check OpenVINO's run of the file against PyTorch's step on the device it will run
    on; on success leave a stamp, so the check runs once per file, version and device.
    Returns the differences."""
    device = pick_device(torch_device)
    with on_cpu(step) as reference:  # PyTorch's side on the CPU, as for the export
        report = compare(OvStep(onnx_path, device), reference, size, torch.device("cpu"))
    check(report, f"the OpenVINO step ({device})")
    text = describe(report)
    stamp_path(onnx_path, device).write_text(text + "\n")
    return text


def on_disk(onnx_path: Path, torch_device: torch.device) -> bool:
    """The export is there and passed OpenVINO's validation on this device."""
    return onnx_path.is_file() and stamp_path(onnx_path, pick_device(torch_device)).is_file()


def prepare(backbone: Backbone, step: DreamStep, layer: str, objective: str,
            size: tuple[int, int], grad_norm: str, half: bool = False) -> Path:
    """The validated ONNX file of this step for OpenVINO: exported (and checked under ONNX
    Runtime) on first use, then checked under OpenVINO once. Always the fp32 graph
    (`half` is ONNX Runtime's; OpenVINO picks its own precision, asked for f32)."""
    path = ob.prepare(backbone, step, layer, objective, size, grad_norm)
    if not on_disk(path, backbone.device):
        log.info("openvino backend: validated %s (%s)", path.name, validate(path, step, size, backbone.device))
    return path


def load(path: Path, torch_device: torch.device) -> OvStep:
    step = OvStep(path, pick_device(torch_device))
    log.info("openvino backend: %s on %s (compiled in %.2f s)", path.name, step.device, step.seconds)
    return step
