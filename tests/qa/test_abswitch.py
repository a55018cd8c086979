"""qa.abswitch: a setting switched back and forth inside one live window run (the SDL dummy
driver here), the dream's rate counted per stretch on each side."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SMALL
from live.cli import run
from qa.abswitch import main

SETS = [a for s in SMALL for a in ("--set", s)]
SHORT = ["--source", "clouds", "--warmup", "2", "--settle", "0.2", "--window", "1"]


@pytest.fixture(autouse=True)
def _screen(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("DISPLAY", ":dummy")   # the dummy driver draws nowhere: no virtual screen needed


def test_both_sides_are_counted_in_interleaved_stretches(tmp_path, capsys):
    assert main(["picture-fps", *SHORT, "--seconds", "12", "--out-dir", str(tmp_path), *SETS]) == 0
    report = json.loads((tmp_path / "abswitch.json").read_text())
    assert [s["setting"] for s in report["sides"]] == ["30", "every picture"]
    for side in report["sides"]:
        assert len(side["stretches"]) >= 2 and side["steps_per_second"] > 0 and side["display_fps"] > 0
    assert 0 <= report["a_ahead"] <= report["pairs"] >= 2
    out = capsys.readouterr().out
    assert "picture-fps            30:" in out and "ahead in" in out


def test_a_switch_that_does_not_apply_is_one_line_and_exit_2(tmp_path, capfd):
    with pytest.raises(SystemExit) as exit_:
        run(lambda: main(["openvino-threads", *SHORT, "--seconds", "6", "--out-dir", str(tmp_path), *SETS]))
    err = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error")]
    assert exit_.value.code == 2 and err == ["error: the running step is DreamStep, not OpenVINO's: add "
                                             "--set dream.backend=openvino"]


def test_the_still_flow_switch_turns_the_dreams_snap_to_0_off_and_back_on():
    from live.dream.temporal import flow
    from qa.abswitch import SWITCHES
    keep, resample = SWITCHES["still-flow"][1](None, None)
    tiny = np.full((8, 8, 2), 0.001, np.float32)   # a still camera's shift, a thousandth of a pixel
    try:
        resample()
        assert flow.quieted(tiny.copy()).any()
    finally:
        keep()
    assert flow.STILL > 0 and not flow.quieted(tiny.copy()).any()
