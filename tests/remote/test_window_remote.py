"""The window loop with the web remote: its screen (with the HUD and the QR code of the
remote's address and token) streams at /stream.mjpg, a snapshot asked for from the web
is taken by the window loop, and the QR code decodes to the URL with the token."""
from __future__ import annotations

import cv2
import pygame

from conftest import alongside, http, mjpeg_frame, small_config, wait_for
from live.app import App
from live.hud import Panels
from live.windowed import WindowLoop

TOKEN = "window-remote-token-0123456789ab"


def decode_qr(bgr) -> str:
    """OpenCV's classic detector loses the code on some dream backgrounds (a phone's
    scanner looks at the code alone); the ArUco-based one finds it: try both."""
    for detector in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco()):
        text, _, _ = detector.detectAndDecode(bgr)
        if text:
            return text
    return ""


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
    cfg = small_config("render.fullscreen=false", "render.width=640", "render.height=480", "render.hud=true",
                       f"output.snapshots=\"{snaps.as_posix()}\"", "remote.enabled=true", "remote.port=0",
                       f"remote.token=\"{TOKEN}\"")
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
