"""Optical-flow warp of the carried dream: shifted pictures warp back onto themselves,
failures fade the residual, scene cuts drop it, and the engine carries it along the flow."""
import numpy as np
import pytest
import torch

from live.dream.images import natural_picture as natural_image
from live.dream import DreamEngine
from live.dream.images import to_tensor
from live.dream.temporal.flow import FlowTracker, ResidualWarp, quieted, warp_image, zoom_flow

W, H = 160, 120


def shifted(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The picture as a camera sees it after the scene moved by (dx, dy)."""
    return np.roll(img, (dy, dx), axis=(0, 1))


def interior(a: np.ndarray, m: int = 12) -> np.ndarray:
    return a[m:-m, m:-m]


@pytest.fixture
def scene() -> np.ndarray:
    return natural_image(W, H, seed=3)


def test_shifted_picture_warps_back_onto_itself(scene):
    moved = shifted(scene, 3, -2)
    tracker = FlowTracker((W, H))
    assert tracker.update(scene) is None
    r = tracker.update(moved)
    # backward flow: new pixel (x, y) came from (x - 3, y + 2)
    assert np.median(r.flow[..., 0]) == pytest.approx(-3, abs=0.2)
    assert np.median(r.flow[..., 1]) == pytest.approx(2, abs=0.2)
    back = warp_image(scene, r.flow)
    err = np.abs(interior(back).astype(float) - interior(moved)).mean()
    still = np.abs(interior(scene).astype(float) - interior(moved)).mean()
    assert err < 3 and err < still / 8
    assert r.confidence[12:-12, 12:-12].mean() > 0.9 and not r.cut
    assert r.motion == pytest.approx(np.hypot(3, 2), abs=0.5)


def test_residual_warp_moves_a_tensor_with_the_flow(scene):
    """The torch warp the engine calls puts a residual where the scene went."""
    x = to_tensor(scene, torch.device("cpu"), (W, H))
    moved = to_tensor(shifted(scene, 4, 1), torch.device("cpu"), (W, H))
    flow = np.zeros((H, W, 2), np.float32)
    flow[..., 0], flow[..., 1] = -4, -1
    out = ResidualWarp()(x, flow)
    assert (out - moved)[..., 8:-8, 8:-8].abs().max() < 1e-4
    assert out[..., :, :4].abs().max() < 1e-5  # uncovered edge: no dream there yet
    conf = np.zeros((H, W), np.float32)
    assert ResidualWarp()(x, flow, conf).abs().max() == 0  # no confidence: faded out


def test_the_cpu_warp_is_the_devices_warp(scene):
    """On the CPU the residual is warped with OpenCV's remap, elsewhere with grid_sample:
    the same bicubic kernel, the same zeros outside, the same fading, channels_last out."""
    rng = np.random.default_rng(1)
    x = to_tensor(scene, torch.device("cpu"), (W, H)) - 0.5
    flow = rng.normal(0, 1.5, (H, W, 2)).astype(np.float32)
    conf = rng.uniform(0, 1, (H, W)).astype(np.float32)
    warp = ResidualWarp()
    for c in (None, conf):
        cpu, grid = warp._remap(x, flow, c), warp._grid(x, flow, c)
        assert cpu.shape == grid.shape and cpu.is_contiguous(memory_format=torch.channels_last)
        assert (cpu - grid).abs().max() < 1e-4
    assert warp(x.bfloat16(), flow).dtype == torch.bfloat16


def test_occluded_region_loses_confidence(scene):
    """A square that appears from nowhere (a hand) cannot be tracked: its residual fades."""
    tracker = FlowTracker((W, H))
    tracker.update(scene)
    occluded = scene.copy()
    occluded[40:80, 60:100] = natural_image(40, 40, seed=9)
    r = tracker.update(occluded)
    inside = r.confidence[48:72, 68:92].mean()
    outside = r.confidence[:30].mean()
    assert inside < 0.4 and outside > 0.9   # 0.36 (0.33 when the backward check faded it)
    assert not r.cut


def test_scene_cut_is_detected_and_drops_the_residual(scene):
    tracker = FlowTracker((W, H))
    tracker.update(scene)
    r = tracker.update(natural_image(W, H, seed=11))
    assert r.cut and r.confidence.max() == 0
    res = torch.ones(1, 3, H, W)
    assert tracker.warp(res, r.flow).abs().max() == 0
    # the next frame of the new scene tracks again
    r2 = tracker.update(natural_image(W, H, seed=11))
    assert not r2.cut and r2.confidence.mean() > 0.9


def test_tracker_warp_uses_the_confidence_of_its_own_flow_only(scene):
    tracker = FlowTracker((W, H))
    tracker.update(scene)
    occluded = scene.copy()
    occluded[40:80, 60:100] = 0
    r = tracker.update(occluded)
    res = torch.ones(1, 3, H, W)
    faded = tracker.warp(res, r.flow)
    assert faded[0, 0, 60, 80] < 0.3 and faded[0, 0, 10, 10] > 0.9
    foreign = tracker.warp(res, r.flow.copy())  # not the tracker's flow: no confidence applied
    assert foreign[0, 0, 60, 80] > 0.9
    steered = r.flow * 0.5                      # the flow the dream moves along instead (quieted)
    tracker.steer(steered)
    assert tracker.warp(res, steered)[0, 0, 60, 80] < 0.3 and tracker.warp(res, r.flow)[0, 0, 60, 80] > 0.9


def test_zoom_flow_zooms_about_the_centre():
    f = zoom_flow((W, H), 2.0)
    cy, cx = (H - 1) / 2, (W - 1) / 2
    assert np.abs(f[int(cy), int(cx)]).max() < 0.5           # the centre stays
    # a pixel at the right edge shows what was halfway to the edge before
    assert f[int(cy), W - 1, 0] == pytest.approx(-(W - 1 - cx) / 2, abs=0.01)
    assert np.abs(zoom_flow((W, H), 1.0)).max() < 1e-4


def test_engine_carries_the_residual_along_the_flow(backbone, scene):
    """Dream a picture, then move the scene: with flow the dream moves with it (the
    carried residual lines up with the warped old one); without, it stays put."""
    size = (W, H)
    eng = DreamEngine(backbone, layer="blocks.6", size=size, precision="fp32", backend="torch", seed=0, decay=1.0)
    for _ in range(3):
        eng.dream(scene)
    old = eng.residual.clone()
    moved = shifted(scene, 6, 0)
    tracker = FlowTracker(size)
    tracker.update(scene)
    r = tracker.update(moved)
    eng.warp = tracker.warp
    eng.configure(strength=0.0)   # carry only, so we see the warp alone
    out = eng.dream(moved, flow=r.flow)
    base = to_tensor(moved, eng.device, size)
    carried = eng.residual
    expect = torch.roll(old, 6, dims=3)
    m = (slice(None), slice(None), slice(8, -8), slice(16, -8))
    with_flow = (carried - expect)[m].abs().mean()
    unmoved = (carried - old)[m].abs().mean()
    assert with_flow < 0.25 * unmoved
    assert out.shape == (H, W, 3) and float((carried + base).min()) >= -1e-6


def _flat_and_textured(seed: int = 0) -> np.ndarray:
    """A picture whose left half is a flat wall (weak texture: DIS guesses there)."""
    img = natural_image(W, H, seed=5)
    img[:, : W // 2] = 128
    return img


def _noisy(img: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def test_a_still_wall_keeps_its_trust_through_sensor_noise():
    """Sensor noise on a flat wall: DIS's forward and backward flows disagree there, but
    "it did not move" explains the wall within the noise, so the dream keeps its trust
    (without that second explanation the wall's trust drops)."""
    rng = np.random.default_rng(0)
    wall = _flat_and_textured()
    frames = [_noisy(wall, rng) for _ in range(6)]
    trust = {}
    for stay in (False, True):
        tracker = FlowTracker((W, H), preset="ultrafast", stay=stay)
        confs = [r.confidence for r in map(tracker.update, frames) if r is not None]
        trust[stay] = float(np.mean([c[8:-8, 8:W // 2 - 8].mean() for c in confs]))
        flow = tracker.last.flow[8:-8, 8:W // 2 - 8]
    assert trust[True] > 0.97 and trust[True] >= trust[False]
    assert np.percentile(np.abs(flow), 95) < 0.3               # the wall stays put


def test_a_panned_wall_moves_with_the_camera():
    """The second explanation is the camera's own motion, not zero: a flat wall in a pan
    moves with the rest of the picture."""
    rng = np.random.default_rng(1)
    wall = _flat_and_textured()
    tracker = FlowTracker((W, H), preset="ultrafast")
    tracker.update(_noisy(wall, rng))
    r = tracker.update(_noisy(shifted(wall, 3, 0), rng))
    flow = r.flow[10:-10, 10:W // 2 - 10]
    assert np.median(flow[..., 0]) == pytest.approx(-3, abs=0.3)


def test_the_dream_moves_without_the_flows_noise_but_with_pans_and_walkers():
    """quieted(): a still room's flow noise (a few tenths of a pixel) shrinks to almost 0, so
    the carried dream is not resampled along it every frame; a pan (one shift) and a walker
    (own motion of pixels) keep their motion."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.2, (60, 80, 2)).astype(np.float32)
    mag = lambda f: float(np.hypot(f[..., 0], f[..., 1]).mean())
    assert mag(quieted(noise)) < 0.4 * mag(noise)     # the measured flow's own deadband (0.15) keeps 0.7 of it
    pan = noise + np.float32([1.5, -0.5])
    assert np.allclose(np.median(quieted(pan).reshape(-1, 2), axis=0), [1.5, -0.5], atol=0.05)
    walker = noise.copy()
    walker[20:40, 30:45] += np.float32([3.0, 0.0])
    assert quieted(walker)[20:40, 30:45, 0].mean() > 0.9 * walker[20:40, 30:45, 0].mean()


def test_a_flow_that_fails_the_backward_check_takes_the_cameras_motion_not_a_fade():
    """On a flat wall DIS's forward and backward flows disagree; the pixel then moves with
    the camera and keeps its trust where that explains the picture (fading by the mismatch
    was a hidden decay: trust 0.35 a frame on the wall before), while a square that appears
    from nowhere still fails the photometric check."""
    rng = np.random.default_rng(0)
    wall = _flat_and_textured()
    tracker = FlowTracker((W, H), preset="ultrafast", stay=False)
    rs = [r for r in map(tracker.update, [_noisy(wall, rng) for _ in range(4)]) if r is not None]
    assert min(float(r.confidence[8:-8, 8:W // 2 - 8].mean()) for r in rs) > 0.97
    occluded = wall.copy()
    occluded[40:80, 90:130] = natural_image(40, 40, seed=9)
    r = tracker.update(occluded)
    assert r.confidence[48:72, 98:122].mean() < 0.35


def test_own_motion_counts_only_where_the_motion_response_sees_something_move():
    """quieted(moving=level): a still room's texture can wander by more than the deadband;
    where the motion map says still the dream keeps only the camera's shift."""
    flow = np.zeros((60, 80, 2), np.float32) + np.float32([0.8, 0.0])   # a pan
    flow[10:20, 10:20] += np.float32([0.0, 2.0])                         # a wander on a still wall
    flow[30:50, 40:60] += np.float32([3.0, 0.0])                         # a walker
    level = np.zeros((60, 80), np.float32)
    level[30:50, 40:60] = 1.0
    q = quieted(flow, moving=level)
    assert np.abs(q[10:20, 10:20] - np.float32([0.8, 0.0])).max() < 0.05
    assert q[35:45, 45:55, 0].mean() == pytest.approx(3.7, abs=0.1)    # 3 + 0.8, less the deadbands
    assert quieted(flow)[12:18, 12:18, 1].mean() > 1.5                   # without the map it moves
