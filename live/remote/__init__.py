"""The performer's remotes around the one command layer (live/commands.py): OSC (osc.py),
the web remote with its preview (web.py, preview.py) and MIDI (midi.py). App.start()
starts the enabled ones, App.stop() stops them. One that cannot start (a port in use, no
MIDI device) is one log line; the show goes on without it."""
from __future__ import annotations

import logging
import secrets
import socket
from typing import Any

from ..commands import Commands
from ..config import Config
from ..souvenir import PATH as SOUVENIR_PATH
from .preview import Preview

log = logging.getLogger(__name__)

TOKEN_BYTES = 24             # a generated token: 32 URL-safe characters


def reachable_host(host: str) -> str:
    """The address a phone would use for `host` (a wildcard means this machine's own)."""
    if host not in ("0.0.0.0", "::", ""):
        return f"[{host}]" if ":" in host else host
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            if not info[4][0].startswith("127."):
                return info[4][0]
    except OSError:
        pass
    return socket.gethostname()


class Remotes:
    """The enabled remotes of a config, sharing one Commands and one preview slot."""

    def __init__(self, cfg: Config, commands: Commands, health: Any = None, souvenirs: Any = None):
        r = cfg.remote
        self.preview = Preview(r.stream_fps, r.stream_width)
        self.token = r.token or secrets.token_urlsafe(TOKEN_BYTES)
        self.generated = not r.token
        self.parts: dict[str, Any] = {}
        if cfg.osc.enabled:
            from .osc import OscServer
            self.parts["OSC"] = OscServer(cfg.osc, commands)
        if r.enabled:
            from .web import WebRemote
            self.parts["web remote"] = WebRemote(r, commands, self.preview, self.token, health, souvenirs)
        if cfg.midi.enabled:
            from .midi import MidiControl   # reads the mapping now: a broken file stops the start (exit 2)
            self.parts["MIDI"] = MidiControl(cfg.midi, commands)
        self.cfg = cfg

    @property
    def osc(self) -> Any:
        return self.parts.get("OSC")

    @property
    def web(self) -> Any:
        return self.parts.get("web remote")

    @property
    def midi(self) -> Any:
        return self.parts.get("MIDI")

    @property
    def url(self) -> str | None:
        """The web remote's address with the token (the HUD's QR code), once it listens."""
        if self.web is None or not self.web.port:
            return None
        return f"http://{reachable_host(self.cfg.remote.host)}:{self.web.port}/?token={self.token}"

    def souvenir_url(self, token: str) -> str | None:
        """Where a visitor's phone fetches a souvenir (no token needed for that one file)."""
        if self.web is None or not self.web.port:
            return None
        return f"http://{reachable_host(self.cfg.remote.host)}:{self.web.port}{SOUVENIR_PATH}{token}.jpg"

    def start(self) -> None:
        for name, part in list(self.parts.items()):
            try:
                part.start()
            except Exception as exc:
                log.error("%s not started: %s; carrying on without it", name, exc)
                del self.parts[name]
        if self.url:
            log.info("web remote: %s%s", self.url,
                     " (generated token; set remote.token to keep one)" if self.generated else "")

    def stop(self) -> None:
        for name, part in self.parts.items():
            try:
                part.stop()
            except Exception:
                log.warning("%s did not stop cleanly", name, exc_info=True)
