import pytest
import torch

import models
from models.efficientnet_lite0 import efficientnet_lite0


def test_default_model_is_frozen_eval_and_offline(backbone):
    assert "efficientnet_lite0" in models.available()
    assert not backbone.net.training
    assert all(not p.requires_grad for p in backbone.net.parameters())
    assert backbone.layers[0] == "stem" and backbone.layers[-1] == "head"
    assert backbone.default_layer == "blocks.10" and backbone.default_layer in backbone.layers
    assert backbone.classes is not None and len(backbone.classes) == 1000
    assert backbone.classes[954] == "banana"
    assert backbone.input_size == (224, 224)


def test_normalize_maps_unit_range_to_minus_one_one(backbone):
    x = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    y = backbone.normalize(x)
    assert y.min() == pytest.approx(-0.992, abs=0.01) and y.max() == pytest.approx(1.0, abs=0.01)


def test_fused_network_matches_the_packaged_weights(backbone, photo):
    plain = efficientnet_lite0().eval()
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        a = plain(backbone.normalize(x))
        b = backbone.net(backbone.normalize(x).contiguous(memory_format=torch.channels_last))
    assert torch.allclose(a, b, atol=1e-3)
    assert a.argmax() == b.argmax()


def test_every_layer_is_a_module(backbone):
    for layer in backbone.layers:
        assert isinstance(backbone.module(layer), torch.nn.Module)


def test_unknown_model_and_layer_name_the_valid_ones(backbone):
    with pytest.raises(models.ModelError, match="known models: efficientnet_lite0"):
        models.load("alexnet")
    with pytest.raises(models.ModelError, match="valid layers: stem, blocks.0"):
        backbone.check_layer("blocks.42")


def test_torchvision_model_without_cached_weights_says_how_to_get_them():
    missing = [n for n in ("googlenet", "inception_v3", "vgg16", "resnet50") if n not in models.available()]
    if not missing:
        pytest.skip("all torchvision weights are cached on this machine")
    with pytest.raises(models.ModelError, match=r"tools.fetch_weights .*efficientnet_lite0"):
        models.load(missing[0])


def test_class_names_by_name_prefix_and_index(backbone):
    assert backbone.class_index("banana") == 954
    assert backbone.class_index("Banana") == 954
    assert backbone.class_index("954") == 954
    with pytest.raises(models.ModelError, match="not an ImageNet class"):
        backbone.class_index("spaceship that does not exist")
    with pytest.raises(models.ModelError, match="out of range"):
        backbone.class_index("1000")
