"""OSC control over UDP (python-osc for the packet format): `/dreamcam/<command>` for every
command of the command layer (docs/remotes.md). It runs in its own thread on
its own socket; a datagram that is not OSC, a bundle that does not parse, an unknown
address or a bad value is dropped and counted, never applied and never fatal. State
changes (from any control: keys, the web, MIDI, the kiosk timer) go back to the last
client, so a TouchOSC layout shows the current values; refusals go back as
`/dreamcam/error <reason>`, at most one per feedback tick.

Bundles are walked here, with bounds checks, not by python-osc: its walker loops for
ever on a negative element size and logs a warning for every odd element, which a
hostile sender could use to hang the listener or flood the log. Its message parser
also logs odd type tags on the root logger; those lines are filtered out (the drop is
counted instead), and a message is taken only when it encodes back to exactly the bytes
that came (python-osc pads a missing float with zeros, which would turn a truncated
datagram into a value). Bundle time tags are ignored; a bundle's messages apply together,
all or none (one bad value refuses the whole bundle)."""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from ..commands import COMMANDS, NO_VALUE, CommandError, Commands
from ..config import OscConfig, is_loopback

log = logging.getLogger(__name__)

PREFIX = "/dreamcam/"
FEEDBACK_PERIOD = 0.1        # seconds between state-change checks
MAX_DATAGRAM = 65536
BUNDLE = b"#bundle\x00"
MAX_DEPTH = 4                # bundles inside bundles
TYPE_TAGS = {bool: "i/T/F", int: "i", float: "f", str: "s", None: "-"}


def address_table(commands: Commands) -> str:
    """The OSC address list with argument types and ranges (python -m live --osc-list)."""
    rows = [("address", "type", "values", "what it does")]
    rows += [(PREFIX + c.name, TYPE_TAGS[c.type], commands.describe(c), c.help) for c in COMMANDS.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]
    return "\n".join(lines)


def _not_python_osc(record: logging.LogRecord) -> bool:
    """A root-logger filter: python-osc's per-packet warnings are garbage we count."""
    return "pythonosc" not in record.pathname


def parse(data: bytes, depth: int = 0) -> list[OscMessage]:
    """The messages in one datagram; ValueError (or python-osc's ParseError) when it is
    not well-formed OSC."""
    if data.startswith(BUNDLE):
        if depth >= MAX_DEPTH or len(data) < 16 or len(data) % 4:
            raise ValueError("malformed bundle")
        out, i = [], 16                                     # after "#bundle\0" and the time tag
        while i < len(data):
            size = int.from_bytes(data[i:i + 4], "big", signed=True)
            i += 4
            if size <= 0 or size % 4 or i + size > len(data):
                raise ValueError("bundle element size out of bounds")
            out += parse(data[i:i + size], depth + 1)
            i += size
        return out
    if data.startswith(b"/"):
        return [_strict(data)]
    raise ValueError("not an OSC message or bundle")


def _strict(data: bytes) -> OscMessage:
    """The message in `data`, only when it is exactly a well-formed one."""
    msg = OscMessage(data)
    start = (data.index(b"\0") // 4 + 1) * 4                # the type tags follow the padded address
    tags = data[start:data.index(b"\0", start)].decode("ascii")
    if not tags.startswith(",") or len(tags) - 1 != len(msg.params):
        raise ValueError("type tags and arguments disagree")
    b = OscMessageBuilder(msg.address)
    for tag, value in zip(tags[1:], msg.params):
        b.add_arg(value, tag)
    if b.build().dgram != data:
        raise ValueError("not exactly one well-formed OSC message")
    return msg


def message(address: str, value: Any) -> bytes:
    """One OSC message; bools go out as 1/0 (what toggle widgets expect)."""
    b = OscMessageBuilder(address)
    if value is not None:
        b.add_arg(int(value) if isinstance(value, bool) else value)
    return b.build().dgram


class OscServer:
    """The OSC listener: `start()` binds and starts the thread, `stop()` ends it."""

    def __init__(self, cfg: OscConfig, commands: Commands):
        self.cfg = cfg
        self.commands = commands
        self.allow = {a.strip() for a in cfg.allow.split(",") if a.strip()}
        self.open = is_loopback(cfg.host)           # localhost: any local sender; else only `allow`
        self.received = self.applied = self.refused = self.dropped = 0
        self.client: tuple[str, int] | None = None  # where state changes go
        self._sent: dict[str, Any] = {}
        self._error = ""
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1] if self._sock else 0

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.cfg.host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.bind((self.cfg.host, self.cfg.port))
        self._sock.settimeout(FEEDBACK_PERIOD / 2)
        logging.getLogger().addFilter(_not_python_osc)
        self._thread = threading.Thread(target=self._run, name="osc", daemon=True)
        self._thread.start()
        log.info("OSC listening on udp %s:%d (%s)", self.cfg.host, self.port,
                 "this machine only" if self.open else f"senders {', '.join(sorted(self.allow))}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()
        logging.getLogger().removeFilter(_not_python_osc)
        log.info("OSC: %d datagrams, %d applied, %d refused, %d dropped", self.received, self.applied,
                 self.refused, self.dropped)

    def _run(self) -> None:
        next_feedback = 0.0
        while not self._stop.is_set():
            try:
                data, addr = self._sock.recvfrom(MAX_DATAGRAM)
                self.handle(data, addr)
            except socket.timeout:
                pass
            except Exception:   # never let one packet or a socket hiccup end the listener
                self.dropped += 1
                log.debug("OSC datagram dropped", exc_info=True)
            now = time.monotonic()
            if now >= next_feedback:
                next_feedback = now + FEEDBACK_PERIOD
                self._feedback()

    # -- input -------------------------------------------------------------------------------
    def handle(self, data: bytes, addr: tuple) -> None:
        """One datagram from `addr`: every message in it applied or refused."""
        self.received += 1
        if not self.open and addr[0] not in self.allow:
            self.dropped += 1
            return
        try:
            messages = parse(data)
        except Exception:   # ValueError, ParseError, and whatever else a hostile packet provokes
            self.dropped += 1
            return
        client = (addr[0], self.cfg.reply_port or addr[1])
        if client != self.client:
            self.client, self._sent = client, {}    # a new client gets the whole state
        if data.startswith(BUNDLE):
            results = [self._bundle(messages)]
        else:
            results = [self._dispatch(m.address, list(m.params)) for m in messages]
        for reason in results:
            if reason is None:
                self.applied += 1
            elif reason:
                self.refused += 1
                self._error = reason

    def _bundle(self, messages: list[OscMessage]) -> str | None:
        """A bundle's messages as one change, all or none (a scene recalled from TouchOSC
        must not land half-way): None when applied, "" when empty, else the reason."""
        changes: dict[str, Any] = {}
        actions: list[str] = []
        try:
            for m in messages:
                cmd = self._command(m.address)
                params = list(m.params)
                if cmd.is_setting:
                    if len(params) != 1:
                        raise CommandError(f"{m.address} takes one value, got {len(params)}")
                    changes[cmd.name] = params[0]
                elif not (params and params[0] in (0, False)):   # not a push button's release
                    actions.append(cmd.name)
            if not changes and not actions:
                return ""
            self.commands.together(changes, actions, source="osc")
            return None
        except CommandError as exc:
            return f"bundle refused, nothing applied: {exc}"

    def _command(self, address: Any):
        if not isinstance(address, str) or not address.startswith(PREFIX):
            raise CommandError(f"unknown address {str(address)[:60]!r}; addresses start with {PREFIX}")
        return self.commands.command(address[len(PREFIX):])

    def _dispatch(self, address: str, params: list) -> str | None:
        """None when applied, "" when ignored (a button's release), else the reason."""
        try:
            cmd = self._command(address)
            if cmd.is_setting:
                if len(params) != 1:
                    return f"{address} takes one value, got {len(params)}"
                self.commands.run(cmd.name, params[0], source="osc")
            elif params and params[0] in (0, False):
                return ""                                # a push button's release
            else:
                self.commands.run(cmd.name, NO_VALUE, source="osc")
            return None
        except CommandError as exc:
            return str(exc)

    # -- output ------------------------------------------------------------------------------
    def _feedback(self) -> None:
        if self.client is None:
            return
        values = self.commands.values()
        out = [message(PREFIX + k, v) for k, v in values.items() if self._sent.get(k, NO_VALUE) != v]
        if self._error:
            out.append(message(PREFIX + "error", self._error))
            self._error = ""
        try:
            for dgram in out:
                self._sock.sendto(dgram, self.client)
            self._sent = values
        except OSError as exc:     # the client went away: stop talking to it
            log.debug("OSC feedback to %s failed: %s", self.client, exc)
            self.client = None
