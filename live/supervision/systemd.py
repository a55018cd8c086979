"""sd_notify(3) without libsystemd: the main loop tells systemd it is ready, alive and
stopping, so a unit with `WatchdogSec=` restarts a hung process (deploy/dreamcam.service)."""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """sd_notify(3) without libsystemd: READY/WATCHDOG/STOPPING datagrams to
    $NOTIFY_SOCKET. With `WatchdogSec=` in the unit systemd kills and restarts the
    process when the pings stop (a hung main loop). A no-op outside systemd."""

    def __init__(self, env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.address = ("\0" + addr[1:]) if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        for_us = not pid or pid == str(os.getpid())
        self.interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and for_us else None
        self._last = 0.0
        self._failed = False

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, text: str) -> bool:
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(text.encode(), self.address)
            return True
        except OSError as exc:
            if not self._failed:  # once: it would otherwise repeat every few seconds
                log.warning("systemd notify failed (%s)", exc)
                self._failed = True
            return False

    def ready(self) -> None:
        self.send("READY=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def ping(self, now: float | None = None) -> None:
        """Call from the main loop every frame; sends WATCHDOG=1 at half of WatchdogSec."""
        if self.interval is None:
            return
        now = time.monotonic() if now is None else now
        if now - self._last >= self.interval:
            self._last = now
            self.send("WATCHDOG=1")
