"""The model registry: `load(name)` gives a frozen, eval-mode backbone with its dreamable
layers, and `available()` says which models have weights on this machine.

Nothing here downloads: torchvision models load only from the torch hub cache
(`python -m tools.fetch_weights NAME` fills it when the user asks)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import efficientnet_lite0 as _lite0
from . import torchvision_models as _tv
from .fuse import fuse_conv_bn

DEFAULT_MODEL = "efficientnet_lite0"
_CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")


class ModelError(ValueError):
    """A model or layer the user asked for does not exist or has no weights here."""


@dataclass
class Backbone:
    name: str
    net: nn.Module
    layers: tuple[str, ...]
    default_layer: str
    classes: tuple[str, ...] | None
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    device: torch.device
    _mean: torch.Tensor = field(init=False, repr=False)
    _std: torch.Tensor = field(init=False, repr=False)
    _channels: dict[str, int] | None = field(default=None, init=False, repr=False)
    _fingerprint: str | None = field(default=None, init=False, repr=False)
    _cpu: "Backbone | None" = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1], (N,3,H,W) -> the network's input."""
        return (x - self._mean.to(x.dtype)) / self._std.to(x.dtype)

    def module(self, layer: str) -> nn.Module:
        self.check_layer(layer)
        return self.net.get_submodule(layer)

    def check_layer(self, layer: str) -> None:
        check_layer(layer, self.layers, self.name)

    def channels(self, layer: str) -> int:
        """Feature maps of a dreamable layer (measured once by a small forward pass), so
        `channel:N` beyond a layer's width is refused with one line, not an IndexError."""
        self.check_layer(layer)
        if self._channels is None:
            counts: dict[str, int] = {}
            side = max(64, *self.input_size)
            handles = [self.net.get_submodule(name).register_forward_hook(
                           lambda _m, _i, out, name=name: counts.__setitem__(name, int(out.shape[1])))
                       for name in self.layers]
            try:
                with torch.no_grad():
                    self.net(self.normalize(torch.zeros(1, 3, side, side, device=self.device)))
            finally:
                for h in handles:
                    h.remove()
            self._channels = counts
        return self._channels[layer]

    def fingerprint(self) -> str:
        """Short hash of the network's code and weights (its content, not its identity:
        a cached export made from other weights is never mistaken for this one's)."""
        if self._fingerprint is None:
            import hashlib
            import inspect
            h = hashlib.blake2b(digest_size=8)
            h.update(inspect.getsource(inspect.getmodule(type(self.net))).encode())
            for name, t in self.net.state_dict().items():
                h.update(name.encode())
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def on_cpu(self) -> "Backbone":
        """This network on the CPU (itself when it is there). Exports are traced and
        validated there whatever device dreams: the file does not depend on the device,
        and on CUDA TF32 convolutions on both sides would fail the CPU-calibrated
        tolerance. A registry model is loaded afresh from its weights (the device's copy is
        never read), checked to be the same by content; any other network is copied."""
        if self.device.type == "cpu":
            return self
        if self._cpu is None:
            twin = load(self.name, "cpu") if self.name in _REGISTRY and _REGISTRY[self.name].has_weights() else None
            if twin is None or twin.fingerprint() != self.fingerprint():
                import copy
                net = copy.deepcopy(self.net).cpu()
                twin = Backbone(self.name, net, self.layers, self.default_layer, self.classes, self.input_size,
                                self.mean, self.std, torch.device("cpu"))
            self._cpu = twin
        return self._cpu

    def class_index(self, name_or_index: str | int) -> int:
        """ImageNet class by index or (case-insensitive, unique-prefix) name."""
        if self.classes is None:
            raise ModelError(f"{self.name} has no class names")
        text = str(name_or_index).strip()
        if text.isdigit():
            idx = int(text)
            if 0 <= idx < len(self.classes):
                return idx
            raise ModelError(f"class index {idx} is out of range 0..{len(self.classes) - 1}")
        low = text.lower()
        exact = [i for i, c in enumerate(self.classes) if c.lower() == low]
        if exact:
            return exact[0]
        near = [i for i, c in enumerate(self.classes) if c.lower().startswith(low)]
        if len(near) == 1:
            return near[0]
        hint = ", ".join(self.classes[i] for i in near[:8]) or "e.g. banana, goldfish, daisy, volcano"
        raise ModelError(f"class '{text}' is not an ImageNet class name ({hint})")


@dataclass(frozen=True)
class _Entry:
    build: Callable[[], nn.Module]
    has_weights: Callable[[], bool]
    layers: tuple[str, ...]
    default_layer: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _lite0_has_weights() -> bool:
    try:
        return Path(_lite0.weights_path()).is_file()
    except FileNotFoundError:
        return False


_REGISTRY: dict[str, _Entry] = {
    "efficientnet_lite0": _Entry(
        _lite0.efficientnet_lite0, _lite0_has_weights, _lite0.LAYERS, _lite0.META.default_layer,
        _lite0.META.input_size, _lite0.META.mean, _lite0.META.std),
}
for _name, _spec in _tv.SPECS.items():
    _REGISTRY[_name] = _Entry(
        (lambda n=_name: _tv.build(n)), (lambda n=_name: _tv.cached(n)), _spec.layers,
        _spec.default_layer, _spec.input_size, _tv.MEAN, _tv.STD)


def names() -> tuple[str, ...]:
    """Every model Dreamcam knows, with or without weights here."""
    return tuple(_REGISTRY)


def layers_of(name: str) -> tuple[str, ...]:
    """Dreamable layers of a model, without loading it (for validating settings)."""
    if name not in _REGISTRY:
        raise ModelError(f"model '{name}' is unknown; known models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name].layers


def check_layer(layer: str, layers: tuple[str, ...], model: str = "the model") -> None:
    """The one wording of an unknown layer, wherever it is typed (config, remotes, objectives)."""
    if layer not in layers:
        raise ModelError(f"layer '{layer}' does not exist in {model}; valid layers: {', '.join(layers)}")


def available() -> tuple[str, ...]:
    """Models whose weights are on this machine (so they load offline)."""
    return tuple(n for n, e in _REGISTRY.items() if e.has_weights())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        from .nvidia import warn_if_unusable
        warn_if_unusable()  # a GPU PyTorch cannot use is said loudly, once
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from .nvidia import unusable_gpu
        why = unusable_gpu()
        raise ModelError("device 'cuda' was asked for but CUDA is not available here"
                         + (f" ({why})" if why else "") + "; use 'auto' or 'cpu'")
    return dev


def load(name: str = DEFAULT_MODEL, device: str | torch.device = "auto", fuse: bool = True) -> Backbone:
    """Build `name` with its pretrained weights, frozen and in eval mode.

    `fuse` folds BatchNorm into the preceding convolutions: identical results, fewer
    kernels in the forward and backward pass. The naive benchmark baseline turns it off."""
    if name not in _REGISTRY:
        raise ModelError(f"model '{name}' is unknown; known models: {', '.join(_REGISTRY)}")
    entry = _REGISTRY[name]
    if not entry.has_weights():
        offline = ", ".join(available()) or "none"
        raise ModelError(
            f"model '{name}' has no weights on this machine; fetch them once with "
            f"`python -m tools.fetch_weights {name}` (needs internet), or use one that works "
            f"offline: {offline}")
    dev = resolve_device(device)
    net = entry.build().eval()
    if fuse:
        fuse_conv_bn(net)
    for p in net.parameters():
        p.requires_grad_(False)
    net = net.to(dev).to(memory_format=torch.channels_last)
    classes = tuple(_CLASSES_FILE.read_text().splitlines())
    return Backbone(name, net, entry.layers, entry.default_layer, classes, entry.input_size,
                    entry.mean, entry.std, dev)
