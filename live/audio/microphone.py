"""The live installation's ears: a sounddevice input stream (PortAudio: ALSA, JACK, Pulse)
feeds a Listener from the audio thread (follower.py runs the rules on it). Optional: no
sounddevice, no PortAudio or no input device is one log line, and the show goes on."""
from __future__ import annotations

import logging
from typing import Any

from ..config import AudioConfig
from .features import AudioError
from .listener import Listener

log = logging.getLogger(__name__)


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

    def __init__(self, audio: AudioConfig):
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
        self.name = info["name"]

    @classmethod
    def maybe(cls, audio: AudioConfig) -> "Microphone | None":
        """The microphone when [audio] asks for one and it can be heard; else None (one line)."""
        if not audio.enabled or audio.source == "clip":
            return None
        try:
            return cls(audio)
        except (MicrophoneUnavailable, AudioError) as exc:
            log.warning("audio: %s; carrying on without it", exc)
            return None

    def _heard(self, indata, frames, when, status) -> None:
        self.listener.feed(indata[:, 0])

    def start(self) -> None:
        self.stream.start()
        log.info("audio: listening to '%s' at %d Hz", self.name, self.listener.sr)

    def stop(self) -> None:
        try:
            self.stream.stop()
            self.stream.close()
        except Exception as exc:  # noqa: BLE001 - closing a device that went away
            log.debug("audio: closing the input: %s", exc)
        log.info("audio: %d beats heard", self.listener.beats)
