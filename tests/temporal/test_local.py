"""Local (per-pixel) motion response: a walker shows through while the rest of the room
keeps dreaming; a shaking camera is not a visitor; attract mode keys on the whole room;
the engine's per-pixel maps reproduce today's dream when they are uniform."""
from dataclasses import replace

import numpy as np
import pytest

from live import config
from live.dream import DreamEngine
from live.dream.images import natural_picture
from live.dream.settings import AttractSettings, MotionSettings
from live.dream.temporal.coherent import TemporalDream
from live.dream.temporal.flow import camera_shift
from live.dream.temporal.local import LocalMotion

DT = 0.04   # a 25 fps clip, one dream step per frame


def square_flow(h=60, w=80, box=(20, 30, 20, 30), v=(2.0, 0.0), shake=(0.0, 0.0)) -> np.ndarray:
    """Backward flow of a square moving by v px/frame over a background shaking by `shake`."""
    f = np.zeros((h, w, 2), np.float32)
    f[...] = shake
    y0, y1, x0, x1 = box
    f[y0:y1, x0:x1] = (v[0] + shake[0], v[1] + shake[1])
    return f


def test_motion_is_local_with_attack_and_release():
    lm = LocalMotion(MotionSettings(change_range=0.0), AttractSettings(enabled=False))  # flow alone
    for i in range(20):   # a walker moving left 2 px/frame = 50 px/s, for 0.8 s
        x0 = 60 - 2 * i
        st = lm.update(square_flow(box=(20, 30, x0, x0 + 10)), DT)
    assert st.level[25, x0 + 5] > 0.9                  # the walker: moving
    assert st.level[55, 75] < 0.05 and st.gain[55, 75] > 0.95   # the far floor: still, dreaming
    assert st.blend[25, x0 + 5] < 0.6 and st.carry[25, x0 + 5] < 0.9
    assert st.room > lm.s.still and st.idle == 0.0     # the room is not idle
    for _ in range(25):   # 1 s of stillness: the level releases slowly (release 1.5 s)
        st = lm.update(np.zeros((60, 80, 2), np.float32), DT)
    assert 0.3 < st.level[25, x0 + 5] < 0.7
    assert st.room < lm.s.still and st.idle == pytest.approx(1.0)


def test_flow_without_change_in_the_picture_is_not_motion():
    """DIS spreads a walker's flow over the flat floor around it: where the grey picture
    did not change beyond sensor noise, that flow does not count."""
    lm = LocalMotion(MotionSettings(), AttractSettings(enabled=False))
    rng = np.random.default_rng(0)
    prev = np.full((60, 80), 120, np.uint8)
    cur = np.clip(prev + rng.normal(0, 1.5, prev.shape), 0, 255).astype(np.uint8)   # noise only
    cur[20:30, 20:30] = 30                                                          # the walker
    for _ in range(10):
        st = lm.update(square_flow(box=(10, 40, 10, 40)), DT, prev=prev, cur=cur)
    assert st.level[25, 25] > 0.5 and st.level[12, 12] < 0.05


def test_camera_shake_is_not_motion():
    lm = LocalMotion(MotionSettings(change_range=0.0), AttractSettings(enabled=False))
    for _ in range(10):
        st = lm.update(square_flow(v=(0.0, 0.0), shake=(0.0, 0.4)), DT)   # 10 px/s shake everywhere
    assert float(st.level.max()) < 0.05
    assert np.allclose(camera_shift(square_flow(shake=(0.3, -0.2))), (0.3, -0.2))


def test_a_panning_camera_steps_gently_but_keeps_its_dream():
    """A pan is not a visitor (level, carry and blend stay), but each step re-dreams the
    moved picture: the step is as gentle as for motion, so the carried dream rides along
    instead of swimming; when the camera stops, full strength comes back."""
    s = MotionSettings(change_range=0.0)
    lm = LocalMotion(s, AttractSettings(enabled=False))
    for _ in range(20):
        st = lm.update(square_flow(v=(0.0, 0.0), shake=(1.0, 0.0)), DT)   # 25 px/s pan for 0.8 s
    assert float(st.level.max()) < 0.05
    assert np.allclose(st.carry, 1.0) and np.allclose(st.blend, 1.0)
    assert np.allclose(st.gain, s.moving_gain, atol=0.02)
    for _ in range(125):   # 5 s still: released (release 1.5 s)
        st = lm.update(np.zeros((60, 80, 2), np.float32), DT)
    assert float(st.gain.min()) > 0.95


def test_attract_keys_on_the_whole_room():
    """One small walker anywhere keeps the room out of attract mode; once everyone is
    still, it drifts in as before."""
    lm = LocalMotion(MotionSettings(change_range=0.0), AttractSettings(idle_seconds=1.0, fade_in=0.4))
    for i in range(50):   # 2 s: a 4x4 walker in a corner
        st = lm.update(square_flow(box=(2, 6, 2 + i % 30, 6 + i % 30)), DT)
    assert st.attract == 0.0 and st.idle == 0.0
    for _ in range(50):   # 2 s of a still room
        st = lm.update(np.zeros((60, 80, 2), np.float32), DT)
    assert st.attract == 1.0


def _engine(backbone, **kw) -> DreamEngine:
    kw = {"layer": "blocks.10", "size": (80, 64), "precision": "fp32", "backend": "torch", "seed": 0, **kw}
    return DreamEngine(backbone, settings=config.load().dream, **kw)


def test_uniform_maps_reproduce_todays_dream(backbone):
    """Maps of ones dream exactly what today's scalar call dreams; a uniform gain map of
    0.5 is a step size of 0.5 (the step is linear in its size up to the [0, 1] clamp; the
    colour decorrelation, clamped after it, is off: it moves where the clamp bites)."""
    frame = natural_picture(80, 64, seed=3)
    one = np.ones((64, 80), np.float32)
    for gain in (1.0, 0.5):
        outs = []
        for maps in (False, True):
            eng = _engine(backbone, decorrelate=0.0)
            for _ in range(3):
                o = eng.dream(frame, gain=gain * one, carry=0.9 * one) if maps else \
                    eng.dream(frame, gain=gain, carry=0.9)
            outs.append(o.astype(int))
            eng.close()
        diff = np.abs(outs[0] - outs[1])
        assert diff.max() <= (1 if gain == 1.0 else 2) and diff.mean() < 0.05, f"gain {gain}"
    eng = _engine(backbone)
    with pytest.raises(ValueError, match="motion map is 10x10 but the working size is 80x64"):
        eng.dream(frame, gain=np.ones((10, 10), np.float32))
    eng.close()


def test_a_walker_leaves_the_still_room_dreaming(backbone):
    """A dark square walks across a still textured room: the room far from it dreams as
    strongly as with nobody there; the walker itself carries much less dream."""
    room = natural_picture(128, 96, seed=5)
    cfg = config.load()
    motion = replace(cfg.motion, denoise=0.0)
    strengths = {}
    for walker in (False, True):
        eng = _engine(backbone, size=(128, 96))
        temporal = TemporalDream(eng, motion, replace(cfg.attract, enabled=False))
        for t in range(24):
            frame = room.copy()
            x = 4 + 2 * t                       # 2 px per 0.04 s = 50 px/s
            if walker:
                frame[30:60, x:x + 16] = (40, 40, 60) + (np.arange(16) * 4)[None, :, None]
            out, st = temporal(frame, DT)
        diff = np.abs(out.astype(float) - frame).mean(-1)
        strengths[walker] = (diff[:, 96:].mean(), diff[32:58, x + 2:x + 14].mean(), st)
        eng.close()
    far_alone, _, _ = strengths[False]
    far, on_walker, st = strengths[True]
    assert far > 0.85 * far_alone                # the room keeps dreaming
    assert on_walker < 0.6 * far                 # the walker shows through
    assert st.level[45, x + 8] > 0.8 and st.level[:, 100:].max() < 0.1
