"""The one video writer: what it writes plays back frame for frame at the asked rate; the
final name holds only a finished file; a full disk (a real file-size limit in a
subprocess: writes fail with EFBIG as a full disk fails with ENOSPC) stops it with one
line and keeps the complete part playable; the free-space warning; the clip's sound is
copied in step and cut to the video's length."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import file_size_limit, read_video, write_clip_with_sound
from live.dream.files import OutputError, partial_name
from live.dream.video import VideoWriter, incomplete_name

ROOT = Path(__file__).resolve().parents[2]


def colour(i: int) -> np.ndarray:
    """A 64x48 RGB frame whose colour says which frame it is."""
    img = np.zeros((48, 64, 3), np.uint8)
    img[:] = (10 * i % 250, 200 - 5 * i % 200, 128)
    return img


def read_back(path: Path) -> list[np.ndarray]:
    return [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in read_video(path)]


@pytest.mark.parametrize("name,codec,fps", [("a.mp4", "h264", 25), ("b.avi", "mjpeg", 15),
                                            ("c.mp4", "h264", Fraction(30000, 1001))])
def test_every_frame_plays_back_in_order_at_the_rate(tmp_path, name, codec, fps):
    out = tmp_path / "videos" / name
    with VideoWriter(out, fps, (64, 48)) as video:
        for i in range(20):
            video.write(colour(i))
    assert sorted(p.name for p in out.parent.iterdir()) == [name]               # no partial left
    frames = read_back(out)
    assert len(frames) == 20
    for i, f in enumerate(frames):
        assert np.abs(f.astype(int) - colour(i)).mean() < 6, i
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == codec and s.average_rate == Fraction(fps)


def test_odd_sizes_and_refusals(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4", 10, (65, 49)) as video:
        video.write(np.full((49, 65, 3), 90, np.uint8))
    assert len(read_back(tmp_path / "odd.mp4")) == 1
    with pytest.raises(OutputError, match=r"--record '.*x\.gif': use a file name ending in \.mp4 or \.avi"):
        VideoWriter(tmp_path / "x.gif", 10, (64, 48), what="--record")
    (tmp_path / "adir.mp4").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        VideoWriter(tmp_path / "adir.mp4", 10, (64, 48))
    with VideoWriter(tmp_path / "w.mp4", 10, (64, 48)) as video, pytest.raises(ValueError, match="64x48"):
        video.write(np.zeros((48, 32, 3), np.uint8))


def test_ctrl_c_keeps_the_finished_frames_and_nothing_leaves_no_file(tmp_path):
    out = tmp_path / "cut.mp4"
    with pytest.raises(KeyboardInterrupt), VideoWriter(out, 10, (64, 48)) as video:
        for i in range(5):
            video.write(colour(i))
        raise KeyboardInterrupt
    assert len(read_back(out)) == 5 and not partial_name(out).exists()
    with VideoWriter(tmp_path / "none.mp4", 10, (64, 48)):
        pass
    assert list(tmp_path.iterdir()) == [out]                                      # no file, no partial


WRITE_UNTIL_FULL = """
import json, sys
import numpy as np
from live.dream.files import WriteError
from live.dream.video import VideoWriter
out = sys.argv[1]
rng = np.random.default_rng(0)
try:
    with VideoWriter(out, 15, (64, 48), what="--record") as video:
        for i in range(100000):   # noise: every frame costs bytes
            video.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
except WriteError as exc:
    print(json.dumps({"error": str(exc), "frames": video.frames}))
"""


@pytest.mark.parametrize("name", ["full.mp4", "full.avi"])
def test_a_full_disk_stops_at_once_and_keeps_the_complete_part_under_another_name(tmp_path, name):
    out = tmp_path / name
    proc = subprocess.run([sys.executable, "-c", WRITE_UNTIL_FULL, str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, preexec_fn=file_size_limit(200_000))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    result = json.loads(proc.stdout)
    kept = incomplete_name(out)
    message = result["error"]
    assert "\n" not in message and f"--record '{out}': cannot write (File too large)" in message
    assert f"are kept in {kept}" in message
    assert not out.exists() and not partial_name(out).exists()                    # never the final name
    stated = int(message.split("the first ")[1].split(" frames")[0])
    frames = read_back(kept)
    assert 0 < stated == len(frames) < result["frames"]                           # it plays, as said
    with av.open(str(kept)) as c:                                                   # and decodes cleanly
        assert sum(1 for _ in c.decode(video=0)) == stated


def test_warns_when_the_requested_length_will_not_fit(tmp_path, caplog):
    rng = np.random.default_rng(1)
    caplog.set_level(logging.WARNING)
    asked = []
    for free in (10_000, 10**12):
        caplog.clear()
        with VideoWriter(tmp_path / f"w{free}.mp4", 10, (64, 48), what="--record", frames=1000,
                         free_bytes=lambda folder: asked.append(folder) or free) as video:
            for _ in range(12):
                video.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        warnings = [r.getMessage() for r in caplog.records if "free there" in r.getMessage()]
        if free == 10_000:   # noise at 64x48 takes several kB a frame: 1000 frames do not fit
            assert len(warnings) == 1 and "--record" in warnings[0] and "1000 frames need about" in warnings[0]
        else:
            assert warnings == []
    assert asked == [tmp_path, tmp_path]                                 # checked once per recording


def test_the_clips_sound_is_copied_in_step_and_cut_to_the_video(tmp_path, caplog):
    clip = write_clip_with_sound(tmp_path / "clip.mp4", seconds=3.0, fps=20, tone_from=1.0)
    out = tmp_path / "dreamed.mp4"
    with VideoWriter(out, 20, (64, 48), audio_from=clip) as video:
        for i in range(40):                                             # 2.0 s of the 3 s clip
            video.write(colour(i))
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"] and c.streams.audio[0].codec_context.name == "aac"
        sound = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    rate = 48000
    onset = np.argmax(np.abs(sound) > 0.1) / rate
    assert onset == pytest.approx(1.0, abs=0.003)                       # in step with the picture
    assert len(sound) / rate == pytest.approx(2.0, abs=1024 / rate + 1e-6)   # cut to the video (one packet)
    assert len(read_back(out)) == 40
    silent = tmp_path / "silent.mp4"
    from conftest import write_clip
    write_clip(silent)
    caplog.set_level(logging.INFO)
    with VideoWriter(tmp_path / "quiet.mp4", 20, (64, 48), audio_from=silent) as video:
        video.write(colour(0))
    with av.open(str(tmp_path / "quiet.mp4")) as c:
        assert not c.streams.audio
    assert any("has no sound" in r.getMessage() for r in caplog.records)
    with pytest.raises(OutputError, match="cannot read the sound of"):
        VideoWriter(tmp_path / "x.mp4", 20, (64, 48), audio_from=tmp_path / "missing.mp4")
    assert not (tmp_path / "x.mp4").exists() and not partial_name(tmp_path / "x.mp4").exists()

