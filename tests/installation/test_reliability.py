"""Weeks unattended: a capture read or a dream step that never returns (the watchdog),
a dream step that raises, goes non-finite or runs out of CUDA memory, a camera that comes
and goes during a recording, SIGTERM or a power cut during a recording, the working size
following the source's aspect, the rotating log and the systemd notify protocol.
Dreams use the real packaged network at small sizes; faults are injected by wrapping."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import cv2
import numpy as np
import pygame
import pytest
import torch

from conftest import SMALL, engine_factory, feed, read_video, small_config as cfg, wait_for, wait_for_line
from live import config
from live.adaptive import AdaptiveSize, adaptive_ladder, fit_aspect
from live.app import App
from live.capture import Capture, Frame, Slot
from live.commands import Commands
from live.dream import DreamEngine
from live.dream.files import partial_name
from live.dream.images import natural_picture as natural_image
from live.dreamer import Dreamer
from live.headless import run_headless
from live.sources import SourceError, SourcePlan
from live.state import State
from live.supervision import logs
from live.supervision.systemd import SystemdNotifier
from live.supervision.watchdog import Heartbeat, Watchdog
from live.window import write_png

ROOT = Path(__file__).resolve().parents[2]


class Solid:
    """A tiny source: one colour; `gate` (an Event), when given, makes every read after
    the first `free` reads block until it is set, the way a wedged camera driver does."""

    def __init__(self, name, color, size=(32, 24), gate=None, free=3):
        self.name, self.period, self.color, self.size = name, 0.005, color, size
        self.gate, self.free, self.reads = gate, free, 0

    def read(self):
        self.reads += 1
        if self.gate is not None and self.reads > self.free:
            self.gate.wait()
        return np.full((self.size[1], self.size[0], 3), self.color, np.uint8)

    def close(self):
        pass


def record_puts(slot: Slot) -> list:
    """Everything ever put into `slot` (the slot itself only keeps the newest)."""
    seen, put = [], slot.put
    slot.put = lambda item: (seen.append(item), put(item))
    return seen


class Holder:
    """What the App does for the watchdog: the current worker, and a restart that swaps it."""

    def __init__(self, worker):
        self.worker = worker

    def restart(self):
        self.worker = self.worker.respawn()
        self.worker.start()


# -- the watchdog ---------------------------------------------------------------------------

def test_a_capture_read_that_never_returns_is_replaced_and_frames_resume(caplog):
    gate = threading.Event()
    opened = []

    def opener():  # the first camera wedges after 3 frames; after a restart it works
        src = Solid("camera 0", (200, 0, 0), gate=None if opened else gate)
        opened.append(src)
        return src

    cap = Capture(SourcePlan(opener, "camera 0", is_camera=True), fallback=lambda: Solid("clouds", (0, 0, 200)))
    puts = record_puts(cap.slot)
    holder = Holder(cap)
    dog = Watchdog(check_seconds=0.05, max_restarts=3)
    dog.watch("capture", lambda: holder.worker, holder.restart, stall_seconds=0.4)
    caplog.set_level(logging.INFO)
    cap.start()
    dog.start()
    try:
        assert wait_for(lambda: holder.worker is not cap and len(puts) > 10)   # restarted, frames flow again
        assert len(opened) == 2 and opened[0].reads == 4                       # stuck in its 4th read
        last_old = puts[2].number
        gate.set()                                                             # the wedged read returns at last
        cap.join(5.0)
        assert not cap.is_alive()                                              # ... and the old thread ends
    finally:
        dog.stop()
        holder.worker.stop()
    assert dog.restarts == 1 and dog.fatal is None
    assert [f.number for f in puts] == list(range(1, len(puts) + 1))           # one numbering, no gap, no repeat
    assert puts[3].number == last_old + 1 and all(f.source == "camera 0" for f in puts)
    stalls = [r for r in caplog.records if "capture thread stalled" in r.getMessage()]
    assert len(stalls) == 1 and stalls[0].levelno == logging.ERROR


def test_a_dream_step_that_never_returns_is_replaced_and_dreams_resume(backbone):
    state = State.from_config(cfg())
    built: list[DreamEngine] = []
    frames: Slot[Frame] = Slot()
    dreamer = Dreamer(engine_factory(backbone, built), frames, state, cfg().dream)
    puts = record_puts(dreamer.dreams)
    holder = Holder(dreamer)
    dog = Watchdog(check_seconds=0.05, max_restarts=3)
    dog.watch("dream", lambda: holder.worker, holder.restart, stall_seconds=1.0)
    stop, gate = threading.Event(), threading.Event()
    feed(frames, stop, natural_image(128, 96))
    dreamer.start()
    dog.start()
    try:
        assert wait_for(lambda: len(puts) >= 2, 60)

        def wedged(img, **kw):
            gate.wait()
            return np.full((72, 96, 3), 7, np.uint8)   # what the old step returns when it wakes
        built[0].dream = wedged
        assert wait_for(lambda: holder.worker is not dreamer and len(built) == 2, 60)
        n = len(puts)
        assert wait_for(lambda: len(puts) >= n + 2, 60)                 # the new thread dreams
        assert built[0]._tap is None                                     # the stuck engine's hooks are off
        gate.set()
        dreamer.join(10.0)
        assert not dreamer.is_alive()
    finally:
        stop.set()
        dog.stop()
        holder.worker.stop()
    new = holder.worker
    assert dog.restarts == 1 and new.restarts == 1 and new.faults == 0
    assert not any(d.image is not None and (d.image == 7).all() for d in puts)   # the old one published nothing
    assert all(d.image is not None for d in puts)
    assert [d.number for d in puts] == list(range(1, len(puts) + 1))
    assert built[0]._tap is None                                                  # and left no hooks behind


class FakeWorker:
    def __init__(self):
        self.heartbeat, self.alive, self.ident = Heartbeat(), True, 1

    def is_alive(self):
        return self.alive


def test_watchdog_restarts_dead_or_silent_workers_and_gives_up_when_it_keeps_happening():
    worker, fatal = FakeWorker(), []
    dog = Watchdog(max_restarts=2, window_seconds=100.0, on_fatal=fatal.append)
    restarts = []

    def restart():
        restarts.append(1)
        worker.heartbeat.last = now             # the fresh worker beats

    dog.watch("capture", lambda: worker, restart, stall_seconds=5.0)
    now = worker.heartbeat.last
    assert dog.check(now + 4.0) == []                                    # within its time
    now += 6.0
    assert dog.check(now) == ["capture"]                                  # silent: restarted
    worker.alive = False
    now += 1.0
    assert dog.check(now) == ["capture"] and len(restarts) == 2          # died: restarted
    worker.alive = True
    now += 150.0                                                          # both restarts leave the window
    assert dog.check(now) == ["capture"] and not fatal
    now += 6.0
    assert dog.check(now) == ["capture"]
    now += 6.0
    assert dog.check(now) == [] and len(fatal) == 1 and dog.fatal == fatal[0]   # third within the window
    assert "exiting so the service manager restarts" in fatal[0]
    assert dog.check(now + 100.0) == []                                   # supervision has ended
    idle = FakeWorker()
    idle.ident = None                                                     # never started: not judged
    dog2 = Watchdog()
    dog2.watch("dream", lambda: idle, lambda: pytest.fail("restarted"), stall_seconds=0.0)
    assert dog2.check(time.monotonic() + 100.0) == []
    slow, restarted = FakeWorker(), []
    slow.heartbeat.expect(100.0)                                          # announced slow work (an engine build)
    dog3 = Watchdog()
    dog3.watch("dream", lambda: slow, lambda: restarted.append(1), stall_seconds=5.0)
    t = slow.heartbeat.last
    assert dog3.check(t + 50.0) == [] and dog3.check(t + 101.0) == ["dream"]


def test_the_app_exits_1_when_the_camera_keeps_wedging(backbone, tmp_path, caplog):
    gate = threading.Event()
    app = App(cfg("watchdog.capture_seconds=0.3", "watchdog.max_restarts=2"), "clouds", backbone=backbone)
    app.capture.plan = SourcePlan(lambda: Solid("camera 0", (9, 9, 9), gate=gate, free=0), "camera 0", True)
    out = tmp_path / "rec.mp4"
    try:
        assert run_headless(app, 1000, out) == 1
    finally:
        gate.set()
    assert app.fatal and "capture thread stalled" in app.fatal and "again after 2 restarts" in app.fatal
    assert not out.exists() and not partial_name(out).exists()             # nothing recorded, nothing left
    assert sum("restarting it" in r.getMessage() for r in caplog.records) == 2


# -- dream faults -----------------------------------------------------------------------

def run_dreamer(dreamer, frames, img, until, timeout=90.0):
    stop = threading.Event()
    feed(frames, stop, img)
    dreamer.start()
    try:
        assert wait_for(until, timeout)
    finally:
        stop.set()
        dreamer.stop()


def test_cuda_out_of_memory_steps_the_working_size_down_and_carries_on(backbone, caplog):
    state = State.from_config(cfg())
    built: list[DreamEngine] = []
    factory = engine_factory(backbone, built)

    def oom_once(size, s):
        eng = factory(size, s)
        if len(built) == 1:
            def boom(*a, **k):
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
            eng.dream = boom
        return eng

    frames: Slot[Frame] = Slot()
    dreamer = Dreamer(oom_once, frames, state, cfg("dream.size=[128, 96]", "dream.adaptive=true",
                                                   "dream.target_steps_per_second=0.5").dream)
    puts = record_puts(dreamer.dreams)
    caplog.set_level(logging.INFO)
    run_dreamer(dreamer, frames, natural_image(128, 96), lambda: len(puts) >= 3)
    assert [d.size for d in puts[:3]] == [(104, 80)] * 3                  # one size down, dreaming on
    assert all(d.image is not None and d.image.shape == (80, 104, 3) for d in puts)
    assert built[0]._tap is None and built[1].size == (104, 80)           # the old engine was let go
    assert dreamer.adaptive.floor == 1 and dreamer.faults == 1
    assert dreamer.adaptive.update(1000.0, now=1e6) is None               # and never back up
    for i in range(20):
        dreamer.adaptive.update(1000.0, now=2e6 + 100 * i)
    assert dreamer.adaptive.size == (104, 80)
    oom = [r for r in caplog.records if "out of memory" in r.getMessage()]
    assert len(oom) == 1 and "128x96" in oom[0].getMessage() and "104x80" in oom[0].getMessage()
    ad = AdaptiveSize((128, 96), target=8.0)
    ad.level = len(ad.ladder) - 1
    assert ad.step_down_for_memory() is None                              # at the bottom: an ordinary fault


def test_onnx_runtime_out_of_memory_is_out_of_memory_and_the_old_engine_is_gone_first(backbone, monkeypatch):
    """ONNX Runtime's arena failure (its own exception class, its own words) steps the
    size down like PyTorch's OutOfMemoryError; the failed engine, held by the temporal
    wrapper too, is collected before the allocator's cache is emptied."""
    from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException
    from live.dream.temporal.coherent import TemporalDream
    state = State.from_config(cfg())
    first: list[weakref.ref] = []

    def oom_once(size, s):
        eng = DreamEngine(backbone, layer=s.layer, size=size, strength=s.strength, objective=s.objective,
                          precision="fp32", backend="torch", seed=0)
        if not first:
            first.append(weakref.ref(eng))

            def boom(*a, **k):
                raise RuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned "
                                       "while running Conv node. BFCArena::AllocateRawInternal Failed to allocate "
                                       "memory for requested buffer of size 52428800")
            eng.dream = boom
        return eng

    alive_at_release: list[bool] = []
    monkeypatch.setattr("live.dreamer.release_memory", lambda: alive_at_release.append(first[0]() is not None))
    frames: Slot[Frame] = Slot()
    dreamer = Dreamer(oom_once, frames, state, cfg("dream.size=[128, 96]", "dream.adaptive=true",
                                                   "dream.target_steps_per_second=0.5").dream, temporal=TemporalDream)
    puts = record_puts(dreamer.dreams)
    run_dreamer(dreamer, frames, natural_image(128, 96), lambda: len(puts) >= 2)
    assert alive_at_release == [False]                                    # released after the engine was gone
    assert puts[0].size == (104, 80) and puts[0].image is not None        # one size down, dreaming on
    assert dreamer.adaptive.floor == 1 and dreamer.faults == 1


def test_non_finite_values_are_logged_and_the_engine_restarted_and_freed(backbone, caplog):
    state = State.from_config(cfg())
    built: list[weakref.ref] = []   # weak: the test must not keep the failed engine alive itself

    def nan_once(size, s):
        eng = DreamEngine(backbone, layer=s.layer, size=size, strength=s.strength, objective=s.objective,
                          precision="fp32", backend="torch", seed=0)
        built.append(weakref.ref(eng))
        if len(built) == 1:  # the wrapper makes a reference cycle, as wrappers and tracebacks do
            real = eng.run_steps
            calls = []

            def poisoned(x, n, strength=None):
                calls.append(1)
                out = real(x, n, strength)
                return out * float("nan") if len(calls) == 2 else out
            eng.run_steps = poisoned
        return eng

    frames: Slot[Frame] = Slot()
    dreamer = Dreamer(nan_once, frames, state, cfg().dream)
    caplog.set_level(logging.INFO)
    puts = record_puts(dreamer.dreams)
    run_dreamer(dreamer, frames, natural_image(128, 96), lambda: len(puts) >= 4)
    images = [d.image is not None for d in puts]
    assert images[:3] == [True, False, True]          # a dream, the live picture alone, dreams again
    assert len(built) == 2 and dreamer.restarts == 1 and dreamer.faults == 1
    assert built[0]() is None and built[1]() is not None    # the failed engine is gone, not piling up
    assert sum("non-finite" in r.getMessage() and "dream step failed" in r.getMessage()
               for r in caplog.records) == 1
    assert any("dreaming again" in r.getMessage() for r in caplog.records)


def test_settings_whose_steps_keep_failing_are_taken_back(backbone, caplog):
    """A setting every step fails with (here one channel, made to fail the way a broken
    backend would) is taken back to the last settings that dreamed, through the command
    layer, with one line: the picture does not freeze until someone notices."""
    state = State.from_config(cfg())
    commands = Commands(state)

    def breaks_on_channel_3(size, s):
        eng = DreamEngine(backbone, layer=s.layer, size=size, strength=s.strength, objective=s.objective,
                          precision="fp32", backend="torch", seed=0)
        real = eng.run_steps

        def run_steps(x, n, strength=None):
            if eng.objective == "channel:3":
                raise RuntimeError("this objective breaks the step")
            return real(x, n, strength)
        eng.run_steps = run_steps
        return eng

    frames: Slot[Frame] = Slot()
    dreamer = Dreamer(breaks_on_channel_3, frames, state, cfg().dream,
                      revert=lambda good: commands.set_many({"layer": good.layer, "objective": good.objective,
                                                             "strength": good.strength}, source="dreamer"))
    caplog.set_level(logging.INFO)
    steps: list[int] = []
    stop = threading.Event()
    feed(frames, stop, natural_image(128, 96))
    dreamer.start()
    try:
        assert wait_for(lambda: dreamer.steps >= 2, 60)
        commands.run("objective", "channel:3")
        assert wait_for(lambda: dreamer.faults >= 3 and state.objective == "amplify", 60)
        steps.append(dreamer.steps)
        assert wait_for(lambda: dreamer.steps > steps[0] + 2, 60)          # dreaming again
    finally:
        stop.set()
        dreamer.stop()
    assert dreamer.faults == 3
    lines = [r.getMessage() for r in caplog.records if "keep failing" in r.getMessage()]
    assert len(lines) == 1 and "objective 'channel:3'" in lines[0] and "back to blocks.10, 'amplify'" in lines[0]


# -- the working size follows the source's aspect -----------------------------------------

def test_working_size_keeps_the_pixel_budget_and_takes_the_source_aspect(backbone):
    assert fit_aspect((320, 240), 4 / 3) == (320, 240)
    assert fit_aspect((320, 240), 16 / 9) == (368, 208)
    assert fit_aspect((320, 240), 9 / 16) == (208, 368)
    for aspect in (16 / 9, 4 / 3, 21 / 9, 1.0, 9 / 16):
        w, h = fit_aspect((320, 240), aspect)
        assert w % 8 == 0 and h % 8 == 0
        assert w * h == pytest.approx(320 * 240, rel=0.04) and w / h == pytest.approx(aspect, rel=0.04)
    for w, h in adaptive_ladder(fit_aspect((320, 240), 16 / 9)):
        assert w / h == pytest.approx(16 / 9, rel=0.03)                    # adaptive sizes keep it too

    state = State.from_config(cfg())
    dreamer = Dreamer(engine_factory(backbone, []), Slot(), state, cfg("dream.size=[128, 96]").dream)
    wide = dreamer.step_once(Frame(natural_image(256, 144), 1, time.perf_counter(), "camera 0"))
    assert wide.image.shape == (80, 144, 3) and wide.size == (144, 80)       # 16:9 in, (nearly) 16:9 dreamed
    tall = dreamer.step_once(Frame(natural_image(96, 128), 2, time.perf_counter(), "clip.mp4"))
    assert tall.size == (96, 128)                                           # portrait video
    app = App(cfg("render.blend=1.0"), "clouds", backbone=backbone)         # clouds/cameras: 16:9 from the start
    w, h = app.dreamer.engine.size
    assert w / h == pytest.approx(16 / 9, rel=0.05) and w * h == pytest.approx(96 * 72, rel=0.1)


# -- recordings and files -----------------------------------------------------------------

def test_a_camera_that_comes_and_goes_during_a_recording(backbone, tmp_path, caplog):
    """The camera gives 20 frames, then only bad ones; unplugged, it refuses one reopening
    and is back at the next: counted in reads and retries, not in seconds, so a fast
    recording sees it come and go as a slow one does (a 0.4 s timer was outrun once)."""
    present = {"on": True, "refused": 0}

    class Flaky(Solid):
        def read(self):
            if self.reads >= 20:
                present["on"] = False
                return None
            return super().read()

    def opener():
        if not present["on"]:
            present["refused"] += 1
            if present["refused"] < 2:
                raise SourceError("no camera at index 0")
            present["on"], present["refused"] = True, 0
        return Flaky("camera 0", (180, 60, 60), size=(64, 36))

    app = App(cfg(), "0", backbone=backbone)
    app.capture.plan = SourcePlan(opener, "camera 0", is_camera=True)
    app.capture.reconnect_seconds, app.capture.max_backoff = 0.05, 0.1
    out = tmp_path / "rec.avi"
    caplog.set_level(logging.INFO)
    assert run_headless(app, 40, out, seconds=120) == 0
    assert len(read_video(out)) == 40 and app.dreamer.faults == 0
    events = list(app.capture.events)
    assert len(events) >= 2 and all(("lost" in e) == (i % 2 == 0) for i, e in enumerate(events))
    assert all("back" in e for e in events[1::2])                           # lost, back, lost, back ...
    logged = [r.getMessage() for r in caplog.records if r.name == "live.capture"]
    assert logged == events                                                 # each event once, not per frame


def start_recording(out: Path, tmp: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "live", "--source", "clouds", "--headless", "--frames", "100000",
            "--record", str(out), "--log-file", ""] + [a for s in SMALL for a in ("--set", s)]
    return subprocess.Popen(args, cwd=tmp, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SDL_VIDEODRIVER": "dummy", "PYTHONPATH": str(ROOT)})


def test_sigterm_finishes_the_video_and_a_power_cut_leaves_no_half_file(tmp_path):
    term, cut = tmp_path / "term" / "rec.mp4", tmp_path / "cut" / "rec.mp4"
    procs = [start_recording(term, tmp_path), start_recording(cut, tmp_path)]
    try:
        for p in procs:
            wait_for_line(p, "recorded 25/")
        procs[0].send_signal(signal.SIGTERM)
        procs[1].kill()                               # SIGKILL: as abrupt as a power cut
        assert procs[0].wait(60) == 0
        procs[1].wait(60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    frames = read_video(term)
    assert len(frames) >= 25 and frames[-1].shape == (120, 160, 3)   # finished, playable to the end
    assert not partial_name(term).exists()
    assert not cut.exists()                                         # nothing half-written under the name
    assert partial_name(cut).exists()                               # (the hidden partial holds the wreck)


def test_snapshots_are_renamed_into_place_only_when_complete(tmp_path, monkeypatch):
    surface = pygame.Surface((32, 24))
    surface.fill((10, 200, 30))
    done = write_png(surface, tmp_path / "snap.png")
    assert cv2.imread(str(done)).shape == (24, 32, 3) and not partial_name(done).exists()

    def dies_halfway(surf, target, namehint=""):
        target.write(b"\x89PNG half")
        raise pygame.error("encoder failed")
    monkeypatch.setattr(pygame.image, "save", dies_halfway)
    with pytest.raises(pygame.error):
        write_png(surface, tmp_path / "cut.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.png"]      # no half file, no partial


# -- logging and systemd ------------------------------------------------------------------

def test_log_file_rotates_levels_filter_and_dying_threads_are_logged(tmp_path):
    path = tmp_path / "logs" / "dreamcam.log"
    path.parent.mkdir()
    path.write_text("a line from an older run, made readable to all\n")
    path.chmod(0o644)
    try:
        assert logs.setup("WARNING", path, max_bytes=2000, backups=2) == path
        lg = logging.getLogger("live.test")
        lg.info("an info line that must not appear")
        for i in range(60):
            lg.warning("warning number %03d with some padding to fill the file quickly", i)
        t = threading.Thread(target=lambda: 1 / 0, name="doomed")
        t.start()
        t.join()
        logs.flush()
        files = sorted(p.name for p in path.parent.iterdir())
        assert files == ["dreamcam.log", "dreamcam.log.1", "dreamcam.log.2"]          # capped
        assert all(p.stat().st_size <= 2200 for p in path.parent.iterdir())
        text = path.read_text()
        assert "thread doomed died" in text and "ZeroDivisionError" in text
        everything = "".join(p.read_text() for p in path.parent.iterdir())
        assert "warning number 059" in everything and "info line" not in everything
        assert {oct(p.stat().st_mode & 0o777) for p in path.parent.iterdir()} == {"0o600"}  # it holds the token
        with pytest.raises(logs.LogFileError, match="cannot write there"):
            logs.setup("INFO", tmp_path / "logs" / "dreamcam.log" / "x.log")
    finally:
        logs.setup("INFO")


def test_systemd_notify_ready_watchdog_and_stopping(tmp_path):
    addr = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(addr)
    server.settimeout(5)
    try:
        n = SystemdNotifier({"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "2000000"})
        assert n.enabled and n.interval == 1.0
        n.ready()
        n.ping(100.0)
        n.ping(100.5)                                    # within half of WatchdogSec: nothing
        n.ping(101.0)
        n.stopping()
        got = [server.recv(64).decode() for _ in range(4)]
        assert got == ["READY=1", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]
    finally:
        server.close()
    quiet = SystemdNotifier({})
    assert not quiet.enabled and quiet.interval is None and not quiet.send("READY=1")
    other = SystemdNotifier({"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"})
    assert other.interval is None                        # the watchdog is meant for another process
    assert SystemdNotifier({"NOTIFY_SOCKET": "@dreamcam"}).address == "\0dreamcam"


def test_shipped_config_and_unit_agree_with_the_code():
    cfg = config.load()
    assert cfg.watchdog.enabled and cfg.log.file == "logs/dreamcam.log" and cfg.log.level == "INFO"
    assert cfg.watchdog == config.WatchdogConfig() and cfg.log == config.LogConfig()
    unit = (ROOT / "deploy" / "dreamcam.service").read_text()
    for needed in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "RestartPreventExitStatus=2",
                   "-m live --kiosk", "StartLimitIntervalSec=0"):
        assert needed in unit, needed
    assert "logs/" in (ROOT / ".gitignore").read_text().split()
