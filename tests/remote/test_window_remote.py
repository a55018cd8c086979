"""The window loop with the web remote: its screen (with the HUD and the QR code of the
remote's address and token) streams at /stream.mjpg, a snapshot asked for from the web
is taken by the window loop, and the QR code decodes to the URL with the token."""
from __future__ import annotations

import cv2
import pygame

from conftest import alongside, decode_qr, http, mjpeg_frame, souvenir_config, window_remote_config, wait_for
from live.app import App
from live.hud import Panels
from live.windowed import WindowLoop

TOKEN = "window-remote-token-0123456789ab"


def test_the_hud_shows_the_remote_url_as_a_qr_code():
    pygame.font.init()
    target = pygame.Surface((1280, 720), 0, 32)
    target.fill((40, 90, 160))
    panels = Panels()
    panels.qr = f"http://192.168.1.20:8765/?token={TOKEN}"
    panels.draw(target, hud=("display 60 fps",))
    rgb = pygame.surfarray.array3d(target).transpose(1, 0, 2)
    assert decode_qr(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)) == panels.qr
    hidden = pygame.Surface((1280, 720), 0, 32)
    panels.draw(hidden, hud=())                              # no HUD (Tab): no code on the picture
    assert decode_qr(cv2.cvtColor(pygame.surfarray.array3d(hidden).transpose(1, 0, 2), cv2.COLOR_RGB2BGR)) == ""


def test_the_window_streams_its_screen_and_takes_snapshots_asked_for_from_the_web(tmp_path, backbone):
    snaps = tmp_path / "snaps"
    cfg = window_remote_config(TOKEN, "render.hud=true", f"output.snapshots=\"{snaps.as_posix()}\"")
    app = App(cfg, "clouds", backbone=backbone)
    seen: dict = {}

    def staff() -> None:
        assert wait_for(lambda: app.remotes.url is not None and app.stats.frames > 5, 120)
        api = f"http://127.0.0.1:{app.remotes.web.port}"
        seen["frame"] = mjpeg_frame(api + "/stream.mjpg", TOKEN)
        status, reply = http("POST", api + "/api/action", {"action": "snapshot"}, TOKEN)
        assert status == 200 and reply["state"]["snapshots"] == 1
        assert wait_for(lambda: len(list(snaps.glob("dreamcam-*.png"))) == 1)
    assert alongside(app, staff, WindowLoop(app, seconds=600).run) == 0
    frame = seen["frame"]
    assert frame.shape == (480, 640, 3)                      # the window's screen, as drawn
    assert decode_qr(frame) == app.remotes.url and f"token={TOKEN}" in app.remotes.url


def test_a_visitors_souvenir_comes_from_its_qr_code_without_the_token(tmp_path, backbone):
    """Asked for from the web: the picture on screen is saved at the screen's resolution,
    its QR code (with the consent line) appears, and the code's URL gives the JPEG without
    the token, until it expires; a guessed URL and the folder are 404."""
    import time
    import numpy as np
    cfg = souvenir_config(TOKEN, tmp_path / "sv")
    app = App(cfg, "clouds", backbone=backbone)
    seen: dict = {}

    def visitor() -> None:
        assert wait_for(lambda: app.remotes.url is not None and app.dreamer.steps > 3, 120)
        api = f"http://127.0.0.1:{app.remotes.web.port}"
        status, reply = http("POST", api + "/api/action", {"action": "souvenir"}, TOKEN)
        assert status == 200 and reply["url"].startswith(api + "/souvenir/")
        assert wait_for(lambda: len(list((tmp_path / "sv").glob("*.jpg"))) == 1)
        assert wait_for(lambda: loop.comp is not None and loop.comp.panels.souvenir is not None, 60)
        seen["qr"] = ""

        def scanned() -> bool:
            seen["qr"] = decode_qr(mjpeg_frame(api + "/stream.mjpg", TOKEN))
            return seen["qr"].endswith(".jpg")
        assert wait_for(scanned, 60)
        local = seen["qr"].replace(seen["qr"].split("/")[2], f"127.0.0.1:{app.remotes.web.port}")
        seen["jpeg"] = http("GET", local, raw_reply=True)
        seen["guess"] = http("GET", local[:-8] + "AAAA.jpg")[0], http("GET", api + "/souvenir/")[0]
        app.souvenirs.clock = lambda: time.time() + 3600                 # an hour later
        seen["expired"] = http("GET", local)[0]
    loop = WindowLoop(app, seconds=600)
    assert alongside(app, visitor, loop.run) == 0
    status, body = seen["jpeg"]
    assert status == 200 and seen["qr"].endswith(".jpg") and "token=" not in seen["qr"]
    picture = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (480, 640, 3) and picture.std() > 10           # the screen, at its resolution
    assert seen["guess"] == (404, 404) and seen["expired"] == 404
    assert list((tmp_path / "sv").glob("*.jpg")) == []                       # deleted when it expired
