"""One runtime's threads on the cores at a time. While an exported step runs the dream
(OpenVINO's TBB pool, ONNX Runtime's), PyTorch's OpenMP pool is cut to one thread: its
idle workers otherwise spin-wait after each of the step's small tensor operations, on the
very cores the runtime needs (2 cores, OpenVINO at 320x240, blocks of 20 steps interleaved
in one process: 19.9 against 22.3 ms and 29.9 against 32.6 ms a step). Eager and compiled
steps, and the benchmark's naive loop, get PyTorch's threads back; a compiled step's
graphs guard on the count, so the engine sets it before a compile starts."""
from __future__ import annotations

import torch

FULL = torch.get_num_threads()      # as the process started (torch's default: the usable cores)


def use(backend: str) -> None:
    """PyTorch's thread count for a step of `backend` about to run (changed only on a switch)."""
    from . import EXPORTED   # the package's list (it imports this module first)
    want = 1 if backend in EXPORTED else FULL
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)


SMALL_CPU = 4   # usable cores up to which the live installation's own threads are its parallelism


def opencv_threads(cores: int) -> int | None:
    """OpenCV's pool for the live installation (None: leave OpenCV's default). On a small
    CPU the capture, dream and window threads already keep every core busy, and each of
    OpenCV's parallel loops over a small picture (remap, resize, blur, DIS at 368x208) then
    costs more in hand-offs and waiting workers than it saves: on 2 cores given half their
    time (a stand-in for the slow AVX2-only machine) 11.5 against 10.5 steps/s with one
    thread, 24.0 against 23.4 at full speed (docs/measurements.md, issue 22)."""
    return 1 if cores <= SMALL_CPU else None
