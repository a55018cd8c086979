"""Motion response: stillness grows the dream, motion brings the room back quickly and
smoothly, an empty room drifts into attract mode and motion brings it back without a jump;
and the still dream holds still (momentum, bound)."""
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from live.dream.images import natural_picture as natural_image
from live import config
from live.dream import DreamEngine
from live.dream.engine import KNEE, soft_limit
from live.dream.settings import AttractSettings, MotionSettings
from live.dream.images import feed_back
from live.dream.temporal.coherent import TemporalDream, attract_input
from live.dream.temporal.motion import MotionResponse

DT = 0.1  # a 10 Hz dream


def run(resp: MotionResponse, motion: float, seconds: float, dt: float = DT) -> list:
    return [resp.update(motion, dt) for _ in range(int(round(seconds / dt)))]


def test_motion_level_attacks_fast_and_releases_slowly():
    s = MotionSettings(attack=0.2, release=3.0)
    resp = MotionResponse(s, AttractSettings(enabled=False))
    assert resp.update(0.0, DT).level == 0.0
    states = run(resp, 100.0, 0.6)                # someone walks in
    assert states[-1].level > 0.9                 # 3 attack time constants
    assert states[0].level < 0.5                  # smooth: not a jump
    assert states[-1].gain == pytest.approx(s.moving_gain, abs=0.05)
    assert states[-1].blend == pytest.approx(s.moving_blend, abs=0.05)
    assert states[-1].carry == pytest.approx(s.moving_carry, abs=0.02)
    states = run(resp, 0.0, 3.0)                  # they stand still
    assert 0.25 < states[-1].level < 0.5          # about one release time constant
    levels = [st.level for st in states]
    assert all(a >= b for a, b in zip(levels, levels[1:]))   # monotone, no bounce
    assert max(abs(a - b) for a, b in zip(levels, levels[1:])) < 0.05
    states = run(resp, 0.0, 15.0)
    assert states[-1].level < 0.01 and states[-1].gain == pytest.approx(1.0, abs=0.01)


def test_motion_maps_between_still_and_moving_thresholds():
    resp = MotionResponse(MotionSettings(still=4.0, moving=40.0))
    assert resp.target(2.0) == 0.0
    assert resp.target(22.0) == pytest.approx(0.5)
    assert resp.target(400.0) == 1.0
    assert resp.target(float("inf")) == 1.0
    cut = resp.update(0.0, DT, cut=True)
    assert cut.level > 0.2 and cut.idle == 0.0    # a cut counts as motion


def test_idle_room_drifts_into_attract_and_motion_brings_it_back_smoothly():
    resp = MotionResponse(MotionSettings(), AttractSettings(idle_seconds=5.0, fade_in=2.0, fade_out=1.0,
                                                            preset_seconds=3.0))
    states = run(resp, 0.0, 4.9)
    assert states[-1].attract == 0.0              # not yet idle long enough
    states = run(resp, 0.0, 2.5)
    weights = [st.attract for st in states]
    assert weights[-1] == 1.0
    assert max(abs(a - b) for a, b in zip(weights, weights[1:])) < 0.1   # a drift, not a switch
    assert not any(st.preset_due for st in states)
    states = run(resp, 0.0, 3.05)
    assert sum(st.preset_due for st in states) == 1   # presets rotate while attracting
    states = run(resp, 100.0, 1.2)                # someone moves
    weights = [st.attract for st in states]
    assert weights[-1] == 0.0 and states[-1].idle == 0.0
    assert max(abs(a - b) for a, b in zip(weights, weights[1:])) < 0.2
    assert 0.0 < weights[3] < 1.0                 # in between on the way back


def test_attract_off_never_attracts():
    resp = MotionResponse(MotionSettings(), AttractSettings(enabled=False, idle_seconds=1.0))
    assert run(resp, 0.0, 10.0)[-1].attract == 0.0


def test_attract_input_crossfades_camera_and_zoomed_dream():
    cam = np.full((60, 80, 3), 100, np.uint8)
    prev = np.full((60, 80, 3), 200, np.uint8)
    zoom = AttractSettings(zoom=1.05)
    assert np.array_equal(attract_input(cam, prev, 0.0, zoom), cam)
    assert np.abs(attract_input(cam, prev, 0.5, zoom).astype(int) - 150).max() <= 1
    assert np.array_equal(attract_input(cam, None, 0.7, zoom), cam)


def test_feed_back_zooms_into_the_centre_and_crossfades():
    """The one feedback of the z key, attract mode and tools.dream's zoom videos."""
    dream = np.zeros((61, 81, 3), np.uint8)
    dream[20:41, 30:51] = 255                       # a 21x21 square about the centre
    assert feed_back(dream) is dream                # no zoom: the dream itself, not a copy
    grown = feed_back(dream, 1.5)
    assert (grown[:, :, 0] > 127).sum() > 1.9 * (dream[:, :, 0] > 127).sum()   # 1.5^2 the area
    assert grown[30, 40, 0] == 255 and grown[5, 5, 0] == 0
    cam = np.full_like(dream, 100)
    assert np.array_equal(feed_back(dream, 1.5, current=cam, weight=0.0), cam)
    half = feed_back(dream, 1.5, current=cam, weight=0.5).astype(int)
    assert half[30, 40, 0] in (177, 178) and half[5, 5, 0] == 50


def test_settings_come_from_config():
    """One source of truth: the config's sections are the motion response's settings."""
    cfg = config.load()
    assert isinstance(cfg.motion, MotionSettings) and isinstance(cfg.attract, AttractSettings)
    assert MotionResponse(cfg.motion, cfg.attract).a.idle_seconds == cfg.attract.idle_seconds
    with pytest.raises(config.ConfigError, match="motion.moving"):
        config.from_dict({"motion": {"still": 50.0, "moving": 10.0}})


def _engine(backbone, **kw):
    """An engine with config.toml's [dream] settings (the live defaults) at a small size."""
    kw = {"layer": "blocks.10", "size": (128, 96), "precision": "fp32", "backend": "torch", "seed": 0, **kw}
    return DreamEngine(backbone, settings=config.load().dream, **kw)


def _noisy_frames(n: int, sigma: float = 3.0):
    rng = np.random.default_rng(0)
    img = natural_image(256, 192, seed=4).astype(np.float32)
    return [np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def _flicker(outs):
    return float(np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(outs, outs[1:])]))


def test_still_scene_dream_is_strong_and_holds_still(backbone):
    """The live defaults (momentum, denoise) on a still, noisy scene: visibly dreamed,
    and calmer than the same dream without them."""
    cfg = config.load()
    frames = _noisy_frames(24)
    d = cfg.dream
    outs = {}
    for name, momentum, denoise in (("calm", d.momentum, cfg.motion.denoise), ("plain", 0.0, 0.0)):
        eng = _engine(backbone, momentum=momentum)
        temporal = TemporalDream(eng, replace(cfg.motion, denoise=denoise), cfg.attract)
        outs[name] = [temporal(f, dt=DT)[0] for f in frames]
    clean = np.stack(frames).astype(np.float32).mean(0)  # the noise-free picture, near enough
    clean = cv2.resize(clean, (128, 96), interpolation=cv2.INTER_AREA)
    strength = np.abs(outs["calm"][-1].astype(float) - clean).mean()
    calm, plain = _flicker(outs["calm"][12:]), _flicker(outs["plain"][12:])
    assert strength > 6
    assert calm < 0.6 * plain and calm < 2.5


def test_residual_stays_bounded(backbone):
    """Decay 1 and a big step would grow the dream without end; the carried dream is
    held within `limit` every frame, so only the newest step can reach past it."""
    img = natural_image(128, 96, seed=5)
    eng = _engine(backbone, strength=0.05, decay=1.0, momentum=0.5, limit=0.2)
    peaks = []
    for _ in range(10):
        eng.dream(img)
        peaks.append(float(eng.residual.abs().max()))
    assert max(peaks) > 0.2                       # the newest step does reach past it...
    eng.configure(strength=0.0, momentum=0.0)    # ...but what is carried is clamped
    eng.dream(img)
    assert float(eng.residual.abs().max()) <= 0.2 + 1e-5
    assert float(eng.residual.abs().mean()) > 0.03   # and it did dream


def test_soft_limit_keeps_the_dream_below_its_knee_and_bends_it_below_the_limit():
    x = torch.linspace(-2.0, 2.0, 401)
    y = soft_limit(x, 0.3)
    small = x.abs() <= KNEE * 0.3
    assert torch.equal(y[small], x[small])                        # nothing lost below the knee
    assert float(y.abs().max()) <= 0.3 + 1e-6 and float(y.max()) > 0.29  # bounded, and reaches towards it
    assert bool((y[1:] >= y[:-1]).all())                          # monotone: no fold-back
    assert torch.equal(soft_limit(-x, 0.3), -y)


def test_a_still_room_keeps_its_dream_and_grows_it(backbone):
    """The defaults (decay 1): where nothing moves nothing is forgotten, so the carried
    dream comes back exactly (below the knee) and the dream deepens over many steps
    instead of settling within a few."""
    img = natural_image(128, 96, seed=5)
    eng = _engine(backbone)
    assert eng.decay == 1.0
    depth = []
    for _ in range(60):
        out = eng.dream(img)
        depth.append(np.abs(out.astype(np.float32) - cv2.resize(img, (128, 96))).mean())
    assert depth[59] > 1.3 * depth[14] and depth[59] > 12
    kept = eng.residual.clone()
    eng.configure(strength=0.0, momentum=0.0)
    eng.dream(img)
    small = kept.abs() < KNEE * eng.limit
    assert torch.allclose(eng.residual[small], kept[small], atol=2e-6)


def test_motion_brings_the_live_picture_back(backbone):
    """Through TemporalDream with one level for the whole picture (motion.local = false):
    a still scene dreams up; when the scene starts moving fast, gain and blend drop and
    the dream weakens relative to the moving picture."""
    big = natural_image(400, 200, seed=6)
    cfg = config.load()
    eng = _engine(backbone)
    temporal = TemporalDream(eng, replace(cfg.motion, local=False, still=4.0, moving=40.0), cfg.attract)
    still = big[40:136, 0:128]
    for _ in range(12):
        out, st = temporal(still, dt=DT)
    assert st.level < 0.05 and st.gain > 0.95
    still_strength = np.abs(out.astype(float) - still).mean()
    for t in range(1, 10):                      # 6 px per 0.1 s = 60 px/s: full motion
        frame = big[40:136, 6 * t:6 * t + 128]
        out, st = temporal(frame, dt=DT)
    assert st.level > 0.8 and st.blend < 0.6 and st.gain < 0.5
    moving_strength = np.abs(out.astype(float) - frame).mean()
    assert moving_strength < 0.8 * still_strength


def test_attract_mode_drifts_into_the_zoom_and_back_without_a_jump(backbone):
    """An empty room drifts into the zoom (the picture leaves the camera's), and motion
    brings the room back over several frames, not in one cut."""
    big = natural_image(300, 120, seed=7)
    cfg = config.load()
    eng = _engine(backbone)
    attract = AttractSettings(idle_seconds=0.3, fade_in=0.6, fade_out=0.6, zoom=1.05, rotate=1.0)
    temporal = TemporalDream(eng, cfg.motion, attract)
    room = big[12:108, :128]
    states, outs = [], []
    for _ in range(16):
        out, st = temporal(room, dt=DT)
        outs.append(out)
        states.append(st)
    assert states[1].attract == 0.0 and states[-1].attract == 1.0
    zoomed = outs[-1]
    assert np.abs(zoomed.astype(float) - room).mean() > 20      # the zoom has taken over
    for t in range(1, 11):                                      # someone walks in
        out, st = temporal(big[12:108, 3 * t:3 * t + 128], dt=DT)
        outs.append(out)
        states.append(st)
    assert states[-1].attract == 0.0
    back = outs[16:]
    total = np.abs(back[-1].astype(float) - zoomed).mean()
    steps = [np.abs(a.astype(float) - b).mean() for a, b in zip(back, [zoomed] + back[:-1])]
    assert total > 20
    assert max(steps) < 0.5 * total                             # several frames, no cut
    assert np.abs(back[-1].astype(float) - big[12:108, 30:158]).mean() < 15   # the room is back
