"""Dream objectives in the manner of lucent's optvis: small functions of the captured
activations that compose with `+`, `-` and scalar `*`, and a parser for the shorthands
people type (`amplify`, `channel:N`, `class:banana`, `blocks.7:12`, `a + b`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from models import Backbone, check_layer

LOGITS = "logits"  # pseudo-layer: the network's output, needs the full forward pass
MAX_WEIGHT = 1000.0  # |weight| beyond this only blows the step up (the gradient is normalised anyway)

Acts = Mapping[str, torch.Tensor]


class ObjectiveError(ValueError):
    """An objective string that cannot be understood."""


@dataclass(frozen=True)
class Objective:
    fn: Callable[[Acts], torch.Tensor]
    layers: tuple[str, ...]
    description: str

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda a: self(a) + other(a), _union(self.layers, other.layers),
                         f"{self.description} + {other.description}")

    def __neg__(self) -> "Objective":
        return Objective(lambda a: -self(a), self.layers, f"-{self.description}")

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-other)

    def __mul__(self, k: float) -> "Objective":
        return Objective(lambda a: k * self(a), self.layers, f"{k:g}*{self.description}")

    __rmul__ = __mul__


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return a + tuple(x for x in b if x not in a)


def amplify(layer: str) -> Objective:
    """DeepDream: more of whatever the layer sees (mean square activation)."""
    return Objective(lambda a: a[layer].float().pow(2).mean(), (layer,), f"amplify {layer}")


def channel(layer: str, n: int) -> Objective:
    """One feature map's mean activation."""
    return Objective(lambda a: a[layer][:, n].float().mean(), (layer,), f"{layer}:{n}")


def class_logit(index: int, label: str = "") -> Objective:
    """One ImageNet class's logit (runs the whole network)."""
    return Objective(lambda a: a[LOGITS][:, index].float().mean(), (LOGITS,),
                     f"class {label or index}")


def guide(layer: str, target: torch.Tensor) -> Objective:
    """Dream toward the features of a guide picture: for each position, the best-matching
    guide feature (dot product), as in the original DeepDream guide trick."""
    flat = target.float().flatten(2)[0]  # C x M

    def fn(a: Acts) -> torch.Tensor:
        x = a[layer].float().flatten(2)[0]  # C x N
        return (x.t() @ flat).max(dim=1).values.mean()

    return Objective(fn, (layer,), f"guide {layer}")


def parse(spec: str, layer: str, layers: tuple[str, ...], class_index: Callable[[str], int],
          channels: Callable[[str], int] | None = None) -> Objective:
    """`amplify`, `channel:N` (on `layer`), `LAYER:N`, `class:NAME|INDEX`, joined by `+`."""
    parts = [p.strip() for p in spec.split("+")]
    if not spec.strip() or not all(parts):
        raise ObjectiveError(f"objective '{spec}' is empty; use amplify, channel:N, class:NAME or LAYER:N")
    total: Objective | None = None
    for part in parts:
        obj = _parse_one(part, layer, layers, class_index, channels)
        total = obj if total is None else total + obj
    assert total is not None
    return total


def for_backbone(spec: str, layer: str, backbone: Backbone) -> Objective:
    """The one check of a layer and an objective (config, presets, remotes, engine, tools):
    the layer must exist and the objective name the backbone's layers, classes and channels."""
    backbone.check_layer(layer)
    return parse(spec, layer, backbone.layers, backbone.class_index, backbone.channels)


def _parse_one(part: str, layer: str, layers: tuple[str, ...], class_index: Callable[[str], int],
               channels: Callable[[str], int] | None) -> Objective:
    weight, star, rest = part.partition("*")
    if star:  # "0.5*blocks.4:3"
        k = parse_weight(weight, f"in objective '{part}'")
        return k * _parse_one(rest.strip(), layer, layers, class_index, channels)
    head, _, tail = part.partition(":")
    head = head.strip()
    if part == "amplify":
        return amplify(layer)
    if head == "class" and tail:
        idx = class_index(tail.strip())
        return class_logit(idx, tail.strip())
    if head == "amplify" and tail:
        check_layer(tail.strip(), layers)
        return amplify(tail.strip())
    if tail and (head == "channel" or head in layers):
        target = layer if head == "channel" else head
        check_layer(target, layers)
        try:
            n = int(tail)
        except ValueError:
            raise ObjectiveError(f"channel '{tail}' in objective '{part}' is not a number") from None
        if n < 0 or (channels is not None and n >= channels(target)):
            limit = f"0..{channels(target) - 1}" if channels else ">= 0"
            raise ObjectiveError(f"channel {n} does not exist in {target} (valid: {limit})")
        return channel(target, n)
    if head in layers:
        return amplify(head)
    raise ObjectiveError(
        f"objective '{part}' is not understood; use amplify, channel:N, class:NAME|INDEX, "
        f"LAYER or LAYER:N")


def parse_weight(text: str, where: str) -> float:
    """An objective's weight: a finite number no larger than MAX_WEIGHT. NaN, infinity or
    1e300 would make every dream step fail (the picture would freeze), so they are
    refused here, whichever way they come (config, --set, OSC, MIDI, the web)."""
    try:
        k = float(text)
    except ValueError:
        raise ObjectiveError(f"weight '{text.strip()}' {where} is not a number") from None
    if not math.isfinite(k) or abs(k) > MAX_WEIGHT:
        raise ObjectiveError(f"weight '{text.strip()}' {where} must be a finite number between "
                             f"-{MAX_WEIGHT:g} and {MAX_WEIGHT:g}")
    return k
