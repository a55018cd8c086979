"""Full-quality offline dreaming: the Inceptionism techniques around the engine's one
dream step (LayerTap + DreamStep + the prior), not a second implementation of it.

Octaves carry the dream's *detail* (dream minus picture) from small to large scales, so
big structures form first and the photo underneath stays sharp; each step is jittered,
optionally randomly rescaled inside the graph (the prior class visualisation needs), and
its gradient is computed tile by tile so 4K pictures dream at the memory of one tile.

Tiles: as in the TensorFlow DeepDream tutorial the tile borders move to a random place
on every step so they never show, but here the tile *grid* is shifted instead of the
picture being rolled: a roll wraps the picture round and puts a hard seam inside it, and
the network's response to that seam swamped the real gradient. Each tile is computed
with a margin of context around it whose gradient is thrown away, so the network sees
across tile borders; the sum is normalised once over the whole picture."""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models import Backbone
from . import objectives as obj
from .images import resize, to_image, to_tensor
from .prior import GRAD_NORMS, compose, decorrelated, jitter_offsets, normalize_grad, normalized, roll, smoothed
from .step import DreamStep, LayerTap

Transform = Callable[[torch.Tensor], torch.Tensor]

MIN_OCTAVE_SIDE = 64  # smaller octaves only add blur: deep layers see a few cells there


@dataclass(frozen=True)
class OfflineSettings:
    """How one picture is dreamed offline. Defaults: a classic DeepDream still."""

    octaves: int = 4
    octave_scale: float = 1.4
    iterations: int = 10
    strength: float = 0.012      # mean change per step, picture units (0..1)
    jitter: int = 32             # random roll in pixels before each step
    scale_jitter: float = 0.0    # random rescale by 1 +- this inside the graph
    grad_norm: str = "mean"      # mean | laplacian | mixed | auto (by width: laplacian below 480, mixed from it)
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
        if not self.strength > 0 or self.jitter < 0:
            raise ValueError("strength must be > 0 and jitter >= 0")

    def with_(self, **changes) -> "OfflineSettings":
        return replace(self, **changes)


class Interrupted(KeyboardInterrupt):
    """Ctrl+C during a render, carrying the picture as far as it got (full size)."""

    def __init__(self, image: np.ndarray):
        super().__init__()
        self.image = image






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


def total_steps(h: int, w: int, s: OfflineSettings) -> int:
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






class Renderer:
    """One objective's hooks and step on a backbone, dreaming pictures of any size."""

    def __init__(self, backbone: Backbone, objective: obj.Objective, settings: OfflineSettings):
        self.backbone = backbone
        self.settings = settings
        self.objective = objective
        self.tap = LayerTap(backbone, objective.layers)
        autocast = torch.float16 if backbone.device.type == "cuda" else None
        self.step = DreamStep(self.tap, objective, settings.grad_norm, autocast)
        self.rng = random.Random(settings.seed)

    def dream(self, img: np.ndarray, settings: OfflineSettings | None = None,
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

    def _step(self, x: torch.Tensor, s: OfflineSettings) -> torch.Tensor:
        """One jittered, tiled gradient-ascent step: DreamStep.forward's update with the
        gradient summed over tiles (and through a random rescale)."""
        jitter = min(s.jitter, min(x.shape[-2:]) // 4)
        dy, dx = jitter_offsets(jitter, self.rng)
        xs = roll(x, dy, dx)
        g = tiled_gradient(self.step, xs, s.tile, self.rng, random_rescale(self.rng, s.scale_jitter))
        if s.smooth > 0 or s.decorrelate > 0:
            g = compose(smoothed(s.smooth), decorrelated(s.decorrelate), normalized("mean"))(g)
        x = roll((xs + s.strength * g).clamp(0.0, 1.0), -dy, -dx)
        if not bool(torch.isfinite(x).all()):
            raise FloatingPointError("the dream produced non-finite values; try a smaller --strength")
        return x

    def _finish(self, out: np.ndarray, original: np.ndarray, s: OfflineSettings) -> np.ndarray:
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


# Total stride of the networks' deepest layers. Strided convolutions sample the picture on
# a grid tied to one of its ends: TF "same" padding (EfficientNet-Lite) ties it to the
# last pixel, PyTorch padding to the first. A crop must keep both ends on the picture's
# grid, or it sees a shifted sampling phase and its gradient is a different one.
STRIDE = 32


def tile_spans(length: int, tile: int, offset: int = 0) -> list[tuple[int, int]]:
    """(start, end) pieces covering [0, length), cut every `tile` pixels starting at
    `offset`; a piece shorter than a quarter tile joins its neighbour (no slivers for the
    network to choke on), so pieces are at most 1.25 tiles long."""
    if length <= tile:
        return [(0, length)]
    cuts = [c for c in range(offset % tile, length, tile) if 0 < c < length]
    bounds = [0] + cuts + [length]
    keep = [0]
    for b in bounds[1:-1]:
        if b - keep[-1] >= tile // 4 and length - b >= tile // 4:
            keep.append(b)
    keep.append(length)
    return list(zip(keep[:-1], keep[1:]))


def tiled_gradient(step: DreamStep, x: torch.Tensor, tile: int, rng: random.Random,
                   transform: Transform | None = None, margin: int | None = None) -> torch.Tensor:
    """The normalised ascent direction for x (1,3,H,W), computed tile by tile.

    A picture that fits in one tile is one call (the caller's jitter already moves it).
    Each tile is computed with `margin` pixels of context (default tile/8, grown to
    keep the sampling grid, see STRIDE) and weighted
    by its share of the picture, so the sum approximates the gradient of the objective
    averaged over the whole picture, whatever the tiling."""
    h, w = x.shape[-2:]
    if h <= tile and w <= tile:
        return normalize_grad(step.raw_gradient(x, transform), step.grad_norm)
    m = tile // 8 if margin is None else margin
    g = torch.zeros_like(x, dtype=torch.float32)
    ys = tile_spans(h, tile, rng.randrange(tile))
    xs = tile_spans(w, tile, rng.randrange(tile))
    for y0, y1 in ys:
        for x0, x1 in xs:
            cy0, cy1 = _aligned(y0 - m, y1 + m, h)
            cx0, cx1 = _aligned(x0 - m, x1 + m, w)
            share = (cy1 - cy0) * (cx1 - cx0) / (h * w)
            gt = step.raw_gradient(x[:, :, cy0:cy1, cx0:cx1], transform)
            g[:, :, y0:y1, x0:x1] = gt[:, :, y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0] * share
    return normalize_grad(g, step.grad_norm)


def _aligned(start: int, end: int, length: int) -> tuple[int, int]:
    """Grow [start, end) so start is a multiple of STRIDE and end is a multiple of STRIDE
    before the picture's end (both clipped to the picture)."""
    start = max(0, start - start % STRIDE)
    end = min(length, end)
    return start, end + (length - end) % STRIDE
