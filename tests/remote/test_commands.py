"""The one command layer: ranges from the settings dataclasses, refusals with reasons that
change nothing, several settings at once, kiosk and headless limits, the key table and
the OSC address list built from the same registry."""
from __future__ import annotations

import dataclasses
import math

import pytest

from conftest import objective_check, small_config
from live import controls
from live.__main__ import main
from live.commands import ACTIONS, COMMANDS, SETTINGS, CommandError, Commands, field_range
from live.config import RenderConfig
from live.dream.settings import DreamSettings
from live.state import State


def commands(*more: str, backbone=None) -> Commands:
    state = State.from_config(small_config(*more))
    return Commands(state, objective_check(backbone) if backbone is not None else None)


def test_ranges_come_from_the_settings_dataclasses():
    fields = {f.name: f for f in dataclasses.fields(DreamSettings)}
    assert field_range(COMMANDS["strength"]) == fields["strength"].metadata["range"]
    assert field_range(COMMANDS["zoom"]) == fields["zoom"].metadata["range"]
    blend = {f.name: f for f in dataclasses.fields(RenderConfig)}["blend"]
    assert field_range(COMMANDS["blend"]) == blend.metadata["range"]
    c = commands()
    hi = field_range(COMMANDS["strength"])[1]
    c.run("strength", hi)                                    # the edge is allowed
    with pytest.raises(CommandError, match=r"'strength' = .* is out of range; allowed 0.0 to 0.5"):
        c.run("strength", hi * 1.01)


def test_every_action_is_a_state_method_and_every_setting_a_state_field():
    state = State.from_config(small_config())
    names = {f.name for f in dataclasses.fields(State)}
    for cmd in ACTIONS:
        assert callable(getattr(state, cmd.name, None)), cmd.name
    for cmd in SETTINGS:
        assert cmd.attr in names or cmd.name == "preset", cmd.name
    used = {b.action for b in controls.BINDINGS}
    assert used <= set(COMMANDS) and {"quit", "snapshot", "reset_dream", "preset"} <= used


BAD = [("strength", 0.9, "out of range"), ("strength", -0.01, "out of range"), ("strength", math.nan, "finite"),
       ("strength", math.inf, "finite"), ("strength", "0.02", "must be a number"), ("strength", True, "must be a number"),
       ("blend", 1.5, "out of range"), ("zoom", 0.5, "out of range"), ("layer", "blocks.99", "does not exist"),
       ("layer", 7, "non-empty string"), ("layer", "", "non-empty string"), ("preset", 0, "out of range"),
       ("preset", 6, "out of range"), ("preset", 2.5, "whole number"), ("freeze", 2, "true/false"),
       ("freeze", "yes", "true/false"), ("objective", "x" * 500, "at most 200"), ("objective", "a\x00b", "printable"),
       ("nonsense", 1, "unknown command"), (None, 1, "unknown command"), ("quit", 1, "is an action")]


@pytest.mark.parametrize("name, value, reason", BAD, ids=[f"{n}={v!r}"[:30] for n, v, _ in BAD])
def test_bad_values_are_refused_with_a_reason_and_change_nothing(name, value, reason):
    c = commands()
    before = c.public_state()
    with pytest.raises(CommandError, match=reason):
        c.run(name, value, source="osc")
    assert c.public_state() == before


def test_an_objective_the_layer_cannot_dream_is_refused(backbone):
    c = commands(backbone=backbone)
    c.run("objective", "class:banana")
    assert c.state.objective == "class:banana"
    with pytest.raises(CommandError, match="objective 'class:no such thing'"):
        c.run("objective", "class:no such thing")
    c.run("objective", "channel:100")
    with pytest.raises(CommandError, match="'layer': objective 'channel:100' at stem"):
        c.run("layer", "stem")                             # stem has fewer channels
    assert (c.state.layer, c.state.objective) == ("blocks.10", "channel:100")
    c.set_many({"layer": "blocks.12", "objective": "channel:150"})   # checked at the new layer
    assert (c.state.layer, c.state.objective) == ("blocks.12", "channel:150")


def test_several_settings_at_once_all_or_nothing():
    c = commands()
    before = c.public_state()
    with pytest.raises(CommandError, match="'blend' = 3"):
        c.set_many({"strength": 0.02, "layer": "blocks.7", "blend": 3})
    assert c.public_state() == before
    assert c.set_many({"strength": 0.02, "preset": 3, "blend": 0.5}) == ["preset", "strength", "blend"]
    p = c.state.presets[2]
    assert (c.state.preset, c.state.layer, c.state.strength, c.state.blend) == (2, p.layer, 0.02, 0.5)
    with pytest.raises(CommandError, match="one or more settings"):
        c.set_many({})
    with pytest.raises(CommandError, match="one or more settings"):
        c.set_many(["strength", 0.1])


def test_osc_style_values_and_what_the_remotes_read():
    c = commands()
    c.run("freeze", 1.0)                                     # a toggle widget sends floats
    c.run("preset", 2.0)
    c.run("strength", 0)                                     # an int for a float setting
    values = c.values()
    assert values["freeze"] is True and values["preset"] == 2 and values["strength"] == 0.0
    assert set(values) == {s.name for s in SETTINGS}
    public = c.public_state()
    for key in ("layer", "objective", "strength", "blend", "preset"):    # the API's contract
        assert key in public
    assert public["presets"] == [p.name for p in c.state.presets] and public["preset_name"] == c.state.presets[1].name


def test_kiosk_and_headless_limits():
    c = commands("kiosk.enabled=true", "kiosk.snapshots=true")
    for name in ("quit", "toggle_fullscreen"):
        with pytest.raises(CommandError, match="not allowed from a remote in kiosk mode"):
            c.run(name, source="remote")
    with pytest.raises(CommandError, match="kiosk mode"):
        c.run("fullscreen", False, source="osc")
    assert c.state.running and c.state.fullscreen
    c.run("quit", source="key")                              # Ctrl+Shift+Q: its binding is allowed in kiosk
    assert not c.state.running
    c.run("snapshot", source="remote")
    assert c.state.snapshots == 1                            # the window loop takes it
    c.state.headless = True
    with pytest.raises(CommandError, match="no screen to snapshot in a headless recording"):
        c.run("snapshot", source="remote")
    off = commands("kiosk.enabled=true")
    with pytest.raises(CommandError, match="snapshots are off in kiosk mode"):
        off.run("snapshot", source="remote")


def test_actions_record_the_setting_they_change_for_midi_learn():
    c = commands()
    c.run("stronger")
    assert (c.last_setting, c.last_action) == ("strength", "stronger")
    c.run("blend", 0.3)
    assert (c.last_setting, c.last_action) == ("blend", "stronger")
    c.run("toggle_midi_learn")
    assert c.state.midi_learn and c.last_action == "stronger"
    assert c.scale("strength", 1.0) == field_range(COMMANDS["strength"])[1]
    assert c.scale("layer", 0.0) == c.state.layers[0] and c.scale("layer", 1.0) == c.state.layers[-1]
    assert c.scale("preset", 1.0) == len(c.state.presets) and c.scale("freeze", 0.6) is True
    assert c.scale("blend", 0.5, 0.2, 0.4) == pytest.approx(0.3)


def test_osc_list_prints_every_address_with_types_and_ranges(capsys):
    assert main(["--osc-list"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"/dreamcam/{name} " in out
    strength = next(line for line in out.splitlines() if line.startswith("/dreamcam/strength "))
    assert " f " in strength and "0.0 to 0.5" in strength
    preset = next(line for line in out.splitlines() if line.startswith("/dreamcam/preset "))
    assert " i " in preset and "1 to 5" in preset


def test_layer_and_objective_in_one_request_are_checked_as_a_pair(backbone):
    c = commands(backbone=backbone)
    c.run("objective", "channel:100")
    c.set_many({"layer": "stem", "objective": "amplify"})   # alone, stem would refuse channel:100
    assert (c.state.layer, c.state.objective) == ("stem", "amplify")
    with pytest.raises(CommandError, match="'objective': objective 'channel:100' at stem"):
        c.set_many({"objective": "channel:100"})


@pytest.mark.parametrize("objective", ["nan*amplify", "inf*amplify", "-inf*amplify", "1e300*amplify",
                                       "amplify + 1e9*class:banana"])
def test_a_weight_no_dream_step_could_survive_is_refused(backbone, objective):
    """NaN, infinite or absurd weights made every dream step fail (the picture froze)."""
    c = commands(backbone=backbone)
    with pytest.raises(CommandError, match="must be a finite number between"):
        c.run("objective", objective)
    assert c.state.objective == "amplify"
    c.run("objective", "0.5*amplify + 2*class:banana")        # sane weights still pass


@pytest.mark.parametrize("name", ["preset", "strength", "freeze", "blend"])
def test_a_number_too_large_for_a_float_is_refused_in_one_line(name):
    c = commands()
    for value in (10 ** 400, -(10 ** 400), 10 ** 5000):
        with pytest.raises(CommandError, match="too large a number") as exc:
            c.run(name, value)
        assert len(str(exc.value)) < 120
