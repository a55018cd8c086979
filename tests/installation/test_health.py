"""The health figures a gallery reads from its office: sampled every 10 s into a history
that stays bounded over days (a simulated clock), one summary line in the log every few
minutes, and Prometheus' text format."""
from __future__ import annotations

import logging

from live.supervision.health import FIELDS, KEEP, PERIOD, Health, metrics


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def figures(n: list[int]):
    def read() -> dict:
        n[0] += 1
        return {"display_fps": 59.5, "dream_steps_per_second": 14.0, "working_size": [368, 208],
                "backend": "openvino", "restarts": 1, "camera_reconnects": 2, "faults": n[0] // 1000}
    return read


def test_history_stays_bounded_over_a_day_and_more(caplog):
    clock, reads = FakeClock(), [0]
    health = Health(figures(reads), clock=clock)
    caplog.set_level(logging.INFO, logger="live.supervision.health")
    for _ in range(int(26 * 3600 / 5)):          # 26 hours, a tick every 5 s
        clock.t += 5.0
        health.tick()
    report = health.report()
    assert set(FIELDS) <= set(report) and report["uptime_s"] == 26 * 3600
    history = report["history"]
    assert len(history) == int(KEEP // PERIOD) == 8640                      # 24 h at one sample per 10 s
    assert history[0]["uptime_s"] >= 2 * 3600 - PERIOD                       # the oldest two hours dropped
    assert all(b["uptime_s"] - a["uptime_s"] == PERIOD for a, b in zip(history, history[1:]))
    assert reads[0] < 26 * 3600 / PERIOD + 400                               # read when sampled, not every tick
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("health: ")]
    assert len(lines) == 26 * 12                                             # one every 5 minutes
    assert "display 59.5 fps, dream 14.0 steps/s at 368x208 (openvino)" in lines[-1]
    assert "restarts 1, camera reconnects 2" in lines[-1]


def test_prometheus_text_format():
    f = {"uptime_s": 12.5, "rss_mb": 800.0, "display_fps": None, "dream_steps_per_second": 9.5,
         "working_size": [320, 240], "backend": "torch", "restarts": 0, "camera_reconnects": 3, "faults": 1}
    text = metrics(f).decode()
    assert "dreamcam_uptime_seconds 12.5" in text and "dreamcam_dream_steps_per_second 9.5" in text
    assert 'dreamcam_working_size_pixels{axis="width"} 320.0' in text
    assert 'dreamcam_backend_info{backend="torch"} 1.0' in text
    assert "dreamcam_camera_reconnects_total 3.0" in text and "dreamcam_faults_total 1.0" in text
    assert "display_fps" not in text                                         # headless: nothing to show
