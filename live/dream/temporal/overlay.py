"""The picture people see: the newest full-resolution camera frame with the newest dream
on it. One class for the window, the headless recorder and the frame-exact clip
renderer, so all three show the same thing.

Blending whole dream frames over the live picture (`live + b * (up(dream) - live)`)
also blends in `up(base) - live`: the picture as it was when the dream step began, at
the working size. That term is the walkers' dark blurred ghosts and the blur of the live
picture. The overlay keeps only the dream's *detail* (dream minus the picture it was
dreamed on, signed), moves it along the optical flow from that picture to the newest
camera frame, fades it where the flow fails (uncovered background, someone leaving),
upscales it (cubic: crisp strokes) and adds it to the full-resolution camera frame:

    screen = current + blend * confidence * up(warp(dream.blend * (dream.image - dream.base)))

Attract mode dreams on the fed-back zoomed picture, where the detail against the camera
means nothing: there it falls back to the whole-frame blend by the attract weight (nobody
moves then, so there is nothing to ghost)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..images import resize_image, times_map
from .flow import FlowTracker, grey, quieted, resize_flow
from .remap import FlowRemap


@dataclass(frozen=True)
class DreamFrame:
    """What one dream step hands to whoever composes the picture."""
    image: np.ndarray                 # uint8 h x w x 3 RGB, the dream at the working size
    base: np.ndarray                  # uint8 h x w x 3 RGB, the (denoised) picture it was dreamed on
    blend: np.ndarray | float = 1.0   # the motion response's blend multiplier (h x w map or scalar)
    grey: np.ndarray | None = None    # uint8: the camera frame it was dreamed from, grey (the tracker's: working or step size)
    attract: float = 0.0              # attract mode's weight: 1 = the dream lives in the fed-back zoom
    carried: np.ndarray | None = None  # float32 h x w x 3 (0..1 units): the dream before, moved onto this frame

    def detail(self) -> np.ndarray:
        """float32 h x w x 3, grey levels: what the dream adds, weighted by the blend map."""
        return self._weighted(self.image.astype(np.float32) - self.base.astype(np.float32))

    def previous_detail(self) -> np.ndarray | None:
        """The dream before this one as detail on this frame, weighted like this one's: the
        dream thread has already moved its carried residual here (along its flow, faded by
        its confidence), so a crossfade needs no flow of its own. None where it has not."""
        if self.carried is None or self.carried.shape != self.image.shape:
            return None
        return self._weighted(self.carried * np.float32(255.0))

    def _weighted(self, d: np.ndarray) -> np.ndarray:
        m = self.blend
        return times_map(d, m) if isinstance(m, np.ndarray) else d * np.float32(m)


class Overlay:
    """current (camera frame, any size) + DreamFrame -> the composed picture.

    Between dreams it keeps the newest dream's weighted detail and re-measures the flow
    from the dream's camera frame to each new camera frame (one DIS at working size,
    with the forward-backward check). `u` < 1 crossfades from the previous dream, whose
    detail is moved onto the new dream's frame once, when it arrives."""

    def __init__(self, preset: str = "ultrafast", fb_check: bool = True, flow_scale: float = 0.5):
        self.preset, self.fb_check = preset, fb_check
        self.flow_scale = flow_scale   # the flow to each camera frame is measured at this share of the working size
        self._tracker: FlowTracker | None = None
        self._dream: DreamFrame | None = None
        self._detail: np.ndarray | None = None     # the newest dream's weighted detail
        self._previous: np.ndarray | None = None   # the previous one, on the newest dream's frame
        self._before: tuple | None = None          # (its detail, its frame's grey) until it is moved there
        self.confidence: np.ndarray | None = None  # the last compose's trust in its flow (inspection)
        self._up: np.ndarray | None = None         # the upscaled detail's buffer, reused

    def reset(self) -> None:
        self._dream = self._detail = self._previous = self._before = self.confidence = None

    def _flow(self, source: np.ndarray, target: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Backward flow target -> source (grey pictures) and the trust in it, measured at
        `flow_scale` of their size (a quarter of the cost at 0.5; the flow of walkers and
        of a still room needs no finer grid) and brought to `size`, the detail's."""
        h, w = source.shape
        fw, fh = max(16, round(w * self.flow_scale)), max(16, round(h * self.flow_scale))
        if (fw, fh) != (w, h):
            source, target = (cv2.resize(g, (fw, fh), interpolation=cv2.INTER_AREA) for g in (source, target))
        if self._tracker is None or self._tracker.size != (fw, fh):
            self._tracker = FlowTracker((fw, fh), preset=self.preset, fb_check=self.fb_check, deadband=0.0)
        r = self._tracker.measure(source, target)
        # each compose moves the detail from the dream's own frame (nothing accumulates), so
        # every pixel keeps its own motion whole; only the camera's shift is quieted, which
        # on a still camera leaves most of the picture at 0 and unresampled (crisp, cheaper)
        return resize_flow(quieted(r.flow, deadband=0.0), size), resize_image(r.confidence, size)

    def _moved(self, detail: np.ndarray, source: np.ndarray | None, target: np.ndarray | None) -> np.ndarray:
        """`detail` made on the frame `source` moved onto `target` (grey pictures), faded
        where the flow failed; unchanged when the two are the same frame."""
        if source is None or target is None or source.shape != target.shape or np.array_equal(source, target):
            self.confidence = None
            return detail
        flow, conf = self._flow(source, target, (detail.shape[1], detail.shape[0]))
        self.confidence = conf
        moved = FlowRemap(flow)(detail, cv2.INTER_CUBIC, cv2.BORDER_CONSTANT, fresh=False)
        return times_map(moved, conf)

    def arrive(self, dream: DreamFrame) -> None:
        """A new dream: its detail, and the previous one moved onto its frame (crossfade).
        `compose` calls it for a dream it has not seen; call it at once when dreams may
        come faster than pictures are composed, so no crossfade starts from a skipped one."""
        if dream is self._dream:
            return
        old, old_detail = self._dream, self._detail
        self._previous = None
        self._before = None
        if old is not None and old_detail is not None and old_detail.shape == dream.image.shape:
            self._before = (old_detail, old.grey)
        self._dream, self._detail = dream, dream.detail()

    def _previous_detail(self) -> np.ndarray | None:
        """The previous dream's detail on the newest dream's frame, the first time a crossfade
        asks for it (a frame-exact clip never does): as the dream thread carried it there,
        else moved there here (a flow and a warp)."""
        if self._before is not None:
            detail, source = self._before
            carried = self._dream.previous_detail()
            self._previous = self._moved(detail, source, self._dream.grey) if carried is None else carried
            self._before = None
        return self._previous

    def compose(self, current: np.ndarray, dream: DreamFrame | None, blend: float, u: float = 1.0,
                current_grey: np.ndarray | None = None) -> np.ndarray:
        """uint8 RGB at current's size: the camera picture with the dream on it. `blend`:
        the operator's (0 = live only, 1 = the whole detail); `u`: how far the newest
        dream has faded in over the previous one; `current_grey`: current's grey picture at
        the size of the dream's, if the caller has it."""
        if dream is None:
            self.reset()
            return current
        self.arrive(dream)
        if blend <= 0.0:
            return current
        d = self._detail
        if u < 1.0 and (previous := self._previous_detail()) is not None:
            d = previous + np.float32(max(0.0, u)) * (d - previous)
        if dream.grey is not None:
            h, w = dream.grey.shape
            cur = current_grey if current_grey is not None and current_grey.shape == (h, w) else grey(current, (w, h))
            d = self._moved(d, dream.grey, cur)
        H, W = current.shape[:2]
        b = np.float32(min(blend, 1.0))
        a = min(1.0, max(0.0, float(dream.attract)))
        if a > 0.0:   # attract: the dream is the fed-back zoom, not detail on this camera frame
            return _attract(current, dream, d, a * b, (1.0 - a) * b)
        return cv2.add(current, self._upscaled(d * b, (W, H)), dtype=cv2.CV_8U)  # rounds, saturates

    def _upscaled(self, detail: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The detail at the screen's size (cubic: crisp strokes), into a buffer kept from
        the last compose: a fresh 11 MB array each frame cost more in page faults than the
        upscale itself (1280x720: 2.6 ms to 1.1 ms with the add)."""
        w, h = size
        if (h, w) == detail.shape[:2]:
            return detail
        if self._up is None or self._up.shape != (h, w, detail.shape[2]):
            self._up = np.empty((h, w, detail.shape[2]), np.float32)
        return cv2.resize(detail, (w, h), dst=self._up, interpolation=cv2.INTER_CUBIC)


def _attract(current: np.ndarray, dream: DreamFrame, detail: np.ndarray, whole: float, part: float) -> np.ndarray:
    """current + whole * blend map * (up(dream) - current) + part * up(detail): today's
    whole-frame blend by the attract weight, the moved detail for the rest."""
    H, W = current.shape[:2]
    cur = current.astype(np.float32)
    m = dream.blend
    m = resize_image(m.astype(np.float32), (W, H))[..., None] if isinstance(m, np.ndarray) else np.float32(m)
    out = cur + np.float32(whole) * m * (resize_image(dream.image, (W, H)).astype(np.float32) - cur)
    out += resize_image(detail * np.float32(part), (W, H), cv2.INTER_CUBIC)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
