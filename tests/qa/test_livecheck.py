"""qa.livecheck's virtual screen: Xvfb picks a free display itself and is stopped so that
it removes its own socket and lock (killed servers' had used up every number it looked at)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa.livecheck import start_xvfb, stop_xvfb


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="no Xvfb here (apt install xvfb)")
def test_a_virtual_screen_starts_and_leaves_nothing_behind(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    server, display = start_xvfb()
    socket = Path(f"/tmp/.X11-unix/X{display[1:]}")
    try:
        assert display[1:].isdigit() and server.poll() is None and socket.exists()
    finally:
        stop_xvfb(server)
    assert server.returncode is not None and not socket.exists()
    assert not Path(f"/tmp/.X{display[1:]}-lock").exists()


def test_the_avx2_stand_in_holds_every_library_to_avx2():
    """Whatever this CPU has, a child started with avx2_env runs no AVX-512 kernel: PyTorch's
    element-wise code, oneDNN (the variable it reads), OpenCV's and numpy's dispatch."""
    import json
    import subprocess
    import sys
    from qa.slowcpu import avx2_env
    probe = ("import json, os, cv2, torch; from numpy._core._multiarray_umath import __cpu_features__ as f; "
             "print(json.dumps([torch.backends.cpu.get_cpu_capability(), cv2.getCPUFeaturesLine(), "
             "f.get('AVX512F') and f.get('AVX512_SKX'), os.environ['ONEDNN_MAX_CPU_ISA']]))")
    torch_isa, cv_line, numpy_avx512, onednn = json.loads(
        subprocess.run([sys.executable, "-c", probe], env=avx2_env(), capture_output=True, text=True,
                       check=True).stdout)
    assert torch_isa in ("AVX2", "DEFAULT") and onednn == "AVX2" and not numpy_avx512
    assert all(f.endswith("?") for f in cv_line.split() if f.lstrip("*").startswith("AVX512"))  # '?': disabled


@pytest.mark.parametrize("v2", [True, False], ids=["cgroup-v2", "cgroup-v1"])
def test_a_cpu_share_is_a_cgroup_quota(tmp_path, v2):
    from qa.slowcpu import PERIOD_US, CpuShare
    if v2:
        (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    else:
        (tmp_path / "cpu").mkdir()
    with CpuShare(0.5, cores=2, root=tmp_path) as share:
        share.enter(4242)
        if v2:
            assert (share.path / "cpu.max").read_text() == f"{PERIOD_US} {PERIOD_US}\n"   # one core's worth of two
        else:
            assert (share.path / "cpu.cfs_quota_us").read_text() == f"{PERIOD_US}\n"
            assert (share.path / "cpu.cfs_period_us").read_text() == f"{PERIOD_US}\n"
        assert (share.path / "cgroup.procs").read_text() == "4242\n"
    assert CpuShare(0.25, cores=4, root=tmp_path).quota_us == PERIOD_US


def test_livecheck_says_in_one_line_when_it_cannot_share_the_cpu(tmp_path, monkeypatch, capsys):
    import qa.slowcpu
    from qa.livecheck import main
    from live.cli import run
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    monkeypatch.setattr(qa.slowcpu, "CGROUPS", tmp_path / "no" / "cgroups")   # as on a machine without them
    for share, words in (("0.5", "cannot make the cgroup"), ("3", "out of range")):
        with pytest.raises(SystemExit) as exit_:
            run(lambda: main(["--source", str(clip), "--cpu-share", share, "--out-dir", str(tmp_path / "out")]))
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and words in err, err


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="no Xvfb here (apt install xvfb)")
def test_an_app_that_refuses_to_start_is_one_line_with_its_reason(tmp_path, capsys, monkeypatch):
    """What the app printed before it had a log file (here: refusing a --set) is the line,
    and its exit code 2 is livecheck's."""
    from conftest import write_clip
    from qa.livecheck import main
    monkeypatch.delenv("DISPLAY", raising=False)
    clip = write_clip(tmp_path / "clip.mp4")
    code = main(["--source", str(clip), "--seconds", "3", "--runs", "1", "--out-dir", str(tmp_path / "out"),
                 "--set", "dream.strength=-1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: python -m live (run 1) ended with exit code 2: error: ") and "strength" in err[0]
    assert (tmp_path / "out" / "run1.out").is_file()
