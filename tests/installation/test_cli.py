"""Bad input everywhere gets one clear line and exit code 2, never a traceback. The whole
table runs through the command line's main() in this process (stderr captured at the file
descriptor, so C libraries' own lines would show); a sample from each group also runs as
the real `python -m live` in a subprocess (each costs seconds of imports on 2 cores)."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import write_clip
from live.__main__ import main
from live.sources import SOURCE_MIN   # (importing it also quiets FFmpeg before write_clip wakes it)

ROOT = Path(__file__).resolve().parents[2]
HEADLESS = ["--headless", "--record", "out/x.mp4", "--log-file", ""]

# (id, extra arguments, the text the one line must contain). `{tmp}` is the test's folder,
# where the files below are written.
CASES = [
    # flags
    ("frames-zero", ["--frames", "0"], "--frames: must be at least 1"),
    ("frames-word", [*HEADLESS, "--frames", "many"], "'many' is not a whole number"),
    ("unknown-flag", ["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ("headless-no-record", ["--headless"], "--headless needs --record"),
    ("record-gif", ["--headless", "--record", "x.gif"], "ending in .mp4 or .avi"),
    ("record-no-headless", ["--record", "x.mp4"], "--record works with --headless"),
    ("png-suffix", [*HEADLESS, "--png", "x.jpg"], "ending in .png"),
    ("seconds-negative", [*HEADLESS, "--seconds", "-5"], "--seconds: must be a positive number"),
    ("seconds-nan", [*HEADLESS, "--seconds", "nan"], "--seconds: 'nan' is not a finite number"),
    ("log-level", [*HEADLESS, "--log-level", "loud"], "--log-level: invalid choice: 'LOUD'"),
    ("source-empty", [*HEADLESS, "--source", " "], "--source is empty"),
    # --set
    ("set-no-equals", [*HEADLESS, "--set", "nonsense"], "expected section.key=value"),
    ("set-unknown-section", [*HEADLESS, "--set", "nosuch.key=1"], "unknown section [nosuch]"),
    ("set-unknown-key", [*HEADLESS, "--set", "dream.layr=blocks.3"], "unknown key 'dream.layr'"),
    ("set-type", [*HEADLESS, "--set", "dream.strength=strong"], "'dream.strength' must be a number"),
    ("set-range", [*HEADLESS, "--set", "render.blend=2"], "'render.blend' = 2.0 is out of range"),
    ("set-size", [*HEADLESS, "--set", "dream.size=[10,10]"], "'dream.size' = [10, 10] is out of range"),
    ("set-watchdog", [*HEADLESS, "--set", "watchdog.max_restarts=0"], "'watchdog.max_restarts' = 0"),
    ("set-log-level", [*HEADLESS, "--set", "log.level=LOUD"], "'log.level' = 'LOUD' is not allowed"),
    ("set-presets", [*HEADLESS, "--set", "presets.name=x"], "presets are edited in the config file"),
    ("set-nan", [*HEADLESS, "--set", "dream.strength=nan"], "'dream.strength' = nan is not a finite number"),
    ("set-inf", [*HEADLESS, "--set", "render.blend=inf"], "'render.blend' = inf is not a finite number"),
    ("set-nan-watchdog", [*HEADLESS, "--set", "watchdog.dream_seconds=nan"], "'watchdog.dream_seconds' = nan"),
    # config files
    ("config-missing", [*HEADLESS, "--config", "{tmp}/missing.toml"], "config file not found"),
    ("config-not-toml", [*HEADLESS, "--config", "{tmp}/bad.toml"], "not valid TOML"),
    ("config-binary", [*HEADLESS, "--config", "{tmp}/binary.toml"], "not a text file"),
    # sources
    ("source-missing", [*HEADLESS, "--source", "{tmp}/missing.mp4"], "missing.mp4': no such file"),
    ("source-junk-video", [*HEADLESS, "--source", "{tmp}/junk.mp4"], "cannot be read as a video"),
    ("source-junk-image", [*HEADLESS, "--source", "{tmp}/junk.png"], "cannot be read as an image"),
    ("source-tiny-image", [*HEADLESS, "--source", "{tmp}/tiny.png"], "the picture is 1x1, smaller than the smallest"),
    ("source-tiny-video", [*HEADLESS, "--source", "{tmp}/tiny.avi"], "the video is 16x16, smaller than the smallest"),
    ("source-directory", [*HEADLESS, "--source", "{tmp}/adir"], "source '{tmp}/adir' is a directory"),
    ("source-directory-png", [*HEADLESS, "--source", "{tmp}/adir.png"], "source '{tmp}/adir.png' is a directory"),
    # layers
    ("layer", [*HEADLESS, "--set", "dream.layer=blocks.99"], "'dream.layer': layer 'blocks.99' does not exist in efficientnet_lite0"),
    ("preset-layer", [*HEADLESS, "--config", "{tmp}/preset_layer.toml"], "'presets[0].layer': layer 'nope' does not exist"),
    # objectives and classes
    ("class", [*HEADLESS, "--set", "dream.objective=class:unicorn"], "'unicorn' is not an ImageNet class"),
    ("channel", [*HEADLESS, "--set", "dream.objective=channel:100000"], "channel 100000 does not exist"),
    ("objective", [*HEADLESS, "--set", "dream.objective=louder"], "objective 'louder' is not understood"),
    ("souvenir-no-remote", [*HEADLESS, "--set", "souvenir.enabled=true"], "'souvenir.enabled' needs the web remote"),
    ("objective-nan", [*HEADLESS, "--set", 'dream.objective="nan*amplify"'], "weight 'nan' in objective"),
    ("objective-huge", [*HEADLESS, "--set", 'dream.objective="1e300*amplify"'], "must be a finite number"),
    ("preset-class", [*HEADLESS, "--config", "{tmp}/preset_class.toml"], "presets[0] ('x')"),
    # models
    ("model-unknown", [*HEADLESS, "--set", "dream.model=alexnet"], "model 'alexnet' is unknown"),
    ("model-layer", [*HEADLESS, "--set", "dream.model=vgg16"], "does not exist in vgg16"),
    # where things are written
    ("log-file", [*HEADLESS[:3], "--log-file", "{tmp}/afile/x.log"], "log file '{tmp}/afile/x.log'"),
    ("record-folder", ["--headless", "--record", "{tmp}/afile/x.mp4", "--log-file", ""], "cannot create the folder"),
    ("record-directory", ["--headless", "--record", "{tmp}/adir.mp4", "--log-file", ""], "'{tmp}/adir.mp4' is a directory"),
    ("png-directory", [*HEADLESS, "--png", "{tmp}/adir.png"], "--png '{tmp}/adir.png' is a directory"),
]


def write_inputs(tmp: Path) -> None:
    (tmp / "bad.toml").write_text("[dream\nlayer = 1\n")
    (tmp / "binary.toml").write_bytes(b"\xff\xfe\x00\x81" * 50)
    (tmp / "junk.mp4").write_bytes(b"not a video at all" * 100)
    (tmp / "junk.png").write_bytes(b"nope")
    (tmp / "afile").write_text("a file where a folder is expected")
    (tmp / "preset_layer.toml").write_text("[[presets]]\nname = 'x'\nlayer = 'nope'\n")
    (tmp / "preset_class.toml").write_text("[[presets]]\nname = 'x'\nobjective = 'class:no such thing'\n")
    cv2.imwrite(str(tmp / "tiny.png"), np.full((1, 1, 3), 128, np.uint8))
    write_clip(tmp / "tiny.avi", frames=3, size=(SOURCE_MIN // 2, SOURCE_MIN // 2))
    for folder in ("adir", "adir.png", "adir.mp4"):
        (tmp / folder).mkdir()


def check(code: int, err: str, message: str, tmp: Path) -> None:
    assert "Traceback" not in err, err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message.replace("{tmp}", str(tmp)) in lines[0], lines[0]


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    write_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    root = logging.getLogger()   # main() set up logging on this test's captured stderr
    for h in [h for h in root.handlers if getattr(h, "_dreamcam", False)]:
        root.removeHandler(h)
        h.close()


@pytest.mark.parametrize("name,args,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_code_2(inputs, capfd, name, args, message):
    code = main([a.replace("{tmp}", str(inputs)) for a in args])
    out, err = capfd.readouterr()
    check(code, err, message, inputs)
    assert not (inputs / "out").exists() and not (inputs / "logs").exists()   # nothing written


SUBPROCESS = ["unknown-flag", "source-junk-video", "class"]


@pytest.fixture(scope="module")
def subprocess_results(tmp_path_factory):
    """The SUBPROCESS cases, run at once; {id: (code, stderr)} and the folder."""
    tmp = tmp_path_factory.mktemp("cli")
    write_inputs(tmp)
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}

    def run(case):
        name, args, _ = case
        proc = subprocess.run([sys.executable, "-m", "live", *(a.replace("{tmp}", str(tmp)) for a in args)],
                              cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
        return name, (proc.returncode, proc.stderr)

    with ThreadPoolExecutor(max_workers=len(SUBPROCESS)) as pool:
        return dict(pool.map(run, [c for c in CASES if c[0] in SUBPROCESS])), tmp


@pytest.mark.parametrize("name", SUBPROCESS)
def test_python_m_live_with_bad_input(subprocess_results, name):
    results, tmp = subprocess_results
    message = next(m for n, _, m in CASES if n == name)
    check(*results[name], message, tmp)
    assert not (tmp / "out").exists() and not (tmp / "logs").exists()
