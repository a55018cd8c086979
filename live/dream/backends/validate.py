"""Is an exported or compiled step the same step as PyTorch's? One strong step on a photo
and on noise, compared with the eager fp32 step, refused beyond a stated tolerance."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import torch

from ..images import natural_picture, to_tensor
from .trace import ExportError

# Validation: one strong step (about four times the live default strength) on a photo and
# on noise, differences in picture units (0..1). The normalised gradient has mean |g| = 1,
# so the mean update is VALIDATION_STEP; single pixels move up to ~25x that. Another
# runtime sums in another order, so a ReLU6 unit sitting right at 0 or 6 can switch and
# move a small patch of pixels noticeably while the mean stays ~1e-5: seen up to 5e-2
# (ONNX Runtime) and 1.01e-1 (OpenVINO, mean normalisation) on under 0.07% of the values at
# 640x480; more units, more chances of one sitting at an edge, so the largest flip grows
# with the size. A wrong graph moves the mean by ~VALIDATION_STEP, a wrong border (one
# pixel all round) moves over 0.5% of the values, a wrong pixel moves by its whole update
# (up to ~25 steps): the max only has to stay above what flips do.
VALIDATION_STEP = 0.05
TOLERANCE_MEAN = 0.002 * VALIDATION_STEP   # mean |difference| under 0.2% of the step
TOLERANCE_SHARE = 1e-3                     # at most 0.1% of the values off by > 10% of the step
TOLERANCE_MAX = 4.0 * VALIDATION_STEP      # and none by more than four mean steps
FAR = 0.1 * VALIDATION_STEP
TOLERANCE = (f"mean <= {TOLERANCE_MEAN:g}, at most {100 * TOLERANCE_SHARE:g}% of values > {FAR:g}, "
             f"max <= {TOLERANCE_MAX:g}")

Step = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class Diff:
    """How far a step is from PyTorch's on one picture."""
    max: float
    mean: float
    share: float  # of values off by more than FAR

    def ok(self) -> bool:
        return self.mean <= TOLERANCE_MEAN and self.share <= TOLERANCE_SHARE and self.max <= TOLERANCE_MAX

    def __str__(self) -> str:
        return f"max {self.max:.2e}, mean {self.mean:.2e}, {100 * self.share:.3f}% > {FAR:g}"


def sample_photo(size: tuple[int, int]) -> np.ndarray:
    """A real photograph (matplotlib's sample portrait) at `size`, uint8 RGB; a 1/f
    picture if matplotlib's sample data is not installed."""
    try:
        from matplotlib import cbook
        bgr = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except Exception:
        bgr = None
    if bgr is None:
        return natural_picture(*size)
    return cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size, interpolation=cv2.INTER_AREA)


def validation_inputs(size: tuple[int, int], device: torch.device) -> dict[str, torch.Tensor]:
    w, h = size
    noise = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    return {"photo": to_tensor(sample_photo(size), device), "noise": noise.to(device)}


def compare(run: Step, reference: Step, size: tuple[int, int], device: torch.device) -> dict[str, Diff]:
    """|difference| between two steps, per validation picture."""
    out = {}
    with torch.no_grad():
        for name, x in validation_inputs(size, device).items():
            d = (run(x, VALIDATION_STEP).float() - reference(x, VALIDATION_STEP).float()).abs()
            out[name] = Diff(float(d.max()), float(d.mean()), float((d > FAR).float().mean()))
    return out


HALF_COSINE = 0.97   # an fp16 graph's update against the fp32 step's (fp16 autocast on the CPU: 0.994)


@dataclass(frozen=True)
class Cosine:
    """How close an fp16 step's update is to the fp32 step's on one picture."""
    cosine: float

    def ok(self) -> bool:
        return self.cosine >= HALF_COSINE

    def __str__(self) -> str:
        return f"cosine {self.cosine:.4f}"


def cosines(run: Step, reference: Step, size: tuple[int, int], device: torch.device) -> dict[str, Cosine]:
    """Cosine of the two steps' updates, per validation picture."""
    out = {}
    with torch.no_grad():
        for name, x in validation_inputs(size, device).items():
            a = (run(x, VALIDATION_STEP).double() - x.double()).flatten()
            b = (reference(x, VALIDATION_STEP).double() - x.double()).flatten()
            out[name] = Cosine(float(torch.nn.functional.cosine_similarity(a, b, dim=0)))
    return out


def check_half(report: dict[str, Cosine], what: str = "the fp16 graph") -> dict[str, Cosine]:
    for name, c in report.items():
        if not c.ok():
            raise ExportError(f"{what} differs from PyTorch's fp32 step on {name}: {c} (allowed: >= {HALF_COSINE})")
    return report


def check(report: dict[str, Diff], what: str = "the exported step") -> None:
    """Refuse a step that differs from PyTorch beyond the stated tolerance."""
    for name, diff in report.items():
        if not diff.ok():
            raise ExportError(f"{what} differs from PyTorch on {name}: {diff} (allowed: {TOLERANCE})")


def describe(report: dict) -> str:
    return "; ".join(f"{k}: {d}" for k, d in report.items())
