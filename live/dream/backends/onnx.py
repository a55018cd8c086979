"""The dream step as one ONNX graph (see trace.py for how the step becomes a plain
graph), exported with torch.onnx, validated against PyTorch, cached in the user's cache
folder, and run by ONNX Runtime with IO binding (torch's own buffers, no copies)."""
from __future__ import annotations

import logging
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from models import Backbone
from ..files import atomic
from ..step import DreamStep
from .cache import cache_dir, cached_file, prune_stale
from .trace import EXAMPLE_STRENGTH, ExportError, in_layout_of, on_cpu, trace_step
from .validate import Diff, check, check_half, compare, cosines, describe

log = logging.getLogger(__name__)

OPSET = 18
CACHE = "onnx"
INPUTS = ("image", "strength")
OUTPUT = "dreamed"


def export_graph(gm: torch.fx.GraphModule, size: tuple[int, int], device: torch.device, path: Path) -> None:
    """Write the traced step as one self-contained ONNX file (atomically)."""
    w, h = size
    args = (torch.rand(1, 3, h, w, device=device), torch.tensor(EXAMPLE_STRENGTH, device=device))
    with _quiet():
        program = torch.onnx.export(gm, args, dynamo=True, opset_version=OPSET, input_names=list(INPUTS),
                                    output_names=[OUTPUT], optimize=True, external_data=False, verbose=False,
                                    custom_translation_table=_translations())
    with atomic(path) as tmp:
        program.save(str(tmp), external_data=False)
        model = onnx.load(str(tmp))
        if fold_crops(model):
            onnx.save(model, str(tmp))


def fold_crops(model: "onnx.ModelProto") -> int:
    """A transposed convolution (a stride-2 convolution's input gradient) followed by the
    crop that undoes the model's asymmetric "same" padding (a Pad with negative pads) is one
    ConvTranspose with those pads: ONNX allows them asymmetric, PyTorch's convolution does
    not, so the trace cannot. OpenVINO ran each crop as a reference kernel (four of them,
    about 0.7 ms of the 320x240 step on AVX2). Returns how many were folded."""
    from onnx import helper, numpy_helper
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    made_by = {out: node for node in graph.node for out in node.output}
    folded = []
    for pad in graph.node:
        conv = made_by.get(pad.input[0]) if pad.op_type == "Pad" else None
        crop = consts.get(pad.input[1]) if len(pad.input) > 1 else None
        attrs = {a.name: helper.get_attribute_value(a) for a in pad.attribute}
        if (conv is None or conv.op_type != "ConvTranspose" or users.get(conv.output[0]) != 1 or crop is None
                or crop.shape != (8,) or (crop > 0).any() or crop[[0, 1, 4, 5]].any()
                or attrs.get("mode", b"constant") != b"constant"):
            continue
        old = next((a for a in conv.attribute if a.name == "pads"), None)
        pads = list(helper.get_attribute_value(old)) if old is not None else [0, 0, 0, 0]
        pads = [int(p - c) for p, c in zip(pads, crop[[2, 3, 6, 7]])]
        if old is not None:
            conv.attribute.remove(old)
        conv.attribute.append(helper.make_attribute("pads", pads))
        conv.output[0] = pad.output[0]
        folded.append(pad)
    for pad in folded:
        graph.node.remove(pad)
    used = {name for node in graph.node for name in node.input}
    for unused in [t for t in graph.initializer if t.name not in used]:   # the crops' pads
        graph.initializer.remove(unused)
    return len(folded)


def _translations() -> dict:
    """Our traced graph's own ops (trace.py) -> ONNX: the whole bilinear resize is a Resize."""
    from onnxscript.function_libs.torch_lib.ops.nn import aten_upsample_bilinear2d

    def upsample_bilinear(x, h: int, w: int):
        return aten_upsample_bilinear2d(x, [h, w], False)

    return {torch.ops.dreamcam.upsample_bilinear.default: upsample_bilinear}


@contextmanager
def _quiet():
    """The exporter's optimiser logs every rewrite at INFO: keep the app's log readable."""
    loggers = [logging.getLogger(n) for n in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


# -- ONNX Runtime -----------------------------------------------------------------------
def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _providers(device: torch.device, stream: "torch.cuda.Stream | None" = None) -> list:
    """CUDA EP only when CUDA is really there (onnxruntime-gpu logs a loud error
    otherwise), computing on `stream`: a stream of our own, since ORT reads torch's
    default stream (handle 0) as "no stream given" and then synchronises by itself."""
    import onnxruntime as ort
    if device.type == "cuda" and stream is not None and torch.cuda.is_available() and \
            "CUDAExecutionProvider" in ort.get_available_providers():
        # torch is imported first, so ORT finds torch's CUDA and cuDNN libraries loaded.
        return [("CUDAExecutionProvider", {"device_id": str(device.index or 0),
                                           "has_user_compute_stream": "1",
                                           "user_compute_stream": str(stream.cuda_stream)}),
                "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(path: Path, device: torch.device, stream: "torch.cuda.Stream | None" = None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = cpu_threads()
    so.log_severity_level = 3  # warnings about unused initialisers are noise here
    # No busy-waiting between runs: the renderer and capture threads need the cores.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=_providers(device, stream))


def cuda_stream(device: torch.device) -> "torch.cuda.Stream | None":
    """The stream the ONNX step computes on (None off CUDA)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.Stream(device)


class OrtStep:
    """Callable like DreamStep: step(x, strength) -> x' (torch tensors on x's device).
    IO binding, made once, hands ONNX Runtime torch buffers allocated once at the
    graph's size: no copies through numpy, and on CUDA the picture never leaves the GPU.

    On CUDA, ONNX Runtime computes on a stream of our own (shared with it, see
    _providers) ordered against the caller's stream with stream waits, and is told not to
    synchronise at the end of a run: nothing here makes the host wait for the device."""

    def __init__(self, path: Path, device: torch.device, report: dict[str, Diff] | None = None):
        import onnxruntime as ort
        self.path = Path(path)
        self.stream = cuda_stream(device)
        self.session = make_session(self.path, device, self.stream)
        self.providers = self.session.get_providers()
        self.on_cuda = self.providers[0] == "CUDAExecutionProvider"
        self.device = device if self.on_cuda else torch.device("cpu")
        if device.type == "cuda" and not self.on_cuda:
            log.warning("onnxruntime has no usable CUDA provider here; the ONNX step runs on the CPU "
                        "(backend torch keeps the picture on the GPU)")
        self.report = report or {}
        shape = tuple(self.session.get_inputs()[0].shape)
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape):
            raise ExportError(f"{self.path.name}: the graph's picture has no fixed size ({shape})")
        self.shape = shape
        self._x = torch.empty(shape, dtype=torch.float32, device=self.device)
        self._out = torch.empty_like(self._x)
        self._strength = torch.zeros((), dtype=torch.float32, device=self.device)
        self._strength_value: float | None = None
        self._binding = self._bind()
        self._options = ort.RunOptions()
        if self.on_cuda:  # the caller's stream waits for ours instead
            self._options.add_run_config_entry("disable_synchronize_execution_providers", "1")

    def _bind(self):
        kind, index = ("cuda", self.device.index or 0) if self.on_cuda else ("cpu", 0)
        binding = self.session.io_binding()
        binding.bind_input(INPUTS[0], kind, index, np.float32, self.shape, self._x.data_ptr())
        binding.bind_input(INPUTS[1], kind, index, np.float32, (), self._strength.data_ptr())
        binding.bind_output(OUTPUT, kind, index, np.float32, self.shape, self._out.data_ptr())
        return binding

    def __call__(self, x: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
        if tuple(x.shape) != self.shape:
            raise ValueError(f"{self.path.name} dreams {self.shape[3]}x{self.shape[2]} pictures, "
                             f"not {x.shape[-1]}x{x.shape[-2]}")
        value = float(strength)
        if self.stream is None or not self.on_cuda:
            self._run(x, value)
            return in_layout_of(x, self._out)
        caller = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(caller)       # x is ready
        with torch.cuda.stream(self.stream):
            self._run(x, value)
        caller.wait_stream(self.stream)       # the result is ready for whatever comes next
        return in_layout_of(x, self._out)     # on the caller's stream: the next run waits for it

    def _run(self, x: torch.Tensor, value: float) -> None:
        self._x.copy_(x)  # the engine's channels_last (or another device) -> the graph's layout
        if value != self._strength_value:
            self._strength.fill_(value)
            self._strength_value = value
        self.session.run_with_iobinding(self._binding, self._options)


# -- the entry points -------------------------------------------------------------------
@dataclass
class Exported:
    path: Path
    report: dict  # name -> Diff (fp32 graph) or Cosine (fp16 graph)
    seconds: float


def export_step(backbone: Backbone, step: DreamStep, size: tuple[int, int], path: Path,
                half: bool = False) -> Exported:
    """Trace, export, validate against PyTorch; the file is only left behind if it passes.
    All of it on the CPU, whatever device the backbone dreams on (trace.on_cpu). `half`:
    the fp16 graph (the step's fp16 autocast traced into it, for CUDA), validated by the
    cosine of its update with the fp32 step's instead of the fp32 tolerance."""
    t0 = time.perf_counter()
    cpu = torch.device("cpu")
    with on_cpu(step) as reference:
        traced = DreamStep(reference.tap, reference.objective, reference.grad_norm, torch.float16) if half else reference
        try:
            gm = trace_step(traced, size, cpu, autocast=half)
            export_graph(gm, size, cpu, path)
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
        try:
            run = OrtStep(path, cpu)
            report = check_half(cosines(run, reference, size, cpu)) if half else compare(run, reference, size, cpu)
            if not half:
                check(report)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    if path.parent == cache_dir(CACHE):
        prune_stale(path)
    return Exported(path, report, time.perf_counter() - t0)


def cache_path(backbone: Backbone, layer: str, objective: str, size: tuple[int, int], grad_norm: str,
               half: bool = False) -> Path:
    """Where the export of this step is cached (the fp16 graph under a name of its own)."""
    return cached_file(CACHE, ".onnx", backbone, layer, objective, size, grad_norm + ("-fp16" if half else ""),
                       f"opset{OPSET}")


def prepare(backbone: Backbone, step: DreamStep, layer: str, objective: str,
            size: tuple[int, int], grad_norm: str, half: bool = False) -> Path:
    """The cached, validated export of this step (exported and checked on first use)."""
    path = cache_path(backbone, layer, objective, size, grad_norm, half)
    if not path.is_file():
        w, h = size
        log.info("exporting the dream step to ONNX (%s %s, %s, %dx%d%s): first use, takes a few seconds",
                 backbone.name, layer, objective, w, h, ", fp16" if half else "")
        exported = export_step(backbone, step, size, path, half)
        log.info("exported %s in %.1f s; matches PyTorch (%s)", path.name, exported.seconds,
                 describe(exported.report))
    return path


def on_disk(path: Path, device: torch.device) -> bool:
    """The export is there (it was validated before it was written)."""
    return path.is_file()


def load(path: Path, device: torch.device) -> OrtStep:
    session = OrtStep(path, device)
    log.info("onnx backend: %s on %s", path.name, session.providers[0])
    return session
