"""Fold eval-mode BatchNorm into the convolution before it: the same function with one
kernel fewer per layer, forward and backward."""
from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fuse_conv_bn(net: nn.Module) -> int:
    """Fuse every BatchNorm2d registered right after a Conv2d in the same parent (the
    pattern of EfficientNet, GoogLeNet/Inception's BasicConv2d and ResNet), in place.
    Returns how many were fused."""
    count = 0
    for parent in net.modules():
        children = list(parent.named_children())
        for (cname, conv), (bname, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                fused = fuse_conv_bn_eval(conv.eval(), bn.eval())
                setattr(parent, cname, fused)
                setattr(parent, bname, nn.Identity())
                count += 1
    return count
