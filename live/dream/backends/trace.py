"""The dream step (picture in -> dreamed picture out) as one plain aten graph, shared by
the ONNX/OpenVINO export and torch.compile.

`make_fx` traces forward to the layer, autograd's backward, normalisation, update and
clamp into plain aten ops, while each convolution's input-gradient
(`aten.convolution_backward`, which no exporter translates) is decomposed into ops every
runtime has: a forward convolution with flipped, transposed weights where the stride is
1 (the fast blocked-layout kernels), a transposed convolution where it is not. ReLU6
gradients are masked from the activation's output instead of its input, so runtimes can
still fuse each Conv with its Clip. Jitter stays outside the graph; the strength is a
graph input, so changing it needs no new trace."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.fx.experimental.proxy_tensor import disable_proxy_modes_tracing, make_fx

from ..step import DreamStep, LayerTap

aten = torch.ops.aten

EXAMPLE_STRENGTH = 0.05   # any value: the strength is an input of the traced graph


class ExportError(RuntimeError):
    """The step could not be exported, or the export does not match PyTorch."""


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


@torch.library.custom_op("dreamcam::upsample_bilinear", mutates_args=())
def upsample_bilinear(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Bilinear resize (align_corners=False) as one opaque op in traced graphs: exactly the
    kernel eager PyTorch runs for F.interpolate, but neither make_fx nor the ONNX exporter
    can take it apart (see _whole_bilinear_upsampling). Its output is always contiguous:
    torch.compile may hand it either layout."""
    return aten.upsample_bilinear2d.default(x, [h, w], False).contiguous()


@upsample_bilinear.register_fake
def _(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return x.new_empty((*x.shape[:-2], h, w))


@contextmanager
def _whole_bilinear_upsampling():
    """The Laplacian normalisation's bilinear upsampling as one op while tracing. Taken
    apart (by PyTorch's own decompositions, which the ONNX exporter re-applies), each
    resize became ~10 index-gathers and transposes: GatherND, 3.5 of OpenVINO's 22 ms
    per step at 320x240. Kept whole, the export writes it as one Resize (onnx.py)."""
    original = F.interpolate

    def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, **kw):
        if mode == "bilinear" and size is not None and scale_factor is None and not align_corners \
                and not kw.get("antialias"):
            h, w = (size, size) if isinstance(size, int) else size
            return torch.ops.dreamcam.upsample_bilinear(x, int(h), int(w))
        return original(x, size, scale_factor, mode, align_corners, **kw)

    F.interpolate = interpolate
    try:
        yield
    finally:
        F.interpolate = original


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


def _rewrite(gm: torch.fx.GraphModule, target, replacement) -> int:
    """Replace every call of `target` by what `replacement(graph, node)` returns (None:
    leave that node alone); returns how many were replaced."""
    graph, count = gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != target:
            continue
        new = replacement(graph, node)
        if new is None:
            continue
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        count += 1
    graph.lint()
    gm.recompile()
    return count


def _mask_from_outputs(gm: torch.fx.GraphModule) -> int:
    """Rewrite hardtanh_backward(g, z) as g * (lo < y < hi) with y = hardtanh(z): the
    same numbers, but z is no longer needed after the forward pass, so ONNX Runtime fuses
    Conv+Clip; a float multiply is also cheaper there than Where. Returns the count."""
    def masked(graph: torch.fx.Graph, node: torch.fx.Node) -> torch.fx.Node:
        grad, z, lo, hi = node.args
        outs = [u for u in z.users if u.target == aten.hardtanh.default and u.args[1:] == (lo, hi)]
        src = outs[0] if outs else z
        with graph.inserting_before(node):
            inside = graph.call_function(aten.logical_and.default, (
                graph.call_function(aten.gt.Scalar, (src, lo)),
                graph.call_function(aten.lt.Scalar, (src, hi))))
            val = grad.meta.get("val") if isinstance(grad, torch.fx.Node) else None
            dtype = val.dtype if isinstance(val, torch.Tensor) else torch.float32  # fp16/bf16 graphs stay so
            mask = graph.call_function(aten._to_copy.default, (inside,), {"dtype": dtype})
            return graph.call_function(aten.mul.Tensor, (grad, mask))

    return _rewrite(gm, aten.hardtanh_backward.default, masked)


def _fold_crops(gm: torch.fx.GraphModule) -> int:
    """A stride-1 convolution's input-gradient followed by the backward of the model's own
    symmetric "same" padding (a crop) is one convolution with less padding: saves a copy
    of a large tensor per block. Returns the count."""
    def folded(graph: torch.fx.Graph, node: torch.fx.Node) -> torch.fx.Node | None:
        src, pads = node.args[0], list(node.args[1])
        if (len(pads) != 4 or any(p > 0 for p in pads) or pads[0] != pads[1] or pads[2] != pads[3]
                or src.op != "call_function" or src.target != aten.convolution.default or len(src.users) != 1):
            return None
        x, w, b, stride, padding, dilation, transposed, out_pad, groups = src.args
        new_padding = [padding[0] + pads[2], padding[1] + pads[0]]
        if transposed or list(stride) != [1, 1] or min(new_padding) < 0:
            return None
        src.args = (x, w, b, stride, new_padding, dilation, transposed, out_pad, groups)
        return src

    return _rewrite(gm, aten.constant_pad_nd.default, folded)


def trace_step(step: DreamStep, size: tuple[int, int], device: torch.device, *,
               autocast: bool = False) -> torch.fx.GraphModule:
    """The dream step as an aten graph with no convolution_backward left in it: fp32
    (what the exports run), or with `autocast` the step's own mixed precision, its casts
    and fp16/bf16 convolutions written into the graph (what the compile backend runs)."""
    w, h = size
    x = torch.rand(1, 3, h, w, device=device)
    s = torch.tensor(EXAMPLE_STRENGTH, device=device)
    step = step if autocast else step.fp32()
    with _plain_global_pooling(step.tap.backbone.net), _whole_bilinear_upsampling():
        gm = make_fx(lambda image, strength: step(image, strength), decomposition_table=_decompositions())(x, s)
    _mask_from_outputs(gm)
    _fold_crops(gm)
    left = [n.target for n in gm.graph.nodes if n.op == "call_function" and "backward" in str(n.target)]
    if left:
        raise ExportError(f"no translation for {', '.join(sorted(set(map(str, left))))}")
    return gm.eval()


def in_layout_of(given: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """A graph's result (its own buffer, NCHW) as a new tensor on the caller's device in
    the caller's memory layout: the engine's pictures are channels_last (OpenCV's HWC
    memory), and arithmetic between the two layouts runs 3-6x slower than within one
    (0.18 against 0.03 ms a subtraction at 320x240), several times a frame."""
    return torch.empty_like(given).copy_(out)


@contextmanager
def on_cpu(step: DreamStep) -> Iterator[DreamStep]:
    """The same fp32 step (objective, normalisation) on the CPU copy of its network, with
    hooks of its own, taken off again afterwards; the step itself when it is on the CPU.
    Exports are traced and validated there (Backbone.on_cpu says why)."""
    backbone = step.tap.backbone
    cpu = backbone.on_cpu()
    if cpu is backbone:
        yield step.fp32()
        return
    twin = DreamStep(LayerTap(cpu, step.objective.layers), step.objective, step.grad_norm)
    try:
        yield twin
    finally:
        twin.close()
