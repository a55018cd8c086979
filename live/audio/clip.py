"""A clip's own soundtrack driving its frame-exact dream: before frame i is dreamed, the
rules run on the sound heard while frame i shows, then the engine takes the state's
layer, objective and strength. No clock and no thread: the same clip and config dream
the same way every time, in step with the beat."""
from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path

from ..commands import Commands
from ..config import AudioConfig, Config
from ..dream.engine import DreamEngine
from ..state import State
from .features import SR, AudioError, Features, analyse, soundtrack
from .rules import Reactor

log = logging.getLogger(__name__)


class ClipMusic:
    """`music(i)`: frame i's rules applied; returns the settings sent."""

    def __init__(self, path: str | Path, fps: float | Fraction, audio: AudioConfig, commands: Commands,
                 engine: DreamEngine):
        self.reactor = Reactor(audio.map, commands)     # a bad rule fails before the analysis
        self.fps, self.commands, self.engine = float(fps), commands, engine
        y = soundtrack(path)
        self.features: Features = analyse(y, self.fps, math.ceil(len(y) / SR * self.fps) + 1)
        log.info("following the soundtrack of %s: %.0f bpm, %d beats, %d rules", Path(path).name,
                 self.features.tempo, len(self.features.beats), len(audio.map))

    def __call__(self, i: int) -> dict[str, float]:
        sent = self.reactor.frame(self.features.at(i), i / self.fps)
        s = self.commands.state.live_settings()
        eng = self.engine
        if (s.layer, s.objective) != (eng.layer, eng.objective):
            eng.configure(layer=s.layer, objective=s.objective)
        if s.strength != eng.strength:
            eng.configure(strength=s.strength)
        return sent


def follow_soundtrack(cfg: Config, path: str | Path, fps: float | Fraction, engine: DreamEngine,
                      commands: Commands | None = None) -> ClipMusic | None:
    """The clip's music for a frame-exact dream when [audio] asks for it (None when off or,
    with source "auto", when the clip has no sound: one line). `commands`: the app's, or a
    state of the clip's own (tools.dream)."""
    a = cfg.audio
    if not a.enabled or a.source == "mic":
        return None
    commands = commands or Commands(State.from_config(cfg, camera=False))
    try:
        return ClipMusic(path, fps, a, commands, engine)
    except AudioError as exc:
        if a.source == "clip":
            raise
        log.warning("audio: %s; dreaming without it", exc)
        return None
