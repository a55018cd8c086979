"""The whole app recording headless while OSC and the web API steer it over loopback: the
layer, strength, blend and presets change in the dreams being recorded, the preview
streams the recorded frames, and a snapshot is refused (no screen) with a reason."""
from __future__ import annotations

import pytest

from conftest import OscClient, alongside, http, mjpeg_frame, read_video, small_config, wait_for
from live.app import App
from live.headless import run_headless
from live.supervision.health import FIELDS

TOKEN = "headless-remote-token-0123456789"


def dreamed(app: App, layer: str) -> bool:
    """A dream made at `layer` has been published since the change."""
    seq, dream = app.dreamer.dreams.latest()
    return dream is not None and dream.info.get("layer") == layer


def steer(app: App, log: list) -> None:
    """The performer: OSC and the API, while the recording runs in the main thread."""
    state, remotes = app.state, app.remotes
    assert wait_for(lambda: remotes.osc.port and remotes.web.port and app.dreamer.dreams.latest()[0] > 0, 120)
    api = f"http://127.0.0.1:{remotes.web.port}"
    osc = OscClient(remotes.osc.port)
    try:
        osc.send("/dreamcam/layer", "blocks.7")
        osc.send("/dreamcam/strength", 0.02)
        osc.send("/dreamcam/blend", 0.6)
        assert wait_for(lambda: dreamed(app, "blocks.7"), 120)
        assert app.dreamer.engine.strength == pytest.approx(0.02) and state.blend == pytest.approx(0.6)
        log.append("osc: layer, strength, blend")
        status, reply = http("POST", api + "/api/set", {"layer": "blocks.12", "strength": 0.03, "blend": 0.9}, TOKEN)
        assert status == 200 and wait_for(lambda: dreamed(app, "blocks.12"), 120)
        assert app.dreamer.engine.strength == pytest.approx(0.03) and state.blend == 0.9
        log.append("api: layer, strength, blend")
        p = state.presets[4]
        osc.send("/dreamcam/preset", 5)
        assert wait_for(lambda: dreamed(app, p.layer), 120) and state.strength == p.strength
        p = state.presets[2]
        status, _ = http("POST", api + "/api/set", {"preset": 3}, TOKEN)
        assert status == 200 and wait_for(lambda: dreamed(app, p.layer), 120) and state.blend == p.blend
        log.append("presets")
        status, reply = http("POST", api + "/api/action", {"action": "snapshot"}, TOKEN)
        assert status == 422 and "no screen to snapshot in a headless recording" in reply["error"]
        frame = mjpeg_frame(api + "/stream.mjpg", TOKEN)
        assert frame.shape == (120, 160, 3)                  # the recorded frame, at its size
        log.append("preview")
        status, health = http("GET", api + "/api/health", token=TOKEN)
        assert status == 200 and set(FIELDS) <= set(health) and isinstance(health["history"], list)
        assert health["uptime_s"] > 0 and health["rss_mb"] > 50 and health["working_size"] == list(app.dreamer.adaptive.size)
        assert health["dream_steps_per_second"] > 0 and health["display_fps"] is None   # headless: no screen
        assert health["faults"] == 0 and health["restarts"] == 0 and health["camera_reconnects"] == 0
        status, text = http("GET", api + "/metrics", token=TOKEN)
        assert status == 200 and "dreamcam_dream_steps_per_second " in text and "dreamcam_faults_total 0.0" in text
        assert http("GET", api + "/api/health")[0] == 401 and http("GET", api + "/metrics")[0] == 401
        log.append("health")
    finally:
        osc.close()


def test_osc_and_the_api_steer_a_headless_recording(tmp_path, backbone):
    cfg = small_config("osc.enabled=true", "osc.port=0", "remote.enabled=true", "remote.port=0",
                       f"remote.token=\"{TOKEN}\"")
    app = App(cfg, "clouds", backbone=backbone)
    done: list[str] = []
    out = tmp_path / "steered.mp4"
    assert alongside(app, lambda: steer(app, done), lambda: run_headless(app, None, out, seconds=600)) == 0
    assert done == ["osc: layer, strength, blend", "api: layer, strength, blend", "presets", "preview", "health"]
    assert len(read_video(out)) >= 4
    assert app.remotes.osc.applied >= 4 and app.remotes.osc.dropped == 0
