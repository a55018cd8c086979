"""What to dream toward, from the command line's words: weighted layers, channels, an
ImageNet class or a guide picture, composed with live.objectives (lucent-style `+`/`*`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from live.dream import objectives as obj
from live.dream.step import LayerTap
from models import Backbone

GUIDE_MAX_SIDE = 512  # guide features are taken at about the size dreams are made at


@dataclass(frozen=True)
class Target:
    """The parsed target; `build` turns it into one Objective for a backbone."""

    layers: tuple[tuple[str, float], ...] = ()
    channels: tuple[tuple[str, int], ...] = ()
    class_name: str | None = None
    guide: np.ndarray | None = field(default=None, compare=False, repr=False)


def parse_layer(spec: str) -> tuple[str, float]:
    """`blocks.8:0.5` -> ("blocks.8", 0.5); `blocks.12` -> ("blocks.12", 1.0)."""
    name, sep, weight = spec.rpartition(":")
    if not sep:
        return spec.strip(), 1.0
    return name.strip(), obj.parse_weight(weight, f"in --layer '{spec}' (use LAYER or LAYER:WEIGHT; "
                                                  f"channels go in --channel)")


def parse_channel(spec: str) -> tuple[str, int]:
    """`blocks.10:7` -> ("blocks.10", 7)."""
    name, sep, n = spec.rpartition(":")
    if not sep or not n.strip().isdigit():
        raise obj.ObjectiveError(f"--channel '{spec}' must be LAYER:N, e.g. blocks.10:7")
    return name.strip(), int(n)




def guide_features(backbone: Backbone, guide: np.ndarray, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The guide picture's activations at each layer (no gradient)."""
    h, w = guide.shape[:2]
    k = min(1.0, GUIDE_MAX_SIDE / max(h, w))
    x = torch.from_numpy(np.ascontiguousarray(guide)).to(backbone.device).permute(2, 0, 1)[None].float() / 255.0
    if k < 1.0:
        x = torch.nn.functional.interpolate(x, size=(round(h * k), round(w * k)), mode="bilinear",
                                            antialias=True, align_corners=False)
    tap = LayerTap(backbone, layers)
    try:
        with torch.no_grad():
            acts = tap(x)
        return {name: acts[name].detach() for name in layers}
    finally:
        tap.close()


def build(backbone: Backbone, target: Target) -> obj.Objective:
    """One Objective: sum of weighted layer terms (amplify, or guide when a guide picture
    is given), channel terms and the class logit. No layer and no class -> the model's
    default layer."""
    layers = target.layers
    if not layers and not target.channels and target.class_name is None:
        layers = ((backbone.default_layer, 1.0),)
    for name, _ in layers:
        backbone.check_layer(name)
    for name, _ in target.channels:
        backbone.check_layer(name)
    terms: list[obj.Objective] = []
    if target.guide is not None:
        if not layers:
            layers = ((backbone.default_layer, 1.0),)
        feats = guide_features(backbone, target.guide, tuple(n for n, _ in layers))
        terms += [_weighted(obj.guide(n, feats[n]), w) for n, w in layers]
    else:
        terms += [_weighted(obj.amplify(n), w) for n, w in layers]
    for name, n in target.channels:
        if n >= backbone.channels(name):
            raise obj.ObjectiveError(f"channel {n} does not exist in {name} (valid: 0..{backbone.channels(name) - 1})")
        terms.append(obj.channel(name, n))
    if target.class_name is not None:
        idx = backbone.class_index(target.class_name)
        terms.append(obj.class_logit(idx, backbone.classes[idx] if backbone.classes else target.class_name))
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _weighted(term: obj.Objective, w: float) -> obj.Objective:
    return term if w == 1.0 else w * term


def crop_probabilities(backbone: Backbone, img: np.ndarray, n: int = 16, seed: int = 0,
                       min_area: float = 0.4) -> np.ndarray:
    """Softmax over classes for n random crops (40-100 % of the area, aspect 3:4..4:3)
    rescaled to the network's input size: what the network calls the picture when it
    is not shown exactly the pixels that were optimised. Returns n x classes."""
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(img)).to(backbone.device).permute(2, 0, 1)[None].float() / 255.0
    crops = []
    for _ in range(n):
        area = rng.uniform(min_area, 1.0) * h * w
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch = int(min(h, round(np.sqrt(area / aspect))))
        cw = int(min(w, round(np.sqrt(area * aspect))))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = x[:, :, y0:y0 + ch, x0:x0 + cw]
        crops.append(torch.nn.functional.interpolate(crop, size=backbone.input_size, mode="bilinear",
                                                     antialias=True, align_corners=False))
    with torch.no_grad():
        logits = backbone.net(backbone.normalize(torch.cat(crops)))
    return torch.softmax(logits.float(), dim=1).cpu().numpy()
