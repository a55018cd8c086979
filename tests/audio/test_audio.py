"""The dream follows the music: a clip's soundtrack as features per frame (real librosa on
clips with hits written here), [[audio.map]] rules through the one command layer, and a
clip with a clear beat dreamed frame-exactly whose dream pulses on its beats."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import SMALL, beats, read_video, write_clip_with_sound
from live import config
from live.audio.features import AudioError, analyse, soundtrack
from live.audio.rules import Reactor
from live.commands import Commands
from live.config import AudioRule, ConfigError
from live.dream.images import natural_picture
from live.state import State
from tools.dream import main

FPS = 25
HITS = [0.48 * k for k in range(1, 9)]          # 125 bpm: a hit every 12 frames from frame 12
SETS = [a for s in SMALL for a in ("--set", s)]


def beat_clip(tmp_path, seconds: float = 4.4, size=(96, 72)):
    still = natural_picture(*size, seed=2)
    return write_clip_with_sound(tmp_path / "beat.mp4", seconds=seconds, fps=FPS, size=size, rate=44100,
                                 sound=lambda t: beats(t, HITS), picture=lambda i: still)


def test_the_beats_of_a_clip_land_on_the_frames_that_show_them(tmp_path):
    y = soundtrack(beat_clip(tmp_path))
    assert len(y) / 22050 == pytest.approx(4.4, abs=0.05)
    f = analyse(y, FPS, 110)
    expected = [round(h * FPS) for h in HITS]
    assert list(f.beats) == expected
    assert 115 < f.tempo < 135
    assert f.values["onset"][expected].min() > 0.5 > np.delete(f.values["onset"], expected).mean()
    assert f.values["low"].max() == pytest.approx(1.0, abs=0.05)   # the drone, scaled to its top


def test_a_clip_without_sound_and_librosa_missing_are_one_line(tmp_path, monkeypatch):
    from conftest import write_clip
    with pytest.raises(AudioError, match="has no soundtrack"):
        soundtrack(write_clip(tmp_path / "mute.mp4"))
    monkeypatch.setitem(sys.modules, "librosa", None)
    with pytest.raises(AudioError, match=r"pip install 'dreamcam\[audio\]'"):
        analyse(np.zeros(22050, np.float32), FPS, 25)


def commands(blend: float = 0.5) -> Commands:
    cfg = config.from_dict({"render": {"blend": blend}, "presets": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    return Commands(State.from_config(cfg, camera=False))


def test_a_beat_pulses_a_setting_on_the_operators_value_and_it_falls_back():
    c = commands(0.5)
    r = Reactor((AudioRule(setting="blend", amount=1.0, seconds=0.2),), c)
    quiet, beat = {"beat": 0.0}, {"beat": 1.0}
    assert r.frame(quiet, 0.0)["blend"] == 0.5
    assert r.frame(beat, 0.04)["blend"] == pytest.approx(1.0)
    assert r.frame(quiet, 0.24)["blend"] == pytest.approx(0.5 + 0.5 * np.exp(-1))
    assert c.values()["blend"] == pytest.approx(0.5 + 0.5 * np.exp(-1))
    c.run("blend", 0.3)                                  # the operator moves it: the new base
    assert r.frame(quiet, 2.0)["blend"] == pytest.approx(0.3, abs=1e-4)
    assert r.frame(beat, 2.04)["blend"] == pytest.approx(0.6)


def test_levels_scale_onto_a_span_and_beats_run_actions_every_nth():
    c = commands()
    r = Reactor((AudioRule(feature="low", setting="strength", lo=0.01, hi=0.03),
                 AudioRule(action="next_preset", every=2)), c)
    runs = []
    c.state.next_preset = lambda: runs.append(k)          # count the runs, frame by frame
    for k, beat in enumerate([1, 0, 1, 1, 0, 1, 0, 1]):   # rises at frames 0, 2, 5, 7 (3 is held)
        r.frame({"low": 0.5, "beat": float(beat)}, k / FPS)
    assert c.values()["strength"] == pytest.approx(0.02)
    assert runs == [0, 5]                                  # the 1st and 3rd rise: every 2nd


@pytest.mark.parametrize("rule, needle", [
    (dict(setting="blend", action="deeper"), "one of them"),
    (dict(), "one of them"),
    (dict(action="quit_now"), "'action' = 'quit_now' must be one of"),
    (dict(setting="objective"), "'setting' = 'objective' must be one of"),
    (dict(setting="freeze"), "a beat pulses a number"),
    (dict(feature="level", setting="blend", hi=2.0), "'hi' = 2.0 must be a number in blend's range"),
])
def test_a_rule_that_cannot_drive_anything_is_one_line(rule, needle):
    with pytest.raises(ConfigError, match="audio.map\\[0\\]: .*" + needle.replace("[", "\\[").replace("(", "\\(")):
        Reactor((AudioRule(**rule),), commands())


def test_the_map_in_config_toml_is_checked_like_every_setting():
    cfg = config.from_dict({"audio": {"enabled": True, "map": [{"feature": "onset", "setting": "blend", "lo": 0.2}]}})
    assert cfg.audio.map == (AudioRule(feature="onset", setting="blend", lo=0.2),)
    with pytest.raises(ConfigError, match=r"'audio.map\[0\].feature' = 'bass' is not allowed"):
        config.from_dict({"audio": {"map": [{"feature": "bass"}]}})
    with pytest.raises(ConfigError, match=r"'audio.map' must be a list of \[\[audio.map\]\] tables"):
        config.from_dict({"audio": {"map": {"feature": "beat"}}})


def assert_in_step(out, clip) -> None:
    """The dream's strength in the output jumps on the very frames the hits are heard (the
    biggest rise near each hit is on its frame) and does not rise in between."""
    s = np.array([np.abs(o.astype(np.float32) - i).mean() for o, i in zip(read_video(out), read_video(clip))])
    rise = np.diff(s, prepend=s[0])
    hits = [round(h * FPS) for h in HITS]
    for h in hits:
        near = range(h - 3, min(h + 4, len(rise)))
        assert max(near, key=lambda i: rise[i]) == h, (h, np.round(rise[h - 3:h + 4], 2))
    between = np.delete(rise, hits)[8:]                 # after the first frames, where every dream grows
    assert rise[hits].min() > 3 * between.max() > 0    # no rise between the hits (it falls back)


def test_a_clip_with_a_clear_beat_dreams_in_step_with_it(tmp_path):
    clip, out = beat_clip(tmp_path), tmp_path / "out.mp4"
    assert main([str(clip), str(out), "--quiet", *SETS, "--set", "audio.enabled=true",
                 "--set", "render.blend=0.5"]) == 0
    assert_in_step(out, clip)


def test_the_headless_recorder_follows_a_files_beat_too(tmp_path):
    from live.__main__ import main as live
    clip, out = beat_clip(tmp_path), tmp_path / "rec.mp4"
    assert live(["--source", str(clip), "--headless", "--record", str(out), "--log-file", "", *SETS,
                 "--set", "audio.enabled=true", "--set", "render.blend=0.5"]) == 0
    assert_in_step(out, clip)


def test_no_soundtrack_dreams_on_with_one_line_unless_the_clip_is_asked_for(tmp_path, capsys, caplog):
    from conftest import write_clip
    clip = write_clip(tmp_path / "mute.mp4", frames=6, size=(64, 48))
    assert main([str(clip), str(tmp_path / "a.mp4"), "--quiet", *SETS, "--set", "audio.enabled=true"]) == 0
    assert "has no soundtrack" in caplog.text
    assert main([str(clip), str(tmp_path / "b.mp4"), "--quiet", *SETS, "--set", "audio.enabled=true",
                 "--set", "audio.source=\"clip\""]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no soundtrack to follow" in err[0]


def test_beat_report_measures_the_dream_against_the_beats(tmp_path, capsys):
    from tools.beat_report import main as report
    clip = beat_clip(tmp_path)
    assert report([str(clip), "--out", str(tmp_path / "r"), "--quiet", *SETS, "--set", "render.blend=0.5"]) == 0
    import json
    rep = json.loads((tmp_path / "r" / "beats.json").read_text())
    assert rep["beats"] == [round(h * FPS) for h in HITS] and rep["offsets"] == [0] * len(HITS)
    assert len(rep["strength"]) == len(rep["sent"]) == 110 and (tmp_path / "r" / "beats.png").stat().st_size > 10_000
    assert "| beats | 8 |" in capsys.readouterr().out
