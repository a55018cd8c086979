"""DreamEngine: the low-latency dream core shared by the live installation, the exported
backends and the frame-exact clip renderer.

Progressive single-octave dreaming: the engine carries the dream *residual* (dream minus
base) from call to call, so one gradient step per camera frame accumulates into a deep
dream while the picture underneath stays live."""
from __future__ import annotations

import logging
import random
import time
import weakref
from collections import OrderedDict
from typing import Callable

import numpy as np
import torch

from models import Backbone
from . import backends, gpu, objectives as obj, tiles
from .backends.auto import Meter, precision_for
from .backends.pool import Build, StepPool, build_step
from .images import to_image, to_image_checked, to_tensor
from .prior import decorrelate_change, jitter_offsets, resolve_norm, roll
from .settings import DreamSettings, check
from .step import DreamStep, LayerTap

log = logging.getLogger(__name__)

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# What the engine itself uses of [dream]; the rest (model, device, adaptive ...) is the installation's.
ENGINE_SETTINGS = ("layer", "size", "tile", "steps_per_frame", "strength", "jitter", "objective", "precision",
                   "backend", "decay", "grad_norm", "momentum", "limit", "decorrelate")
Warp = Callable[[torch.Tensor, np.ndarray], torch.Tensor]
POOLS_KEPT = 6   # layers/objectives whose built steps are kept, so switching back is instant


WHOLE = (..., slice(None), slice(None))   # the whole picture as a region of a (1, C, h, w) tensor
KNEE = 0.5   # share of `limit` below which the carried dream is kept exactly


def soft_limit(x: torch.Tensor, limit: float) -> torch.Tensor:
    """x itself up to KNEE * limit, then bent smoothly towards +-limit (tanh). A plain
    tanh would shrink every value a little at every step, a decay by another name that
    held the still floor at ~13/255 (pedestrians.mp4); below the knee nothing is lost."""
    k, span = KNEE * limit, limit - KNEE * limit
    a = x.abs()
    # min(a, k) + span * tanh(max(a - k, 0) / span), with tanh(z) = 2 sigmoid(2z) - 1 (exactly
    # 0 at z = 0: below the knee x comes back as it was). On the CPU PyTorch's sigmoid is
    # vectorised and its tanh 6x slower, and torch.where took 4 ms at 736x416: the bent
    # formula in place takes 1.5 ms there instead of 7.
    z = (a - k).clamp_(min=0.0).mul_(2.0 / span)
    return torch.sigmoid(z).mul_(2.0 * span).sub_(span).add_(a.clamp_(max=k)).copysign_(x)


class DreamEngine:
    """The live dream step with its carried residual (docs/measurements.md, "Temporal coherence"; docs/depth.md).

    Defaults and allowed ranges are those of `DreamSettings` ([dream] in config.toml);
    settings are plain attributes changed through `configure`, and the hooks and the step
    are rebuilt lazily, only when what shapes them changes."""

    def __init__(self, backbone: Backbone, layer: str | None = None, *, seed: int | None = None,
                 warp: Warp | None = None, settings: DreamSettings | None = None, background: bool = False,
                 build: Build = build_step, meter: Meter | None = None, **changes):
        """`background`: exported backends are built off the dream's path (a child process
        and a builder thread) while the eager step dreams; the live installation wants
        that, tools and tests want the real backend from the first call. `build` and
        `meter` (how a step is built, how auto's trial is timed) are there for tests."""
        self.backbone = backbone
        self.device = backbone.device
        gpu.prepare(self.device)
        self._rng = random.Random(seed)
        self._tap: LayerTap | None = None
        self._torch_step: DreamStep | None = None
        self._step: backends.Steps | None = None
        self._key: tuple | None = None
        self._pools: OrderedDict[tuple, StepPool] = OrderedDict()
        self._pool_options = {"background": background, "build": build, "meter": meter}
        self.residual: torch.Tensor | None = None
        self.velocity: torch.Tensor | None = None  # smoothed per-frame step (momentum)
        self._carried_velocity: torch.Tensor | None = None
        self.carried: torch.Tensor | None = None   # this frame's: the last dream's residual moved onto it
        self.warp = warp
        self.last_ms = 0.0
        self._nonfinite_logged = False
        self._visits = 0      # tiles stepped so far (round robin)
        self._region: tuple = WHOLE   # what the last run_steps stepped
        self._gain = 1.0      # the step gain of the normalisation "auto" resolved to
        self._later: list[tuple[int, int]] = []   # sizes to build ahead once the current one settled
        base = settings or DreamSettings()
        for name in ENGINE_SETTINGS:
            setattr(self, name, getattr(base, name))
        self.configure(layer=layer or (base.layer if settings else backbone.default_layer), **changes)

    # -- settings -------------------------------------------------------------------
    def configure(self, **changes) -> None:
        """Change settings between calls (checked against DreamSettings); the model is
        never rebuilt, a new size only drops the carried dream."""
        unknown = set(changes) - set(ENGINE_SETTINGS)
        if unknown:
            raise TypeError(f"unknown engine settings: {', '.join(sorted(unknown))}")
        changes = {k: check(DreamSettings, k, v, "dream") for k, v in changes.items()}
        if changes.get("precision") == "fp16" and self.device.type != "cuda":
            raise ValueError("precision fp16 needs CUDA; on CPU use fp32 or bf16")
        if "objective" in changes or "layer" in changes:  # parse now: a bad layer or objective fails here
            obj.for_backbone(changes.get("objective", self.objective), changes.get("layer", self.layer), self.backbone)
        if changes.get("size", self.size) != self.size:
            self.residual = None
        for k, v in changes.items():
            setattr(self, k, v)
        if self.precision == "auto":
            self.precision = precision_for(self.device)  # measured once: fp32 on CPU, fp16 on CUDA

    def _settings_key(self, size: tuple[int, int]) -> tuple:
        """What a built step depends on at working size `size`: "auto" is resolved by the
        working width (not the tile's), so two rungs of the adaptive ladder may differ."""
        norm, _ = resolve_norm(self.grad_norm, size[0])
        return self.layer, self.objective, self.precision, self.backend, norm

    def _ensure_step(self) -> backends.Steps:
        _, self._gain = resolve_norm(self.grad_norm, self.size[0])
        key = self._settings_key(self.size)
        if key != self._key:
            objective = obj.for_backbone(self.objective, self.layer, self.backbone)
            if self._tap is None or self._tap.layers != objective.layers:   # the hooks follow the layers only
                self._close_tap()
                self._tap = LayerTap(self.backbone, objective.layers)
                self._finalizer = weakref.finalize(self, self._tap.close)  # no stray hooks
            self._torch_step = DreamStep(self._tap, objective, key[-1], _DTYPES[self.precision])
            for other in self._pools.values():
                other.pause()
            self._step = backends.steps_for(self.backend, self.backbone, self._torch_step, self.step_size(),
                                            pool=lambda: self._pool(key))
            self._key = key
        return self._step

    def _pool(self, key: tuple, eager: DreamStep | None = None) -> StepPool:
        """The pool of built steps for these settings (kept for a few settings, so going
        back to a layer is instant); `eager` its stand-in and export source (default: the
        engine's current step)."""
        pool = self._pools.pop(key, None) or StepPool(self.backbone, self.layer, self.objective, key[-1],
                                                      self.precision, self.backend, **self._pool_options)
        self._pools[key] = pool
        while len(self._pools) > POOLS_KEPT:
            self._pools.popitem(last=False)[1].close()
        pool.eager = eager or self._torch_step
        return pool

    def step_size(self, size: tuple[int, int] | None = None) -> tuple[int, int]:
        """What one step dreams on at working size `size` (default: the current one): the
        whole picture, or one `tile` of it (tiles.py)."""
        return tiles.tile_size(tuple(size or self.size), tuple(self.tile))

    def _steps_at(self, size: tuple[int, int]) -> backends.Steps | None:
        """The Steps that will dream at working size `size`: the current ones, or (a rung
        whose "auto" resolves otherwise) the pool of built steps for its normalisation;
        None where nothing can be built ahead (the eager and compiled backends)."""
        step = self._ensure_step()
        key = self._settings_key(size)
        if key == self._key:
            return step
        if self.backend != "auto" and self.backend not in backends.EXPORTED:
            return None
        eager = DreamStep(self._tap, self._torch_step.objective, key[-1], _DTYPES[self.precision])
        return self._pool(key, eager)

    def prepare(self, sizes: list[tuple[int, int]]) -> None:
        """Have the steps for these working sizes built ahead (the adaptive ladder), so a
        size change finds its step ready: the first at once, the others once it has
        settled. Not all at once: on a fresh install of a 2-core machine the ladder's
        export beside the current size's took its fast step from 15 to 35 s and ran
        beside the backends' trial (auto chose the slower one "for this run", and adaptive
        stepped the size down)."""
        sizes = [tuple(s) for s in sizes]
        if sizes:
            self._want(sizes[0])
        self._later = sizes[1:]
        self._prepare_later()   # at once where the first is (built in the foreground, on disk)

    def _want(self, size: tuple[int, int]) -> None:
        steps = self._steps_at(size)
        if steps is not None:
            steps.want(self.step_size(size))

    def _prepare_later(self) -> None:
        """The rest of `prepare`'s sizes, once the first has settled (checked every dream)."""
        if self._later and self.settled():
            later, self._later = self._later, []
            for size in later:
                self._want(size)

    def ready(self, size: tuple[int, int] | None = None) -> bool:
        """Is the step for working size `size` (default: the current size) in its final form,
        so its speed is the real one? False while an export or compile is still under way."""
        size = tuple(size or self.size)
        steps = self._steps_at(size)
        if steps is None:   # another normalisation, nothing built ahead: eager is ready, a compile is not
            return self.backend == backends.EAGER
        return steps.ready(self.step_size(size))

    def settled(self) -> bool:
        """Ready, not in the middle of auto's trial, and nothing else being built in the
        background (another size's export beside the dream slowed it by half on a 2-core
        machine): the speed measured now is the speed this size will dream at (what
        adaptive quality may judge it by)."""
        return self._ensure_step().decided(self.step_size()) and not any(p.building() for p in self._pools.values())

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the current size's step is built (tools and tests, never the live dream)."""
        self._ensure_step().wait(self.step_size(), timeout)
        return self.ready()

    def current_step(self) -> backends.Step:
        """The step object that runs at the current size (tools: where it runs)."""
        return self._ensure_step().current(self.step_size()) or self._torch_step

    @property
    def running(self) -> str:
        """The backend that ran the last step (auto: what it picked; while an export builds: torch)."""
        return self._step.running(self.step_size()) if self._step is not None else backends.EAGER

    def _close_tap(self) -> None:
        if self._tap is not None:
            self._finalizer()  # runs tap.close once
            self._tap = None
            self._key = None

    def close(self) -> None:
        """Remove this engine's hooks from the (possibly shared) backbone; stop building."""
        self._close_tap()
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    # -- dreaming -------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the carried dream."""
        self.residual = None
        self.velocity = None

    def dream(self, frame: np.ndarray, flow: np.ndarray | None = None, *, gain: float | np.ndarray = 1.0,
              carry: float | np.ndarray = 1.0) -> np.ndarray:
        """One frame in (uint8 HxWx3 RGB, any size), one dream frame out at `size`.
        `flow` (working-size backward optical flow from the previous frame, see
        temporal/flow.py) moves the carried residual with the scene before it is added.
        `gain` scales the step and `carry` the decay for this frame only (motion
        response), so the operator's settings stay as they are: numbers, or h x w maps
        at working size (the local motion response). A gain map scales the step's change
        outside the step itself: exported steps take one step size, and the step runs on
        the jittered picture, where a per-pixel step size would land shifted."""
        t0 = time.perf_counter()
        self._prepare_later()
        base = to_tensor(frame, self.device, self.size)
        start = self._carry(base, flow, self._map(carry))
        scalar = np.isscalar(gain)
        x = self.run_steps(start, self.steps_per_frame, self.strength * (float(gain) if scalar else 1.0))
        if not scalar or self.momentum > 0.0:
            x = self._smooth_step(start, x, None if scalar else self._map(gain))
        out, finite = to_image_checked(x)  # the one wait for the device per frame
        if not finite:
            if not self._nonfinite_logged:
                log.warning("dream produced non-finite values; resetting the carried dream")
                self._nonfinite_logged = True
            self.reset()
            out = to_image(base)
        else:
            self.residual = x - base
        self.last_ms = (time.perf_counter() - t0) * 1000
        return out

    def _map(self, m: float | np.ndarray) -> float | torch.Tensor:
        """A number as it is; an h x w map as a (1, 1, h, w) tensor that broadcasts over RGB."""
        if np.isscalar(m):
            return float(m)
        h, w = self.size[1], self.size[0]
        if m.shape != (h, w):
            raise ValueError(f"motion map is {m.shape[1]}x{m.shape[0]} but the working size is {w}x{h}")
        return gpu.upload(np.asarray(m, np.float32), self.device)[None, None]  # on CUDA: pinned, asynchronous

    def _carry(self, base: torch.Tensor, flow: np.ndarray | None, carry: float | torch.Tensor = 1.0) -> torch.Tensor:
        """New base + the carried residual: warped along `flow`, scaled by `decay * carry`
        and bounded by `soft_limit`. `carry` is the motion response: where the room is still
        (decay 1) nothing is forgotten, so the dream feeds on itself and grows over seconds
        into a full dream; where people move it fades within a few steps. The bound is what
        ends the growth, per pixel, instead of a fixed time constant for the whole picture."""
        self._carried_velocity = self.carried = None
        if self.residual is None or self.residual.shape != base.shape:
            return base
        res, vel = self.residual, self.velocity
        if vel is not None and vel.shape != base.shape:
            vel = None
        if flow is not None and self.warp is not None:
            res = self.warp(res, flow)
            vel = self.warp(vel, flow) if vel is not None else None
        self._carried_velocity = vel  # not scaled by `carry`: it is one step's worth, not the dream
        self.carried = res            # read only from here on (the overlay's crossfade starts from it)
        res = soft_limit(res, self.limit)
        # in place on soft_limit's fresh tensor, the same numbers as base + scale * res: each
        # new working-size temporary is page-faulted in anew (1.4-4.5 ms at 736x416 on one
        # thread for the two the plain expression made)
        return res.mul_(self.decay * carry).add_(base).clamp_(0.0, 1.0)

    def _smooth_step(self, start: torch.Tensor, stepped: torch.Tensor, gain: torch.Tensor | None) -> torch.Tensor:
        """The frame's change, scaled by the `gain` map, with momentum across frames: an
        average of this step and the (carried, warped) previous ones. The gradient's
        pixel-scale part changes from frame to frame while the picture it draws does not:
        averaging keeps the picture and drops the shimmer, at the same steady-state
        strength. Only the stepped region (a tile) has a change: the rest is not computed."""
        r, m = self._region, self.momentum
        delta = stepped[r] - start[r]
        if gain is not None:
            delta *= gain[r]
        vel = self._carried_velocity
        if m > 0.0 and vel is not None:
            vel = vel.mul_(m)   # the warp's fresh tensor, or the stored one it replaces: no temporary
            vel[r] += (1.0 - m) * delta
        else:
            vel = torch.zeros_like(start)
            vel[r] = delta
        if m > 0.0:
            self.velocity = vel
        return (start + vel).clamp_(0.0, 1.0)

    def run_steps(self, x: torch.Tensor, n: int, strength: float | None = None) -> torch.Tensor:
        """n jittered gradient-ascent steps on a working tensor, on the whole of it or on
        this call's tile (the rest stays as it is)."""
        step = self._ensure_step()
        strength = (self.strength if strength is None else strength) * self._gain
        size = (int(x.shape[-1]), int(x.shape[-2]))
        tw, th = tiles.tile_size(size, tuple(self.tile))
        if (tw, th) == size:
            self._region = WHOLE
            return self._steps(x, n, strength, step)
        x0, y0 = tiles.tile_at(size, (tw, th), self._visits, self._rng)
        self._visits += 1
        strength *= tiles.visit_gain(size, (tw, th))
        self._region = (..., slice(y0, y0 + th), slice(x0, x0 + tw))
        out = x.clone()
        out[self._region] = self._steps(x[self._region].contiguous(), n, strength, step)
        return out

    def _steps(self, x: torch.Tensor, n: int, strength: float, step: backends.Steps) -> torch.Tensor:
        """n jittered gradient-ascent steps (jitter stays outside the step)."""
        jitter = min(self.jitter, min(x.shape[-2:]) // 4)
        for _ in range(n):
            dy, dx = jitter_offsets(jitter, self._rng)
            stepped = roll(step(roll(x, dy, dx), strength), -dy, -dx)
            if self.decorrelate > 0:  # outside the step, like the gain map: exported graphs stay one
                stepped = (x + decorrelate_change(stepped - x, self.decorrelate)).clamp_(0.0, 1.0)
            x = stepped
        return x

    def objective_value(self, img: np.ndarray | torch.Tensor) -> float:
        """The current objective on a picture (uint8 image, or tensor in [0,1])."""
        self._ensure_step()
        x = img if isinstance(img, torch.Tensor) else to_tensor(img, self.device, self.size)
        return self._torch_step.value(x)

    @property
    def info(self) -> dict:
        """What the HUD shows."""
        running, steps = self.running, self._step   # read, never built here (the HUD asks from its own thread)
        building = steps.building() if steps else []
        return {"layer": self.layer, "objective": self.objective, "backend": running,
                "setting": self.backend, "building": ", ".join(f"{w}x{h}" for w, h in building),
                "device": self.device.type, "size": f"{self.size[0]}x{self.size[1]}", "ms": self.last_ms,
                "precision": steps.precision_of(running, self.precision) if steps else self.precision}
