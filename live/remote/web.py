"""The web remote (aiohttp) for a phone: the page, a JSON API (docs/remotes.md),
state pushed over a WebSocket and the MJPEG preview. It runs its own event loop in its
own thread; every request needs the token (`Authorization: Bearer TOKEN`, or `?token=`
once in the page's URL, which sets a cookie), compared in constant time, else 401. A
request that goes wrong is answered (400/422/500) and counted; it never ends the server
or the app."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from importlib import resources
from typing import Any, Awaitable, Callable

from aiohttp import WSMsgType, web

from ..commands import NO_VALUE, CommandError, Commands
from ..config import RemoteConfig
from ..souvenir import PATH as SOUVENIR_PATH, Souvenirs
from ..supervision.health import Health, metrics
from .preview import Preview, jpeg

log = logging.getLogger(__name__)

COOKIE = "dreamcam_token"
MAX_BODY = 16 * 1024          # bytes of a request body
MAX_STREAMS = 4               # preview clients at once
PUSH_PERIOD = 0.1             # seconds between state checks for the WebSocket push
READ_TIMEOUT = 10.0           # seconds a client has to send a request's head, or its body (slow or half-open
                              # connections would otherwise be held for an hour: aiohttp's keep-alive default)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _gone(request: web.Request) -> bool:
    """The client hung up (aiohttp does not cancel a streaming handler for that)."""
    return request.transport is None or request.transport.is_closing()


def _cross_site(request: web.Request) -> bool:
    """A request that changes something (or opens the state's WebSocket) sent by a page of
    another origin: a browser adds its cookie wherever the page says, the Origin header
    it cannot fake. Requests without an Origin (curl, the OSC bridge) are not a browser's."""
    origin = request.headers.get("Origin")
    if origin is None or (request.method in ("GET", "HEAD") and request.path != "/ws"):
        return False
    return origin.lower() != f"{request.scheme}://{request.host}".lower()


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


class WebRemote:
    """`start()` serves on cfg.host:cfg.port (0: a free port, see `port`); `stop()` ends it."""

    def __init__(self, cfg: RemoteConfig, commands: Commands, preview: Preview, token: str,
                 health: Health | None = None, souvenirs: Souvenirs | None = None):
        self.cfg, self.commands, self.preview, self.token = cfg, commands, preview, token
        self.health, self.souvenirs = health, souvenirs
        self.port = 0
        self.unauthorized = self.bad_requests = self.errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    # -- the thread ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="web-remote", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10.0)
        if self._failure is not None:
            raise self._failure
        log.info("web remote on http://%s:%d/ (token required)", self.cfg.host, self.port)

    def stop(self) -> None:
        if self._loop is not None and self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        log.info("web remote: %d unauthorized, %d bad requests, %d errors", self.unauthorized,
                 self.bad_requests, self.errors)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # a port in use: start() reports it
            self._failure = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._closing = asyncio.Event()
        runner = web.AppRunner(self.application(), shutdown_timeout=1.0, access_log=None,
                               keepalive_timeout=READ_TIMEOUT,   # also bounds the wait for a request's head
                               lingering_time=READ_TIMEOUT)      # and the wait for a refused body's rest
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.cfg.host, self.cfg.port)
            await site.start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._closing.wait()
        finally:
            await runner.cleanup()

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        app.router.add_get("/", self.page)
        app.router.add_get("/api/state", self.state)
        app.router.add_post("/api/set", self.set)
        app.router.add_post("/api/action", self.action)
        app.router.add_get("/ws", self.websocket)
        app.router.add_get("/stream.mjpg", self.stream)
        app.router.add_get("/api/health", self.health_report)
        app.router.add_get("/metrics", self.metrics)
        return app

    # -- the token ----------------------------------------------------------------------------
    def _matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode())

    def authorized(self, request: web.Request) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._matches(given.strip()):
            return True
        return self._matches(request.cookies.get(COOKIE))

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.path.startswith(SOUVENIR_PATH) and request.method in ("GET", "HEAD"):
                return self.souvenir(request.path[len(SOUVENIR_PATH):])   # the one thing without the token
            if request.path == "/" and self._matches(request.query.get("token")):
                raise self._login()
            if not self.authorized(request):
                self.unauthorized += 1
                return web.json_response({"error": "a token is needed: the QR code on the HUD (Tab), "
                                          "or Authorization: Bearer TOKEN"}, status=401,
                                         headers={"WWW-Authenticate": "Bearer"})
            if _cross_site(request):
                self.bad_requests += 1
                return _error(403, "requests from another site's page are refused")
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                self.bad_requests += 1
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            self.errors += 1
            log.warning("web remote: %s %s failed", request.method, request.path, exc_info=True)
            return _error(500, "internal error (logged)")

    def _login(self) -> web.HTTPSeeOther:
        """The token came in the URL (the QR code): keep it in a cookie, drop it from the URL."""
        resp = web.HTTPSeeOther("/")
        resp.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", max_age=30 * 86400)
        return resp

    # -- the API ------------------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=self._page, content_type="text/html",
                            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response(self.commands.public_state())

    def souvenir(self, name: str) -> web.StreamResponse:
        """One live souvenir by its one-time name; anything else (a guess, an expired one,
        the folder itself) is the same 404."""
        path = self.souvenirs.file(name[:-4]) if self.souvenirs is not None and name.endswith(".jpg") else None
        if path is None:
            return _error(404, "no such souvenir (they expire)")
        return web.FileResponse(path, headers={"Content-Type": "image/jpeg", "Cache-Control": "no-store",
                                               "X-Content-Type-Options": "nosniff"})

    async def health_report(self, request: web.Request) -> web.Response:
        """The installation's figures now and their history (live/supervision/health.py)."""
        if self.health is None:
            return _error(404, "no health figures in this run")
        return web.json_response(self.health.report())

    async def metrics(self, request: web.Request) -> web.Response:
        """The same figures in Prometheus' text format (a scraper sends the bearer token)."""
        if self.health is None:
            return _error(404, "no health figures in this run")
        return web.Response(body=metrics(self.health.now()),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _body(self, request: web.Request) -> Any:
        try:
            return json.loads(await asyncio.wait_for(request.text(), READ_TIMEOUT))
        except asyncio.TimeoutError:
            raise web.HTTPRequestTimeout(text=json.dumps({"error": "the body came too slowly"}),
                                         content_type="application/json") from None
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text=json.dumps({"error": "the body must be JSON"}),
                                     content_type="application/json") from None

    async def set(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            changed = self.commands.set_many(body, source="remote")
        except CommandError as exc:
            self.bad_requests += 1
            return _error(422, str(exc))
        return web.json_response({"changed": changed, "state": self.commands.public_state()})

    async def action(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        name = body.get("action") if isinstance(body, dict) else None
        try:
            if not isinstance(body, dict) or set(body) != {"action"}:
                raise CommandError('expected {"action": NAME}')
            if name == "souvenir":
                token = self.commands.souvenir(source="remote")
                return web.json_response({"done": name, "url": f"{request.scheme}://{request.host}"
                                          f"{SOUVENIR_PATH}{token}.jpg", "state": self.commands.public_state()})
            self.commands.run(name, NO_VALUE, source="remote")
        except CommandError as exc:
            self.bad_requests += 1
            return _error(422, str(exc))
        return web.json_response({"done": name, "state": self.commands.public_state()})

    # -- pushes -------------------------------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        """The state, pushed whenever it changes; what the page sends is ignored."""
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        sent: dict | None = None
        reader = asyncio.ensure_future(self._drain(ws))
        try:
            while not ws.closed and not reader.done() and not self._closing.is_set():
                now = self.commands.public_state()
                if now != sent:
                    await ws.send_json(now)
                    sent = now
                await asyncio.sleep(PUSH_PERIOD)
        except ConnectionResetError:
            pass
        finally:
            reader.cancel()
            await ws.close()
        return ws

    async def _drain(self, ws: web.WebSocketResponse) -> None:
        async for msg in ws:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """multipart/x-mixed-replace JPEGs of the newest output, while the client stays."""
        if self.preview.watchers >= MAX_STREAMS:
            return _error(503, f"at most {MAX_STREAMS} preview streams at once")
        resp = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame",
                                           "Cache-Control": "no-store"})
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        seq = 0
        with self.preview.watching():
            while not self._closing.is_set() and not _gone(request):
                new, rgb = await loop.run_in_executor(None, self.preview.slot.wait, seq, 0.5)
                if new == seq or rgb is None:
                    continue
                seq = new
                data = await loop.run_in_executor(None, jpeg, rgb)
                try:
                    await resp.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                except (ConnectionResetError, RuntimeError):
                    break
        return resp
