"""Full-quality offline dreaming: the Inceptionism techniques around the engine's one
dream step (LayerTap + DreamStep + the prior), not a second implementation of it.

Octaves carry the dream's *detail* (dream minus picture) from small to large scales, so
big structures form first and the photo underneath stays sharp; each step is jittered,
optionally randomly rescaled inside the graph (the prior class visualisation needs), and
its gradient is computed tile by tile so 4K pictures dream at the memory of one tile."""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from live import objectives as obj
from live.engine import DreamStep, LayerTap, to_image
from live.prior import GRAD_NORMS, decorrelate_colors, jitter_offsets, normalize_mean, roll, smooth_grad
from models import Backbone
from .tiling import Transform, tiled_gradient

MIN_OCTAVE_SIDE = 64  # smaller octaves only add blur: deep layers see a few cells there


@dataclass(frozen=True)
class DreamSettings:
    """How one picture is dreamed. Defaults: a classic DeepDream still."""

    octaves: int = 4
    octave_scale: float = 1.4
    iterations: int = 10
    step_size: float = 0.012     # mean change per step, picture units (0..1)
    jitter: int = 32             # random roll in pixels before each step
    scale_jitter: float = 0.0    # random rescale by 1 +- this inside the graph
    grad_norm: str = "mean"      # mean | laplacian
    smooth: float = 0.7          # Gaussian blur of the gradient, sigma in pixels
    decorrelate: float = 0.5     # colour-correlation preconditioning of the gradient (0..2)
    tile: int = 512              # gradient tile side: bounds memory for any picture size
    keep_colors: bool = False    # restore the original colour statistics afterwards
    seed: int = 0

    def __post_init__(self) -> None:
        if self.octaves < 1 or self.iterations < 0:
            raise ValueError("octaves must be >= 1 and iterations >= 0")
        if self.octave_scale <= 1.0:
            raise ValueError("octave scale must be > 1")
        if self.grad_norm not in GRAD_NORMS:
            raise ValueError(f"grad norm must be one of {', '.join(GRAD_NORMS)}")
        if self.tile < 64:
            raise ValueError("tile must be at least 64 pixels")
        if not 0.0 <= self.scale_jitter < 0.5:
            raise ValueError("scale jitter must be in [0, 0.5)")
        if self.smooth < 0 or not 0.0 <= self.decorrelate <= 2.0:
            raise ValueError("smooth must be >= 0 and decorrelate in [0, 2]")
        if self.step_size <= 0 or self.jitter < 0:
            raise ValueError("step size must be > 0 and jitter >= 0")

    def with_(self, **changes) -> "DreamSettings":
        return replace(self, **changes)


class Interrupted(KeyboardInterrupt):
    """Ctrl+C during a render, carrying the picture as far as it got (full size)."""

    def __init__(self, image: np.ndarray):
        super().__init__()
        self.image = image


def to_tensor(img: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 HxWx3 RGB -> (1,3,H,W) float in [0, 1], size kept."""
    t = torch.from_numpy(np.ascontiguousarray(img)).to(device)
    return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1,3,h,w) -> (1,3,H,W); antialiased when shrinking so octaves do not alias."""
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def octave_sizes(h: int, w: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """Sizes from smallest to the full size; octaves too small to help are dropped."""
    sizes = [(h, w)]
    for i in range(1, octaves):
        s = scale ** i
        size = (round(h / s), round(w / s))
        if min(size) < MIN_OCTAVE_SIDE:
            break
        sizes.append(size)
    return sizes[::-1]


def total_steps(h: int, w: int, s: DreamSettings) -> int:
    """How many gradient steps a render of this size takes (for progress bars)."""
    return len(octave_sizes(h, w, s.octaves, s.octave_scale)) * s.iterations


def random_rescale(rng: random.Random, amount: float) -> Transform | None:
    """A transform the gradient flows back through: the picture must keep working for
    the network when seen a little larger or smaller (robust, not adversarial, features)."""
    if amount <= 0:
        return None
    s = rng.uniform(1.0 - amount, 1.0 + amount)
    return lambda x: F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False,
                                   recompute_scale_factor=False)


def keep_colors(dream: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Match the dream's per-channel mean and spread in Lab to the original's: the
    dream's shapes in the original's palette and tonal range."""
    src = cv2.resize(original, dream.shape[1::-1], interpolation=cv2.INTER_AREA) \
        if original.shape[:2] != dream.shape[:2] else original
    d = cv2.cvtColor(dream.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    o = cv2.cvtColor(src.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    dm, ds = d.reshape(-1, 3).mean(0), d.reshape(-1, 3).std(0) + 1e-6
    om, os_ = o.reshape(-1, 3).mean(0), o.reshape(-1, 3).std(0)
    out = cv2.cvtColor(((d - dm) / ds * os_ + om).astype(np.float32), cv2.COLOR_Lab2RGB)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def zoom(img: np.ndarray, factor: float, angle: float = 0.0) -> np.ndarray:
    """One step of the endless zoom: scale about the centre (and rotate), same size."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0 - 0.5, h / 2.0 - 0.5), angle, factor)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A grey picture with faint coloured noise: the network's own picture grows on it."""
    rng = np.random.default_rng(seed)
    img = 0.5 + 0.08 * rng.standard_normal((height, width, 3))
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class Renderer:
    """One objective's hooks and step on a backbone, dreaming pictures of any size."""

    def __init__(self, backbone: Backbone, objective: obj.Objective, settings: DreamSettings):
        self.backbone = backbone
        self.settings = settings
        self.objective = objective
        self.tap = LayerTap(backbone, objective.layers)
        autocast = torch.float16 if backbone.device.type == "cuda" else None
        self.step = DreamStep(self.tap, objective, settings.grad_norm, autocast)
        self.rng = random.Random(settings.seed)

    def dream(self, img: np.ndarray, settings: DreamSettings | None = None,
              on_step: Callable[[], None] | None = None) -> np.ndarray:
        """uint8 HxWx3 RGB -> its dream, same size. Ctrl+C raises Interrupted with the
        picture so far."""
        s = settings or self.settings
        self.step.grad_norm = s.grad_norm
        h, w = img.shape[:2]
        full = to_tensor(img, self.backbone.device)
        sizes = octave_sizes(h, w, s.octaves, s.octave_scale)
        detail = torch.zeros(1, 3, *sizes[0], device=full.device)  # of the last finished step
        try:
            for size in sizes:
                base = resize(full, size)
                x = (base + resize(detail, size)).clamp(0.0, 1.0)
                for _ in range(s.iterations):
                    x = self._step(x, s)
                    detail = x - base
                    if on_step is not None:
                        on_step()
        except KeyboardInterrupt:
            out = to_image((full + resize(detail, (h, w))).clamp(0.0, 1.0))
            raise Interrupted(self._finish(out, img, s)) from None
        return self._finish(to_image((full + resize(detail, (h, w))).clamp(0.0, 1.0)), img, s)

    def _step(self, x: torch.Tensor, s: DreamSettings) -> torch.Tensor:
        """One jittered, tiled gradient-ascent step: DreamStep.forward's update with the
        gradient summed over tiles (and through a random rescale)."""
        jitter = min(s.jitter, min(x.shape[-2:]) // 4)
        dy, dx = jitter_offsets(jitter, self.rng)
        xs = roll(x, dy, dx)
        g = tiled_gradient(self.step, xs, s.tile, self.rng, random_rescale(self.rng, s.scale_jitter))
        if s.smooth > 0 or s.decorrelate > 0:
            g = normalize_mean(decorrelate_colors(smooth_grad(g, s.smooth), s.decorrelate))
        x = roll((xs + s.step_size * g).clamp(0.0, 1.0), -dy, -dx)
        if not bool(torch.isfinite(x).all()):
            raise FloatingPointError("the dream produced non-finite values; try a smaller --step-size")
        return x

    def _finish(self, out: np.ndarray, original: np.ndarray, s: DreamSettings) -> np.ndarray:
        return keep_colors(out, original) if s.keep_colors else out

    def value(self, img: np.ndarray) -> float:
        """The objective on a picture (for tests: did the dream raise it?)."""
        return self.step.value(to_tensor(img, self.backbone.device))

    def close(self) -> None:
        self.tap.close()

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
