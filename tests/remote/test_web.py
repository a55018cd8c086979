"""The web remote over real HTTP on loopback: nothing readable or settable without the
token, the JSON API (contract), bad requests refused with nothing applied, the token
once in the URL then a cookie, state pushed over the WebSocket and the MJPEG preview."""
from __future__ import annotations

import asyncio
import threading

import aiohttp
import numpy as np
import pytest

from conftest import http, mjpeg_frame, objective_check, small_config, wait_for
from live.commands import Commands
from live.remote import Remotes
from live.remote.preview import Preview
from live.remote.web import WebRemote
from live.state import State

TOKEN = "k" * 20 + "-test-token"


@pytest.fixture
def web():
    """start(*config overrides) -> (remote, commands, base URL), stopped after the test."""
    made = []

    def start(*more: str, backbone=None):
        cfg = small_config("remote.enabled=true", "remote.port=0", *more)
        commands = Commands(State.from_config(cfg), objective_check(backbone) if backbone is not None else None)
        remote = WebRemote(cfg.remote, commands, Preview(fps=30, width=160), TOKEN)
        remote.start()
        made.append(remote)
        return remote, commands, f"http://127.0.0.1:{remote.port}"
    yield start
    for remote in made:
        remote.stop()


def test_without_the_token_nothing_is_readable_or_settable(web):
    remote, commands, url = web()
    before = commands.public_state()
    assert http("GET", url + "/souvenir/" + "A" * 22 + ".jpg")[0] == 404      # no token needed to be told no
    for token in (None, "", "wrong", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        for method, path, body in (("GET", "/", None), ("GET", "/api/state", None), ("GET", "/ws", None),
                                   ("GET", "/stream.mjpg", None), ("POST", "/api/set", {"strength": 0.3}),
                                   ("POST", "/api/action", {"action": "next_preset"}),
                                   ("GET", "/?token=wrong", None), ("GET", "/nothing", None)):
            status, reply = http(method, url + path, body, token)
            assert status == 401, (method, path, token)
            assert "layer" not in str(reply) and "token is needed" in reply["error"]
    assert commands.public_state() == before
    assert remote.unauthorized == 48


def test_the_api_reads_sets_and_refuses(web):
    remote, commands, url = web("kiosk.enabled=true")
    state = commands.state
    status, s = http("GET", url + "/api/state", token=TOKEN)
    assert status == 200
    assert {k: s[k] for k in ("layer", "objective", "strength", "blend", "preset")} == {
        "layer": state.layer, "objective": state.objective, "strength": state.strength, "blend": state.blend,
        "preset": 0}
    status, reply = http("POST", url + "/api/set", {"layer": "blocks.7", "strength": 0.02, "blend": 0.5}, TOKEN)
    assert status == 200 and reply["state"]["layer"] == "blocks.7"
    assert (state.layer, state.strength, state.blend) == ("blocks.7", 0.02, 0.5)
    status, reply = http("POST", url + "/api/action", {"action": "next_preset"}, TOKEN)
    assert status == 200 and state.preset == 0 and reply["state"]["preset"] == 1
    before = commands.public_state()
    refused = [("/api/set", {"strength": 0.02, "blend": 2.0}, 422, "'blend' = 2.0 is out of range"),
               ("/api/set", {"layer": "blocks.99"}, 422, "does not exist"),
               ("/api/set", {"preset": "1"}, 422, "whole number"),
               ("/api/set", {"strength": None}, 422, "must be a number"),
               ("/api/set", {"preset": 10 ** 400}, 422, "too large a number"),
               ("/api/set", {"blend": -(10 ** 400)}, 422, "too large a number"),
               ("/api/set", {}, 422, "one or more settings"),
               ("/api/set", [1, 2], 422, "one or more settings"),
               ("/api/action", {"action": "quit"}, 422, "not allowed from a remote in kiosk mode"),
               ("/api/action", {"action": "toggle_fullscreen"}, 422, "kiosk mode"),
               ("/api/action", {"action": "strength"}, 422, "needs a value"),
               ("/api/action", {"action": "os.system"}, 422, "unknown command"),
               ("/api/action", {"action": "souvenir"}, 422, "souvenirs are off"),
               ("/api/action", {"action": "next_preset", "x": 1}, 422, "expected"),
               ("/api/action", "next_preset", 422, "expected")]
    for path, body, code, reason in refused:
        status, reply = http("POST", url + path, body, TOKEN)
        assert status == code and reason in reply["error"], (body, reply)
    for raw in (b"{not json", b"\xff\xfe", b"NaN"):
        status, reply = http("POST", url + "/api/set", token=TOKEN, raw=raw)
        assert status in (400, 422), raw
    status, _ = http("POST", url + "/api/set", token=TOKEN, raw=b'{"objective": "' + b"x" * 20000 + b'"}')
    assert status == 413                                     # body too large
    status, reply = http("POST", url + "/api/set", {"strength": float("nan")}, TOKEN)   # json.dumps writes NaN
    assert status == 422 and "finite" in reply["error"]
    assert commands.public_state() == before and state.running
    assert remote.errors == 0


def test_token_in_the_url_once_then_a_cookie_and_the_websocket_pushes(web):
    remote, commands, url = web()

    async def session() -> list[dict]:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(url + f"/?token={TOKEN}", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/"      # the token leaves the URL
                cookie = r.cookies["dreamcam_token"]
                assert cookie["httponly"] and cookie["samesite"] == "Strict"
            async with s.get(url + "/") as r:
                assert r.status == 200 and "Dreamcam remote" in await r.text()
            pushed = []
            async with s.ws_connect(url + "/ws") as ws:
                pushed.append(await ws.receive_json(timeout=30))
                await asyncio.get_running_loop().run_in_executor(None, commands.run, "deeper")   # a key press
                pushed.append(await ws.receive_json(timeout=30))
                await ws.send_str("ignored")
            return pushed
    first, second = asyncio.run(session())
    assert first["layer"] == "blocks.10" and second["layer"] == "blocks.11"


def test_the_preview_streams_the_newest_output_while_someone_watches(web):
    remote, commands, url = web()
    preview = remote.preview
    stop = threading.Event()
    green = np.zeros((90, 320, 3), np.uint8)
    green[..., 1] = 200

    def renderer() -> None:           # the window loop offers every frame; only watched ones are kept
        while not stop.is_set():
            preview.offer_rgb(green)
            stop.wait(0.01)
    preview.offer_rgb(green)
    assert preview.slot.latest()[0] == 0                     # nobody watching: nothing copied
    threading.Thread(target=renderer, daemon=True).start()

    try:
        img = mjpeg_frame(url + "/stream.mjpg", TOKEN)
    finally:
        stop.set()
    assert img.shape == (45, 160, 3)                          # scaled to the stream width
    assert abs(int(img[..., 1].mean()) - 200) < 8 and img[..., 2].mean() < 8
    assert wait_for(lambda: preview.watchers == 0)           # the client left: copying stops


def test_remotes_generate_a_strong_token_and_a_busy_port_is_one_log_line(web, caplog):
    remote, _, _ = web()
    cfg = small_config("remote.enabled=true", f"remote.port={remote.port}")
    r = Remotes(cfg, Commands(State.from_config(cfg)))
    assert r.generated and len(r.token) >= 32
    r.start()                                                # the port is taken by the first remote
    try:
        assert r.web is None and r.url is None
        assert any("web remote not started" in rec.getMessage() for rec in caplog.records)
    finally:
        r.stop()
    assert Remotes(small_config("remote.token=\"0123456789abcdefXYZ\""), None).token == "0123456789abcdefXYZ"


def test_an_objective_weight_that_would_freeze_the_dream_is_a_422(web, backbone):
    remote, commands, url = web(backbone=backbone)
    for objective in ("nan*amplify", "inf*amplify", "1e300*amplify"):
        status, reply = http("POST", url + "/api/set", {"objective": objective, "strength": 0.02}, TOKEN)
        assert status == 422 and "finite number" in reply["error"], reply
    assert commands.state.objective == "amplify" and commands.state.strength != 0.02   # nothing applied


def test_a_page_of_another_site_cannot_change_anything_with_the_cookie(web):
    """The browser sends the cookie with a foreign page's POST; its Origin gives it away."""
    remote, commands, url = web()
    cookie = {"Cookie": f"dreamcam_token={TOKEN}"}
    before = commands.public_state()
    for origin in ("http://evil.example", "null", url.replace("127.0.0.1", "localhost"), url + "0"):
        for path, body in (("/api/set", {"strength": 0.02}), ("/api/action", {"action": "next_preset"})):
            status, reply = http("POST", url + path, body, headers={**cookie, "Origin": origin})
            assert status == 403 and "another site" in reply["error"], (origin, path)
        status, _ = http("GET", url + "/ws", headers={**cookie, "Origin": origin, "Connection": "Upgrade",
                                                     "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert status == 403
    assert commands.public_state() == before
    status, _ = http("POST", url + "/api/set", {"strength": 0.02}, headers={**cookie, "Origin": url})
    assert status == 200 and commands.state.strength == 0.02          # the page itself
    status, _ = http("GET", url + "/api/state", headers={**cookie, "Origin": "http://evil.example"})
    assert status == 200                                                 # reads without the WebSocket: CORS keeps them


def test_slow_and_half_open_connections_are_let_go(web, monkeypatch):
    """A client that never finishes its request's head or body does not hold a connection."""
    import socket

    import live.remote.web as web_module
    monkeypatch.setattr(web_module, "READ_TIMEOUT", 0.5)
    remote, commands, url = web()

    def answer(data: bytes) -> bytes:
        s = socket.create_connection(("127.0.0.1", remote.port))
        s.settimeout(20)
        s.sendall(data)
        got = b""
        while chunk := s.recv(4096):
            got += chunk
        s.close()
        return got                                   # the server hung up (recv gave b"")

    assert answer(b"") == b""                                               # connected, said nothing
    assert answer(b"GET /api/state HTTP/1.1\r\nHost: x\r\n") == b""        # half a head
    reply = answer(b"POST /api/set HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                   + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"str")
    assert reply.startswith(b"HTTP/1.1 408") and b"too slowly" in reply
    status, _ = http("GET", url + "/api/state", token=TOKEN)
    assert status == 200                                                    # and the server goes on
