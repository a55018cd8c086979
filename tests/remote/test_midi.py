"""MIDI: real mido messages through the handler the port's callback uses: learn (the l key,
then a control: it binds to the last-changed setting and is saved), CC scaled onto the
setting's range, notes running actions, a hand-written mapping file checked, odd
messages ignored, no backend or device one log line, and a real virtual port where the
ALSA sequencer exists."""
from __future__ import annotations

import logging
import shutil

import mido
import pygame
import pytest

from conftest import jack_server, small_config, wait_for
from live import controls
from live.__main__ import main
from live.commands import Commands
from live.config import ConfigError
from live.remote.midi import BACKENDS, CC, MidiControl, load_mapping
from live.state import State
from live.supervision import logs


def midi(tmp_path, *more: str) -> tuple[MidiControl, Commands]:
    cfg = small_config("midi.enabled=true", f"midi.mapping=\"{(tmp_path / 'midi.toml').as_posix()}\"", *more)
    commands = Commands(State.from_config(cfg))
    return MidiControl(cfg.midi, commands), commands


def key(k: int) -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN, key=k, mod=0, unicode="")


def test_learn_binds_the_moved_control_to_the_last_changed_setting_and_saves_it(tmp_path):
    ctl, c = midi(tmp_path)
    state = c.state
    controls.handle(key(pygame.K_EQUALS), c)                 # the performer turns the strength up (+) ...
    controls.handle(key(pygame.K_l), c)                      # ... presses l ...
    assert state.midi_learn
    ctl.handle(mido.Message("control_change", channel=2, control=7, value=40))   # ... and moves a fader
    assert not state.midi_learn and state.message == "MIDI: CC 7 (channel 3) -> strength, saved"
    ctl.handle(mido.Message("control_change", channel=2, control=7, value=127))
    assert state.strength == 0.5                             # the top of DreamSettings.strength's range
    ctl.handle(mido.Message("control_change", channel=2, control=7, value=0))
    assert state.strength == 0.0
    ctl.handle(mido.Message("control_change", channel=0, control=7, value=127))   # another channel: unmapped
    assert state.strength == 0.0
    controls.handle(key(pygame.K_RIGHT), c)                  # next preset, then learn a pad for it
    controls.handle(key(pygame.K_l), c)
    ctl.handle(mido.Message("note_on", channel=9, note=36, velocity=90))
    assert state.message == "MIDI: note 36 (channel 10) -> next_preset, saved"
    before = state.preset
    ctl.handle(mido.Message("note_on", channel=9, note=36, velocity=90))
    ctl.handle(mido.Message("note_on", channel=9, note=36, velocity=0))          # a note-off in disguise
    ctl.handle(mido.Message("note_off", channel=9, note=36))
    assert state.preset == before + 1 and ctl.handled == 3     # two CCs and one note
    text = ctl.path.read_text()
    assert "[[cc]]" in text and 'setting = "strength"' in text and 'action = "next_preset"' in text
    again, _ = midi(tmp_path)                                # the saved mapping comes back
    assert again.mapping == ctl.mapping


def test_learn_needs_something_changed_first_and_odd_messages_are_ignored(tmp_path):
    ctl, c = midi(tmp_path)
    c.run("toggle_midi_learn")
    ctl.handle(mido.Message("control_change", control=1, value=64))
    assert "change a setting first" in c.state.message and c.state.midi_learn and not ctl.mapping.ccs
    ctl.handle(mido.Message("note_on", note=40, velocity=10))
    assert "press a key for an action first" in c.state.message and not ctl.path.exists()
    before = c.public_state()
    c.run("toggle_midi_learn")
    for msg in (mido.Message("sysex", data=[1, 2, 3]), mido.Message("clock"), mido.Message("pitchwheel", pitch=999),
                mido.Message("program_change", program=5), mido.Message("control_change", control=99, value=1),
                mido.Message("aftertouch", value=3), None, "garbage", object()):
        ctl.handle(msg)
    assert {k: v for k, v in c.public_state().items() if k != "message"} == {
        k: v for k, v in before.items() if k != "message"} | {"midi_learn": False}


def test_a_mapping_file_scales_onto_narrower_spans_layers_and_presets(tmp_path):
    (tmp_path / "midi.toml").write_text(
        '[[cc]]\nchannel = 1\ncontrol = 1\nsetting = "strength"\nlo = 0.004\nhi = 0.04\n\n'
        '[[cc]]\nchannel = 1\ncontrol = 2\nsetting = "layer"\n\n'
        '[[cc]]\nchannel = 1\ncontrol = 3\nsetting = "preset"\n\n'
        '[[cc]]\nchannel = 1\ncontrol = 4\nsetting = "freeze"\n\n'
        '[[note]]\nchannel = 1\nnote = 60\naction = "reset_dream"\n')
    ctl, c = midi(tmp_path)
    s = c.state
    ctl.handle(mido.Message("control_change", control=1, value=127))
    assert s.strength == pytest.approx(0.04)
    ctl.handle(mido.Message("control_change", control=2, value=0))
    assert s.layer == s.layers[0]
    ctl.handle(mido.Message("control_change", control=3, value=127))
    assert s.preset == len(s.presets) - 1
    ctl.handle(mido.Message("control_change", control=4, value=100))
    ctl.handle(mido.Message("note_on", note=60, velocity=1))
    assert s.frozen and s.resets == 1
    assert ctl.mapping.ccs[(1, 1)] == CC(1, 1, "strength", 0.004, 0.04)


@pytest.mark.parametrize("text, message", [
    ("[[cc]\n", "not a readable TOML MIDI mapping"),
    ('[[cc]]\nchannel = 0\ncontrol = 1\nsetting = "strength"\n', "'channel' must be a whole number 1-16"),
    ('[[cc]]\nchannel = 1\ncontrol = 200\nsetting = "strength"\n', "'control' must be a whole number 0-127"),
    ('[[cc]]\nchannel = 1\ncontrol = 1\nsetting = "objective"\n', "'setting' must be one of"),
    ('[[cc]]\nchannel = 1\ncontrol = 1\nsetting = "strength"\nhi = 9.0\n', "'hi' = 9.0 must be a number in"),
    ('[[note]]\nchannel = 1\nnote = 1\naction = "rm -rf"\n', "'action' must be one of"),
])
def test_a_broken_mapping_file_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "midi.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_mapping(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_broken_mapping_stops_the_start_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "midi.toml"
    bad.write_text('[[note]]\nchannel = 1\nnote = 1\naction = "nope"\n')
    args = ["--headless", "--record", str(tmp_path / "a.mp4"), "--source", "clouds", "--set", "midi.enabled=true",
            "--set", f"midi.mapping=\"{bad.as_posix()}\""]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "midi.toml: note[0]: 'action' must be one of" in err


@pytest.mark.parametrize("backend", ["auto", "jack"])
def test_no_backend_or_no_device_is_one_log_line(tmp_path, capfd, backend):
    ctl, _ = midi(tmp_path, "midi.port=\"no such device 1234\"", f"midi.backend=\"{backend}\"")
    capfd.readouterr()
    logs.setup("INFO")                                       # the console, as python -m live has it
    try:
        ctl.start()
        ctl.stop()
        err = capfd.readouterr().err                         # not the ALSA / JACK libraries' own lines
    finally:
        for h in [h for h in logging.getLogger().handlers if getattr(h, "_dreamcam", False)]:
            logging.getLogger().removeHandler(h)
    assert len(err.splitlines()) == 1 and "MIDI off: " in err and ctl.port is None


@pytest.fixture
def midi_server(monkeypatch):
    """A MIDI system with virtual ports: the ALSA sequencer, or else a JACK server of the
    test's own (dummy audio driver, its own server name), stopped afterwards."""
    try:
        mido.Backend(BACKENDS["alsa"], load=True).get_input_names()
        yield "alsa"
        return
    except Exception as exc:
        alsa = str(exc).splitlines()[0]
    jack = mido.Backend(BACKENDS["jack"], load=True)

    def up() -> bool:
        try:
            jack.get_input_names()
            return True
        except Exception:
            return False
    if shutil.which("jackd") is None:
        pytest.skip(f"no virtual MIDI ports here: no ALSA sequencer ({alsa}) and no jackd")
    with jack_server(monkeypatch, up):
        yield "jack"


def test_a_real_virtual_port(tmp_path, midi_server):
    out = mido.Backend(BACKENDS[midi_server], load=True).open_output("dreamcam-test-out", virtual=True)
    ctl, c = midi(tmp_path, "midi.port=\"dreamcam-test-out\"", f"midi.backend=\"{midi_server}\"")
    ctl.mapping.ccs[(1, 7)] = CC(1, 7, "blend")
    ctl.mapping.notes[(1, 60)] = "toggle_freeze"
    try:
        ctl.start()
        assert ctl.port is not None
        out.send(mido.Message("control_change", control=7, value=0))
        out.send(mido.Message("note_on", note=60, velocity=100))
        assert wait_for(lambda: c.state.blend == 0.0 and c.state.frozen)
    finally:
        ctl.stop()
        out.close()
