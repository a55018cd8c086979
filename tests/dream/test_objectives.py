import pytest
import torch

from live.dream import objectives as obj

LAYERS = ("stem", "blocks.0", "blocks.1", "head")


def index(name: str) -> int:
    if name == "banana":
        return 954
    raise obj.ObjectiveError(f"class '{name}' is unknown")


def parse(spec: str, layer: str = "blocks.1") -> obj.Objective:
    return obj.parse(spec, layer, LAYERS, index)


def test_shorthands_name_the_layers_they_need():
    assert parse("amplify").layers == ("blocks.1",)
    assert parse("channel:3").layers == ("blocks.1",)
    assert parse("blocks.0:2").layers == ("blocks.0",)
    assert parse("class:banana").layers == (obj.LOGITS,)
    assert parse("amplify + class:banana").layers == ("blocks.1", obj.LOGITS)


def test_objectives_compute_and_compose():
    acts = {"blocks.1": torch.tensor([[[[1.0, 3.0]], [[2.0, 2.0]]]]), obj.LOGITS: torch.arange(1000.0)[None]}
    assert float(parse("amplify")(acts)) == pytest.approx((1 + 9 + 4 + 4) / 4)
    assert float(parse("channel:0")(acts)) == pytest.approx(2.0)
    assert float(parse("class:banana")(acts)) == pytest.approx(954.0)
    assert float(parse("channel:0 + 0.5*class:banana")(acts)) == pytest.approx(2.0 + 477.0)
    assert float((parse("channel:0") - parse("channel:1"))(acts)) == pytest.approx(0.0)


@pytest.mark.parametrize("spec,message", [("", "empty"), ("amplify +", "empty"), ("wobble", "not understood"),
                                          ("channel:x", "not a number"), ("blocks.9:1", "not understood"),
                                          ("channel:-1", "does not exist"), ("two*amplify", "not a number")])
def test_bad_objectives(spec, message):
    with pytest.raises(obj.ObjectiveError, match=message):
        parse(spec)


@pytest.mark.parametrize("layer,spec,message", [
    ("blocks.99", "amplify", "layer 'blocks.99' does not exist in"),
    ("blocks.10", "channel:9999", r"channel 9999 does not exist in blocks.10 \(valid: 0\.\.\d+\)"),
    ("blocks.10", "class:no-such-thing", "no-such-thing"),
    ("blocks.10", "stem:3 + wobble", "not understood")])
def test_one_check_refuses_alike_at_start_in_the_engine_and_from_a_remote(backbone, layer, spec, message):
    """The config at start, the engine and the command layer run the same check: same words."""
    from live.app import check_presets
    from live.commands import CommandError, Commands
    from live.config import ConfigError
    from live.dream import DreamEngine
    from live.state import State
    from conftest import objective_check, small_config
    with pytest.raises(ValueError, match=message):
        obj.for_backbone(spec, layer, backbone)
    with pytest.raises(ConfigError, match=message):
        check_presets(small_config(f"dream.layer={layer}", f"dream.objective={spec}"), backbone)
    eng = DreamEngine(backbone, "blocks.10", size=(64, 48))
    try:
        with pytest.raises(ValueError, match=message):
            eng.configure(layer=layer, objective=spec)
    finally:
        eng.close()
    commands = Commands(State.from_config(small_config()), objective_check(backbone))
    with pytest.raises(CommandError, match=message):
        commands.set_many({"layer": layer, "objective": spec})
