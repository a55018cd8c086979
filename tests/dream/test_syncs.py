"""Where the host would wait for a GPU, counted on the CPU. Every frame must copy its
picture in and its dream out; nothing else may make the host wait: no reading a value
off the device per step (bool(isfinite) was one per frame), no second upload of the same
flow, no kernel moved to the device per call. The counter watches torch's own function
dispatch (TorchFunctionMode: on the CPU a copy to the host and an upload are both a
`.to(cpu)`, so every upload must go through the one upload function), and the explicit
torch.cuda synchronisation calls are replaced by counters: the only stand-ins, at that
seam; the network, flow and engine are the real ones."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from live.dream import DreamEngine, gpu
from live.dream.images import natural_picture
from live.dream.temporal.coherent import TemporalDream
from live.dream.temporal.flow import ResidualWarp

READS = {"item", "__bool__", "__float__", "__int__", "__index__", "tolist"}  # a value onto the host


def _to_host(func, args, kwargs) -> bool:
    if getattr(func, "__name__", "") == "cpu":
        return True
    if getattr(func, "__name__", "") != "to":
        return False
    targets = [a for a in (*args[1:], kwargs.get("device")) if isinstance(a, (str, torch.device))]
    return any(torch.device(t).type == "cpu" for t in targets)


def _from_kornia(frame) -> bool:
    """kornia's filters cast their kernel with `.to(input.device, input.dtype)` on every
    call: no copy where the kernel is already there (prior.py keeps ours on the device), so
    a `.to` that returns the same tensor from inside kornia is not traffic. Uploads of our
    own still count, whatever they return."""
    return frame is not None and frame.f_globals.get("__name__", "").startswith("kornia")


class HostTraffic(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.reads: list[str] = []
        self.copies_out = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in READS:
            self.reads.append(func.__name__)
        elif _to_host(func, args, kwargs):
            result = func(*args, **kwargs)
            if not (result is args[0] and _from_kornia(sys._getframe(1))):
                self.copies_out += 1
            return result
        return func(*args, **kwargs)


@pytest.fixture
def seam(monkeypatch):
    """Uploads by the module that asked for them, and explicit CUDA synchronisations."""
    counts = {"syncs": 0, "live.dream.images": 0, "live.dream.temporal.flow": 0, "live.dream.engine": 0}
    real = gpu.upload

    def counting(module):
        def upload(array, device):
            counts[module] += 1
            return real(array, device)
        return upload

    def sync(*a, **k):
        counts["syncs"] += 1

    for module in ("live.dream.images", "live.dream.temporal.flow"):
        monkeypatch.setattr(f"{module}.upload", counting(module))
    monkeypatch.setattr(gpu, "upload", counting("live.dream.engine"))  # the engine's motion maps
    monkeypatch.setattr(torch.cuda, "synchronize", sync)
    monkeypatch.setattr(torch.cuda.Stream, "synchronize", sync)
    monkeypatch.setattr(torch.cuda.Event, "synchronize", sync)
    # the device's warp (grid_sample on uploaded flow), not the CPU's own (OpenCV's remap on the array)
    monkeypatch.setattr(ResidualWarp, "_remap", ResidualWarp._grid)
    return counts


def panning(i: int, base: np.ndarray) -> np.ndarray:
    return np.roll(base, 2 * i, axis=1)  # the scene moves: flow, confidence and warps every frame


@pytest.mark.parametrize("steps", [1, 3])
def test_a_frame_waits_for_the_device_once_whatever_the_steps(backbone, seam, steps):
    eng = DreamEngine(backbone, "blocks.8", size=(96, 72), backend="torch", precision="fp32", seed=0,
                      steps_per_frame=steps)
    temporal = TemporalDream(eng)
    base = natural_picture(96, 72)
    try:
        for i in range(3):  # warm-up: first flow, grids and blur kernels made once
            temporal(panning(i, base), 1 / 15)
        before = dict(seam)
        with HostTraffic() as traffic:
            for i in range(3, 8):
                temporal(panning(i, base), 1 / 15)
        assert eng.velocity is not None and temporal.tracker.last is not None  # warped residual and momentum
    finally:
        eng.close()
    assert traffic.reads == []                  # no value read off the device during a frame
    assert traffic.copies_out == 5              # the dream's picture (with its finiteness), once a frame;
                                                # everything else goes up through the pinned upload
    uploads = {k: seam[k] - before[k] for k in seam}
    assert uploads["live.dream.images"] == 5          # the camera picture
    assert uploads["live.dream.temporal.flow"] == 5   # flow and confidence together, once for two warps
    assert seam["syncs"] == 0
