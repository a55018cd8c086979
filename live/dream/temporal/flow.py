"""Optical flow for temporal coherence: the carried dream residual moves with the scene.

Flow convention (used everywhere here and by `DreamEngine.dream(frame, flow)`): a
*backward* flow at working size, float32 h x w x 2, where `flow[y, x] = (dx, dy)` says
that pixel (x, y) of the new frame came from (x + dx, y + dy) of the previous one. That
is what sampling (cv2.remap / grid_sample) needs, and it is defined for every new pixel.

Where the flow cannot be trusted (occlusion, a hand entering, a scene cut) a per-pixel
confidence fades the carried residual; a frame whose confidence collapses is a cut and
the residual is dropped, so an old dream never smears over a new scene."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..gpu import upload
from ..images import resize_image, times_map
from .remap import Planned, pixel_grid

log = logging.getLogger(__name__)

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
           "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


@dataclass
class FlowResult:
    """What one new frame tells us about the scene."""
    flow: np.ndarray        # h x w x 2 float32, backward (see module docstring)
    confidence: np.ndarray  # h x w float32 in [0, 1]: 1 = carry the dream here, 0 = drop it
    motion: float           # how much the scene moves, pixels per frame (high percentile of |flow|)
    change: float           # mean |new - old| of the grey frames after warping, 0..1
    cut: bool               # scene cut: the carried dream should be dropped


def grey(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 RGB of any size -> uint8 grey at `size` (resized like the engine does; grey
    first: a third of the pixels to average)."""
    g = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return resize_image(g, size)


STAY_MARGIN = 0.05   # a tie: "moved with the camera" taken while it explains a pixel nearly as well as the flow

def _magnitude(flow: np.ndarray) -> np.ndarray:
    return cv2.magnitude(np.ascontiguousarray(flow[..., 0]), np.ascontiguousarray(flow[..., 1]))


def warp_image(img: np.ndarray, flow: np.ndarray, border: int = cv2.BORDER_REPLICATE,
               interp: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Move a previous picture (h x w [x c], any dtype cv2 takes) onto the new frame.
    Use INTER_CUBIC for anything warped again and again (linear blurs it a little each time)."""
    h, w = flow.shape[:2]
    xs, ys = pixel_grid(h, w)
    return cv2.remap(img, xs + flow[..., 0], ys + flow[..., 1], interp, borderMode=border)


def zoom_flow(size: tuple[int, int], zoom: float, angle_deg: float = 0.0) -> np.ndarray:
    """The backward flow of a zoom by `zoom` (>1 = into the picture) and a small turn about
    the centre: the endless-zoom feedback of attract mode is this warp applied each pass."""
    w, h = size
    xs, ys = pixel_grid(h, w)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    a = math.radians(angle_deg)
    c, s = math.cos(a) / zoom, math.sin(a) / zoom
    dx, dy = xs - cx, ys - cy
    src_x = cx + c * dx - s * dy
    src_y = cy + s * dx + c * dy
    return np.stack([src_x - xs, src_y - ys], -1).astype(np.float32)


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A flow (px at its own size) brought to `size` (w, h): resampled and its vectors scaled."""
    h, w = flow.shape[:2]
    if (w, h) == tuple(size):
        return flow
    out = cv2.resize(flow, tuple(size), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= np.float32(size[0] / w)
    out[..., 1] *= np.float32(size[1] / h)
    return out


def camera_shift(flow: np.ndarray) -> np.ndarray:
    """The camera's own motion as one translation: the median flow (robust while less
    than half the picture moves on its own), float32 (dx, dy)."""
    return np.median(flow[::4, ::4].reshape(-1, 2), axis=0).astype(np.float32)


SHIFT_DEADBAND = 0.15   # px: the camera's own shift below this is noise
OWN_DEADBAND = 0.5      # px: a pixel's own motion (apart from the camera's) below about this is noise
STILL = 0.01            # px: what is left of a quieted flow below this moves nothing one could see: 0


# Per-pixel arithmetic on the flow runs on its two planes: numpy's loops over an h x w x 2
# array's last axis of 2 (broadcasting a shift, scaling by an h x w map) were 10-20x slower.
def _around(flow: np.ndarray, centre: np.ndarray, gain: np.ndarray, deadband: float = 0.0,
            base: np.ndarray | None = None) -> np.ndarray:
    """base + (flow - centre) * gain (base: the centre), the difference first shrunk
    towards 0 below ~`deadband` px (`m^2 / (m^2 + deadband^2)`)."""
    dx, dy = cv2.split(flow)
    dx -= centre[0]
    dy -= centre[1]
    if deadband > 0:
        m2 = dx * dx + dy * dy
        gain = gain * m2 / (m2 + deadband ** 2)
    base = centre if base is None else base
    return cv2.merge([base[0] + dx * gain, base[1] + dy * gain])


def _shrunk(flow: np.ndarray, deadband: float) -> np.ndarray:
    return _around(flow, np.zeros(2, np.float32), np.float32(1.0), deadband)


def _shrunk_shift(shift: np.ndarray, deadband: float) -> np.ndarray:
    m2 = float(np.dot(shift, shift))
    return (shift * (m2 / (m2 + deadband ** 2))).astype(np.float32)


def quieted(flow: np.ndarray, deadband: float = OWN_DEADBAND, moving: np.ndarray | None = None) -> np.ndarray:
    """The flow with its noise shrunk to 0: each pixel's own motion (apart from the
    camera's shift) below ~`deadband` px, and the shift itself below SHIFT_DEADBAND. A
    still room's flow is a few tenths of a pixel of noise; resampling the carried dream
    along it every frame blurred and shimmered it (docs/depth.md). A pan is one coherent
    shift and is kept whole; the motion response reads the flow as measured.
    `moving` (h x w, 0..1: the motion response's level) keeps a pixel's own motion only
    as far as something moves there: DIS's flow on a still room's texture wanders by
    more than any deadband here and there (at 640x480 flicker 1.42x -> 1.30x)."""
    shift = camera_shift(flow)
    return _still(_around(flow, shift, np.float32(1.0) if moving is None else moving, deadband,
                          base=_shrunk_shift(shift, SHIFT_DEADBAND)))


def _still(flow: np.ndarray) -> np.ndarray:
    """`flow` (in place) with every vector shorter than STILL px set to 0 exactly: the
    warps then leave those pixels as they are instead of resampling them (remap.py)."""
    dx, dy = flow[..., 0], flow[..., 1]
    flow[dx * dx + dy * dy < STILL * STILL] = 0.0
    return flow


def shift_image(img: np.ndarray, d: np.ndarray) -> np.ndarray:
    """`img` sampled at x + d (the backward-flow convention), border replicated."""
    if not d.any():
        return img
    m = np.float32([[1, 0, d[0]], [0, 1, d[1]]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


class ResidualWarp:
    """Backward warp of a (1, C, h, w) tensor by a numpy flow with torch's grid_sample.
    The sampling grid for a size is cached; outside the picture the residual is zero
    (new content entering at an edge has no dream yet). Bicubic by default: the residual
    is warped every frame, and bilinear resampling would blur the dream away within a
    few frames of panning (measured: fine texture lost half its contrast in 10 warps)."""

    def __init__(self, mode: str = "bicubic"):
        self.mode = mode
        self._cv_mode = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}[mode]
        self._base: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._uploaded: tuple | None = None  # (flow, confidence, device, their tensors)
        self.plan = Planned()                # the CPU's warp: residual and momentum, one flow, one plan

    def __call__(self, x: torch.Tensor, flow: np.ndarray, confidence: np.ndarray | None = None) -> torch.Tensor:
        _, _, h, w = x.shape
        if flow.shape[:2] != (h, w):
            raise ValueError(f"flow is {flow.shape[1]}x{flow.shape[0]} but the residual is {w}x{h}")
        if x.device.type == "cpu" and x.shape[1] <= 4:
            return self._remap(x, flow, confidence)
        return self._grid(x, flow, confidence)

    def _grid(self, x: torch.Tensor, flow: np.ndarray, confidence: np.ndarray | None) -> torch.Tensor:
        """torch's grid_sample: on the device the dream lives on."""
        _, _, h, w = x.shape
        key = (h, w, x.device)
        if key not in self._base:
            xs, ys = pixel_grid(h, w)
            scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=x.device)
            self._base[key] = (upload(np.stack([xs, ys], -1), x.device), scale)
        base, scale = self._base[key]
        flow_t, conf_t = self._upload(flow, confidence, x.device)
        grid = ((base + flow_t) * scale - 1.0).unsqueeze(0)
        out = F.grid_sample(x.float(), grid, mode=self.mode, padding_mode="zeros", align_corners=True)
        if conf_t is not None:
            out = out * conf_t
        return out.to(x.dtype).contiguous(memory_format=torch.channels_last)

    def _remap(self, x: torch.Tensor, flow: np.ndarray, confidence: np.ndarray | None) -> torch.Tensor:
        """The same warp on the CPU with OpenCV's remap (the same bicubic kernel, a = -0.75):
        4.6x faster than grid_sample at 368x208, on its own threads while the exported
        step has PyTorch down to one; only where the flow moves anything (remap.py)."""
        img = np.ascontiguousarray(x[0].float().permute(1, 2, 0).numpy())
        out = self.plan(flow)(img, self._cv_mode, cv2.BORDER_CONSTANT, fresh=confidence is None)
        if confidence is not None:
            out = times_map(out, confidence)
        if out.ndim == 2:
            out = out[..., None]
        return torch.from_numpy(out).permute(2, 0, 1)[None].to(x.dtype)   # HWC memory: channels_last

    def _upload(self, flow: np.ndarray, confidence: np.ndarray | None,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Flow and confidence on the device, in one upload per frame: the engine warps the
        residual and the momentum along the same flow."""
        last = self._uploaded
        if last is not None and last[0] is flow and last[1] is confidence and last[2] == device:
            return last[3], last[4]
        if confidence is None:
            both, conf_t = upload(np.asarray(flow, np.float32), device), None
            flow_t = both
        else:
            both = upload(np.concatenate([flow, confidence[..., None]], -1).astype(np.float32, copy=False), device)
            flow_t, conf_t = both[..., :2], both[..., 2]
        self._uploaded = (flow, confidence, device, flow_t, conf_t)  # holding the arrays keeps their ids unique
        return flow_t, conf_t


class FlowTracker:
    """DIS optical flow between consecutive working-size frames, with a confidence map
    (the photometric error of the flow, where the forward and backward flows disagree
    the camera's shift) and scene-cut detection.

    Use `update(frame)` once per camera frame, then give the engine `flow=result.flow` and
    `warp=tracker.warp`: the warp fades the residual by the confidence of that flow."""

    def __init__(self, size: tuple[int, int], preset: str = "fast", fb_check: bool = True,
                 photo_sigma: float = 16.0, photo_floor: float = 6.0, fb_sigma: float = 1.0,
                 cut_confidence: float = 0.3, deadband: float = 0.15, mode: str = "bicubic", stay: bool = True):
        if preset not in PRESETS:
            raise ValueError(f"flow preset must be one of {', '.join(PRESETS)}")
        self.size = (int(size[0]), int(size[1]))
        self.fb_check = fb_check
        self.photo_sigma = photo_sigma   # grey levels of warped difference at which trust is 1/e
        self.photo_floor = photo_floor   # differences below this are sensor noise: full trust
        self.deadband = deadband         # px: smaller flows are mostly noise, shrunk towards 0
        self.fb_sigma = fb_sigma         # pixels of forward-backward mismatch at which trust is 1/e
        self.cut_confidence = cut_confidence
        self.stay = stay                 # "moved with the camera" as the second explanation (see _stay)
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])
        self._warp = ResidualWarp(mode)
        self._prev: np.ndarray | None = None
        self.before: np.ndarray | None = None   # the grey frame before the newest (the last flow's source)
        self.last: FlowResult | None = None

    @property
    def grey(self) -> np.ndarray | None:
        """The newest frame's grey picture at working size."""
        return self._prev

    def reset(self) -> None:
        self._prev = self.before = None
        self.last = None

    def update(self, frame: np.ndarray) -> FlowResult | None:
        """Flow from the previous frame to this one; None for the first frame (or after a
        size change), when there is nothing to carry from."""
        g = grey(frame, self.size)
        prev, self._prev = self._prev, g
        self.before = prev
        if prev is None or prev.shape != g.shape:
            self.last = None
            return None
        self.last = self.measure(prev, g)
        return self.last

    def measure(self, prev: np.ndarray, cur: np.ndarray) -> FlowResult:
        """Backward flow cur -> prev and how far to trust it, for two grey frames."""
        flow = self._dis.calc(cur, prev, None)
        sigma = self.photo_sigma
        if self.fb_check:
            flow, agree = self._consistent(prev, cur, flow)
            sigma = self.photo_floor + (self.photo_sigma - self.photo_floor) * agree
        warped = warp_image(prev, flow).astype(np.float32)
        err = cv2.blur(np.abs(cur.astype(np.float32) - warped), (5, 5))
        conf = np.exp(-np.square(np.maximum(err - self.photo_floor, 0.0) / sigma))
        h, w = cur.shape
        xs, ys = pixel_grid(h, w)
        sx, sy = xs + flow[..., 0], ys + flow[..., 1]
        inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
        conf = np.where(inside, conf, 0.0).astype(np.float32)
        if self.stay:
            flow, conf = self._stay(prev, cur, flow, conf)
        mag = _magnitude(flow)[::2, ::2].ravel()
        k = int(0.9 * (mag.size - 1))
        # 90th percentile: one waving hand counts. A sort, not np.partition: with most pixels
        # on the camera's exact shift the selection degrades (2 ms at 320x240, the sort 0.2-0.4)
        motion = float(np.sort(mag)[k])
        change = float(err.mean() / 255.0)
        cut = float(conf.mean()) < self.cut_confidence
        if cut:
            conf = np.zeros_like(conf)
            log.debug("scene cut: mean confidence below %.2f", self.cut_confidence)
        if self.deadband > 0:
            # a still scene's flow is sensor noise of a few hundredths of a pixel; resampling
            # the dream along it every frame would slowly blur it. Shrink tiny flows to 0.
            flow = _shrunk(flow, self.deadband)
        return FlowResult(flow.astype(np.float32), conf, motion, change, cut)

    def _consistent(self, prev: np.ndarray, cur: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The forward-backward check decides which motion a pixel takes, not how far the
        dream is trusted: where the two flows disagree, the pixel's own motion (apart from
        the camera's) is noise or an occlusion and it takes the camera's shift; whether that
        explains the picture is then the photometric check's to say, as strictly as `_stay`
        (within sensor noise: an occlusion fails it). Fading by the mismatch was a hidden
        decay of 2-4% a frame on a still room's texture, a third of the dream's depth at
        640x480 (docs/depth.md). Returns the flow and how far the two agreed (0..1)."""
        fwd = self._dis.calc(prev, cur, None)
        back = warp_image(fwd, flow)  # forward flow at the source of each new pixel
        mismatch = _magnitude(flow + back)
        tol = self.fb_sigma + 0.05 * _magnitude(flow)
        agree = np.exp(-np.square(mismatch / tol))
        return _around(flow, camera_shift(flow), agree), agree

    def _stay(self, prev: np.ndarray, cur: np.ndarray, flow: np.ndarray,
              conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The other explanation of a pixel: it moved with the camera (for a still camera:
        it did not move). Where that explains the picture about as well as the flow or
        better (a flat wall: any flow explains it), the pixel takes the camera's motion and
        the better of the two trusts (the lesser would be a fade again). DIS's flow on weak
        texture is noisy, its forward and backward flows disagree by a pixel or more, the
        more so the longer between two dream steps: the forward-backward check alone faded
        a still wall's dream by about 10% per step at 8 steps/s (pedestrians.mp4)."""
        shift = camera_shift(flow)
        err = cv2.blur(cv2.absdiff(cur, shift_image(prev, shift)).astype(np.float32), (5, 5))
        # strict: "the same picture" must hold within sensor noise (the floor), not 16 levels
        still = np.exp(-np.square(np.maximum(err - self.photo_floor, 0.0) / self.photo_floor))
        keep = (still + STAY_MARGIN < conf).astype(np.float32)   # 0 where the camera's motion is taken
        return _around(flow, shift, keep), np.maximum(still, conf)   # where kept, conf is the larger

    def steer(self, flow: np.ndarray, confidence: np.ndarray | None = None) -> None:
        """The flow the dream moves along instead of the measured one (quieted, or blended
        with attract mode's zoom; with `confidence`, both brought to a larger working size):
        `warp` fades by this frame's confidence along it."""
        if self.last is not None:
            self.last = replace(self.last, flow=flow, confidence=self.last.confidence if confidence is None
                                else confidence)

    def move(self, img: np.ndarray, flow: np.ndarray, interp: int = cv2.INTER_CUBIC) -> np.ndarray:
        """A picture (the denoiser's running average) moved along `flow`, border replicated,
        on the plan the dream's own warps of this flow use; may be `img` itself where
        nothing moves."""
        return self._warp.plan(flow)(img, interp, cv2.BORDER_REPLICATE, fresh=False)

    def warp(self, residual: torch.Tensor, flow: np.ndarray) -> torch.Tensor:
        """The engine's `warp=` hook: move the residual along `flow` and fade it where the
        flow failed (confidence of the result this flow came from; none if it is foreign)."""
        conf = self.last.confidence if self.last is not None and flow is self.last.flow else None
        return self._warp(residual, flow, conf)
