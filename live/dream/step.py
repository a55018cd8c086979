"""The one dream step: hooks that capture the layers an objective needs (and stop the
forward pass after the deepest of them), and gradient ascent on the picture. The live
engine, the exported backends and the offline renderer all run this step."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch
from torch import nn

from models import Backbone
from . import objectives as obj
from .prior import normalize_grad


class _Stop(Exception):
    """Raised by the deepest hook: nothing above the needed layers runs."""


class LayerTap:
    """Forward hooks on the layers an objective needs, registered once and reused; the
    hook on the deepest of them stops the forward pass (unless logits are needed)."""

    def __init__(self, backbone: Backbone, layers: tuple[str, ...]):
        self.backbone = backbone
        self.layers = layers
        self.acts: dict[str, torch.Tensor] = {}
        self._active = False  # several engines may share one backbone
        conv = tuple(l for l in layers if l != obj.LOGITS)
        self.full = obj.LOGITS in layers or not conv
        deepest = max(conv, key=backbone.layers.index) if conv else None
        self._handles = [
            backbone.module(name).register_forward_hook(self._hook(name, stop=(name == deepest and not self.full)))
            for name in conv
        ]

    def _hook(self, name: str, stop: bool) -> Callable:
        def hook(_module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            if not self._active:
                return
            self.acts[name] = out
            if stop:
                raise _Stop

        return hook

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalise x and run the network as far as needed; returns the activations."""
        self.acts = {}
        self._active = True
        try:
            logits = self.backbone.net(self.backbone.normalize(x))
            self.acts[obj.LOGITS] = logits
        except _Stop:
            pass
        finally:
            self._active = False
        return self.acts

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


class DreamStep(nn.Module):
    """One gradient-ascent step on an (already jittered) picture: x -> x + step * ĝ,
    clamped to [0, 1]. This is the unit the ONNX export traces and the offline
    renderer repeats."""

    def __init__(self, tap: LayerTap, objective: obj.Objective, grad_norm: str = "mean",
                 autocast_dtype: torch.dtype | None = None):
        super().__init__()
        self.tap = tap
        self.objective = objective
        self.grad_norm = grad_norm
        self.autocast_dtype = autocast_dtype

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        """d objective / d x, normalised (the natural-image prior's second half)."""
        return normalize_grad(self.raw_gradient(x), self.grad_norm)

    def raw_gradient(self, x: torch.Tensor,
                     transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """d objective / d x before normalisation, so a tiled render can sum tiles and
        normalise once. `transform` (e.g. a random rescale) runs inside the graph, so the
        gradient comes back through it exactly. Only the network runs under autocast: the
        objective is computed in fp32 (an fp16 matmul of the guide overflows), and under
        fp16 the loss is scaled so the backward pass stays in fp16's range (see loss_scale)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            with self._autocast(x):
                acts = self.tap(transform(x) if transform is not None else x)
            loss = self.objective(acts)
            scale = loss_scale(acts, self.autocast_dtype)
            (g,) = torch.autograd.grad(loss * scale if scale != 1.0 else loss, x)
        return g.float() / scale if scale != 1.0 else g.float()

    def forward(self, x: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
        return (x + strength * self.gradient(x)).clamp(0.0, 1.0)

    def fp32(self) -> "DreamStep":
        """The same step (same hooks) without autocast: what the backends trace."""
        return DreamStep(self.tap, self.objective, self.grad_norm, None)

    def close(self) -> None:
        self.tap.close()

    def value(self, x: torch.Tensor) -> float:
        with torch.no_grad():
            with self._autocast(x):
                acts = self.tap(x)
            return float(self.objective(acts))

    def _autocast(self, x: torch.Tensor):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(x.device.type, dtype=self.autocast_dtype)


def loss_scale(acts: dict[str, torch.Tensor], dtype: torch.dtype | None) -> float:
    """The factor the loss is multiplied by before the backward pass (and the gradient
    divided by after, in fp32). Objectives are means over many activations, so each
    activation's gradient is about 1/count: at a shallow layer of a large picture or tile
    (millions of values) that falls below fp16's smallest normal number (6e-5) and is
    flushed. A power of two near count/16 brings each activation's gradient to about its
    activation's size, far from fp16's top (65504). Exact (powers of two), computed from
    shapes only (no host sync), 1 outside fp16 (bf16 has fp32's range)."""
    if dtype != torch.float16 or not acts:
        return 1.0
    count = max(t.numel() for t in acts.values())
    return float(2 ** min(24, max(0, count.bit_length() - 5)))


def make_step(backbone: Backbone, layer: str, objective: str = "amplify", grad_norm: str = "mean",
              autocast_dtype: torch.dtype | None = None) -> DreamStep:
    """A DreamStep on hooks of its own (for tools and tests; close it with `step.close()`)."""
    parsed = obj.for_backbone(objective, layer, backbone)
    return DreamStep(LayerTap(backbone, parsed.layers), parsed, grad_norm, autocast_dtype)
