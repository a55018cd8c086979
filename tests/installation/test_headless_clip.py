"""A video file recorded headless is frame-exact (every frame in order, at the file's rate
and size, no mirror, no crop), and render.mirror = "auto" mirrors cameras only."""
from __future__ import annotations

import av
import pytest

from conftest import SMALL, nearest_frames, numbered_frame, read_video, small_config, write_clip
from live.__main__ import main
from live.app import App
from live.config import ConfigError
from live.headless_clip import ClipRecording
from live.state import State


def test_headless_recording_of_a_file_is_frame_exact(tmp_path):
    clip = write_clip(tmp_path / "coded.avi", frames=16, size=(96, 72), fps=10, picture=numbered_frame)
    out = tmp_path / "rec.mp4"
    small = [a for s in SMALL for a in ("--set", s)]   # render 160x120: the recording keeps the file's 96x72
    assert main(["--source", str(clip), "--headless", "--frames", "40", "--record", str(out), "--log-file", "",
                 *small]) == 0
    outs = read_video(out)
    assert len(outs) == 16 and outs[0].shape == (72, 96, 3)      # the whole file once, its size
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == 10
    assert nearest_frames(outs, read_video(clip)) == list(range(16))   # frame i from frame i, not mirrored


@pytest.mark.parametrize("setting, camera, mirrored", [
    ("auto", True, True), ("auto", False, False), ("true", False, True), ("false", True, False)])
def test_mirror_auto_mirrors_cameras_only(setting, camera, mirrored):
    state = State.from_config(small_config(f"render.mirror={setting}"), camera=camera)
    assert state.view().mirror is mirrored


def test_mirror_is_auto_by_default_and_files_are_not_mirrored(tmp_path, backbone):
    assert small_config().render.mirror == "auto"
    with pytest.raises(ConfigError, match="render.mirror"):
        small_config('render.mirror="sometimes"')
    clip = write_clip(tmp_path / "c.mp4", frames=3, size=(64, 48))
    for source in (str(clip), "clouds"):
        app = App(small_config(), source, backbone=backbone)
        try:
            assert app.state.view().mirror is False
        finally:
            app.stop()


def test_seconds_alone_records_as_long_as_it_says_not_150_frames(tmp_path):
    """`--seconds` without `--frames` is the length (a `--seconds 600` run used to stop at
    the 150 frames of the --frames default); with neither, 150 frames."""
    clip = write_clip(tmp_path / "long.avi", frames=170, size=(64, 48), fps=25,
                      picture=lambda i: numbered_frame(i % 128, (64, 48)))
    small = [a for s in SMALL for a in ("--set", s)]
    out = tmp_path / "rec.mp4"
    assert main(["--source", str(clip), "--headless", "--seconds", "600", "--record", str(out), "--log-file", "",
                 *small]) == 0
    assert len(read_video(out)) == 170                            # the whole file: time did not run out
    assert main(["--source", str(clip), "--headless", "--record", str(out), "--log-file", "", *small]) == 0
    assert len(read_video(out)) == 150


def test_the_health_page_reads_the_frame_exact_recorders_rate(tmp_path, backbone):
    """The recorder steps the engine itself (no dreamer thread): its passes still count in
    the recent rate the health page and HUD read (it read 0.0 steps/s during a recording)."""
    clip = write_clip(tmp_path / "c.avi", frames=6, size=(64, 48), fps=10)
    app = App(small_config(), str(clip), backbone=backbone)
    try:
        rec = ClipRecording(app, clip, None)
        assert rec.run(tmp_path / "rec.mp4") == 6
        figures = app.health_figures()
    finally:
        rec.reader.close()
        app.stop()
    assert figures["dream_steps"] == 6 * app.dreamer.steps_per_frame
    assert figures["dream_steps_per_second"] > 0
