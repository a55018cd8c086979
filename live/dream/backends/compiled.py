"""The torch backend compiled: the traced dream step (the same aten graph the ONNX export
uses, see trace.py, but in the step's own precision: fp16/bf16 autocast is traced into
it) compiled by torch.compile/inductor, which fuses the clamps, masks and normalisation
into few loops and prepacks the convolution weights. Measured here about 1.6x faster per
step than eager torch (qa.bench, method "compile"). On CUDA it is compiled with
mode="reduce-overhead": the step is replayed as one CUDA graph instead of hundreds of
kernel launches, which at live sizes cost more than the kernels themselves.

Compiling takes seconds (more the first time; inductor caches on disk), so it happens in a
background thread while the eager step keeps dreaming; the compiled step takes over when
ready. One compiled step per working size, kept: a size change compiles once, and going
back to a size never compiles again. A layer or size change never stalls the picture."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from models import Backbone
from ..step import DreamStep
from . import EAGER, threads
from .trace import trace_step

log = logging.getLogger(__name__)
Size = tuple[int, int]


def compile_mode(device: torch.device) -> str | None:
    """CUDA graphs on CUDA; inductor's default elsewhere."""
    return "reduce-overhead" if device.type == "cuda" else None


class _NoCudnnSearch:
    """cuDNN's benchmark mode off while a CUDA graph may be recorded. Its search for the
    fastest algorithm keys on the tensors' alignment, so inside the graph's memory pool it
    searches again, which a capture forbids: on an H200 the recording failed ('FIND was
    unable to find an engine') and left the CUDA generator unusable for the process.

    The flag is process-wide and compiled steps run from several threads (the dreamer's
    and a compile thread's first call): the first to enter saves it and the last to leave
    restores it, so overlapping uses never leave it off for good."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._saved = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._inside == 0:
                self._saved = torch.backends.cudnn.benchmark
                torch.backends.cudnn.benchmark = False
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                if self._inside == 0:
                    torch.backends.cudnn.benchmark = self._saved


no_cudnn_search = _NoCudnnSearch()


class CompiledStep:
    """Callable like DreamStep for one working size: step(x, strength) -> x'. Runs the
    eager step until the compiled one is ready (or if compiling failed)."""

    def __init__(self, backbone: Backbone, eager: DreamStep, size: Size, background: bool = True):
        self.eager = eager
        self.size = size
        self.device = backbone.device
        self.mode = compile_mode(self.device)
        self.error: Exception | None = None
        self.seconds = 0.0
        self._fn: Callable | None = None
        self._ready = threading.Event()
        self._strength = torch.zeros((), device=self.device)
        # Tracing runs the network with the step's hooks, so it happens here, in the
        # calling (dream) thread; only the compilation of the standalone graph is moved.
        self.graph = trace_step(eager, size, self.device, autocast=True)
        compiled = torch.compile(self.graph, dynamic=False, mode=self.mode)
        if background:
            threading.Thread(target=self._build, args=(compiled,), name="dream-compile", daemon=True).start()
        else:
            self._build(compiled)

    def _build(self, compiled: Callable) -> None:
        t0 = time.perf_counter()
        w, h = self.size
        try:
            x = torch.rand(1, 3, h, w, device=self.device).contiguous(memory_format=torch.channels_last)
            # The first call compiles. CUDA graphs are recorded on later calls, in the
            # dream thread that replays them (cudagraph trees keep per-thread state).
            self._run(compiled, x, 0.01)
            self._fn = compiled
            self.seconds = time.perf_counter() - t0
            log.info("compiled dream step ready (%dx%d%s) after %.1f s", w, h,
                     f", {self.mode}" if self.mode else "", self.seconds)
        except Exception as exc:  # keep dreaming with the eager step
            self.error = exc
            log.warning("torch.compile failed, staying with the eager step: %s", exc)
        finally:
            self._ready.set()

    @property
    def compiled(self) -> bool:
        return self._fn is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until compiling has finished (or failed); True if the compiled step runs."""
        self._ready.wait(timeout)
        return self.compiled

    def _run(self, fn: Callable, x: torch.Tensor, strength: float) -> torch.Tensor:
        self._strength.fill_(float(strength))  # a tensor input: new strengths never recompile
        with torch.no_grad():
            if self.mode is None:
                return fn(x.contiguous(), self._strength)  # one layout: no recompiles on strides
            # A CUDA graph's output lives in memory the next replay overwrites: a copy of it goes on.
            torch.compiler.cudagraph_mark_step_begin()
            with no_cudnn_search():
                return fn(x.contiguous(), self._strength).clone()

    def __call__(self, x: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
        fn = self._fn
        if fn is None:
            return self.eager(x, strength)
        return self._run(fn, x, strength)


class CompiledSteps:
    """The compile backend's `Steps`: a CompiledStep per working size, made when a size is
    first dreamed and kept, so no size is ever compiled twice."""

    def __init__(self, backbone: Backbone, eager: DreamStep, background: bool = True):
        self.backbone = backbone
        self.eager = eager
        self.background = background
        self.steps: dict[Size, CompiledStep] = {}

    def at(self, size: Size) -> CompiledStep:
        """The size's compiled step, its compiling started if it was not."""
        size = (int(size[0]), int(size[1]))
        if size not in self.steps:
            self.steps[size] = CompiledStep(self.backbone, self.eager, size, self.background)
        return self.steps[size]

    def want(self, size: Size) -> None:
        """Nothing ahead: tracing needs the dream thread's hooks, so a size is compiled when
        first dreamed, the eager step standing in meanwhile."""

    def compiled_at(self, size: Size) -> bool:
        step = self.steps.get(tuple(size))
        return step is not None and step.compiled

    def ready(self, size: Size) -> bool:
        """Nothing to wait for at `size`: compiled, failed (the eager step stands in for
        good), or not started (adaptive quality may move there, and judges its speed once
        compiled)."""
        step = self.steps.get(tuple(size))
        return step is None or step.compiled or step.error is not None

    decided = ready

    def wait(self, size: Size, timeout: float | None = None) -> bool:
        return self.at(size).wait(timeout)

    def current(self, size: Size) -> "CompiledSteps":
        return self   # callable at every size: the compiled step where it is ready, else the eager one

    def running(self, size: Size) -> str:
        return "compile" if self.compiled_at(size) else EAGER

    def precision_of(self, name: str, asked: str) -> str:
        return asked   # the step's own precision is traced into the compiled graph

    def building(self) -> list[Size]:
        return [size for size in self.steps if not self.ready(size)]

    def pause(self) -> None:
        pass           # a compile under way finishes: going back to the layer finds it ready

    def close(self) -> None:
        pass

    def __call__(self, x: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
        threads.use("compile")
        return self.at((x.shape[-1], x.shape[-2]))(x, strength)
