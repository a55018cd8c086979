"""The dream follows the music: a clip's soundtrack as features per frame (real librosa on
clips with hits written here), [[audio.map]] rules through the one command layer, and a
clip with a clear beat dreamed frame-exactly whose dream pulses on its beats."""
from __future__ import annotations

import sys
import time

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
    from qa.beat_report import main as report
    clip = beat_clip(tmp_path)
    assert report([str(clip), "--out", str(tmp_path / "r"), "--quiet", *SETS, "--set", "render.blend=0.5"]) == 0
    import json
    rep = json.loads((tmp_path / "r" / "beats.json").read_text())
    assert rep["beats"] == [round(h * FPS) for h in HITS] and rep["offsets"] == [0] * len(HITS)
    assert len(rep["strength"]) == len(rep["sent"]) == 110 and (tmp_path / "r" / "beats.png").stat().st_size > 10_000
    assert "| beats | 8 |" in capsys.readouterr().out


def test_the_listener_hears_each_hit_as_it_comes():
    """Live: samples in blocks as a sound card gives them; each hit is a beat within two
    hops (23 ms) of its start (after the first half second it judges against), none between."""
    from live.audio.listener import Listener
    sr = 22050
    hits = [0.48 * k for k in range(1, 12)]
    y = beats(np.arange(6 * sr) / sr, hits).astype(np.float32)
    ear, heard, levels = Listener(sr), [], []
    for k in range(0, len(y), ear.hop):
        before = ear.beats
        ear.feed(y[k:k + ear.hop])
        f = ear.take()
        levels.append(f["low"])
        if ear.beats > before:
            assert f["beat"] == 1.0 and ear.take()["beat"] == 0.0   # once per beat
            heard.append((k + ear.hop) / sr)
    expected = [h for h in hits if h > 0.6]
    assert len(heard) == len(expected)
    assert all(0 <= got - h <= 2 * ear.hop / sr + 1e-9 for got, h in zip(heard, expected)), (heard, expected)
    assert 0.0 <= min(levels) and max(levels) <= 1.0 and np.median(levels) > 0.3   # the drone, not silence


def test_no_microphone_is_one_line_and_the_show_goes_on(tmp_path, caplog):
    """This machine has no sound card (and maybe no PortAudio): one line, and a headless run
    with [audio] on records as always."""
    from live.__main__ import main as live
    from live.audio.microphone import Microphone
    cfg = config.from_dict({"audio": {"enabled": True, "device": "no such input"}})
    assert Microphone.maybe(cfg.audio) is None
    lines = [r for r in caplog.records if r.name.startswith("live.audio")]
    assert len(lines) == 1 and "carrying on without it" in lines[0].getMessage()
    out = tmp_path / "rec.mp4"
    assert live(["--source", "clouds", "--headless", "--frames", "4", "--record", str(out), "--log-file", "", *SETS,
                 "--set", "audio.enabled=true"]) == 0
    assert len(read_video(out)) == 4


@pytest.fixture
def jack_input(monkeypatch):
    """A JACK server whose input a player client of the test feeds: the microphone hears
    what the test plays, through PortAudio as from a sound card."""
    jack = pytest.importorskip("jack", reason="JACK-Client plays into the input (pip install JACK-Client)")
    try:
        import sounddevice  # noqa: F401
    except OSError as exc:
        pytest.skip(f"PortAudio is missing here ({exc}; apt-get install libportaudio2)")

    def up() -> bool:
        try:
            jack.Client("probe", no_start_server=True).close()
            return True
        except jack.JackError:
            return False
    from conftest import jack_server
    with jack_server(monkeypatch, up, rate=44100, period=256) as name:
        sounddevice._terminate()       # PortAudio lists devices when it starts: again, now JACK is up
        sounddevice._initialize()
        try:
            yield jack, name
        finally:
            sounddevice._terminate()   # let go of JACK before the server stops (else PortAudio aborts at exit)
    sounddevice._initialize()


def test_the_microphone_hears_a_beat_and_the_dream_pumps_on_it(jack_input):
    """The live path for real: a JACK client plays hits every 0.5 s into the input the
    installation listens to; the listener hears each one and the blend pulses on it."""
    jack, name = jack_input
    from live.audio.follower import Follower
    from live.audio.microphone import Microphone
    c = commands(0.5)
    audio = config.from_dict({"audio": {"enabled": True, "device": "system"}}).audio
    mic = Microphone(audio)
    rules = Follower(audio.map, c, mic.listener, clock=None)
    player = jack.Client("player", servername=name)
    sr = player.samplerate
    y = beats(np.arange(20 * sr) / sr, [0.5 * k for k in range(1, 40)]).astype(np.float32)
    out, pos = player.outports.register("out"), [0]

    @player.set_process_callback
    def play(frames: int) -> None:
        buf = out.get_array()
        chunk = y[pos[0]:pos[0] + frames]
        buf[:] = 0.0
        buf[:len(chunk)] = chunk
        pos[0] += frames
    mic.start()
    rules.start()
    try:
        player.activate()
        for port in [p.name for p in player.get_ports(is_input=True, is_audio=True) if not p.name.startswith("system")]:
            for other in player.get_all_connections(port):
                player.disconnect(other, port)
            player.connect(out, port)
        start, blends = pos[0], []
        while pos[0] - start < 4 * sr:
            blends.append(c.values()["blend"])
            time.sleep(0.01)
    finally:
        rules.stop()
        mic.stop()
        player.deactivate()
        player.close()
    assert 6 <= mic.listener.beats <= 9, mic.listener.beats     # 8 hits in 4 s (the first half second judged)
    assert max(blends) > 0.9 and min(blends[len(blends) // 4:]) < 0.7   # up on each beat, back between


def test_a_midi_clock_gives_the_beat_and_its_tempo(tmp_path):
    """A mixer's MIDI clock (real mido messages through the MIDI handler): a beat on the first
    of every 24 pulses from Start, the tempo from their spacing; while it runs its beat
    replaces the one the microphone hears, and when it stops the heard one is back."""
    import mido
    from live.audio.follower import Follower
    from live.audio.listener import Listener
    from live.remote.midi import MidiControl
    c = commands(0.5)
    midi = MidiControl(config.from_dict({}).midi, c, mapping_path=tmp_path / "midi.toml")
    t = [0.0]
    midi.clock.now = lambda: t[0]
    follower = Follower((AudioRule(setting="blend", amount=1.0, seconds=0.1),), c, Listener(), midi.clock,
                        now=lambda: t[0])
    midi.handle(mido.Message("start"))
    beats = []
    for k in range(24 * 4):                    # four quarter notes at 125 bpm: a pulse every 20 ms
        midi.handle(mido.Message("clock"))
        beats.append(follower.features()["beat"])
        follower.step()
        t[0] += 0.02
    assert [k for k, b in enumerate(beats) if b] == [0, 24, 48, 72]
    assert midi.clock.bpm == pytest.approx(125.0)
    midi.handle(mido.Message("stop"))
    assert not midi.clock.running() and follower.features()["beat"] == 0.0
    assert c.values()["blend"] < 0.6                    # fell back after the last beat


def test_with_a_midi_clock_and_no_microphone_only_beats_drive_anything():
    from live.audio.clock import BeatClock
    from live.audio.follower import Follower
    c = commands(0.5)
    clock = BeatClock(now=lambda: 0.0)
    follower = Follower((AudioRule(feature="level", setting="strength", lo=0.001, hi=0.002),
                         AudioRule(setting="blend")), c, ear=None, clock=clock, now=lambda: 0.0)
    before = c.values()["strength"]
    clock.message("start")
    clock.message("clock")
    assert follower.step() == {"blend": pytest.approx(1.0)}      # the beat's pulse, and nothing for the level
    assert c.values()["strength"] == before and follower.features() == {"beat": 0.0}
