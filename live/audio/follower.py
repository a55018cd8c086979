"""The live installation's rules thread: RATE times a second it takes what the microphone
heard (a Listener) and, while a MIDI clock runs, the clock's beat instead of the heard one,
and runs the [[audio.map]] rules on them through the commands."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ..commands import Commands
from ..config import AudioRule
from .clock import BeatClock
from .listener import Listener
from .rules import Reactor

log = logging.getLogger(__name__)

RATE = 50.0            # rule passes a second (a beat reaches the settings within 20 ms)


class Follower:
    def __init__(self, rules: tuple[AudioRule, ...], commands: Commands, ear: Listener | None,
                 clock: BeatClock | None, now: Callable[[], float] = time.monotonic):
        self.reactor = Reactor(rules, commands)
        self.ear, self.clock, self.now = ear, clock, now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def features(self) -> dict[str, float]:
        """What there is to follow now: the heard features, the clock's beat while it runs
        (without a microphone, only that: a level rule then leaves its setting alone)."""
        f = self.ear.take() if self.ear is not None else {}
        if self.clock is not None and self.clock.running():
            f["beat"] = self.clock.take()
        return f

    def step(self) -> dict[str, float]:
        return self.reactor.frame(self.features(), self.now())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audio rules", daemon=True)
        self._thread.start()
        log.info("audio: following %s", " and ".join(
            w for w, part in (("what the microphone hears", self.ear), ("the MIDI clock's beats", self.clock)) if part))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.wait(1.0 / RATE):
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - the music must not end the show
                log.error("audio: rules failed (%s); carrying on without them", exc)
                return
