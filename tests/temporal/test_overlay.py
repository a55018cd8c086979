"""The overlay: the one picture the window, the recorder and the clip renderer show is
the camera frame at its own size with the dream's detail on it (moved to that frame, no
ghost of the picture the dream was made on), weighted by the operator's blend times the
motion response's; TemporalDream hands its step over as a DreamFrame."""
import cv2
import numpy as np
import pytest

from live.dream import DreamEngine
from live.dream.images import natural_picture
from live.dream.settings import AttractSettings, MotionSettings
from live.dream.temporal.coherent import TemporalDream
from live.dream.temporal.overlay import DreamFrame, Overlay


def flat(w: int, h: int, rgb: tuple[int, int, int]) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rgb
    return img


def test_compose_adds_the_dream_detail_to_the_full_size_frame():
    """The dream's detail (dream - base), not the stale base, goes onto the camera frame."""
    current = flat(64, 48, (200, 100, 0))
    dream = DreamFrame(flat(16, 12, (20, 30, 40)), flat(16, 12, (10, 10, 10)), 1.0)
    overlay = Overlay()
    assert overlay.compose(current, None, 1.0) is current
    assert np.array_equal(overlay.compose(current, dream, 0.0), current)
    full = overlay.compose(current, dream, 1.0)
    assert full.shape == (48, 64, 3) and full.dtype == np.uint8
    assert np.array_equal(full, flat(64, 48, (210, 120, 30)))
    assert np.array_equal(overlay.compose(current, dream, 0.5), flat(64, 48, (205, 110, 15)))
    # the motion response's multiplier scales the operator's blend
    damped = overlay.compose(current, DreamFrame(dream.image, dream.base, 0.5), 0.5)
    assert np.array_equal(damped, flat(64, 48, (202, 105, 8)))   # 202.5 rounds to even


def test_attract_falls_back_to_the_whole_frame_blend():
    """In attract mode the dream lives in the fed-back zoom: the whole dream is blended."""
    current = flat(64, 48, (200, 100, 0))
    dream = DreamFrame(flat(16, 12, (0, 100, 200)), flat(16, 12, (0, 0, 0)), 1.0, attract=1.0)
    assert np.array_equal(Overlay().compose(current, dream, 1.0), flat(64, 48, (0, 100, 200)))
    half = Overlay().compose(current, DreamFrame(dream.image, dream.base, 0.5, attract=1.0), 1.0)
    assert np.array_equal(half, flat(64, 48, (100, 100, 100)))


def test_a_blend_map_weights_each_pixel():
    current = flat(64, 48, (100, 100, 100))
    local = np.zeros((12, 16), np.float32)
    local[:, 8:] = 1.0                      # dream on the right half only
    out = Overlay().compose(current, DreamFrame(flat(16, 12, (40, 40, 40)), flat(16, 12, (0, 0, 0)), local), 1.0)
    assert np.all(out[:, :24] == 100) and np.all(out[:, 40:] == 140)


def _room_with_square(x: int) -> np.ndarray:
    """A textured room (320x240) with a dark textured 80x80 square at column x."""
    img = natural_picture(320, 240, seed=4)
    img[80:160, x:x + 80] = natural_picture(80, 80, seed=11) // 4
    return img


def test_no_ghost_where_a_moving_square_was():
    """Dreamed (on the square only) while it stood at x=80, shown after it moved to x=100:
    where it stood there is no dream residue of it, while today's whole-frame blend showed
    its dark ghost there; the square's dream went along with it."""
    before, now = _room_with_square(80), _room_with_square(100)
    small = cv2.resize(before, (160, 120), interpolation=cv2.INTER_AREA)
    detail = np.zeros((120, 160, 3), np.int16)
    detail[40:80, 40:80] = 40
    dream = DreamFrame((small + detail).clip(0, 255).astype(np.uint8), small, 1.0,
                       cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    out = Overlay().compose(now, dream, 1.0).astype(int) - now
    assert np.abs(out[84:156, 82:98]).mean() < 3             # where it stood: no ghost
    assert np.abs(out[:60]).mean() < 1                        # the room had no dream: none now
    assert out[90:150, 110:170].mean() > 12                   # the square's dream moved with it
    whole = np.abs(now.astype(int) - cv2.resize(dream.image, (320, 240)))   # today's whole-frame blend
    assert whole[84:156, 82:98].mean() > 30                   # ... showed the square's ghost there


def test_the_dreams_grey_may_be_smaller_than_its_detail():
    """A picture dreamed a tile at a time measures its flow at the tile's size: the detail
    (working size) moves along that flow brought up to it."""
    before, now = _room_with_square(80), _room_with_square(100)
    small = cv2.resize(before, (160, 120), interpolation=cv2.INTER_AREA)
    detail = np.zeros((120, 160, 3), np.int16)
    detail[40:80, 40:80] = 40
    dream = DreamFrame((small + detail).clip(0, 255).astype(np.uint8), small, 1.0,
                       cv2.cvtColor(cv2.resize(small, (80, 60), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY))
    out = Overlay().compose(now, dream, 1.0).astype(int) - now
    assert np.abs(out[84:156, 82:98]).mean() < 4 and out[90:150, 110:170].mean() > 12


def test_on_a_still_camera_the_fine_detail_arrives_unresampled():
    """The camera on a wall sways by a few hundredths of a pixel and its sensor noise
    changes: the dream's finest strokes (a one-pixel checker) go onto the newest picture
    exactly as they were dreamed, not resampled along that sway (which blurs them a little
    at every compose: the checker came out at 11 of its 12 levels)."""
    rng = np.random.default_rng(0)
    room = natural_picture(160, 120, seed=4).astype(np.float32)
    sway = lambda d: cv2.warpAffine(room, np.float32([[1, 0, d], [0, 1, -d]]), (160, 120),
                                    flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    noisy = lambda d: np.clip(sway(d) + rng.normal(0, 2.0, room.shape), 0, 255).astype(np.uint8)
    base = noisy(0.0)
    checker = np.where((np.indices((120, 160)).sum(0) % 2)[..., None] == 1, 12, -12)
    dream = DreamFrame(np.clip(base.astype(int) + checker, 0, 255).astype(np.uint8), base, 1.0,
                       cv2.cvtColor(base, cv2.COLOR_RGB2GRAY))
    now = noisy(0.04)
    overlay = Overlay()
    added = overlay.compose(now, dream, 1.0).astype(int) - now
    trusted = overlay.confidence > 0.999
    assert trusted[8:-8, 8:-8].mean() > 0.9
    exact = (dream.image.astype(int) - base)[trusted]
    assert np.abs(added[trusted] - np.clip(now[trusted] + exact, 0, 255) + now[trusted]).max() == 0


def test_confidence_fades_the_detail_where_the_flow_fails():
    """A patch of new content (a hand in front of the camera) cannot be traced back to
    the dream's frame: the detail fades there, and only there."""
    room = natural_picture(160, 120, seed=4)
    small = cv2.resize(room, (80, 60), interpolation=cv2.INTER_AREA)
    dream = DreamFrame((small.astype(int) + 30).clip(0, 255).astype(np.uint8), small, 1.0,
                       cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    now = room.copy()
    now[30:90, 50:110] = natural_picture(60, 60, seed=12)
    overlay = Overlay()
    out = overlay.compose(now, dream, 1.0).astype(int) - now
    assert np.abs(out[40:80, 60:100]).mean() < 8 and out[:20].mean() > 20
    assert overlay.confidence is not None and overlay.confidence[20:40, 30:50].mean() < 0.3


def test_crossfade_goes_from_the_previous_dream_to_the_newest():
    current = flat(64, 48, (100, 100, 100))
    base = flat(16, 12, (100, 100, 100))
    g = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY)
    overlay = Overlay()
    overlay.compose(current, DreamFrame(flat(16, 12, (110, 110, 110)), base, 1.0, g), 1.0)
    newest = DreamFrame(flat(16, 12, (130, 130, 130)), base, 1.0, g)
    assert overlay.compose(current, newest, 1.0, u=0.0)[0, 0, 0] == 110
    assert overlay.compose(current, newest, 1.0, u=0.5)[0, 0, 0] == 120
    assert overlay.compose(current, newest, 1.0, u=1.0)[0, 0, 0] == 130


def test_temporal_dream_exposes_its_step_as_a_dream_frame(backbone):
    eng = DreamEngine(backbone, layer="blocks.6", size=(64, 48), precision="fp32", backend="torch", seed=0)
    temporal = TemporalDream(eng, MotionSettings(), AttractSettings(enabled=False))
    assert temporal.last is None
    frame = natural_picture(128, 96)
    try:
        for _ in range(2):
            out, state = temporal(frame, 0.1)
        last = temporal.last
        assert last.image is out and last.blend == pytest.approx(state.blend)
        assert last.base.shape == out.shape == (48, 64, 3)
        # the base is the camera picture at the working size, not the dream
        assert np.abs(last.base.astype(int) - out.astype(int)).mean() > 1.0
        composed = Overlay().compose(frame, last, 1.0)
        assert composed.shape == frame.shape
        temporal.reset()
        assert temporal.last is None
    finally:
        eng.close()


def test_a_composed_picture_is_its_own_after_the_next_compose():
    """The upscale's buffer is reused from frame to frame; what compose returned is not."""
    current = flat(64, 48, (100, 100, 100))
    overlay = Overlay()
    first = overlay.compose(current, DreamFrame(flat(16, 12, (20, 20, 20)), flat(16, 12, (10, 10, 10))), 1.0)
    kept = first.copy()
    second = overlay.compose(current, DreamFrame(flat(16, 12, (50, 50, 50)), flat(16, 12, (10, 10, 10))), 1.0)
    assert np.array_equal(first, kept) and np.array_equal(second, flat(64, 48, (140, 140, 140)))
    assert overlay.compose(flat(32, 24, (0, 0, 0)), DreamFrame(flat(16, 12, (9, 9, 9)), flat(16, 12, (0, 0, 0))),
                           1.0).shape == (24, 32, 3)   # a new screen size: a new buffer


def test_a_frame_exact_clip_measures_no_flow_and_a_crossfade_starts_from_the_carried_dream(backbone, monkeypatch):
    """The clip renderer composes each dream on the very frame it was dreamed from, and
    never crossfades: no flow is measured and nothing is warped there (two flows and two
    bicubic warps a frame before). A live crossfade starts from the previous dream as the
    dream thread carried it onto the new frame: no flow of its own for that either."""
    from live.dream.clip import ClipDreamer
    flows = []
    measure = Overlay._flow
    monkeypatch.setattr(Overlay, "_flow", lambda self, *a: flows.append(1) or measure(self, *a))
    eng = DreamEngine(backbone, layer="blocks.6", size=(64, 48), precision="fp32", backend="torch", seed=0)
    try:
        dreamer = ClipDreamer(eng, 25, MotionSettings(), AttractSettings(enabled=False), 1.0)
        room = natural_picture(128, 96, seed=4)
        for t in range(3):
            out = dreamer(np.roll(room, 2 * t, axis=1))
            assert out.shape == room.shape
        frame = np.roll(room, 8, axis=1)
        dreamer.temporal(frame, 0.04)
        new = dreamer.temporal.last
        previous = new.previous_detail()
        assert previous is not None and np.abs(previous).mean() > 1.0   # the dream before, moved here
        out = dreamer.overlay.compose(frame, new, 1.0, u=0.0, current_grey=new.grey)
        up = cv2.resize(previous, (128, 96), interpolation=cv2.INTER_CUBIC)
        assert np.array_equal(out, cv2.add(frame, up, dtype=cv2.CV_8U))
        assert flows == []
    finally:
        eng.close()
