"""Every [dream] key, set in the config, reaches the part that acts on it (issue 21: one
settings path). [motion] and [attract] travel as the frozen sections themselves. A key added to DreamSettings fails here until it is walked to its use."""
from __future__ import annotations

import dataclasses

from conftest import small_config
from live.app import App
from live.dream.engine import ENGINE_SETTINGS
from live.dream.settings import DreamSettings

# a value other than the default for every [dream] key (and inside its range)
WALKED = {"model": "efficientnet_lite0", "layer": "blocks.8", "objective": "channel:3", "size": (128, 96),
          "gpu_size": (512, 384), "tile": (64, 48), "gpu_tile": (256, 192),
          "steps_per_frame": 2, "strength": 0.02, "jitter": 5, "decay": 0.9, "grad_norm": "mean",
          "momentum": 0.5, "limit": 0.4, "decorrelate": 1.0, "precision": "bf16", "backend": "torch", "device": "cpu",
          "adaptive": False, "target_steps_per_second": 12.5, "zoom": 1.05}
WHERE = {   # where each key that is not the engine's acts
    "model": lambda app: app.backbone.name,
    "device": lambda app: app.backbone.device.type,
    "adaptive": lambda app: app.dreamer.adaptive.enabled,
    "target_steps_per_second": lambda app: app.dreamer.adaptive.target,
    "zoom": lambda app: app.state.zoom,
    "size": lambda app: app.dreamer.base_size,   # on the CPU; on CUDA gpu_size (below)
    "gpu_size": lambda app: app.cfg.dream.on("cuda").size,
    "gpu_tile": lambda app: app.cfg.dream.on("cuda").tile,
}


def _toml(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    return str(list(value)) if isinstance(value, tuple) else str(value)


def test_every_dream_key_reaches_the_part_that_uses_it(backbone):
    fields = {f.name: f.default for f in dataclasses.fields(DreamSettings)}
    assert set(WALKED) == set(fields), "walk the new [dream] key to where it acts"
    assert all(WALKED[k] != fields[k] for k in fields if k != "model"), "a walked value must differ from the default"
    assert set(WHERE) | set(ENGINE_SETTINGS) >= set(fields)
    cfg = small_config(*(f"dream.{k}={_toml(v)}" for k, v in WALKED.items()))
    app = App(cfg, "clouds", backbone=backbone)
    try:
        engine = app.dreamer.engine
        for name in ENGINE_SETTINGS:
            if name != "size":   # the engine's size is the dreamer's fit of [dream] size to the source
                assert getattr(engine, name) == WALKED[name], name
        for name, read in WHERE.items():
            assert read(app) == WALKED[name], name
        w, h = engine.size
        assert abs(w * h - 128 * 96) <= 0.1 * 128 * 96
        assert app.dreamer.steps_per_frame == WALKED["steps_per_frame"]
        assert app.dreamer.base_size == app.cfg.dream.on(app.backbone.device.type).size
        temporal = app.dreamer.make_temporal(engine)   # [motion] and [attract] travel whole, frozen
        assert temporal.response.s is cfg.motion and temporal.response.a is cfg.attract
    finally:
        engine.close()
