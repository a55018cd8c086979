"""Video out over NDI, for real on loopback: the installation's frames reach an NDI
receiver in this process (cyndilib's FrameSync), as sent. NDI discovery is restricted to
this machine by a config folder (no mDNS daemon needed). Without cyndilib the output is one
log line and nothing else."""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from live.dream.images import natural_picture
from live.ndi import NdiOutput

W, H = 160, 120


@pytest.fixture
def loopback_ndi(tmp_path, monkeypatch):
    """NDI on this machine only. One test suite's NDI at a time: two processes starting
    NDI senders in the same second were each seen to find no source at all."""
    pytest.importorskip("cyndilib", reason="cyndilib (pip install cyndilib) carries the NDI runtime")
    (tmp_path / "ndi-config.v1.json").write_text('{"ndi":{"networks":{"ips":"127.0.0.1","discovery":""}}}')
    monkeypatch.setenv("NDI_CONFIG_DIR", str(tmp_path))
    import fcntl
    with open(Path(tempfile.gettempdir()) / "dreamcam-ndi-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def receive(name: str, want: int, timeout: float = 60.0) -> list[np.ndarray]:
    """`want` frames from the NDI source called `name` (BGRA, as sent)."""
    from cyndilib import RecvBandwidth, RecvColorFormat
    from cyndilib.finder import Finder
    from cyndilib.receiver import Receiver
    from cyndilib.video_frame import VideoFrameSync
    finder = Finder()
    finder.open()
    try:
        end = time.monotonic() + timeout
        source = None
        while source is None and time.monotonic() < end:
            finder.wait_for_sources(1.0)
            source = next((finder.get_source(n) for n in finder.get_source_names() if f"({name})" in n), None)
        assert source is not None, f"no NDI source ({name}) among {finder.get_source_names()}"
        rx = Receiver(color_format=RecvColorFormat.BGRX_BGRA, bandwidth=RecvBandwidth.highest)
        frame = VideoFrameSync()
        rx.frame_sync.set_video_frame(frame)
        rx.set_source(source)
        got: list[np.ndarray] = []
        while len(got) < want and time.monotonic() < end:
            rx.frame_sync.capture_video()
            a = frame.get_array()
            if a is not None and a.size == W * H * 4:
                got.append(a.reshape(H, W, 4).copy())
            time.sleep(0.02)
        rx.disconnect()
        return got
    finally:
        finder.close()


def offer(out: NdiOutput, frame: np.ndarray, how: str) -> None:
    """As the headless recorder (an RGB array) or the window loop (the screen surface) does."""
    if how == "rgb":
        out.offer_rgb(frame)
    else:
        import pygame
        out.offer_surface(pygame.image.frombuffer(np.ascontiguousarray(frame).tobytes(), (W, H), "RGB"))


@pytest.mark.parametrize("how", ["rgb", "surface"])
def test_the_picture_reaches_an_ndi_receiver(loopback_ndi, how):
    name = f"dreamcam-test-{os.getpid()}-{how}"
    out = NdiOutput(name, fps=30)
    out.start()
    picture = natural_picture(W, H, seed=4)
    stop = time.monotonic() + 90
    try:
        import threading
        feeding = threading.Event()

        def feed() -> None:
            i = 0
            while not feeding.is_set() and time.monotonic() < stop:
                frame = picture.copy()
                frame[:16, :16] = (i * 32) % 256                 # which frame this is, readable after NDI
                offer(out, frame, how)
                i += 1
                time.sleep(1 / 30)
        t = threading.Thread(target=feed, daemon=True)
        t.start()
        frames = receive(name, 20)
        feeding.set()
        t.join()
    finally:
        out.stop()
    assert len(frames) >= 20 and out.sent >= 3
    marks = {int(round(f[4:12, 4:12, :3].mean() / 32)) for f in frames}
    assert len(marks) >= 3                                 # live frames, not one picture over and over
    rgb = frames[-1][..., 2::-1].astype(int)              # BGRA -> RGB
    assert np.abs(rgb[16:] - picture[16:]).mean() < 6     # as sent (NDI's compression loses a little)


def test_without_cyndilib_it_is_one_line(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "cyndilib", None)   # import fails as where it is not installed
    caplog.set_level(logging.WARNING)
    assert NdiOutput.maybe(True, "x", 30) is None and NdiOutput.maybe(False, "x", 30) is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "NDI output needs cyndilib" in lines[0] and "carrying on" in lines[0]


def test_ndi_probe_counts_every_frame_a_source_sends(loopback_ndi, tmp_path):
    """The probe (python -m qa.ndi_probe) as a VJ would run it: a source offered 60
    pictures a second (sending at most 20); the probe receives its frames, told apart by
    the sender's timestamps, and names the size. No such source: one line, exit 2."""
    import json
    import subprocess
    import threading

    def probe(args: list[str]) -> subprocess.CompletedProcess:   # its own process, as a VJ runs it
        return subprocess.run([sys.executable, "-m", "qa.ndi_probe", *args], capture_output=True, text=True,
                              timeout=120, cwd=Path(__file__).resolve().parents[2])
    name = f"dreamcam-probe-{os.getpid()}"
    out = NdiOutput(name, fps=20)
    out.start()
    done = threading.Event()

    def feed() -> None:
        while not done.is_set():
            out.offer_rgb(natural_picture(W, H, seed=5))
            time.sleep(1 / 60)
    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        got = probe(["--name", name, "--seconds", "3", "--wait", "60", "--json", str(tmp_path / "p.json")])
        assert got.returncode == 0, got.stderr
    finally:
        done.set()
        t.join()
        out.stop()
    r = json.loads((tmp_path / "p.json").read_text())
    assert r["size"] == [W, H] and 10 <= r["frames"] <= out.sent and r["fps"] > 0
    assert r["ndi"]["video"]["frames_dropped"] == 0
    none = probe(["--name", "nobody-sends-this", "--seconds", "1", "--wait", "1"])
    assert none.returncode == 2 and none.stderr.count("\n") == 1 and "no NDI source" in none.stderr


def test_an_output_copies_at_most_its_rate_of_the_frames_offered():
    """The window offers 60 screens a second; an output sending 20 copies every third (each
    copy is the whole screen, on the display thread), and none while nobody watches."""
    from live.video_out import FrameOutput
    t = [0.0]
    out = FrameOutput("x", fps=20.0, now=lambda: t[0])
    frame = np.zeros((H, W, 3), np.uint8)
    for _ in range(60):
        out.offer_rgb(frame)
        t[0] += 1 / 60
    assert out.slot.latest()[0] == 20
    out.size, out.watched = (W, H), False
    for _ in range(60):
        out.offer_rgb(frame)
        t[0] += 1 / 60
    assert out.slot.latest()[0] == 20
