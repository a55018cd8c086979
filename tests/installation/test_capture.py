"""Capture: newest-frame hand-over, every source type from files the test writes, and a
source that fails and comes back without stopping the show."""
from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np
import pytest

from conftest import wait_for, write_clip as write_video
from live.capture import BAD_FRAMES_LIMIT, Capture, Slot
from live.config import SourceConfig
from live.sources import CloudsSource, ImageSource, SourceError, SourcePlan, VideoSource, plan_source

RED_BGR = (0, 0, 255)


# -- the slot -----------------------------------------------------------------------------

def test_slow_consumer_never_sees_a_backlog():
    slot: Slot[int] = Slot()
    done = threading.Event()

    def produce():
        for i in range(1, 2001):
            slot.put(i)
            if i % 50 == 0:
                time.sleep(0.002)
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    seen, seq = [], 0
    while not done.is_set() or seq < slot.latest()[0]:
        seq, item = slot.wait(seq, timeout=1.0)
        seen.append(item)
        time.sleep(0.02)  # a slow consumer
        # what it got was the newest at the time, and it never gets an older one later
    assert seen[-1] == 2000
    assert seen == sorted(set(seen))          # strictly newer each time
    assert len(seen) < 2000 / 5               # it skipped the backlog instead of working through it


def test_wait_times_out_without_new_items():
    slot: Slot[str] = Slot()
    slot.put("a")
    seq, item = slot.latest()
    assert slot.wait(seq, timeout=0.05) == (seq, "a")


def test_capture_hands_over_the_newest_frame_with_number_and_timestamp(tmp_path):
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), np.full((48, 64, 3), RED_BGR, np.uint8))
    cap = Capture(plan_source(str(path), SourceConfig(fps=200)))
    cap.start()
    try:
        assert wait_for(lambda: cap.slot.latest()[0] >= 3)
        time.sleep(0.3)  # the consumer is busy; frames keep coming
        seq, frame = cap.slot.latest()
        assert frame.number == seq > 10     # every frame counted, only the newest kept
        assert time.perf_counter() - frame.timestamp < 0.25
        assert frame.image[0, 0].tolist() == [255, 0, 0]  # RGB
        with pytest.raises(ValueError):
            frame.image[0, 0] = 0           # shared read-only with the renderer and dreamer
    finally:
        cap.stop()


# -- each source type ---------------------------------------------------------------------

def test_video_source_loops_at_its_frame_rate(tmp_path):
    src = VideoSource(write_video(tmp_path / "clip.avi", frames=5, fps=20.0), loop=True)
    assert src.period == pytest.approx(1 / 20)
    blues = [int(src.read()[0, 0, 2]) for _ in range(12)]
    src.close()
    assert blues[0] < 10 and blues[5] < 10 and blues[10] < 10   # came round again
    assert blues[4] > 60


def test_video_source_without_loop_holds_the_last_frame(tmp_path):
    src = VideoSource(write_video(tmp_path / "clip.avi", frames=3), loop=False)
    frames = [src.read() for _ in range(6)]
    assert all(f is not None for f in frames)
    assert int(frames[-1][0, 0, 2]) == pytest.approx(int(frames[2][0, 0, 2]), abs=4)


def test_capture_paces_a_video_file(tmp_path):
    cap = Capture(plan_source(str(write_video(tmp_path / "clip.avi", fps=20.0)), SourceConfig()))
    cap.start()
    try:
        assert wait_for(lambda: cap.slot.latest()[0] >= 1)
        first = cap.slot.latest()[1]
        time.sleep(0.5)
        last = cap.slot.latest()[1]
    finally:
        cap.stop()
    assert last.number > first.number
    assert last.number - first.number <= 0.5 * 20 + 3   # paced, not read flat out
    assert last.image.shape == (48, 64, 3) and last.source == "clip.avi"


def test_image_and_clouds_sources(tmp_path):
    path = tmp_path / "pic.jpg"
    cv2.imwrite(str(path), np.full((40, 60, 3), RED_BGR, np.uint8))
    img = ImageSource(path).read()
    assert img.shape == (40, 60, 3) and img[20, 30, 0] > 240 and img[20, 30, 2] < 15
    clouds = CloudsSource(320, 180)
    a = clouds.read()
    assert a.shape == (180, 320, 3) and a.dtype == np.uint8
    b, r = a[..., 2].mean(), a[..., 0].mean()
    assert b > r  # a blue sky


def test_bad_sources_fail_at_start_with_one_line(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        plan_source(str(tmp_path / "missing.mp4"), SourceConfig())
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SourceError, match="cannot be read"):
        plan_source(str(junk), SourceConfig())
    bad_img = tmp_path / "junk.png"
    bad_img.write_bytes(b"nope")
    with pytest.raises(SourceError, match="cannot be read as an image"):
        plan_source(str(bad_img), SourceConfig())
    plan = plan_source("3", SourceConfig())
    assert plan.is_camera and plan.description == "camera 3"  # cameras are retried, not refused


# -- faults -------------------------------------------------------------------------------

class Solid:
    """A tiny source: a solid colour, or bad frames while `bad` is set."""

    def __init__(self, name, color, control=None):
        self.name, self.period, self.color = name, 0.005, color
        self.control = control if control is not None else {}

    def read(self):
        if self.control.get("bad"):
            return None
        return np.full((24, 32, 3), self.color, np.uint8)

    def close(self):
        pass


def test_a_camera_that_fails_and_recovers_keeps_the_show_going(caplog):
    control = {"present": False, "bad": False, "opens": 0}

    def opener():
        control["opens"] += 1
        if not control["present"]:
            raise SourceError("no camera at index 0")
        return Solid("camera 0", (200, 0, 0), control)

    plan = SourcePlan(opener, "camera 0", is_camera=True)
    cap = Capture(plan, reconnect_seconds=0.05, max_backoff=0.2,
                  fallback=lambda: Solid("clouds", (0, 0, 200)))
    sources = []

    def collect():
        seq = 0
        while not stop.is_set():
            seq, f = cap.slot.wait(seq, 0.1)
            if f is not None and (not sources or sources[-1] != f.source):
                sources.append(f.source)

    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="live.capture")
    cap.start()
    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: sources[-1:] == ["clouds"])        # absent at start: clouds
        time.sleep(0.4)
        assert control["opens"] >= 3                               # retried with back-off
        control["present"] = True
        assert wait_for(lambda: sources[-1:] == ["camera 0"])      # came back by itself
        control["bad"] = True                                      # unplugged / bad frames
        assert wait_for(lambda: sources[-1:] == ["clouds"])
        control["bad"] = False
        assert wait_for(lambda: sources[-1:] == ["camera 0"])
    finally:
        stop.set()
        cap.stop()
    assert sources[:4] == ["clouds", "camera 0", "clouds", "camera 0"]
    assert len(cap.events) == 4, cap.events                         # each event logged once
    assert "unavailable" in cap.events[0] and "back" in cap.events[1]
    assert "lost (bad frames)" in cap.events[2] and "back" in cap.events[3]
    assert sum("lost" in r.message for r in caplog.records) == 1


def test_auto_without_camera_says_so_and_shows_clouds():
    def opener():
        raise SourceError("no camera at index 0")

    cap = Capture(SourcePlan(opener, "camera 0", is_camera=True, auto=True), reconnect_seconds=5.0)
    cap.start()
    try:
        assert wait_for(lambda: cap.slot.latest()[0] >= 1)
        frame = cap.slot.latest()[1]
    finally:
        cap.stop()
    assert frame.source == "clouds"
    assert cap.events == ["no camera found; showing the built-in clouds source, retrying every 5s and up"]
    assert "clouds" in cap.status


def test_a_source_that_raises_mid_run_is_replaced_then_retried():
    calls = {"n": 0}

    class Exploding(Solid):
        def read(self):
            calls["n"] += 1
            if calls["n"] > 3:
                raise OSError("device disconnected")
            return super().read()

    cap = Capture(SourcePlan(lambda: Exploding("camera 1", (1, 2, 3)), "camera 1", True),
                  reconnect_seconds=10.0, fallback=lambda: Solid("clouds", (0, 0, 200)))
    cap.start()
    try:
        assert wait_for(lambda: cap.slot.latest()[1] is not None and cap.slot.latest()[1].source == "clouds")
    finally:
        cap.stop()
    assert calls["n"] == 4                     # one exception is enough to switch
    assert cap.events == ["camera 1 lost (OSError: device disconnected); showing clouds, retrying in 10s"]
    assert BAD_FRAMES_LIMIT > 1
