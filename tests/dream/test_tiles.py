import random

import numpy as np

from live.dream import DreamEngine
from live.dream.backends.trace import ExportError
from live.dream.images import natural_picture
from live.dream.prior import AUTO_MIXED_GAIN
from live.dream.settings import AttractSettings, MotionSettings
from live.dream.temporal.coherent import TemporalDream
from live.dream.temporal.overlay import Overlay
from live.dream.tiles import grid, tile_at, tile_size, visit_gain

SIZE = (192, 144)
TILE = (96, 72)


def test_a_tile_has_the_budget_in_the_pictures_shape_or_is_the_whole_picture():
    assert tile_size((640, 480), (320, 240)) == (320, 240)
    assert tile_size((736, 416), (320, 240)) == (368, 208)       # 16:9, the same pixels
    assert tile_size((320, 240), (320, 240)) == (320, 240)       # within the budget: whole
    assert tile_size((640, 480), (0, 0)) == (640, 480)           # no budget: whole
    assert abs(visit_gain((640, 480), (320, 240)) - 2.5) < 0.01   # each part stepped every 4th frame


def test_visits_cover_every_pixel_and_stay_inside():
    size, tile, rng = (640, 480), (320, 240), random.Random(0)
    assert grid(size, tile) == [(0, 0), (320, 0), (0, 240), (320, 240)]
    seen = np.zeros((480, 640), int)
    for i in range(40):
        x, y = tile_at(size, tile, i, rng)
        assert 0 <= x <= 320 and 0 <= y <= 240
        seen[y:y + 240, x:x + 320] += 1
    assert seen.min() > 0
    assert 8 < seen.mean() < 12   # each visit a quarter of the picture: ten rounds, once a round on average


def engine(backbone, **kw) -> DreamEngine:
    return DreamEngine(backbone, size=SIZE, tile=TILE, precision="fp32", backend="torch", seed=0, momentum=0.0, **kw)


def test_one_step_dreams_one_tile_and_leaves_the_rest_as_it_was(backbone, photo):
    eng = engine(backbone)
    frame = np.ascontiguousarray(photo[:SIZE[1], :SIZE[0]])
    out = eng.dream(frame)
    changed = np.abs(out.astype(int) - frame.astype(int)).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert changed.mean() > 0.1
    assert xs.max() - xs.min() < TILE[0] and ys.max() - ys.min() < TILE[1]
    for _ in range(11):
        out = eng.dream(frame)
    assert (np.abs(out.astype(int) - frame.astype(int)).max(axis=2) > 0).mean() > 0.9   # the dream adds up


def test_auto_normalisation_is_the_working_widths_not_the_tiles(backbone):
    wide = DreamEngine(backbone, size=(640, 480), tile=(320, 240), backend="torch", precision="fp32")
    wide.current_step()
    assert wide._torch_step.grad_norm == "mixed" and wide._gain == AUTO_MIXED_GAIN
    assert wide.step_size() == (320, 240)
    narrow = DreamEngine(backbone, size=(320, 240), backend="torch", precision="fp32")
    narrow.current_step()
    assert narrow._torch_step.grad_norm == "laplacian" and narrow._gain == 1.0
    wide.close()
    narrow.close()


def test_a_tiled_dream_measures_flow_and_motion_at_the_tiles_size(backbone):
    """Flow and motion cost what the step costs: measured at the tile's size, brought up
    to the working size for the carried dream, the maps and the denoiser."""
    eng = DreamEngine(backbone, layer="blocks.6", size=(128, 96), tile=(64, 48), precision="fp32", backend="torch",
                      seed=0)
    temporal = TemporalDream(eng, MotionSettings(), AttractSettings(enabled=False))
    room = natural_picture(320, 240, seed=3)
    try:
        for i in range(6):   # the camera pans 4 px a frame at 256 wide: 2 at the working size, 1 at the tile's
            out, state = temporal(np.ascontiguousarray(room[:, 4 * i:4 * i + 256]), 0.1)
        assert temporal.tracker.size == (64, 48) and temporal.last.grey.shape == (48, 64)
        assert out.shape == (96, 128, 3) and state.gain.shape == state.blend.shape == (96, 128)
        flow = temporal.tracker.last.flow
        assert flow.shape == (96, 128, 2) and abs(float(np.median(flow[..., 0])) - 2.0) < 0.5   # 4 px at 256 wide
        assert Overlay().compose(room[:, 20:276], temporal.last, 1.0).shape == (240, 256, 3)
    finally:
        eng.close()


def test_each_rung_of_the_ladder_is_built_ahead_with_its_own_normalisation(backbone):
    """"auto" is mixed at a 640-wide working size and laplacian at a 448-wide rung of the
    adaptive ladder: preparing the ladder builds each rung's step with its own (and its own
    eager step as the export's source), so stepping down finds it ready."""
    asked = []

    def build(bb, eager, pool, name, size):
        asked.append((pool.grad_norm, eager.grad_norm, size))
        raise ExportError("not exported in this test")

    eng = DreamEngine(backbone, size=(640, 480), tile=(0, 0), backend="auto", precision="fp32", build=build)   # as on a GPU
    try:
        eng.prepare([(640, 480), (448, 336)])
        assert ("mixed", "mixed", (640, 480)) in asked and ("laplacian", "laplacian", (448, 336)) in asked
        assert not any(norm == "mixed" and size == (448, 336) for norm, _, size in asked)
        assert eng.ready((448, 336))   # built (here: fell back to the eager step), nothing left to wait for
    finally:
        eng.close()
