"""The whole dream step (picture in -> dreamed picture out) as one ONNX graph, run by
ONNX Runtime.

`torch.onnx` has no translation for `aten.convolution_backward`, so the step is traced
with `make_fx` (forward to the layer, autograd's backward, normalisation, update, clamp
all become plain aten ops) while each convolution's input-gradient is decomposed into
ops ONNX has: a forward convolution with flipped, transposed weights where the stride is
1 (runs in ONNX Runtime's fast blocked-layout kernels), a transposed convolution where it
is not. ReLU6 gradients are masked from the activation's output instead of its input, so
ONNX Runtime can still fuse each Conv with its Clip. Jitter stays outside the graph;
`step_size` is a graph input, so strength changes need no re-export.

Exports are validated against the PyTorch step and cached under models/exported/, keyed
by everything that shapes the graph."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from glob import escape as glob_escape
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch.fx.experimental.proxy_tensor import disable_proxy_modes_tracing, make_fx

import models
from models import Backbone

log = logging.getLogger(__name__)
aten = torch.ops.aten

OPSET = 18
EXPORT_VERSION = 2  # bump whenever the trace or its rewrites change the exported graph
EXPORT_DIR = Path(models.__file__).resolve().parent / "exported"
INPUTS = ("image", "step_size")
OUTPUT = "dreamed"

# Validation: one strong step (about four times the live default strength) on a photo and
# on noise, differences in picture units (0..1). The normalised gradient has mean |g| = 1,
# so the mean update is VALIDATION_STEP; single pixels move up to ~25x that. ONNX Runtime
# sums in another order, so a ReLU6 unit sitting right at 0 or 6 can switch and move a
# small patch of pixels noticeably (seen: up to 5e-2 on ~0.01% of the values at 640x480)
# while the mean stays ~1e-5. A wrong graph moves the mean by ~VALIDATION_STEP, a wrong
# border (one pixel all round) moves over 0.5% of the values.
VALIDATION_STEP = 0.05
TOLERANCE_MEAN = 0.002 * VALIDATION_STEP   # mean |difference| under 0.2% of the step
TOLERANCE_SHARE = 1e-3                     # at most 0.1% of the values off by > 10% of the step
TOLERANCE_MAX = 2.0 * VALIDATION_STEP      # and none by more than two mean steps
FAR = 0.1 * VALIDATION_STEP


@dataclass(frozen=True)
class Diff:
    """How far the ONNX step is from PyTorch's on one picture."""
    max: float
    mean: float
    share: float  # of values off by more than FAR

    def ok(self) -> bool:
        return self.mean <= TOLERANCE_MEAN and self.share <= TOLERANCE_SHARE and self.max <= TOLERANCE_MAX

    def __str__(self) -> str:
        return f"max {self.max:.2e}, mean {self.mean:.2e}, {100 * self.share:.3f}% > {FAR:g}"


TOLERANCE = (f"mean <= {TOLERANCE_MEAN:g}, at most {100 * TOLERANCE_SHARE:g}% of values > {FAR:g}, "
             f"max <= {TOLERANCE_MAX:g}")


class ExportError(RuntimeError):
    """The step could not be exported, or the export does not match PyTorch."""


# -- tracing ----------------------------------------------------------------------------
def _flipped_transposed(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """Weights of the convolution that computes a stride-1 convolution's input-gradient:
    in/out channels swapped within each group, kernel rotated by 180 degrees."""
    co, cig, kh, kw = weight.shape
    w = weight.detach().reshape(groups, co // groups, cig, kh, kw).transpose(1, 2)
    return w.reshape(groups * cig, co // groups, kh, kw).flip(-1, -2).contiguous()


def _conv_input_grad(grad_out, inp, weight, bias_sizes, stride, padding, dilation, transposed,
                     output_padding, groups, output_mask):
    """Decomposition of aten.convolution_backward for frozen weights: only the input's
    gradient, as a forward or transposed convolution (both translate to ONNX)."""
    if transposed or output_mask[1] or output_mask[2]:
        raise ExportError("only input gradients of ordinary convolutions can be exported "
                          "(the network's parameters must be frozen)")
    if all(s == 1 for s in stride) and all(d == 1 for d in dilation):
        with disable_proxy_modes_tracing():  # a new constant, not ops in the graph
            w = _flipped_transposed(weight, groups)
        pad = [weight.shape[2] - 1 - padding[0], weight.shape[3] - 1 - padding[1]]
        if min(pad) >= 0:
            grad = aten.convolution(grad_out, w, None, [1, 1], pad, [1, 1], False, [0, 0], groups)
            return grad, None, None
    extra = []
    for i in range(2):
        k = weight.shape[i + 2]
        full = (grad_out.shape[i + 2] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (k - 1) + 1
        extra.append(inp.shape[i + 2] - full)
    grad = aten.convolution(grad_out, weight, None, stride, padding, dilation, True, extra, groups)
    return grad, None, None


def _adaptive_avg_pool_backward(grad_out, inp):
    """Global average pooling's gradient (the classifier head); ONNX has no direct op."""
    if tuple(grad_out.shape[-2:]) != (1, 1):
        raise ExportError("only global average pooling can be exported")
    h, w = inp.shape[-2:]
    return (grad_out / (h * w)).expand(inp.shape)


@contextmanager
def _plain_global_pooling(net: torch.nn.Module):
    """Global average pooling as a plain mean while tracing (the same numbers): the CPU
    kernel's in-place as_strided_ would leave an as_strided_scatter in the backward, which
    ONNX cannot express."""
    pools = [m for m in net.modules() if isinstance(m, torch.nn.AdaptiveAvgPool2d)
             and m.output_size in (1, (1, 1))]
    for m in pools:
        m.forward = lambda x: x.mean(dim=(-2, -1), keepdim=True)
    try:
        yield
    finally:
        for m in pools:
            del m.forward


def _decompositions() -> dict:
    from torch._decomp import get_decompositions
    # Backward ops of the other networks and objectives that have no ONNX translation.
    table = get_decompositions([
        aten.select_backward, aten.slice_backward, aten.max_pool2d_with_indices_backward,
        aten.threshold_backward, aten.native_batch_norm_backward, aten._softmax_backward_data,
        aten._log_softmax_backward_data, aten.sigmoid_backward, aten.tanh_backward,
        aten.silu_backward, aten.hardswish_backward, aten.hardsigmoid_backward, aten.gelu_backward])
    table[aten.convolution_backward.default] = _conv_input_grad
    table[aten._adaptive_avg_pool2d_backward.default] = _adaptive_avg_pool_backward
    return table


def _mask_from_outputs(gm: torch.fx.GraphModule) -> int:
    """Rewrite hardtanh_backward(g, z) as g * (lo < y < hi) with y = hardtanh(z): the
    same numbers, but z is no longer needed after the forward pass, so ONNX Runtime fuses
    Conv+Clip; a float multiply is also cheaper there than Where. Returns the count."""
    graph, count = gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != aten.hardtanh_backward.default:
            continue
        grad, z, lo, hi = node.args
        outs = [u for u in z.users if u.target == aten.hardtanh.default and u.args[1:] == (lo, hi)]
        src = outs[0] if outs else z
        with graph.inserting_before(node):
            inside = graph.call_function(aten.logical_and.default, (
                graph.call_function(aten.gt.Scalar, (src, lo)),
                graph.call_function(aten.lt.Scalar, (src, hi))))
            mask = graph.call_function(aten._to_copy.default, (inside,), {"dtype": torch.float32})
            new = graph.call_function(aten.mul.Tensor, (grad, mask))
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        count += 1
    graph.lint()
    gm.recompile()
    return count


def _fold_crops(gm: torch.fx.GraphModule) -> int:
    """A stride-1 convolution's input-gradient followed by the backward of the model's own
    symmetric "same" padding (a crop) is one convolution with less padding: saves a copy
    of a large tensor per block. Returns the count."""
    graph, count = gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != aten.constant_pad_nd.default:
            continue
        src, pads = node.args[0], list(node.args[1])
        if (len(pads) != 4 or any(p > 0 for p in pads) or pads[0] != pads[1] or pads[2] != pads[3]
                or src.op != "call_function" or src.target != aten.convolution.default or len(src.users) != 1):
            continue
        x, w, b, stride, padding, dilation, transposed, out_pad, groups = src.args
        new_padding = [padding[0] + pads[2], padding[1] + pads[0]]
        if transposed or list(stride) != [1, 1] or min(new_padding) < 0:
            continue
        src.args = (x, w, b, stride, new_padding, dilation, transposed, out_pad, groups)
        node.replace_all_uses_with(src)
        graph.erase_node(node)
        count += 1
    graph.lint()
    gm.recompile()
    return count


def fp32_step(step: torch.nn.Module) -> torch.nn.Module:
    """The same step without autocast: the graph is exported in fp32."""
    from .engine import DreamStep
    return DreamStep(step.tap, step.objective, step.grad_norm, None)


def trace_step(step: torch.nn.Module, size: tuple[int, int], device: torch.device) -> torch.fx.GraphModule:
    """The dream step as an aten graph with no convolution_backward left in it."""
    w, h = size
    x = torch.rand(1, 3, h, w, device=device)
    s = torch.tensor(VALIDATION_STEP, device=device)
    step = fp32_step(step)
    with _plain_global_pooling(step.tap.backbone.net):
        gm = make_fx(lambda image, step_size: step(image, step_size), decomposition_table=_decompositions())(x, s)
    _mask_from_outputs(gm)
    _fold_crops(gm)
    left = [n.target for n in gm.graph.nodes if n.op == "call_function" and "backward" in str(n.target)]
    if left:
        raise ExportError(f"no ONNX translation for {', '.join(sorted(set(map(str, left))))}")
    return gm.eval()


def export_graph(gm: torch.fx.GraphModule, size: tuple[int, int], device: torch.device, path: Path) -> None:
    """Write the traced step as one self-contained ONNX file (atomically)."""
    w, h = size
    args = (torch.rand(1, 3, h, w, device=device), torch.tensor(VALIDATION_STEP, device=device))
    with _quiet():
        program = torch.onnx.export(gm, args, dynamo=True, opset_version=OPSET, input_names=list(INPUTS),
                                    output_names=[OUTPUT], optimize=True, external_data=False, verbose=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        program.save(tmp, external_data=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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


# -- cache ------------------------------------------------------------------------------
_FINGERPRINTS: dict[int, str] = {}


def weights_fingerprint(backbone: Backbone) -> str:
    """Short hash of the network's code and weights (fused or not, fine-tuned or not: they
    are the graph's constants)."""
    key = id(backbone.net)
    if key not in _FINGERPRINTS:
        import inspect
        h = hashlib.blake2b(digest_size=8)
        h.update(inspect.getsource(inspect.getmodule(type(backbone.net))).encode())  # the architecture
        for name, t in backbone.net.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        _FINGERPRINTS[key] = h.hexdigest()
    return _FINGERPRINTS[key]


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the code the graph is traced from (the step, the prior, the objectives,
    this module), so an edit there never runs a stale cached export."""
    import inspect
    from . import engine, objectives, prior
    h = hashlib.blake2b(digest_size=8)
    for src in (inspect.getsource(engine.DreamStep), inspect.getsource(engine.LayerTap),
                inspect.getsource(prior), inspect.getsource(objectives), inspect.getsource(_conv_input_grad),
                inspect.getsource(_mask_from_outputs), inspect.getsource(_fold_crops)):
        h.update(src.encode())
    return h.hexdigest()


def cache_path(backbone: Backbone, layer: str, objective: str, size: tuple[int, int],
               grad_norm: str) -> Path:
    """models/exported/<readable key>-<hash of everything that shapes the graph>.onnx"""
    w, h = size
    parts = (backbone.name, layer, objective, f"{w}x{h}", grad_norm, f"opset{OPSET}",
             f"torch{torch.__version__}", f"v{EXPORT_VERSION}", weights_fingerprint(backbone),
             code_fingerprint())
    digest = hashlib.blake2b("|".join(parts).encode(), digest_size=6).hexdigest()
    slug = re.sub(r"[^A-Za-z0-9.]+", "_", f"{backbone.name}-{layer}-{objective}-{w}x{h}-{grad_norm}")
    return EXPORT_DIR / f"{slug[:100]}-{digest}.onnx"


# -- validation -------------------------------------------------------------------------
def natural_picture(size: tuple[int, int]) -> np.ndarray:
    """A real photograph (matplotlib's sample portrait) at `size`, uint8 RGB; a smooth
    1/f-noise picture if matplotlib's sample data is not installed."""
    w, h = size
    try:
        from matplotlib import cbook
        bgr = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except Exception:
        bgr = None
    if bgr is not None:
        return cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (w, h), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    f = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2)
    f[0, 0] = 1.0
    planes = [np.real(np.fft.ifft2((rng.normal(size=(h, w)) + 1j * rng.normal(size=(h, w))) / f ** 1.5))
              for _ in range(3)]
    img = np.stack([(p - p.mean()) / (p.std() + 1e-8) for p in planes], -1) * 0.18 + 0.5
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def validation_inputs(size: tuple[int, int], device: torch.device) -> dict[str, torch.Tensor]:
    w, h = size
    photo = torch.from_numpy(natural_picture(size)).permute(2, 0, 1)[None].float().div(255)
    noise = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    return {"photo": photo.to(device), "noise": noise.to(device)}


def compare(run: Callable, reference: Callable, size: tuple[int, int],
            device: torch.device) -> dict[str, Diff]:
    """|difference| between two steps, per validation picture."""
    out = {}
    with torch.no_grad():
        for name, x in validation_inputs(size, device).items():
            d = (run(x, VALIDATION_STEP).float() - reference(x, VALIDATION_STEP).float()).abs()
            out[name] = Diff(float(d.max()), float(d.mean()), float((d > FAR).float().mean()))
    return out


def check(report: dict[str, Diff]) -> None:
    """Refuse an export that differs from PyTorch beyond the stated tolerance."""
    for name, diff in report.items():
        if not diff.ok():
            raise ExportError(f"ONNX step differs from PyTorch on {name}: {diff} (allowed: {TOLERANCE})")


def describe(report: dict[str, Diff]) -> str:
    return "; ".join(f"{k}: {d}" for k, d in report.items())


# -- ONNX Runtime -----------------------------------------------------------------------
def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _providers(device: torch.device) -> list:
    """CUDA EP only when CUDA is really there: onnxruntime-gpu logs a loud error otherwise."""
    import onnxruntime as ort
    if device.type == "cuda" and torch.cuda.is_available() and \
            "CUDAExecutionProvider" in ort.get_available_providers():
        # torch is imported first, so ORT finds torch's CUDA and cuDNN libraries loaded.
        stream = torch.cuda.current_stream(device).cuda_stream
        return [("CUDAExecutionProvider", {"device_id": device.index or 0,
                                           "user_compute_stream": str(stream)}),
                "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(path: Path, device: torch.device):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = cpu_threads()
    so.log_severity_level = 3  # warnings about unused initialisers are noise here
    # No busy-waiting between runs: the renderer and capture threads need the cores.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=_providers(device))


class OrtStep:
    """Callable like DreamStep: step(x, step_size) -> x' (torch tensors on x's device).
    IO binding hands ONNX Runtime torch's own buffers: no copies through numpy, and on
    CUDA the picture never leaves the GPU."""

    def __init__(self, path: Path, device: torch.device, report: dict[str, Diff] | None = None):
        self.path = Path(path)
        self.session = make_session(self.path, device)
        self.providers = self.session.get_providers()
        self.on_cuda = self.providers[0] == "CUDAExecutionProvider"
        self.device = device if self.on_cuda else torch.device("cpu")
        if device.type == "cuda" and not self.on_cuda:
            log.warning("onnxruntime has no usable CUDA provider here; the ONNX step runs on the CPU "
                        "(backend torch keeps the picture on the GPU)")
        self.report = report or {}
        self._step_size = torch.zeros((), dtype=torch.float32, device=self.device)
        self._step_value: float | None = None

    def __call__(self, x: torch.Tensor, step_size: torch.Tensor | float) -> torch.Tensor:
        src = x.device
        x = x.to(self.device, torch.float32).contiguous()
        value = float(step_size)
        if value != self._step_value:
            self._step_size.fill_(value)
            self._step_value = value
        out = torch.empty_like(x)
        kind, index = ("cuda", self.device.index or 0) if self.on_cuda else ("cpu", 0)
        binding = self.session.io_binding()
        binding.bind_input(INPUTS[0], kind, index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_input(INPUTS[1], kind, index, np.float32, (), self._step_size.data_ptr())
        binding.bind_output(OUTPUT, kind, index, np.float32, tuple(out.shape), out.data_ptr())
        if self.on_cuda:
            binding.synchronize_inputs()
        self.session.run_with_iobinding(binding)
        if self.on_cuda:
            binding.synchronize_outputs()
        return out.to(src)


# -- the entry points -------------------------------------------------------------------
def dream_step(backbone: Backbone, layer: str, objective: str = "amplify", grad_norm: str = "mean"):
    """A fp32 torch DreamStep on its own hooks (for the CLI tools; the engine builds its
    own). Close it with `step.tap.close()`."""
    from . import objectives as obj
    from .engine import DreamStep, LayerTap
    backbone.check_layer(layer)
    parsed = obj.parse(objective, layer, backbone.layers, backbone.class_index)
    return DreamStep(LayerTap(backbone, parsed.layers), parsed, grad_norm, None)


@dataclass
class Exported:
    path: Path
    report: dict[str, Diff]
    seconds: float


def export_step(backbone: Backbone, step: torch.nn.Module, size: tuple[int, int], path: Path) -> Exported:
    """Trace, export, validate against PyTorch; the file is only left behind if it passes."""
    t0 = time.perf_counter()
    device = backbone.device
    try:
        gm = trace_step(step, size, device)
        export_graph(gm, size, device, path)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    try:
        report = compare(OrtStep(path, device), fp32_step(step), size, device)
        check(report)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if path.parent == EXPORT_DIR:
        _prune_stale(path)
    return Exported(path, report, time.perf_counter() - t0)


def _prune_stale(path: Path) -> None:
    """Drop cached exports of the same step made by older code or weights (same readable
    name, other hash): they can never be hit again and are megabytes each."""
    stem = path.stem.rsplit("-", 1)[0]
    for old in path.parent.glob(f"{glob_escape(stem)}-*.onnx"):
        if old != path and old.stem.rsplit("-", 1)[0] == stem:
            old.unlink(missing_ok=True)


def onnx_step(backbone: Backbone, step: torch.nn.Module, layer: str, objective: str,
              size: tuple[int, int], grad_norm: str) -> OrtStep:
    """The engine's ONNX backend: the cached export (exported and validated on first use)
    in an ONNX Runtime session."""
    path = cache_path(backbone, layer, objective, size, grad_norm)
    report = None
    if not path.is_file():
        w, h = size
        log.info("exporting the dream step to ONNX (%s %s, %s, %dx%d): first use, takes a few seconds",
                 backbone.name, layer, objective, w, h)
        exported = export_step(backbone, step, size, path)
        report = exported.report
        log.info("exported %s in %.1f s; matches PyTorch (%s)", path.name, exported.seconds, describe(report))
    session = OrtStep(path, backbone.device, report)
    log.info("onnx backend: %s on %s", path.name, session.providers[0])
    return session
