"""The live pipeline dreams through TemporalDream: flow warps the carried dream and the
motion response's blend map reaches the renderer with the dream (Dream.picture)."""
from __future__ import annotations

import cv2
import numpy as np

from conftest import small_config as cfg
from live.app import App
from live.dream.images import natural_picture as natural_image
from live.dream.temporal.coherent import TemporalDream
from live.headless import run_headless


def test_headless_pipeline_runs_flow_and_motion(tmp_path, backbone):
    src = tmp_path / "scene.png"
    cv2.imwrite(str(src), cv2.cvtColor(natural_image(160, 120), cv2.COLOR_RGB2BGR))
    app = App(cfg("render.blend=1.0", "render.mirror=false", "dream.adaptive=false"), str(src), backbone=backbone)
    assert run_headless(app, 5, tmp_path / "rec.mp4") == 0
    temporal = app.dreamer._temporal
    assert isinstance(temporal, TemporalDream) and temporal.engine is app.dreamer.engine
    assert app.dreamer.engine.warp == temporal.tracker.warp   # the carried dream follows the flow
    assert app.dreamer.engine.momentum == app.cfg.dream.momentum
    seq, dream = app.dreamer.dreams.latest()
    assert dream is not None and 0.0 < dream.blend <= 1.0
    level = temporal.state.level                               # the local response: a map
    assert level.shape == app.dreamer.engine.size[::-1] and np.isfinite(level).all() and (level >= 0).all()
    assert dream.picture is not None and dream.picture.blend.shape == level.shape


def test_motion_off_leaves_blend_alone(tmp_path, backbone):
    src = tmp_path / "scene.png"
    cv2.imwrite(str(src), cv2.cvtColor(natural_image(160, 120), cv2.COLOR_RGB2BGR))
    app = App(cfg("motion.enabled=false", "dream.adaptive=false"), str(src), backbone=backbone)
    assert run_headless(app, 3, tmp_path / "rec.mp4") == 0
    assert app.dreamer.dreams.latest()[1].blend == 1.0
