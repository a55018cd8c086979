"""DreamEngine: the low-latency dream core shared by the live app, the ONNX export and
the offline renderer.

Progressive single-octave dreaming: the engine carries the dream *residual* (dream minus
base) from call to call, so one gradient step per camera frame accumulates into a deep
dream while the picture underneath stays live."""
from __future__ import annotations

import logging
import random
import time
import weakref
from contextlib import nullcontext
from typing import Callable

import cv2
import numpy as np
import torch
from torch import nn

from models import Backbone
from . import objectives as obj
from .prior import GRAD_NORMS, jitter_offsets, normalize_grad, roll

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BACKENDS = ("torch", "onnx", "compile", "auto")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
        gradient comes back through it exactly."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            with self._autocast(x):
                loss = self.objective(self.tap(transform(x) if transform is not None else x))
            (g,) = torch.autograd.grad(loss, x)
        return g.float()

    def forward(self, x: torch.Tensor, step_size: torch.Tensor | float) -> torch.Tensor:
        return (x + step_size * self.gradient(x)).clamp(0.0, 1.0)

    def value(self, x: torch.Tensor) -> float:
        with torch.no_grad(), self._autocast(x):
            return float(self.objective(self.tap(x)))

    def _autocast(self, x: torch.Tensor):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(x.device.type, dtype=self.autocast_dtype)


def to_tensor(frame: np.ndarray, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """uint8 HxWx3 RGB of any size -> (1,3,h,w) float in [0,1] at `size` on device."""
    w, h = size
    if frame.shape[1] != w or frame.shape[0] != h:
        shrink = frame.shape[1] > w
        frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    t = torch.from_numpy(np.ascontiguousarray(frame)).to(device, non_blocking=True)
    return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0).contiguous(memory_format=torch.channels_last)


def to_image(x: torch.Tensor) -> np.ndarray:
    """(1,3,h,w) in [0,1] -> uint8 h x w x 3 RGB on the host (the one copy out)."""
    return x[0].mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()


_PRECISION_CACHE: dict[tuple, str] = {}


class DreamEngine:
    """See DESIGN.md (Engine contract). Settings are plain attributes changed through
    `configure`; hooks and the step are rebuilt lazily only when layer/objective change."""

    def __init__(self, backbone: Backbone, layer: str | None = None, size: tuple[int, int] = (320, 240),
                 steps_per_frame: int = 1, step_size: float = 0.012, jitter: int = 8,
                 objective: str = "amplify", precision: str = "auto", backend: str = "torch",
                 decay: float = 0.92, grad_norm: str = "mean", seed: int | None = None,
                 warp: Callable[[torch.Tensor, np.ndarray], torch.Tensor] | None = None,
                 momentum: float = 0.0, limit: float = 1.0):
        self.backbone = backbone
        self.device = backbone.device
        self._rng = random.Random(seed)
        self._tap: LayerTap | None = None
        self._step: Callable | None = None
        self._key: tuple | None = None
        self.residual: torch.Tensor | None = None
        self.velocity: torch.Tensor | None = None  # smoothed per-frame step (momentum)
        self._carried_velocity: torch.Tensor | None = None
        self.warp = warp
        self.last_ms = 0.0
        self.steps_done = 0
        self._nonfinite_logged = False
        self.layer = backbone.default_layer
        self.objective = "amplify"
        self.precision = "fp32"
        self.backend = "torch"
        self.configure(layer=layer or backbone.default_layer, size=size, steps_per_frame=steps_per_frame,
                       step_size=step_size, jitter=jitter, objective=objective, precision=precision,
                       backend=backend, decay=decay, grad_norm=grad_norm, momentum=momentum, limit=limit)

    # -- settings -------------------------------------------------------------------
    def configure(self, **changes) -> None:
        """Change settings between calls; the model is never rebuilt."""
        allowed = {"layer", "size", "steps_per_frame", "step_size", "jitter", "objective",
                   "precision", "backend", "decay", "grad_norm", "momentum", "limit"}
        unknown = set(changes) - allowed
        if unknown:
            raise TypeError(f"unknown engine settings: {', '.join(sorted(unknown))}")
        if "layer" in changes:
            self.backbone.check_layer(changes["layer"])
        if changes.get("precision", "auto") not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if changes.get("backend", "torch") not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}")
        if changes.get("grad_norm", "mean") not in GRAD_NORMS:
            raise ValueError(f"grad_norm must be one of {', '.join(GRAD_NORMS)}")
        if not 0.0 <= changes.get("momentum", 0.0) < 1.0:
            raise ValueError("momentum must be at least 0 and below 1")
        if not changes.get("limit", 1.0) > 0.0:
            raise ValueError("limit must be above 0")
        if "size" in changes:
            w, h = (int(v) for v in changes["size"])
            if w < 32 or h < 32:
                raise ValueError(f"working size {w}x{h} is too small (at least 32x32)")
            changes["size"] = (w, h)
            if getattr(self, "size", None) != changes["size"]:
                self.residual = None
        if "objective" in changes:  # parse now so a bad objective fails at the call site
            self._parse(changes["objective"], changes.get("layer", self.layer))
        for k, v in changes.items():
            setattr(self, k, v)
        if self.precision == "auto":
            self.precision = self._pick_precision()
        if self.backend == "auto":
            self.backend = self._pick_backend()

    def _parse(self, spec: str, layer: str) -> obj.Objective:
        return obj.parse(spec, layer, self.backbone.layers, self.backbone.class_index)

    def _ensure_step(self) -> Callable:
        key = (self.layer, self.objective, self.precision, self.backend, self.grad_norm,
               self.size if self.backend in ("onnx", "compile") else None)
        if key != self._key:
            self.close()
            objective = self._parse(self.objective, self.layer)
            self._tap = LayerTap(self.backbone, objective.layers)
            self._finalizer = weakref.finalize(self, self._tap.close)  # no stray hooks
            step = DreamStep(self._tap, objective, self.grad_norm, self._autocast_dtype())
            self._torch_step = step
            if self.backend == "onnx":
                from .onnx_backend import onnx_step
                self._step = onnx_step(self.backbone, step, self.layer, self.objective, self.size,
                                       self.grad_norm)
            elif self.backend == "compile":  # eager until the compiled step is ready
                from .compiled_backend import compiled_step
                self._step = compiled_step(self.backbone, step, self.size)
            else:
                self._step = step
            self._key = key
        return self._step

    def _autocast_dtype(self) -> torch.dtype | None:
        if self.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision fp16 needs CUDA; on CPU use fp32 or bf16")
        return _DTYPES[self.precision]

    def _pick_precision(self) -> str:
        """fp16 autocast on CUDA; on CPU whichever of fp32/bf16 measures faster here."""
        if self.device.type == "cuda":
            return "fp16"
        key = (self.backbone.name, self.layer, self.size, self.device.type)
        if key not in _PRECISION_CACHE:
            timings = {}
            for p in ("fp32", "bf16"):
                self.precision = p
                self._key = None
                timings[p] = self._time_steps(3)
            _PRECISION_CACHE[key] = min(timings, key=timings.get)
            log.info("precision auto: %s (ms/step %s)", _PRECISION_CACHE[key],
                     ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
        return _PRECISION_CACHE[key]

    def _pick_backend(self) -> str:
        """Torch, ONNX Runtime or compiled torch, whichever measures faster for these settings."""
        timings = {}
        for b in ("torch", "onnx", "compile"):
            self.backend = b
            self._key = None
            try:
                timings[b] = self._time_steps(3)
            except Exception as exc:  # an export that fails must not stop the show
                log.warning("backend %s unavailable: %s", b, exc)
        choice = min(timings, key=timings.get)
        log.info("backend auto: %s (ms/step %s)", choice, ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
        return choice

    def _time_steps(self, n: int) -> float:
        w, h = self.size
        x = torch.rand(1, 3, h, w, device=self.device).contiguous(memory_format=torch.channels_last)
        step = self._ensure_step()
        if hasattr(step, "wait") and not step.wait(timeout=600):  # time the compiled step, not its fallback
            raise RuntimeError("the compiled step is not available")
        step(x, self.step_size)  # warm-up
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            step(x, self.step_size)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1000)
        return float(np.median(times))

    def close(self) -> None:
        """Remove this engine's hooks from the (possibly shared) backbone."""
        if self._tap is not None:
            self._finalizer()  # runs tap.close once
            self._tap = None
            self._key = None

    # -- dreaming -------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the carried dream."""
        self.residual = None
        self.velocity = None

    def dream(self, frame: np.ndarray, flow: np.ndarray | None = None, *, gain: float = 1.0,
              carry: float = 1.0) -> np.ndarray:
        """One frame in (uint8 HxWx3 RGB, any size), one dream frame out at `size`.
        `flow` (working-size backward optical flow from the previous frame, see live.flow)
        moves the carried residual with the scene before it is added. `gain` scales the
        step size and `carry` the decay for this frame only (motion response), so the
        operator's settings stay as they are."""
        t0 = time.perf_counter()
        base = to_tensor(frame, self.size, self.device)
        start = self._carry(base, flow, carry)
        x = self.run_steps(start, self.steps_per_frame, self.step_size * gain)
        if self.momentum > 0.0:
            x = self._smooth_step(start, x)
        if not bool(torch.isfinite(x).all()):
            if not self._nonfinite_logged:
                log.warning("dream produced non-finite values; resetting the carried dream")
                self._nonfinite_logged = True
            self.reset()
            x = base
        else:
            self.residual = x - base
        out = to_image(x)
        self.last_ms = (time.perf_counter() - t0) * 1000
        return out

    def _carry(self, base: torch.Tensor, flow: np.ndarray | None, carry: float = 1.0) -> torch.Tensor:
        """New base + the carried residual: warped along `flow`, decayed, bounded by `limit`
        (so no region can run away into a blown-out blotch)."""
        self._carried_velocity = None
        if self.residual is None or self.residual.shape != base.shape:
            return base
        res, vel = self.residual, self.velocity
        if vel is not None and vel.shape != base.shape:
            vel = None
        if flow is not None and self.warp is not None:
            res = self.warp(res, flow)
            vel = self.warp(vel, flow) if vel is not None else None
        self._carried_velocity = vel  # not scaled by `carry`: it is one step's worth, not the dream
        if self.limit < 1.0:
            res = res.clamp(-self.limit, self.limit)
        return (base + (self.decay * carry) * res).clamp_(0.0, 1.0)

    def _smooth_step(self, start: torch.Tensor, stepped: torch.Tensor) -> torch.Tensor:
        """Momentum across frames: the frame's step is an average of this step and the
        (carried, warped) previous ones. The gradient's pixel-scale part changes from frame
        to frame while the picture it draws does not: averaging keeps the picture and
        drops the shimmer, at the same steady-state strength."""
        delta = stepped - start
        vel = self._carried_velocity
        vel = delta if vel is None else self.momentum * vel + (1.0 - self.momentum) * delta
        self.velocity = vel
        return (start + vel).clamp(0.0, 1.0)

    def run_steps(self, x: torch.Tensor, n: int, step_size: float | None = None) -> torch.Tensor:
        """n jittered gradient-ascent steps on a working tensor (jitter stays outside the step)."""
        step = self._ensure_step()
        size = self.step_size if step_size is None else step_size
        jitter = min(self.jitter, min(x.shape[-2:]) // 4)
        for _ in range(n):
            dy, dx = jitter_offsets(jitter, self._rng)
            x = roll(step(roll(x, dy, dx), size), -dy, -dx)
            self.steps_done += 1
        return x

    def objective_value(self, img: np.ndarray | torch.Tensor) -> float:
        """The current objective on a picture (uint8 image, or tensor in [0,1])."""
        self._ensure_step()
        x = img if isinstance(img, torch.Tensor) else to_tensor(img, self.size, self.device)
        return self._torch_step.value(x)

    @property
    def info(self) -> dict:
        """What the HUD shows."""
        return {"layer": self.layer, "objective": self.objective, "backend": self.backend,
                "device": self.device.type, "precision": self.precision,
                "size": f"{self.size[0]}x{self.size[1]}", "ms": self.last_ms}
