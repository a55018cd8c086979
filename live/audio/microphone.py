"""The live installation's ears: a sounddevice input stream (PortAudio: ALSA, JACK, Pulse)
feeds a Listener from the audio thread; a thread of its own runs the [[audio.map]] rules on
the newest features RATE times a second, through the commands. Optional: no sounddevice,
no PortAudio or no input device is one log line, and the show goes on without it."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from ..commands import Commands
from ..config import AudioConfig
from .features import AudioError
from .listener import Listener
from .rules import Reactor

log = logging.getLogger(__name__)

RATE = 50.0            # rule passes a second (a beat reaches the settings within 20 ms)


class MicrophoneUnavailable(RuntimeError):
    """No way to hear here: the reason, in one line."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:     # OSError: the PortAudio library is missing
        raise MicrophoneUnavailable(f"the microphone needs sounddevice and PortAudio ({exc}); "
                                    "pip install sounddevice, apt-get install libportaudio2") from None
    return sounddevice


def pick_input(sd: Any, device: str) -> int:
    """The input device: "" the default, a number, or part of a name."""
    try:
        devices = sd.query_devices()
        inputs = [i for i, d in enumerate(devices) if d["max_input_channels"] > 0]
        if not device:
            default = sd.default.device[0]
            chosen = default if default is not None and default >= 0 else (inputs[0] if inputs else None)
        elif device.isdigit():
            chosen = int(device) if int(device) in inputs else None
        else:
            chosen = next((i for i in inputs if device.lower() in devices[i]["name"].lower()), None)
    except Exception as exc:   # noqa: BLE001 - PortAudio's own failures come in many types
        raise MicrophoneUnavailable(f"no audio input could be listed ({exc})") from None
    if chosen is None:
        names = ", ".join(f"{i}: {devices[i]['name']}" for i in inputs) or "none"
        raise MicrophoneUnavailable(f"no audio input '{device or 'default'}' (inputs here: {names}); set audio.device")
    return chosen


class Microphone:
    """`start()` / `stop()` from the app; `listener` for the health page and tests."""

    def __init__(self, audio: AudioConfig, commands: Commands, clock: Callable[[], float] = time.monotonic):
        self.reactor = Reactor(audio.map, commands)       # a bad rule stops the start with one line
        sd = _sounddevice()
        dev = pick_input(sd, audio.device)
        try:
            info = sd.query_devices(dev, "input")
            rate = int(info["default_samplerate"])
            self.listener = Listener(rate)
            self.stream = sd.InputStream(device=dev, channels=1, samplerate=rate, dtype="float32",
                                         blocksize=self.listener.hop, callback=self._heard)
        except AudioError:
            raise
        except Exception as exc:  # noqa: BLE001 - PortAudio refusing the device, whatever the type
            raise MicrophoneUnavailable(f"audio input {dev} cannot be opened ({exc})") from None
        self.name, self.clock = info["name"], clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def maybe(cls, audio: AudioConfig, commands: Commands) -> "Microphone | None":
        """The microphone when [audio] asks for one and it can be heard; else None (one line)."""
        if not audio.enabled or audio.source == "clip":
            return None
        try:
            return cls(audio, commands)
        except (MicrophoneUnavailable, AudioError) as exc:
            log.warning("audio: %s; carrying on without it", exc)
            return None

    def _heard(self, indata, frames, when, status) -> None:
        self.listener.feed(indata[:, 0])

    def start(self) -> None:
        self.stream.start()
        self._thread = threading.Thread(target=self._run, name="audio", daemon=True)
        self._thread.start()
        log.info("audio: following '%s' at %d Hz", self.name, self.listener.sr)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        try:
            self.stream.stop()
            self.stream.close()
        except Exception as exc:  # noqa: BLE001 - closing a device that went away
            log.debug("audio: closing the input: %s", exc)
        log.info("audio: %d beats heard", self.listener.beats)

    def _run(self) -> None:
        while not self._stop.wait(1.0 / RATE):
            try:
                self.reactor.frame(self.listener.take(), self.clock())
            except Exception as exc:  # noqa: BLE001 - the music must not end the show
                log.error("audio: rules failed (%s); carrying on without them", exc)
                return
