"""qa.coherence --clip: the measures on real footage mean what they say, on clips
written here (the same video measures zero, a brightened copy measures its offset, the
masks find the moving square and the still background) and the pictures are written."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import write_clip
from live.dream.images import natural_picture
from qa.coherence import main

BG = natural_picture(96, 72, seed=5)


def walker(i: int, offset: int = 0) -> np.ndarray:
    img = BG.astype(np.int32) + offset
    img[24:48, 8 + 3 * i:24 + 3 * i] = (230, 40, 40)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_clip_report_measures_strength_flicker_and_masks(tmp_path):
    clip = write_clip(tmp_path / "walk.avi", frames=24, size=(96, 72), fps=10, picture=walker)
    bright = write_clip(tmp_path / "bright.avi", frames=24, size=(96, 72), fps=10,
                        picture=lambda i: walker(i, offset=20))
    out = tmp_path / "report"
    assert main(["--clip", str(clip), "--dreamed", str(clip), "--dreamed", str(bright), "--labels", "same,bright",
                 "--sheet-frames", "12", "--warm", "4", "--out", str(out)]) == 0
    report = json.loads((out / "clip.json").read_text())
    res, cover = report["results"], report["coverage"]
    assert res["same"]["strength"] == 0.0 and res["same"]["warp_x_input"] == pytest.approx(1.0)
    assert res["bright"]["strength_still"] == pytest.approx(20, abs=3)
    assert res["bright"]["flicker_still_x_input"] == pytest.approx(1.0, abs=0.5)
    assert 0.2 < cover["still"] < 0.95 and 0.0 < cover["moving"] < 0.3
    assert cv2.imread(str(out / "clip.png")) is not None
    sheet = cv2.imread(str(out / "clip_sheet.png"))
    assert sheet is not None and sheet.shape[1] > 4 * 96      # input | same | bright | masks


WIDE = natural_picture(384, 288, seed=7)
CHECKER = np.indices((288, 384)).sum(0) % 2 * 2 - 1   # +-1, one pixel: finer than 320 wide holds


def offset(img: np.ndarray, d: np.ndarray | int) -> np.ndarray:
    return np.clip(img.astype(np.int32) + (d[..., None] if isinstance(d, np.ndarray) else d), 0, 255).astype(np.uint8)


def test_clip_report_fine_share_late_strength_and_growth_curve(tmp_path):
    """A smooth change has no detail above 320 wide, a one-pixel checkerboard nearly all;
    a change that grows second by second shows in `late` and in the curve."""
    kw = {"frames": 30, "size": (384, 288), "fps": 10}
    clip = write_clip(tmp_path / "still.avi", picture=lambda i: WIDE, **kw)
    smooth = write_clip(tmp_path / "smooth.avi", picture=lambda i: offset(WIDE, 15 * (i // 10)), **kw)
    fine = write_clip(tmp_path / "fine.avi", picture=lambda i: offset(WIDE, 30 * CHECKER), **kw)
    out = tmp_path / "report"
    assert main(["--clip", str(clip), "--dreamed", str(smooth), "--dreamed", str(fine), "--labels", "smooth,fine",
                 "--warm", "1", "--out", str(out)]) == 0
    report = json.loads((out / "clip.json").read_text())
    res = report["results"]
    assert res["smooth"]["fine"] < 0.05 < 0.6 < res["fine"]["fine"]
    assert res["smooth"]["strength_late"] == pytest.approx(22.5, abs=3)        # seconds 1 and 2: 15 and 30
    assert res["smooth"]["strength_still"] == pytest.approx(15.5, abs=3)       # frames 1..29
    curve = report["strength_still_per_second"]["smooth"]
    assert curve == pytest.approx([15, 30], abs=3)


BIG = natural_picture(384, 300, seed=11)
PATTERN = (natural_picture(384, 300, seed=12).astype(np.int32).mean(-1) - 128).astype(np.int32)


def shaken(i: int, pattern: str = "") -> np.ndarray:
    """The scene with the camera shaking 3 px up and down; a pattern that sticks to the
    scene (a dream that follows it) or to the screen (one that does not)."""
    y = 3 * (i % 2)
    img = BIG.astype(np.int32) + (PATTERN[..., None] if pattern == "stuck" else 0)
    img = img[y:y + 288]
    if pattern == "screen":
        img = img + PATTERN[:288, :, None]
    return np.clip(img, 0, 255).astype(np.uint8)


def test_clip_report_steady_flicker_takes_the_camera_shake_out(tmp_path):
    """On a shaking camera a dream stuck to the scene shakes with it: the plain flicker
    counts that against it, the steady flicker counts the one stuck to the screen."""
    kw = {"frames": 20, "size": (384, 288), "fps": 10}
    clip = write_clip(tmp_path / "shake.avi", picture=shaken, **kw)
    stuck = write_clip(tmp_path / "stuck.avi", picture=lambda i: shaken(i, "stuck"), **kw)
    screen = write_clip(tmp_path / "screen.avi", picture=lambda i: shaken(i, "screen"), **kw)
    out = tmp_path / "report"
    assert main(["--clip", str(clip), "--dreamed", str(stuck), "--dreamed", str(screen), "--labels", "stuck,screen",
                 "--warm", "2", "--out", str(out)]) == 0
    res = json.loads((out / "clip.json").read_text())["results"]
    assert res["screen"]["flicker_still"] < res["stuck"]["flicker_still"]
    assert res["screen"]["flicker_steady"] > 2 * res["stuck"]["flicker_steady"]
    assert res["input"]["flicker_steady"] < 0.5 * res["input"]["flicker_still"]
