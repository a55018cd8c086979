"""qa.standin: a 1280x720-style stand-in from a 4:3 clip, each frame repeated, the middle
kept; bad input is one line and exit 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np

from conftest import nearest_frames, numbered_frame, read_video, write_clip
from live.dream.images import resize_image
from qa.standin import crop_to_aspect, main

ROOT = Path(__file__).resolve().parents[2]


def test_crop_keeps_the_middle_at_the_aspect():
    img = np.zeros((480, 640, 3), np.uint8)
    img[60:420] = 255                                  # the 16:9 band of a 4:3 frame
    band = crop_to_aspect(img, 16 / 9)
    assert band.shape == (360, 640, 3) and band.min() == 255
    tall = crop_to_aspect(img, 1.0)
    assert tall.shape == (480, 480, 3)


def test_each_frame_repeated_at_the_size_and_twice_the_rate(tmp_path):
    clip = write_clip(tmp_path / "in.mp4", frames=6, size=(96, 72), fps=10.0, picture=numbered_frame)
    out = tmp_path / "out.mp4"
    assert main([str(clip), str(out), "--size", "128x72", "--repeat", "2", "--quiet"]) == 0
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert (stream.width, stream.height) == (128, 72) and float(stream.average_rate) == 20.0
    frames = read_video(out)
    assert len(frames) == 12
    originals = [resize_image(crop_to_aspect(numbered_frame(i), 128 / 72), (128, 72), cv2.INTER_CUBIC)
                 for i in range(6)]
    # the bar strip survives the crop (top third of the middle band): frame i shows twice
    found = nearest_frames([f[:, :, ::-1] for f in frames], originals)
    assert found == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    for args, says in ((["nowhere.mp4", "out.mp4"], "does not exist"),
                       (["nowhere.mp4", "out.mp4", "--repeat", "9"], "--repeat 9 is out of range")):
        done = subprocess.run([sys.executable, "-m", "qa.standin", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
