"""Nothing lies about a file, and Ctrl+C always works. A full disk is a real file-size
limit on a real `python -m live` (RLIMIT_FSIZE with SIGXFSZ ignored: writes fail with
EFBIG exactly as a full disk fails with ENOSPC); signals are real signals sent to a real
process once it has logged that it is starting. Also: a video file that goes away and
comes back, kiosk help that lists only what works, the mirror key's notice."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import pytest

from conftest import SMALL, file_size_limit, small_config, wait_for, wait_for_line, write_clip
from live import controls
from live.capture import Capture
from live.cli import UsageError
from live.config import SourceConfig
from live.dream.files import partial_name
from live.dream.video import incomplete_name
from live.sources import plan_source
from live.state import State
from live.windowed import WindowLoop

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "SDL_VIDEODRIVER": "dummy", "PYTHONPATH": str(ROOT)}


def live(*args: str) -> list[str]:
    """`python -m live` with the small, quick settings and no log file."""
    return [sys.executable, "-m", "live", "--log-file", "", *(a for s in SMALL for a in ("--set", s)), *args]


def one_line(stderr: str, text: str) -> str:
    lines = [line for line in stderr.splitlines() if text in line]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def decoded(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.fixture(scope="module")
def full_disk_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Two recordings run at once, each under its file-size limit: {name: (result, folder)}.
    "video": the recording itself outgrows 48 kB. "png": 640x480, three video frames take
    ~25 kB but the still ~200 kB, and files may not pass 100 kB."""
    runs = {"video": (48_000, ["--frames", "100000"]),
            "png": (100_000, ["--frames", "3", "--png", "last.png", "--set", "render.width=640",
                              "--set", "render.height=480"])}

    def run(name: str) -> tuple[str, tuple[subprocess.CompletedProcess, Path]]:
        limit, extra = runs[name]
        folder = tmp_path_factory.mktemp(name)
        proc = subprocess.run(live("--source", "clouds", "--headless", "--record", "rec.mp4", *extra), cwd=folder,
                              env=ENV, capture_output=True, text=True, timeout=280,
                              preexec_fn=file_size_limit(limit))
        return name, (proc, folder)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, runs))


def test_a_full_disk_ends_the_recording_with_one_line_and_exit_1_keeping_what_was_complete(full_disk_runs):
    proc, folder = full_disk_runs["video"]
    out = folder / "rec.mp4"
    assert proc.returncode == 1, proc.stderr
    line = one_line(proc.stderr, "cannot write")
    assert "--record 'rec.mp4': cannot write (File too large) after " in line
    assert "wrote" not in proc.stderr                                   # no claim of a finished video
    assert not out.exists() and not partial_name(out).exists()         # never a broken file under the name
    stated = int(line.split("the first ")[1].split(" frames")[0])
    assert "are kept in rec.incomplete.mp4" in line and stated > 0
    assert decoded(incomplete_name(out)) == stated                      # what it says is there plays


def test_a_still_that_cannot_be_written_is_one_line_and_exit_1(full_disk_runs):
    proc, folder = full_disk_runs["png"]
    assert proc.returncode == 1, proc.stderr
    assert "--png 'last.png': cannot write (File too large)" in one_line(proc.stderr, "cannot write")
    assert decoded(folder / "rec.mp4") == 3                             # the video was finished
    assert sorted(p.name for p in folder.iterdir()) == ["rec.mp4"]      # no PNG, no 0-byte partial


SNAPSHOTS = """
import json, logging, sys, time
from pathlib import Path
import numpy as np, pygame
from live.dream.files import WriteError
from live.window import snapshot, write_png
logging.basicConfig(level=logging.INFO, format="%(message)s")
folder = Path(sys.argv[1])
surface = pygame.Surface((640, 480))
pygame.surfarray.blit_array(surface, np.random.default_rng(0).integers(0, 256, (640, 480, 3)))
try:
    write_png(surface, folder / "direct.png")
    direct = "written"
except WriteError as exc:
    direct = str(exc)
said = []
snapshot(surface, folder, on_error=said.append)
end = time.monotonic() + 60
while not said and time.monotonic() < end:
    time.sleep(0.01)
print(json.dumps({"direct": direct, "said": said, "files": sorted(p.name for p in folder.iterdir())}))
"""


def test_snapshots_on_a_full_disk_leave_no_file_and_say_why(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SNAPSHOTS, str(tmp_path)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=120, preexec_fn=file_size_limit(100_000))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["direct"] == f"snapshot '{tmp_path / 'direct.png'}': cannot write (File too large)"
    assert got["said"] == ["snapshot failed: File too large"]           # on screen
    assert got["files"] == []                                           # nothing half-written, no partials
    assert "snapshot failed: snapshot '" in one_line(proc.stderr, "snapshot failed")   # and in the log


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_during_start_up_end_the_run_at_once_with_exit_0(tmp_path, sig):
    out = tmp_path / "rec.mp4"
    proc = subprocess.Popen(live("-v", "--source", "clouds", "--headless", "--frames", "100000", "--record", str(out)),
                            cwd=tmp_path, env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        seen = wait_for_line(proc, "starting (pid")      # logged before torch, the network, the engine load
        proc.send_signal(sig)
        code = proc.wait(120)
        log = "".join(seen) + proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, log
    assert "interrupted" in log and "Traceback" not in log
    assert "live.headless: recording" not in log                        # stopped before it recorded anything
    assert list(tmp_path.iterdir()) == []


def test_a_video_file_that_goes_away_and_comes_back(tmp_path):
    clip = write_clip(tmp_path / "clip.avi", frames=6, size=(64, 48), fps=100.0)
    away = tmp_path / "elsewhere.avi"
    cap = Capture(plan_source(str(clip), SourceConfig()), reconnect_seconds=0.05, max_backoff=0.2)
    fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    cap.start()
    try:
        assert wait_for(lambda: cap.status == "clip.avi")
        before = fds()
        for flap in range(3):
            os.replace(clip, away)                                      # pulled out
            assert wait_for(lambda: cap.status.startswith("clouds (") and cap.slot.latest()[1].source == "clouds")
            os.replace(away, clip)                                      # and back
            assert wait_for(lambda: cap.status == "clip.avi" and cap.slot.latest()[1].source == "clip.avi")
        assert wait_for(lambda: fds() == before, 10)                    # no descriptor left behind
    finally:
        cap.stop()
    assert [("lost" in e, "back" in e) for e in cap.events] == [(True, False), (False, True)] * 3


def test_kiosk_help_lists_only_what_works_and_the_mirror_key_says_so(backbone):
    from live.app import App
    labels = lambda **kw: [k for k, _ in controls.help_lines(**kw)]  # noqa: E731
    assert "s" in labels() and "s" in labels(kiosk=True, snapshots=True)
    assert "s" not in labels(kiosk=True, snapshots=False) and "Esc / q" not in labels(kiosk=True, snapshots=False)
    kiosk = App(small_config("kiosk.enabled=true"), "clouds", backbone=backbone)
    assert "s" not in [k for k, _ in WindowLoop(kiosk).help_lines]      # kiosk snapshots are off by default
    allowed = App(small_config("kiosk.enabled=true", "kiosk.snapshots=true"), "clouds", backbone=backbone)
    assert "s" in [k for k, _ in WindowLoop(allowed).help_lines]
    state = State.from_config(small_config("render.mirror=true"))
    state.toggle_mirror()
    assert state.message == "mirror off" and not state.view().mirror
    state.toggle_mirror()
    assert state.message == "mirror on"


def test_the_tools_refuse_non_finite_numbers(tmp_path, capsys):
    from qa import coherence, soak
    from tools.dream import main as dream
    for flags in (["--zoom", "nan"], ["--fps", "inf"], ["--octave-scale", "nan"], ["--smooth=-inf"]):
        assert dream(["noise", str(tmp_path / "o.mp4"), "--zoom-frames", "2", *flags, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "not a finite number" in err, err
    for parser, flags in ((soak.parser(), ["--minutes", "nan"]), (soak.parser(), ["--interval", "inf"]),
                          (coherence.build_parser(), ["--noise", "nan"]),
                          (coherence.build_parser(), ["--speed", "nan,1"])):
        with pytest.raises(UsageError, match=f"{flags[0]}: '.*' is not a finite number"):
            parser.parse_args(flags)
    assert list(tmp_path.iterdir()) == []
