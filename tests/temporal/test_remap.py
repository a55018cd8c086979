"""Warps that resample only what moves: the same numbers as one remap of the whole
picture, and on a still camera nothing resampled at all."""
import cv2
import numpy as np
import pytest

from live.dream.images import natural_picture
from live.dream.temporal.coherent import TemporalDream
from live.dream.temporal.flow import quieted
from live.dream.temporal.remap import FlowRemap, moving_blocks, pixel_grid

H, W = 100, 150   # not multiples of the block: the last row and column are partial


def whole_remap(img, flow, interp, border):
    xs, ys = pixel_grid(*flow.shape[:2])
    return cv2.remap(img, xs + flow[..., 0], ys + flow[..., 1], interp, borderMode=border)


def walkers(rng) -> np.ndarray:
    """A still room's flow (0) with two walkers and one pixel at the far corner moving."""
    flow = np.zeros((H, W, 2), np.float32)
    flow[10:40, 20:50] = rng.normal(0, 2, (30, 30, 2))
    flow[60:95, 100:140, 0] = 3.5
    flow[H - 1, W - 1] = (-0.3, 0.2)
    flow[50, 5, 1] = -0.0   # a negative zero is still
    return flow


@pytest.mark.parametrize("picture, interp, border", [
    ("float3", cv2.INTER_CUBIC, cv2.BORDER_CONSTANT),
    ("float3", cv2.INTER_CUBIC, cv2.BORDER_REPLICATE),
    ("grey", cv2.INTER_LINEAR, cv2.BORDER_REPLICATE),
    ("float1", cv2.INTER_LINEAR, cv2.BORDER_REPLICATE),
])
def test_resampling_only_what_moves_gives_the_whole_remaps_numbers(picture, interp, border):
    rng = np.random.default_rng(0)
    img = {"float3": rng.uniform(-0.3, 0.3, (H, W, 3)).astype(np.float32),
           "grey": natural_picture(W, H, seed=2)[..., 0],
           "float1": rng.uniform(0, 1, (H, W, 1)).astype(np.float32)}[picture]
    flow = walkers(rng)
    plan = FlowRemap(flow)
    assert 0.0 < plan.moving < 0.7 and not plan.whole
    out = plan(img, interp, border)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert np.array_equal(out, whole_remap(img, flow, interp, border).reshape(img.shape))


def test_a_still_flow_resamples_nothing_and_a_moving_one_everything():
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 1, (H, W, 3)).astype(np.float32)
    still = FlowRemap(np.zeros((H, W, 2), np.float32))
    assert still.moving == 0.0
    copy = still(img, cv2.INTER_CUBIC)
    assert np.array_equal(copy, img) and not np.shares_memory(copy, img)
    assert still(img, cv2.INTER_CUBIC, fresh=False) is img
    pan = np.full((H, W, 2), 0.4, np.float32)
    moving = FlowRemap(pan)
    assert moving.whole and moving.moving == 1.0
    assert np.array_equal(moving(img, cv2.INTER_CUBIC), whole_remap(img, pan, cv2.INTER_CUBIC, cv2.BORDER_REPLICATE))
    with pytest.raises(ValueError, match="flow is 150x100 but the picture is 10x10"):
        moving(img[:10, :10])


def test_moving_blocks_finds_one_moving_pixel_in_a_partial_block():
    flow = np.zeros((H, W, 2), np.float32)
    flow[H - 1, W - 1, 1] = 1e-6
    blocks = moving_blocks(flow)
    assert blocks.shape == (4, 5) and blocks.sum() == 1 and blocks[-1, -1]


def test_a_quieted_still_room_does_not_move_at_all():
    """What is left of a still room's noise after quieting (the camera's shift shrunk by its
    deadband to under a hundredth of a pixel) is 0 exactly, so the warps leave it alone;
    a slow pan still moves."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.2, (60, 80, 2)).astype(np.float32) + np.float32([0.02, -0.02])
    level = np.zeros((60, 80), np.float32)
    assert not quieted(noise.copy(), moving=level).any()
    pan = quieted(noise + np.float32([0.3, 0.0]), moving=level)
    assert (pan[..., 0] > 0.1).all()


def test_on_a_still_camera_the_dream_thread_resamples_nothing(backbone):
    """A still room with sensor noise, dreamed frame after frame: after the first frames
    nothing of the carried dream, its momentum or the denoiser is resampled."""
    from live.dream import DreamEngine
    rng = np.random.default_rng(0)
    room = natural_picture(160, 120, seed=4)
    eng = DreamEngine(backbone, size=(160, 120), tile=(0, 0), backend="torch", seed=0)
    temporal = TemporalDream(eng)
    plans = []
    for _ in range(6):
        noisy = np.clip(room + rng.normal(0, 2.0, room.shape), 0, 255).astype(np.uint8)
        temporal(noisy, 0.1)
        plans.append(temporal.tracker._warp.plan.last)
    assert plans[-1] is not None and plans[-1].flow is temporal.tracker.last.flow
    assert plans[-1].moving == 0.0 and eng.residual is not None
