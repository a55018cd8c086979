"""backend = "auto" and the background builds: decided once and read back from disk, a
busy machine's trial not written down, a build never making a dream wait, the export
child process. The decisions live in the temporary cache folder conftest points
XDG_CACHE_HOME at; the timing is injected (a Meter), so nothing here depends on speed."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from conftest import ONNX_NORM, ONNX_SIZE as SIZE, wait_for
from live.dream import DreamEngine
from live.dream.backends import auto, onnx as ob
from live.dream.backends import pool as pool_module
from live.dream.backends.pool import StepPool, build_step, run_child
from live.dream.backends.trace import ExportError

COST = {"torch": 3.0, "openvino": 2.0, "onnx": 1.0}  # seconds per step, as the fake meter tells it


class FakeMeter(auto.Meter):
    """A clock that advances by COST[the backend running], and a machine as busy as told."""

    def __init__(self, others_cores: float = 0.0):
        self.t = self.busy = 0.0
        self.others_cores = others_cores
        self.pool: StepPool | None = None
        self.reads = 0

    def now(self) -> float:
        self.reads += 1
        self.t += COST[self.pool.last] / 2 if self.pool is not None else 0.0
        return self.t

    def others(self) -> float:
        return self.others_cores * self.t


class NoMeter(auto.Meter):
    def now(self) -> float:
        raise AssertionError("a decision on disk must not be measured again")

    others = now


@pytest.fixture
def quick_trial(monkeypatch):
    monkeypatch.setattr(auto, "TRIAL_ROUNDS", 2)
    monkeypatch.setattr(auto, "TRIAL_STEPS", 2)


def auto_engine(backbone, meter: auto.Meter, **kw) -> DreamEngine:
    eng = DreamEngine(backbone, "blocks.10", size=SIZE, backend="auto", seed=0, meter=meter, **kw)
    if isinstance(meter, FakeMeter):
        meter.pool = eng._ensure_step()
    return eng


def clear_decisions() -> None:
    auto.Decisions().path.unlink(missing_ok=True)


def test_precision_auto_is_fp32_on_cpu_without_measuring(backbone):
    eng = DreamEngine(backbone, "blocks.10", size=SIZE, backend="torch")
    assert eng.precision == "fp32" and auto.precision_for(backbone.device) == "fp32"
    eng.close()


def test_auto_decides_once_and_the_next_engine_reads_the_decision(backbone, photo, openvino_ready, quick_trial):
    clear_decisions()
    meter = FakeMeter()
    first = auto_engine(backbone, meter)
    try:
        assert first.wait_ready(timeout=600)
        ran = set()
        for _ in range(2 * 2 * 3):  # the trial: rounds x steps x (torch, openvino, onnx)
            first.dream(photo)
            ran.add(first.running)
        assert ran == {"torch", "openvino", "onnx"}          # every candidate dreamed real frames
        assert first._step.decided(SIZE)
        first.dream(photo)
        assert first.running == "onnx"                       # the cheapest by the meter
        assert first.info["backend"] == "onnx" and first.info["setting"] == "auto"
    finally:
        first.close()
    assert auto.Decisions().get(auto.decision_key(backbone, "blocks.10", "amplify", SIZE, ONNX_NORM, "fp32")) == "onnx"
    second = auto_engine(backbone, NoMeter())
    try:
        assert second.wait_ready(timeout=600) and second._step.decided(SIZE)
        before = second.objective_value(photo)
        out = second.dream(photo)
        assert second.running == "onnx" and second.objective_value(out) > before
    finally:
        second.close()


def test_a_trial_on_a_busy_machine_holds_for_this_run_only(backbone, photo, openvino_ready, quick_trial):
    clear_decisions()
    eng = auto_engine(backbone, FakeMeter(others_cores=1.5))
    try:
        assert eng.wait_ready(timeout=600)
        for _ in range(2 * 2 * 3 + 1):
            eng.dream(photo)
        assert eng._step.decided(SIZE) and eng.running == "onnx"  # used, but not written down
    finally:
        eng.close()
    assert not auto.Decisions().path.exists()


def test_a_size_change_never_waits_for_a_build(backbone, photo, openvino_ready):
    """The build of the openvino step is held on an Event: dreams go on with the eager
    step at the old size and at a new one, and the built step takes over once released."""
    gate = threading.Event()
    other = (128, 96)

    def held(bb, eager, pool, name, size):
        assert gate.wait(timeout=120)
        if size != SIZE:
            raise ExportError("not exported in this test")  # that size stays on the eager step
        return build_step(bb, eager, pool, name, size)

    eng = DreamEngine(backbone, "blocks.10", size=SIZE, backend="openvino", seed=0, background=True, build=held)
    def dream_returns() -> bool:
        """One dream in a thread; True if it came back while the build is still held."""
        t = threading.Thread(target=eng.dream, args=(photo,), daemon=True)
        t.start()
        t.join(timeout=120)  # a safety net only: a dream that waited for the build never returns
        return not t.is_alive() and not gate.is_set()

    try:
        assert dream_returns()
        assert eng.running == "torch" and not eng.ready() and eng.info["building"]
        eng.configure(size=other)
        assert dream_returns()
        assert eng.running == "torch" and eng.residual.shape[-2:] == (other[1], other[0])
        eng.configure(size=SIZE)
        gate.set()
        assert wait_for(lambda: eng.ready(SIZE) and eng.ready(other), timeout=300)
        out = eng.dream(photo)
        assert eng.running == "openvino" and out.shape == (SIZE[1], SIZE[0], 3)
        eng.configure(size=other)
        eng.dream(photo)
        assert eng.running == "torch"                        # its build failed: the eager step, for good
    finally:
        gate.set()
        eng.close()


def test_the_export_child_process_answers(backbone, openvino_ready):
    path = ob.cache_path(backbone, "blocks.10", "amplify", SIZE, ONNX_NORM)
    job = {"model": backbone.name, "layer": "blocks.10", "objective": "amplify", "grad_norm": ONNX_NORM,
           "size": list(SIZE), "backends": ["openvino", "onnx"], "expect": str(path)}
    assert run_child(job) == {"ok": ["openvino", "onnx"], "errors": {}}


def test_the_sizes_built_ahead_wait_for_the_current_one_and_it_is_judged_alone(backbone):
    """prepare([current, smaller rung]): the rung's export (here the other normalisation,
    held on an Event) starts only once the current size has settled, and while it is built
    the current size is not `settled` (adaptive quality does not judge its speed: an export
    beside the dream slowed it by half on a 2-core machine and stepped the size down)."""
    gate, asked = threading.Event(), []

    def held(bb, eager, pool, name, size):
        asked.append(pool.grad_norm)
        if pool.grad_norm == "laplacian":
            assert gate.wait(timeout=120)
        return eager

    current, rung = (480, 64), (320, 64)   # "mixed" at this width, "laplacian" below 480
    eng = DreamEngine(backbone, "blocks.10", size=current, tile=(0, 0), backend="onnx", grad_norm="auto",
                      seed=0, background=True, build=held)
    picture = np.full((64, 480, 3), 128, np.uint8)
    try:
        eng.prepare([current, rung])
        assert wait_for(eng.settled, timeout=60) and asked == ["mixed"]
        eng.dream(picture)                          # settled: the rung is asked for now
        assert wait_for(lambda: asked == ["mixed", "laplacian"], timeout=60)
        assert eng.ready() and not eng.ready(rung) and not eng.settled()
        gate.set()
        assert wait_for(lambda: eng.settled() and eng.ready(rung), timeout=60)
    finally:
        gate.set()
        eng.close()


def test_a_tie_in_the_trial_goes_to_the_candidate_listed_first():
    trial = auto.Trial(("openvino", "onnx", "torch"), auto.Meter())
    trial.ms = {"openvino": [37.4, 37.5], "onnx": [37.3, 37.2], "torch": [80.0]}
    assert trial.winner() == "openvino"
    trial.ms = {"openvino": [45.0], "onnx": [37.3], "torch": [80.0]}   # more than TIE behind: the faster
    assert trial.winner() == "onnx"
    trial.ms = {"openvino": [], "onnx": [], "torch": [80.0]}
    assert trial.winner() == "torch"


def test_an_export_child_that_never_answers_is_stopped(monkeypatch, tmp_path):
    """A stuck export must not hold its size (and adaptive quality, which waits for the
    builds) for the rest of a run that lasts weeks: the child is killed, the eager step stays."""
    stuck = tmp_path / "python"
    stuck.write_text("#!/bin/sh\nexec sleep 600\n")   # a child that never answers, whatever the machine
    stuck.chmod(0o755)
    monkeypatch.setattr(pool_module.sys, "executable", str(stuck))
    monkeypatch.setattr(pool_module, "EXPORT_SECONDS", 0.5)
    children = []
    with pytest.raises(ExportError, match="still at work after 0.5 s; stopped it"):
        run_child({"size": [8, 8]}, children.append)
    assert children[0].returncode is not None and children[0] not in pool_module._CHILDREN
