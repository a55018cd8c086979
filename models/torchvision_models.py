"""torchvision's classic DeepDream networks. Their weights are used only when they are
already in the torch hub cache; `python -m tools.fetch_weights NAME` puts them there.
torchvision itself is imported only when one of them is asked for: it costs a second or
two of every start otherwise (the default network does not need it)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    import torchvision

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Spec:
    layers: tuple[str, ...]
    default_layer: str
    input_size: tuple[int, int] = (224, 224)


SPECS: dict[str, Spec] = {
    "googlenet": Spec(("conv2", "conv3", "inception3a", "inception3b", "inception4a",
                       "inception4b", "inception4c", "inception4d", "inception4e",
                       "inception5a", "inception5b"), "inception4c"),
    "inception_v3": Spec(("Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5b", "Mixed_5c", "Mixed_5d",
                          "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                          "Mixed_7a", "Mixed_7b", "Mixed_7c"), "Mixed_6b", (299, 299)),
    "vgg16": Spec(tuple(f"features.{i}" for i in (3, 8, 15, 22, 29)), "features.22"),
    "resnet50": Spec(("relu", "layer1", "layer2", "layer3.1", "layer3.3", "layer3", "layer4"),
                     "layer3"),
}


def _weights(name: str) -> torchvision.models.WeightsEnum:
    import torchvision
    return torchvision.models.get_model_weights(name).DEFAULT


def checkpoint_path(name: str) -> str:
    url = _weights(name).url
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def cached(name: str) -> bool:
    return os.path.isfile(checkpoint_path(name))


def build(name: str) -> nn.Module:
    """Build from the hub cache only (the caller checks `cached` first)."""
    if not cached(name):
        raise FileNotFoundError(checkpoint_path(name))
    import torchvision
    return torchvision.models.get_model(name, weights=_weights(name))


def fetch(name: str) -> str:
    """Download the weights into the hub cache: only ever called on the user's request."""
    torch.hub.load_state_dict_from_url(_weights(name).url, progress=True)
    return checkpoint_path(name)
