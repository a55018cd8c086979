"""The natural-image prior: jitter, gradient normalisation, smoothing and colour
decorrelation. Without them gradient ascent makes adversarial noise instead of pictures.

In the manner of lucent's optvis transforms, each gradient transform is a small function,
and `smoothed`, `decorrelated`, `normalized` make one-argument transforms of them that
`compose` chains: `compose(smoothed(0.7), decorrelated(0.5), normalized("mean"))(g)`."""
from __future__ import annotations

import random
from functools import lru_cache, reduce
from typing import Callable

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

GRAD_NORMS = ("mean", "laplacian", "mixed", "auto")
# "auto": mixed from this working width up (near a screen's resolution: its fine band is the
# screen's, fine 0.30 at 640x480), laplacian below (at 320x240 mixed is weaker and no finer).
# The engine resolves it by its working width (resolve_norm), so a tile of a 640-wide picture
# dreams mixed and the steps it builds and exports hold the plain normalisation.
AUTO_MIXED_WIDTH = 480
# mixed puts half its step into the fine band, which changes with the jitter and does not
# pile up: at the same strength its dream is shallower (pedestrians.mp4 at 640x480, late
# 19.7 against 21.6). "auto" gives it the step that makes up for that (late 21.2, fine 0.31,
# flicker 1.24x: docs/depth.md).
AUTO_MIXED_GAIN = 0.014 / 0.012


def jitter_offsets(jitter: int, rng: random.Random) -> tuple[int, int]:
    if jitter <= 0:
        return 0, 0
    return rng.randint(-jitter, jitter), rng.randint(-jitter, jitter)


def roll(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3)) if (dy or dx) else x


def normalize_mean(g: torch.Tensor) -> torch.Tensor:
    """Scale so the mean |g| is 1: the step size is then in picture units."""
    return g / (g.abs().mean() + 1e-8)


_BINOMIAL = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)
_BILINEAR_2X = (0.25, 0.75, 0.75, 0.25)   # a bilinear (half-pixel) doubling's taps


@lru_cache(maxsize=16)
def _depthwise(taps: tuple[float, ...], channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The separable kernel taps x taps, one per channel, made on the device once (not a
    transfer per call)."""
    t = torch.tensor(taps, dtype=torch.float64)
    k = t[:, None] * t[None, :]
    return k.expand(channels, 1, *k.shape).contiguous().to(device, dtype)


def _blur_down(x: torch.Tensor) -> torch.Tensor:
    """Binomial blur and halve (one level of the Laplacian pyramid), as one strided
    convolution: a runtime computes only the kept quarter of the blurred pixels."""
    k = _depthwise(_BINOMIAL, x.shape[1], x.device, x.dtype)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k, stride=2, groups=x.shape[1])


def _upsample(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Bilinear resize to `size` (half-pixel, edges replicated). An exact doubling is a
    transposed convolution with the bilinear taps: the same numbers as interpolate, and
    the blocked kernels OpenVINO runs far faster than its Interpolate (2.6 -> 1.1 ms for
    the 320x240 pyramid on AVX2)."""
    h, w = x.shape[-2:]
    if tuple(size) != (2 * h, 2 * w):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    k = _depthwise(_BILINEAR_2X, x.shape[1], x.device, x.dtype)
    return F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, stride=2, padding=3,
                              groups=x.shape[1])


def normalize_laplacian(g: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Normalise each band of a Laplacian pyramid of g separately, so low frequencies are
    not drowned by high ones (Mordvintsev's lap_normalize): broader, smoother strokes."""
    bands = []
    cur = g
    for _ in range(levels - 1):
        if min(cur.shape[-2:]) < 8:
            break
        low = _blur_down(cur)
        up = _upsample(low, cur.shape[-2:])
        bands.append(cur - up)
        cur = low
    bands.append(cur)
    out = bands[-1] / (bands[-1].pow(2).mean().sqrt() + 1e-8)
    for band in reversed(bands[:-1]):
        out = _upsample(out, band.shape[-2:])
        out = out + band / (band.pow(2).mean().sqrt() + 1e-8)
    return normalize_mean(out)


def normalize_mixed(g: torch.Tensor) -> torch.Tensor:
    """Half Laplacian, half plain: the broad strokes that make the dream strong and
    steady, and the gradient's own fine band, which the Laplacian normalisation shrinks to
    one band's share (at a working size near the screen's, the strokes as fine as it)."""
    return normalize_mean(normalize_laplacian(g) + normalize_mean(g))


def resolve_norm(how: str, width: int) -> tuple[str, float]:
    """The normalisation "auto" stands for at a picture `width` wide, and its step gain.
    The dream engine resolves it by its working width (a tile of a wider picture dreams
    that picture's strokes), so the step it builds and exports is the plain one."""
    if how != "auto":
        return how, 1.0
    return ("mixed", AUTO_MIXED_GAIN) if width >= AUTO_MIXED_WIDTH else ("laplacian", 1.0)


def normalize_grad(g: torch.Tensor, how: str = "mean") -> torch.Tensor:
    how, gain = resolve_norm(how, g.shape[-1])   # "auto" here: by the gradient's own width
    norm = {"laplacian": normalize_laplacian, "mixed": normalize_mixed}.get(how, normalize_mean)(g)
    return norm * gain if gain != 1.0 else norm


def smooth_grad(g: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of the gradient (sigma in pixels): removes the pixel-scale colour
    fringes the strided first convolutions put into it, so flat areas stay calm."""
    if sigma <= 0:
        return g
    size = 2 * max(1, int(round(2.5 * sigma))) + 1
    return gaussian_blur2d(g, (size, size), (sigma, sigma), border_type="replicate")


# Square root of ImageNet's colour covariance (lucid's color_correlation_svd_sqrt).
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


@lru_cache(maxsize=16)
def _colour_matrix(strength: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The preconditioner for one strength, computed once and kept on the device:
    (C C^T)^(strength/2), scaled so its largest eigenvalue is 1."""
    evals, evecs = torch.linalg.eigh(_COLOR_SQRT @ _COLOR_SQRT.t())
    m = evecs @ torch.diag((evals.clamp_min(1e-8) / evals.max()) ** (0.5 * strength)) @ evecs.t()
    return m.to(device, dtype)


def decorrelate_colors(g: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Precondition the gradient with natural images' colour correlation (the update of
    lucid's decorrelated colour parameterisation, applied to pixels): steps follow
    luminance and natural hues instead of saturated rainbow noise. 0 = off."""
    if strength <= 0:
        return g
    m = _colour_matrix(float(strength), g.device, g.dtype)
    return torch.einsum("ij,njhw->nihw", m, g)


def decorrelate_change(delta: torch.Tensor, strength: float) -> torch.Tensor:
    """A step's change with its colours decorrelated, rescaled to the same mean size. The
    live engine applies it to what an (exported) step changed rather than inside the step:
    a per-pixel colour matrix commutes with the pyramid's blurs, so it is the same
    preconditioning up to the bands' weights, and the exported graphs stay as they are."""
    if strength <= 0:
        return delta
    out = decorrelate_colors(delta, strength)
    return out * (delta.abs().mean() / (out.abs().mean() + 1e-12))


GradTransform = Callable[[torch.Tensor], torch.Tensor]


def smoothed(sigma: float) -> GradTransform:
    return lambda g: smooth_grad(g, sigma)


def decorrelated(strength: float = 1.0) -> GradTransform:
    return lambda g: decorrelate_colors(g, strength)


def normalized(how: str = "mean") -> GradTransform:
    return lambda g: normalize_grad(g, how)


def compose(*transforms: GradTransform) -> GradTransform:
    """Apply the transforms left to right."""
    return lambda g: reduce(lambda acc, t: t(acc), transforms, g)
