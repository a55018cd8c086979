"""Frame-exact clip dreaming (python -m tools.dream CLIP OUT.mp4) on small clips written
here, with the real packaged network: every frame, in order, at the clip's rate and size,
with its sound; bad input is one line and exit 2; Ctrl+C keeps a playable video."""
from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import SMALL, interrupt_when, nearest_frames, numbered_frame, read_video, write_clip, write_clip_with_sound
from live.dream.images import natural_picture
from tools.dream import main

ROOT = Path(__file__).resolve().parents[2]
SETS = [a for s in SMALL for a in ("--set", s)]
def video_info(path: Path) -> tuple[Fraction, tuple[int, int], bool]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return v.average_rate, (v.width, v.height), bool(c.streams.audio)


def test_a_90_frame_clip_gives_90_frames_at_its_rate_and_size(tmp_path):
    clip = write_clip(tmp_path / "in.mp4", frames=90, size=(80, 48), fps=25,
                      picture=lambda i: np.roll(natural_picture(80, 48, seed=1), i, axis=1))
    out = tmp_path / "out.mp4"
    assert main([str(clip), str(out), "--size", "64x48", "--quiet", *SETS]) == 0
    frames = read_video(out)
    assert len(frames) == 90
    rate, size, sound = video_info(out)
    assert rate == 25 and size == (80, 48) and not sound
    ins = read_video(clip)
    diff = np.mean([np.abs(a.astype(np.float32) - b).mean() for a, b in zip(frames[30:], ins[30:])])
    assert diff > 4.0            # it dreams: the output is not the clip


def test_frame_i_of_the_output_is_dreamed_from_frame_i_and_frames_n_stops(tmp_path):
    """Every input frame carries its number as bars; output frame j is nearest to input j
    (not j - 1, not a repeat), and no mirror: the bars keep their order."""
    clip = write_clip(tmp_path / "coded.avi", frames=24, size=(96, 72), fps=10, picture=numbered_frame)
    out = tmp_path / "out.mp4"
    assert main([str(clip), str(out), "--frames", "20", "--quiet", *SETS]) == 0
    outs, ins = read_video(out), read_video(clip)
    assert len(outs) == 20
    assert nearest_frames(outs, ins) == list(range(20))


def test_the_clips_sound_survives(tmp_path):
    clip = write_clip_with_sound(tmp_path / "sound.mp4", seconds=2.0, fps=20, size=(64, 48))
    out = tmp_path / "out.mp4"
    assert main([str(clip), str(out), "--size", "48x32", "--quiet", *SETS]) == 0
    rate, size, sound = video_info(out)
    assert (rate, size, sound) == (20, (64, 48), True) and len(read_video(out)) == 40
    with av.open(str(out)) as c:
        audio = c.streams.audio[0]
        seconds = sum(f.samples for f in c.decode(audio)) / audio.rate
    assert seconds == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("make, out, needle", [
    ("text", "o.mp4", "cannot be read as a video"),
    ("tiny", "o.mp4", "is 16x16, smaller than 32x32"),
    ("clip", "adir", "is a directory"),
    ("clip", "o.png", "use .mp4 or .avi"),
    ("missing", "o.mp4", "does not exist"),
])
def test_bad_clip_input_is_one_line_and_exit_2(tmp_path, capsys, make, out, needle):
    (tmp_path / "adir").mkdir()
    clip = tmp_path / "in.mp4"
    if make == "text":
        clip.write_text("not a video at all")
    elif make == "tiny":
        write_clip(clip, frames=3, size=(16, 16))
    elif make == "clip":
        write_clip(clip, frames=3, size=(64, 48))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([str(clip), str(tmp_path / out), "--quiet", *SETS]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before      # nothing written


def test_ctrl_c_keeps_a_playable_partial_video(tmp_path):
    clip = write_clip(tmp_path / "long.mp4", frames=600, size=(64, 48), fps=25,
                      picture=lambda i: np.roll(natural_picture(64, 48, seed=2), i, axis=0))
    out = tmp_path / "out.mp4"
    code, err = interrupt_when([sys.executable, "-m", "tools.dream", str(clip), str(out), *SETS],
                               r"\b(\d\d+)/600", ROOT)
    assert code == 130 and "interrupted" in err
    frames = read_video(out)
    assert 10 <= len(frames) < 600 and frames[0].shape == (48, 64, 3)
