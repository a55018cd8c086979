"""The app: keys into pygame change the shared state, kiosk mode, presets, the dream
thread (settings between steps, a step that raises, adaptive size), headless recording,
the window loop and the command line's exit codes. Dreams use the real packaged
network at a small working size."""
from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pygame
import pytest

from conftest import SMALL, read_video, engine_factory, feed, small_config, wait_for
from live import config, controls
from live.__main__ import main
from live.adaptive import AdaptiveSize, adaptive_ladder
from live.app import App, check_presets
from live.capture import Frame, Slot
from live.commands import COMMANDS, Commands
from live.config import ConfigError
from live.dream import DreamEngine
from live.dream.images import natural_picture as natural_image
from live.dreamer import Dreamer
from live.headless import run_headless
from live.state import State
from live.windowed import WindowLoop

ROOT = Path(__file__).resolve().parents[2]
cfg = small_config


def key(k, mod=0):
    return pygame.event.Event(pygame.KEYDOWN, key=k, mod=mod, unicode="")


def press(state, *events, kiosk=False):
    """Post key events into pygame's queue and dispatch what comes out, as the app does."""
    pygame.event.clear()
    for e in events:
        pygame.event.post(e)
    commands = Commands(state)
    for e in pygame.event.get():
        controls.handle(e, commands, kiosk)


@pytest.fixture
def display():
    pygame.display.init()
    pygame.display.set_mode((64, 48))
    yield
    pygame.display.quit()


# -- keys ---------------------------------------------------------------------------------

def test_keys_change_the_settings(display):
    state = State.from_config(cfg())
    layer0, strength0, blend0 = state.layer, state.strength, state.blend
    press(state, key(pygame.K_UP), key(pygame.K_EQUALS), key(pygame.K_RIGHTBRACKET))
    assert state.layers.index(state.layer) == state.layers.index(layer0) + 1
    assert state.strength > strength0 and state.blend == pytest.approx(blend0 + 0.05)
    press(state, key(pygame.K_DOWN), key(pygame.K_DOWN), key(pygame.K_MINUS), key(pygame.K_MINUS),
          key(pygame.K_LEFTBRACKET))
    assert state.layers.index(state.layer) == state.layers.index(layer0) - 1
    assert state.strength < strength0 and state.blend == pytest.approx(blend0)
    toggles = {pygame.K_SPACE: "frozen", pygame.K_z: "zooming", pygame.K_n: "noise", pygame.K_TAB: "hud",
               pygame.K_h: "help", pygame.K_m: "mirror", pygame.K_f: "fullscreen"}
    before = {attr: getattr(state, attr) for attr in toggles.values()}
    press(state, *(key(k) for k in toggles))
    assert all(getattr(state, a) != before[a] for a in toggles.values())
    press(state, key(pygame.K_r), key(pygame.K_s), key(pygame.K_3))
    assert state.resets == 1 and state.snapshots == 1 and state.preset == 2
    assert state.running
    press(state, key(pygame.K_ESCAPE))
    assert not state.running


def test_kiosk_blocks_esc_and_q_but_not_ctrl_shift_q(display):
    state = State.from_config(cfg("kiosk.enabled=true"))
    assert state.kiosk and not state.snapshots_allowed
    press(state, key(pygame.K_ESCAPE), key(pygame.K_q), key(pygame.K_F11), key(pygame.K_s), kiosk=True)
    assert state.running and state.fullscreen and state.snapshots == 0
    press(state, key(pygame.K_RIGHT), kiosk=True)           # visitors may still play
    assert state.preset == 0
    press(state, key(pygame.K_q, pygame.KMOD_LCTRL), kiosk=True)
    assert state.running                                    # Ctrl+Q alone is not the exit
    press(state, key(pygame.K_q, pygame.KMOD_LCTRL | pygame.KMOD_LSHIFT), kiosk=True)
    assert not state.running
    allowed = State.from_config(cfg("kiosk.enabled=true", "kiosk.snapshots=true"))
    press(allowed, key(pygame.K_s), kiosk=True)
    assert allowed.snapshots == 1


def test_every_binding_names_a_real_command():
    """A typo in the key table would only show when a visitor presses the key."""
    state = State.from_config(cfg())
    for b in controls.BINDINGS:
        assert b.action in COMMANDS, f"{b.label}: no command '{b.action}'"
        cmd = COMMANDS[b.action]
        assert cmd.is_setting == (b.arg is not None), f"{b.label}: '{b.action}' {'needs' if cmd.is_setting else 'takes no'} value"
        if not cmd.is_setting:
            assert callable(getattr(state, b.action, None)), f"{b.label}: no state action '{b.action}'"


def test_help_lists_every_key():
    labels = [k for k, _ in controls.help_lines()]
    for b in controls.BINDINGS:
        assert b.label in labels
    for needed in ("Esc / q", "F11 / f", "Space", "Left", "Right", "Up", "Down", "+", "-", "[", "]",
                   "1-9", "z", "n", "r", "s", "Tab", "h / F1", "m", "Ctrl+Shift+Q"):
        assert needed in labels
    assert "Esc / q" not in [k for k, _ in controls.help_lines(kiosk=True)]


# -- presets ------------------------------------------------------------------------------

class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_presets_from_the_config(tmp_path, backbone):
    state = State.from_config(cfg())
    names = [p.name for p in state.presets]
    assert len(names) >= 2
    state.next_preset()
    p0 = state.presets[0]
    assert (state.preset, state.layer, state.strength, state.blend) == (0, p0.layer, p0.strength, p0.blend)
    state.previous_preset()
    assert state.preset == len(names) - 1                   # wraps round
    state.select_preset(1)
    assert state.objective == state.presets[1].objective and state.message.endswith(names[1])
    state.select_preset(42)
    assert state.preset == 1                                 # no such preset: nothing changes
    clock = FakeClock(0.1)           # any start: the old test failed for some uptimes (float rounding)
    kiosk = State.from_config(cfg("kiosk.enabled=true"), clock=clock)
    clock.t += 89.0
    assert not kiosk.advance_if_due(90.0)
    clock.t += 1.0
    assert kiosk.advance_if_due(90.0) and kiosk.preset == 0
    clock.t += 1.0
    assert not kiosk.advance_if_due(90.0)                   # the timer starts again
    check_presets(cfg(), backbone)                           # the shipped presets are valid
    bad = tmp_path / "bad.toml"
    bad.write_text('[[presets]]\nname = "x"\nlayer = "blocks.3"\nobjective = "class:no such thing"\n')
    with pytest.raises(ConfigError, match="presets\\[0\\]"):
        check_presets(config.load(bad), backbone)


# -- the dream thread ---------------------------------------------------------------------

def next_dream(dreamer, after, timeout=60.0):
    seq, d = dreamer.dreams.wait(after, timeout)
    assert seq > after, "no dream came"
    return seq, d


def test_settings_apply_between_steps_and_a_raising_step_restarts_the_engine(backbone, caplog):
    state = State.from_config(cfg())
    state.layer = "blocks.4"
    built: list[DreamEngine] = []
    frames: Slot[Frame] = Slot()
    dreamer = Dreamer(engine_factory(backbone, built), frames, state, cfg().dream)
    stop = threading.Event()
    feed(frames, stop, natural_image(128, 96))
    dreamer.start()
    try:
        seq, d = next_dream(dreamer, 0)
        assert d.image.shape == (72, 96, 3) and d.info["layer"] == "blocks.4" and d.frame is not None
        state.layer, state.strength = "blocks.7", 0.02                  # the operator changes settings
        seq, d = next_dream(dreamer, seq)
        seq, d = next_dream(dreamer, seq)
        assert d.info["layer"] == "blocks.7" and built[0].strength == 0.02

        def boom(*a, **k):
            raise RuntimeError("simulated dream fault")
        built[0].dream = boom                                           # the next step raises
        while d.image is not None:
            seq, d = next_dream(dreamer, seq)
        assert d.image is None                                          # renderer: show the live picture
        seq, d = next_dream(dreamer, seq)
        assert d.image is not None                                      # rebuilt and dreaming again
        assert len(built) == 2 and dreamer.restarts == 1 and dreamer.faults == 1
        assert d.info["layer"] == "blocks.7"                            # with the current settings
    finally:
        stop.set()
        dreamer.stop()
    assert sum("simulated dream fault" in r.getMessage() for r in caplog.records) == 1


def test_zoom_drift_and_noise_feed_the_dream_back(backbone):
    state = State.from_config(cfg())
    frames: Slot[Frame] = Slot()
    dreamer = Dreamer(engine_factory(backbone, []), frames, state, cfg().dream)
    img = np.full((72, 96, 3), 128, np.uint8)
    frame = Frame(img, 1, time.perf_counter(), "test")
    state.noise = True
    a = dreamer.step_once(frame).image
    assert a.std() > 10                       # dreamed from noise, not the flat grey frame
    state.noise, state.zooming = False, True
    b = dreamer.step_once(frame).image
    assert np.abs(b.astype(int) - 128).mean() > 5   # still the fed-back picture, zoomed
    state.zooming = False
    dreamer.step_once(frame)
    c = dreamer.step_once(frame).image
    assert np.abs(c.astype(int) - 128).mean() < np.abs(b.astype(int) - 128).mean()  # back to the camera


def test_adaptive_size_steps_down_and_back_up():
    assert adaptive_ladder((320, 240)) == [(320, 240), (256, 192), (224, 168), (160, 120)]
    ad = AdaptiveSize((320, 240), target=8.0, settle_seconds=1.0, window=3)
    t = 100.0
    sizes = []
    for rate in [4.0] * 40:                                  # far too slow: down step by step
        t += 0.5
        new = ad.update(rate, now=t)
        if new:
            sizes.append(new)
    assert sizes == [(256, 192), (224, 168), (160, 120)]
    for rate in [30.0] * 40:                                 # lots of headroom: back up
        t += 0.5
        new = ad.update(rate, now=t)
        if new:
            sizes.append(new)
    assert sizes[3:] == [(224, 168), (256, 192), (320, 240)]
    off = AdaptiveSize((320, 240), target=8.0, enabled=False)
    assert all(off.update(1.0, now=1000.0 + i) is None for i in range(10))


def test_adaptive_only_moves_to_a_size_whose_step_is_ready():
    """A size whose fast step is still being built would dream with the slower stand-in."""
    ad = AdaptiveSize((320, 240), target=8.0, settle_seconds=1.0, window=3)
    built = {(320, 240)}
    t, moves = 100.0, []
    for i in range(40):
        if i == 20:
            built.add((256, 192))                           # its export has finished
        t += 0.5
        new = ad.update(4.0, now=t, ready=lambda size: size in built)
        if new:
            moves.append((i, new))
    assert [m for _, m in moves] == [(256, 192)] and moves[0][0] >= 20


def test_stats_file_has_the_session_figures(tmp_path):
    """--stats (DESIGN.md): the contract's keys at exit; a headless run has no display figures."""
    from live.stats import STATS_KEYS
    src = tmp_path / "scene.png"
    cv2.imwrite(str(src), cv2.cvtColor(natural_image(160, 120), cv2.COLOR_RGB2BGR))
    small = [a for s in SMALL for a in ("--set", s)]
    headless, window = tmp_path / "headless.json", tmp_path / "out" / "window.json"
    assert main(["--source", str(src), "--headless", "--frames", "3", "--record", str(tmp_path / "a.mp4"),
                 "--stats", str(headless), *small]) == 0
    assert main(["--source", str(src), "--window", "--seconds", "1", "--stats", str(window), *small]) == 0
    for path, display in ((headless, False), (window, True)):
        figures = json.loads(path.read_text())
        assert list(figures)[:len(STATS_KEYS)] == list(STATS_KEYS)
        assert figures["backend"] == "torch" and figures["precision"] == "fp32"
        assert figures["working_size"] == [96, 72] and figures["dream_steps_per_second"] > 0
        assert (figures["display_fps"] is not None) == display and (figures["latency_ms_p95"] is None) != display
        assert (figures["picture_fps"] > 0) if display else figures["picture_fps"] is None   # new pictures shown
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["window.json"]  # no partial file left


# -- whole runs ---------------------------------------------------------------------------

def test_headless_records_n_dreamed_frames(tmp_path, backbone):
    src = tmp_path / "scene.png"
    cv2.imwrite(str(src), cv2.cvtColor(natural_image(160, 120), cv2.COLOR_RGB2BGR))
    app = App(cfg("render.blend=1.0", "render.mirror=false"), str(src), backbone=backbone)
    out, still = tmp_path / "out" / "rec.mp4", tmp_path / "out" / "last.png"
    assert run_headless(app, 6, out, still) == 0
    frames = read_video(out)
    assert len(frames) == 6 and frames[0].shape == (120, 160, 3)
    assert sorted(p.name for p in out.parent.iterdir()) == ["last.png", "rec.mp4"]   # no partial files
    assert app.dreamer.steps >= 6
    src_img = cv2.resize(cv2.imread(str(src)), (160, 120)).astype(float)
    assert np.abs(frames[-1].astype(float) - src_img).mean() > 2      # the dream shows
    assert cv2.imread(str(still)).shape == (120, 160, 3)


class ScriptedLoop(WindowLoop):
    """The window loop with keys posted at given display frames (no sleeps, no timing)."""

    def __init__(self, app, script: dict[int, list], last: int):
        super().__init__(app)
        self.script, self.last, self.frame = script, last, 0

    def events(self, window):
        self.frame += 1
        for event in self.script.get(self.frame, []):
            pygame.event.post(event)
        if self.frame >= self.last:
            self.app.state.quit()                           # the test's own way out
        super().events(window)


def test_window_run_snapshot_and_kiosk_blocks_esc(tmp_path, backbone):
    snaps = tmp_path / "snaps"
    common = ["render.fullscreen=false", f"output.snapshots=\"{snaps.as_posix()}\""]
    app = App(cfg(*common), "clouds", backbone=backbone)
    loop = ScriptedLoop(app, {3: [key(pygame.K_TAB)], 4: [key(pygame.K_s)], 8: [key(pygame.K_ESCAPE)]}, last=1000)
    assert loop.run() == 0
    assert loop.frame == 8                                  # Esc ended it
    assert app.state.hud and app.stats.frames >= 7
    assert wait_for(lambda: len(list(snaps.glob("dreamcam-*.png"))) == 1)   # written in the background

    kiosk = App(cfg(*common, "kiosk.enabled=true"), "clouds", backbone=backbone)
    loop = ScriptedLoop(kiosk, {3: [key(pygame.K_ESCAPE), pygame.event.Event(pygame.QUIT)]}, last=10)
    assert loop.run() == 0
    assert loop.frame == 10                                 # Esc and window-close did nothing


def test_command_line_exit_codes(tmp_path, capsys):
    assert main(["--headless", "--record", str(tmp_path / "a.mp4"), "--source", str(tmp_path / "nope.mp4")]) == 2
    assert "nope.mp4': no such file" in capsys.readouterr().err
    assert main(["--headless", "--record", str(tmp_path / "a.mp4"), "--set", "dream.layer=blocks.99"]) == 2
    assert "dream.layer" in capsys.readouterr().err
    assert main(["--headless", "--record", str(tmp_path / "a.mp4"), "--set", "nonsense"]) == 2
    assert "section.key=value" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[dream\nlayer=")
    assert main(["--config", str(bad), "--headless", "--record", str(tmp_path / "a.mp4")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["--headless"]) == 2
    assert "--record" in capsys.readouterr().err
    assert main(["--headless", "--record", str(tmp_path / "a.gif")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1                              # one line


def test_no_display_says_so_in_one_line():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    env["XDG_RUNTIME_DIR"] = "/tmp"
    proc = subprocess.run([sys.executable, "-m", "live", "--source", "clouds"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no display" in lines[0] and "--headless" in lines[0]
