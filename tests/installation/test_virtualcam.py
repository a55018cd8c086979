"""Video out as a webcam (pyvirtualcam, v4l2loopback): where a loopback device exists the
frames sent are read back from it as a camera app would; where none exists (this machine:
no kernel module in a container) or pyvirtualcam is missing, it is one line and the
installation runs on."""
from __future__ import annotations

import glob
import logging
import sys
import time

import numpy as np
import pytest

from conftest import SMALL, read_video
from live.dream.images import natural_picture
from live.virtualcam import VirtualCamera

SETS = [a for s in SMALL for a in ("--set", s)]


def loopback_device() -> str | None:
    pvc = pytest.importorskip("pyvirtualcam", reason="pip install pyvirtualcam")
    for dev in sorted(glob.glob("/dev/video*")):
        try:
            pvc.Camera(width=64, height=64, fps=10, device=dev).close()
            return dev
        except Exception:
            continue
    return None


def test_without_pyvirtualcam_it_is_one_line(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    caplog.set_level(logging.WARNING)
    assert VirtualCamera.maybe(True, "", 30.0) is None and VirtualCamera.maybe(False, "", 30.0) is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "needs pyvirtualcam" in lines[0] and "carrying on" in lines[0]


def test_no_loopback_device_is_one_line_and_the_recording_goes_on(tmp_path, caplog):
    if loopback_device() is not None:
        pytest.skip("a v4l2loopback device exists here: the frames test covers it")
    caplog.set_level(logging.WARNING)
    assert VirtualCamera.maybe(True, "/dev/video42", 30.0) is None
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("live")]
    assert len(lines) == 1 and "no virtual camera '/dev/video42'" in lines[0]
    from live.__main__ import main
    out = tmp_path / "rec.mp4"
    assert main(["--source", "clouds", "--headless", "--frames", "3", "--record", str(out), "--log-file", "", *SETS,
                 "--set", "output.virtualcam=true"]) == 0
    assert len(read_video(out)) == 3


def test_frames_reach_a_camera_app_through_the_loopback_device():
    dev = loopback_device()
    if dev is None:
        pytest.skip("no v4l2loopback device here (sudo modprobe v4l2loopback exclusive_caps=1)")
    import cv2
    cam = VirtualCamera(dev, fps=30.0)
    cam.start()
    picture = natural_picture(160, 120, seed=6)
    try:
        end = time.monotonic() + 20
        reader = None
        got = None
        while time.monotonic() < end and got is None:
            cam.offer_rgb(picture)
            reader = reader or cv2.VideoCapture(dev)
            ok, frame = reader.read() if reader.isOpened() else (False, None)
            got = frame if ok else None
            time.sleep(0.05)
    finally:
        cam.stop()
    assert got is not None, "the camera app read no frame"
    rgb = cv2.resize(got, (160, 120))[..., ::-1].astype(int)
    assert np.abs(rgb - picture).mean() < 12
