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
