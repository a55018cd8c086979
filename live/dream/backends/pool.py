"""The exported backends' steps by working size, built in the background while the eager
step dreams, so a start, a size change or a layer change never stalls the picture.

A `StepPool` is callable like DreamStep. It serves one backend choice (a named exported
backend, or auto's candidates) for one layer, objective and normalisation, and looks up
the step for the picture's size: a size whose step is not built yet runs the eager step.
In the background (the live installation) exports happen in a child process
(worker.py) and loading (an ONNX Runtime session, an OpenVINO compile) in a builder
thread; in the foreground (tools, tests) everything is built at the first call.

For auto, the decision for a size comes from disk (auto.Decisions) and only the winner
is built; without one, all candidates are built and then timed against each other on the
next real dream steps (auto.Trial), and the answer is written down."""
from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import torch

from models import Backbone
from ..step import DreamStep
from . import EAGER, Step, exported_module, threads
from .auto import Decisions, Meter, Trial, candidates, decision_key
from .trace import ExportError

log = logging.getLogger(__name__)

Size = tuple[int, int]
Build = Callable[[Backbone, DreamStep, "StepPool", str, Size], Step]
_CHILDREN: set[subprocess.Popen] = set()
_BUILDERS: set[threading.Thread] = set()
JOIN_SECONDS = 30.0   # at most this long for a builder inside a compile call to come back at the end
EXPORT_SECONDS = 900.0   # an export child still at work after this is stuck: killed, the eager step stays


class Cancelled(Exception):
    """The pool was paused or closed while the size was being built."""


@atexit.register
def _end_children() -> None:
    """No child outlives us, and no builder thread is inside ONNX Runtime or OpenVINO when
    the interpreter tears down (that aborts the process: exit code 134 instead of 0)."""
    for proc in list(_CHILDREN):
        if proc.poll() is None:
            proc.kill()
    for thread in list(_BUILDERS):
        thread.join(JOIN_SECONDS)


def run_child(job: dict, started: Callable[[subprocess.Popen], None] = lambda p: None) -> dict:
    """worker.py in a child process; its one JSON answer."""
    root = str(Path(__file__).resolve().parents[3])  # where `live` and `models` live
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen([sys.executable, "-m", "live.dream.backends.worker", json.dumps(job)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    _CHILDREN.add(proc)
    try:
        started(proc)
        try:
            out, _ = proc.communicate(timeout=EXPORT_SECONDS)
        except subprocess.TimeoutExpired:   # half a minute on a slow 2-core machine; weeks unattended
            proc.kill()
            proc.communicate()
            raise ExportError(f"the export process was still at work after {EXPORT_SECONDS:g} s; stopped it") from None
    finally:
        _CHILDREN.discard(proc)
    if proc.returncode and proc.returncode < 0:
        raise Cancelled()
    for line in out.splitlines():
        if line.startswith('{"dreamcam"'):
            return json.loads(line)["dreamcam"]
    raise ExportError(f"the export process ended ({proc.returncode}) without an answer: {out.strip()[-300:]}")


def build_step(backbone: Backbone, eager: DreamStep, pool: "StepPool", name: str, size: Size) -> Step:
    """One exported backend's step for one size: the export made and validated (in a
    child process when in the background, for all the pool's candidates at once), then
    loaded here."""
    mod = exported_module(name)
    path = pool.path(size, name)
    if not mod.on_disk(path, backbone.device):
        if pool.background:
            job = {"model": backbone.name, "layer": pool.layer, "objective": pool.objective,
                   "grad_norm": pool.grad_norm, "size": list(size), "backends": list(pool.names),
                   "half": pool.half(name), "expect": str(path)}
            answer = run_child(job, pool.child_started)
            if name in answer["errors"] or "all" in answer["errors"]:
                raise ExportError(answer["errors"].get(name) or answer["errors"]["all"])
        else:
            mod.prepare(backbone, eager, pool.layer, pool.objective, size, pool.grad_norm, pool.half(name))
    return mod.load(path, backbone.device)


def warm_up(step: Step, size: Size, device: torch.device) -> None:
    """One step on a blank picture here, in the builder: a runtime's first run allocates
    and initialises its kernels (measured: 1.3 s for ONNX Runtime under load), which would
    otherwise stall the first dream it runs."""
    w, h = size
    with torch.no_grad():
        step(torch.zeros(1, 3, h, w, device=device), 0.0)


class StepPool:
    """The `Steps` of the exported backends and auto (see the module's docstring).
    `eager` is set (and replaced) by the engine."""

    def __init__(self, backbone: Backbone, layer: str, objective: str, grad_norm: str, precision: str,
                 backend: str, *, background: bool = False, build: Build = build_step,
                 meter: Meter | None = None, decisions: Decisions | None = None):
        self.backbone, self.layer, self.objective, self.grad_norm = backbone, layer, objective, grad_norm
        self.precision = precision
        self.auto = backend == "auto"
        self.names = candidates(backbone.device) if self.auto else (backend,)
        self.background = background
        self.eager: DreamStep | None = None
        self.last = EAGER
        self._build, self._meter = build, meter or Meter()
        self._decisions = decisions or Decisions()
        self._steps: dict[Size, dict[str, Step]] = {}
        self._decided: dict[Size, str] = {}
        self._trials: dict[Size, Trial] = {}
        self._building: dict[Size, tuple[str, ...]] = {}   # queued or in progress
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen | None = None
        self._paused = False
        self._closed = False

    def half(self, name: str) -> bool:
        """ONNX Runtime runs the fp16 graph when fp16 is asked for (CUDA only); OpenVINO fp32."""
        return name == "onnx" and self.precision == "fp16"

    def path(self, size: Size, name: str = "onnx") -> Path:
        from .onnx import cache_path
        return cache_path(self.backbone, self.layer, self.objective, size, self.grad_norm, self.half(name))

    def key(self, size: Size) -> str:
        return decision_key(self.backbone, self.layer, self.objective, size, self.grad_norm, self.precision)

    # -- building ---------------------------------------------------------------------
    def want(self, size: Size) -> None:
        """Have the step for `size` built (at once in the foreground; queued in the background)."""
        with self._cond:
            self._paused = False
            if size in self._steps or self._closed:
                return
            self._steps[size] = {}
            names = self._plan(size)
            if not names:
                return
            self._building[size] = names
            if self.background and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._builder, name="dream-build", daemon=True)
                _BUILDERS.add(self._thread)
                self._thread.start()
            self._cond.notify_all()
        if not self.background:
            self._build_size(size, names)

    def _plan(self, size: Size) -> tuple[str, ...]:
        """What to build for `size`: a named backend; for auto the decision on disk, or every candidate."""
        if not self.auto:
            return self.names
        choice = self._decisions.get(self.key(size))
        if choice is None:
            return self.names
        self._decided[size] = choice
        return (choice,) if choice in self.names else ()

    def _builder(self) -> None:
        try:
            while True:
                with self._cond:
                    todo = [(s, n) for s, n in self._building.items() if n]
                    if not todo or self._closed:
                        self._thread = None
                        return
                    size, names = todo[0]
                    self._building[size] = ()  # taken: in progress
                self._build_size(size, names)
        finally:
            _BUILDERS.discard(threading.current_thread())

    def _build_size(self, size: Size, names: tuple[str, ...]) -> None:
        built: list[str] = []
        for name in names:
            if self._closed:
                return
            try:
                step = self._build(self.backbone, self.eager, self, name, size)
                warm_up(step, size, self.backbone.device)
            except Cancelled:
                with self._cond:  # paused: forget the size, a later want() builds it again
                    self._steps.pop(size, None)
                    self._building.pop(size, None)
                    self._cond.notify_all()
                return
            except Exception as exc:
                log.warning("%s step at %dx%d unavailable, the eager step dreams instead: %s", name, *size, exc)
                if not (self.background or self.auto):
                    with self._cond:
                        self._building.pop(size, None)
                    raise
                continue
            with self._cond:
                self._steps.setdefault(size, {})[name] = step
            built.append(name)
        self._settle(size, tuple(built))

    def _settle(self, size: Size, built: tuple[str, ...]) -> None:
        """After building: a decision, a trial among what was built, or the eager step."""
        with self._cond:
            if size not in self._decided:
                if self.auto and built:
                    self._trials[size] = Trial((*built, EAGER), self._meter)  # fast ones first
                else:
                    self._decided[size] = built[0] if built else EAGER
            self._building.pop(size, None)
            self._cond.notify_all()

    def child_started(self, proc: subprocess.Popen) -> None:
        with self._cond:
            self._child = proc
            if self._paused or self._closed:
                proc.kill()

    # -- state ---------------------------------------------------------------------------
    def ready(self, size: Size) -> bool:
        """True once nothing is left to build for `size` (its steps are loaded, or failed)."""
        with self._cond:
            return size in self._steps and size not in self._building

    def decided(self, size: Size) -> bool:
        with self._cond:
            return size in self._decided

    def wait(self, size: Size, timeout: float | None = None) -> bool:
        """Block until `size` is ready (tools and tests; the live dream never waits)."""
        self.want(size)
        with self._cond:
            return self._cond.wait_for(lambda: size not in self._building, timeout)

    def current(self, size: Size) -> Step | None:
        """The step that runs at `size` now (None: the eager one)."""
        with self._cond:
            return self._steps.get(size, {}).get(self._decided.get(size, EAGER))

    def building(self) -> list[Size]:
        with self._cond:
            return list(self._building)

    def running(self, size: Size) -> str:
        return self.last   # in auto's trial, each step's turn

    def precision_of(self, name: str, asked: str) -> str:
        return asked if name == EAGER or self.half(name) else "fp32"

    def pause(self) -> None:
        """Stop building (another layer is dreamed now); what is built stays."""
        with self._cond:
            self._paused = True
            for size in [s for s, n in self._building.items() if n]:  # queued, not started
                self._building.pop(size)
                self._steps.pop(size, None)
            child = self._child
        if child is not None and child.poll() is None:
            child.kill()

    def close(self) -> None:
        """Stop building and wait for a builder inside a compile call to come back."""
        with self._cond:
            self._closed = True
            thread = self._thread
        self.pause()
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_SECONDS)
        with self._cond:
            self._steps.clear()

    # -- dreaming --------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
        size = (int(x.shape[-1]), int(x.shape[-2]))
        if size not in self._steps:
            self.want(size)
        with self._cond:
            trial = self._trials.get(size)
            name = trial.next() if trial is not None else self._decided.get(size, EAGER)
            step = self._steps.get(size, {}).get(name) if name != EAGER else None
        if step is None:
            name, step = EAGER, self.eager
        self.last = name
        threads.use(name)
        if trial is None:
            return step(x, strength)
        if trial.calls == 0:
            self._signal_child(signal.SIGSTOP)  # an export beside the trial would skew it
            trial.begin()
        t0 = self._meter.now()
        out = step(x, strength)
        winner = trial.record(name, self._meter.now() - t0)
        if winner is not None:
            trial.finish()
            self._signal_child(signal.SIGCONT)
            self._decide(size, winner, trial)
        return out

    def _signal_child(self, sig: int) -> None:
        child = self._child
        if child is not None and child.poll() is None:
            try:
                child.send_signal(sig)
            except OSError:
                pass

    def _decide(self, size: Size, winner: str, trial: Trial) -> None:
        ms = trial.medians()
        with self._cond:
            self._decided[size] = winner
            self._trials.pop(size, None)
            steps = self._steps.get(size, {})
            for name in [n for n in steps if n != winner]:
                del steps[name]  # the losers' memory back
        what = f"{self.backbone.name} {self.layer} {self.objective} {size[0]}x{size[1]} {self.grad_norm}"
        timings = ", ".join(f"{k} {v:.1f}" for k, v in ms.items())
        if trial.quiet:
            self._decisions.put(self.key(size), winner, ms, what)
            log.info("auto backend for %s: %s (ms/step %s), kept in %s", what, winner, timings, self._decisions.path)
        else:
            log.info("auto backend for %s: %s for this run (ms/step %s); other programs used %.1f CPU cores "
                     "meanwhile, so it is measured again next time", what, winner, timings, trial.others_cores)
