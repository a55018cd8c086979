"""Renderer under the dummy video driver: the dream's detail on the live picture, crossfade,
scaling modes, mirror, HUD and help overlay, snapshots (checked pixel by pixel)."""
from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import numpy as np
import pygame
import pytest

from live import controls
from live.config import RenderConfig
from live.compositor import Compositor, placement
from live.dream.temporal.overlay import DreamFrame
from live.state import View
from live.window import Window, snapshot

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


@pytest.fixture(autouse=True)
def _pygame():
    pygame.display.init()
    pygame.font.init()
    yield
    pygame.display.quit()


def solid(color, w=64, h=48):
    return np.full((h, w, 3), color, np.uint8)


def px(surface, x, y):
    return tuple(surface.get_at((x, y)))[:3]


def dream_of(color, base=(100, 100, 100), w=32, h=24) -> DreamFrame:
    """A dream of `color` made on a flat `base` picture: its detail is color - base."""
    return DreamFrame(solid(color, w, h), solid(base, w, h))


def close(a, b, tol=6):
    return all(abs(int(p) - int(q)) <= tol for p, q in zip(a, b))


def test_placement_fill_crops_and_letterbox_fits():
    crop, rect = placement((640, 480), (1280, 720), "fill")
    assert rect == pygame.Rect(0, 0, 1280, 720)
    assert crop[0] == pytest.approx(0.0) and crop[1] == pytest.approx(0.125)   # top/bottom cut
    crop, rect = placement((640, 480), (1280, 720), "letterbox")
    assert crop == (0, 0, 1, 1) and rect == pygame.Rect(160, 0, 960, 720)      # bars left/right


def test_dream_detail_on_the_live_pixels():
    target = pygame.Surface((160, 120), 0, 32)
    comp = Compositor()
    comp.set_live(solid((100, 100, 100)))
    comp.set_dream(dream_of((100, 100, 180)))             # the dream is smaller: scaled up
    comp.draw(target, View(blend=0.25, mirror=False, crossfade=False))
    assert close(px(target, 80, 60), (100, 100, 120))     # the live picture + 0.25 of the detail
    comp.draw(target, View(blend=1.0, mirror=False, crossfade=False))
    assert close(px(target, 5, 5), (100, 100, 180))
    comp.draw(target, View(blend=0.0, mirror=False))
    assert close(px(target, 5, 5), (100, 100, 100))


def test_no_dream_shows_the_live_picture():
    target = pygame.Surface((96, 72), 0, 32)
    comp = Compositor()
    comp.set_live(solid(RED))
    comp.set_dream(dream_of(BLUE))
    comp.set_dream(None)                                   # dream fault
    comp.draw(target, View(blend=0.9))
    assert close(px(target, 40, 40), RED)


def test_crossfade_between_successive_dreams():
    """The newest dream fades in over the previous one as camera frames come in."""
    target = pygame.Surface((64, 48), 0, 32)
    comp = Compositor()
    live = solid((100, 100, 100))
    comp.set_live(live)
    comp.set_dream(dream_of((100, 100, 200)), now=0.0)
    comp.set_dream(dream_of((100, 200, 100)), now=0.1)    # 10 Hz dream
    view = View(blend=1.0, mirror=False, crossfade=True)
    comp.draw(target, view, now=0.1)
    assert close(px(target, 10, 10), (100, 100, 200))     # just arrived: still the previous one
    u = comp.crossfade_weight(view, 0.1 + comp._interval / 2)
    comp.draw(target, view, now=0.1 + comp._interval / 2)
    assert close(px(target, 10, 10), (100, 100, 200))     # no new camera frame: nothing composed
    comp.set_live(live)
    comp.draw(target, view, now=0.1 + comp._interval / 2)
    assert 0.3 < u < 0.7
    mid = px(target, 10, 10)
    assert 120 < mid[1] < 180 and 120 < mid[2] < 180      # between the two
    comp.set_live(live)
    comp.draw(target, view, now=5.0)
    assert close(px(target, 10, 10), (100, 200, 100))     # faded in completely
    comp.set_live(live)
    comp.draw(target, View(blend=1.0, mirror=False, crossfade=False), now=0.1)
    assert close(px(target, 10, 10), (100, 200, 100))     # crossfade off: the newest at once


def shown_pictures(comp: Compositor, camera_fps: float, seconds: float = 2.0, display_fps: float = 60.0) -> list[int]:
    """Display ticks at display_fps, a new camera picture (numbered by its grey level) at
    camera_fps: the numbers of the pictures composed, in order."""
    target = pygame.Surface((64, 48), 0, 32)
    view = View(blend=0.0, mirror=False)
    shown, sent = [], -1
    for tick in range(int(seconds * display_fps)):
        now = tick / display_fps
        newest = int(now * camera_fps + 1e-9)
        if newest != sent:
            comp.set_live(solid((newest, newest, newest)))
            sent = newest
        comp.draw(target, view, now=now)
        if comp.took_live:
            shown.append(px(target, 10, 10)[0])
    return shown


def test_camera_pictures_are_composed_at_most_picture_fps_and_the_newest_comes_next():
    fast = shown_pictures(Compositor(picture_fps=30), camera_fps=50)
    assert 58 <= len(fast) <= 61                                # 30 a second of the 50 fps source
    assert fast == sorted(fast) and fast[-1] >= 98               # in order, up to date
    gaps = np.diff(fast)
    assert set(gaps) <= {1, 2, 3}                                # never a stall
    assert len(shown_pictures(Compositor(), camera_fps=50)) == 100            # 0: every picture
    assert len(shown_pictures(Compositor(picture_fps=30), camera_fps=30)) == 60   # a 30 fps camera loses none
    assert len(shown_pictures(Compositor(picture_fps=30), camera_fps=25)) == 50


def test_letterbox_bars_fill_and_mirror():
    img = solid(RED, 40, 40)
    img[:, 20:] = GREEN                                     # left red, right green
    target = pygame.Surface((160, 80), 0, 32)
    comp = Compositor()
    comp.set_live(img)
    comp.draw(target, View(blend=0.0, mirror=False, scale="letterbox"))
    assert px(target, 5, 40) == (0, 0, 0)                   # bar
    assert close(px(target, 45, 40), RED) and close(px(target, 115, 40), GREEN)
    comp.draw(target, View(blend=0.0, mirror=True, scale="letterbox"))
    assert close(px(target, 45, 40), GREEN) and close(px(target, 115, 40), RED)
    comp.draw(target, View(blend=0.0, mirror=False, scale="fill"))
    assert close(px(target, 2, 40), RED) and close(px(target, 157, 40), GREEN)   # no bars


def test_hud_and_help_overlay_are_drawn():
    target = pygame.Surface((640, 480), 0, 32)
    comp = Compositor()
    comp.set_live(solid((255, 255, 255)))
    comp.draw(target, View(blend=0.0))
    plain = pygame.surfarray.array3d(target).copy()
    comp.draw(target, View(blend=0.0, hud=True), hud_lines=("display 60 fps", "layer blocks.10"))
    hud = pygame.surfarray.array3d(target)
    assert (hud[:150, :60] != plain[:150, :60]).any()       # top-left panel
    assert (hud[400:, 300:] == plain[400:, 300:]).all()
    comp.draw(target, View(blend=0.0, help=True), help_lines=controls.help_lines())
    helped = pygame.surfarray.array3d(target)
    assert (helped[250:390, 200:280] != plain[250:390, 200:280]).any()   # centre panel


def test_window_draws_and_snapshot_is_written_whole(tmp_path):
    window = Window(RenderConfig(fullscreen=False, width=200, height=150))
    comp = Compositor()
    comp.set_live(solid((100, 0, 0)))
    comp.set_dream(dream_of((100, 0, 100), base=(100, 0, 0)))
    comp.draw(window.screen, View(blend=0.5, mirror=False, crossfade=False))
    window.present()
    path = snapshot(window.screen, tmp_path / "snaps", background=False)
    assert path.exists() and path.suffix == ".png"
    assert [p.name for p in (tmp_path / "snaps").iterdir()] == [path.name]   # no partial file left
    loaded = pygame.image.load(str(path))
    assert loaded.get_size() == (200, 150)
    assert close(px(loaded, 100, 75), (100, 0, 50), tol=8)
    window.set_fullscreen(True)
    assert window.fullscreen and window.screen.get_size() == pygame.display.get_desktop_sizes()[0]
    window.close()
