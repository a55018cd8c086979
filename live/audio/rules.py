"""[[audio.map]] rules -> commands, frame by frame, through the one command layer (as a MIDI
controller's faders and pads go): a continuous feature (level, a band, onset strength)
moves a setting over lo..hi; a beat pulses a setting up to x (1 + amount) (within lo..hi),
falling back with a time constant of `seconds`; an action runs on every `every`-th beat, or every `every`-th
time a feature rises past half way. The pulse rides on the operator's value: a change
from a key, a preset or a remote becomes the new base."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from ..commands import COMMANDS, SCALABLE, TRIGGERS, CommandError, Commands, check_span, field_range
from ..config import AudioRule, ConfigError

log = logging.getLogger(__name__)

RISE = 0.5                  # a feature "rises" when it crosses this from below


def check_rule(rule: AudioRule, where: str) -> None:
    """One line for a rule that names nothing it can drive, or two things at once."""
    if bool(rule.setting) == bool(rule.action):
        raise ConfigError(f"{where}: give a 'setting' or an 'action' (one of them)")
    if rule.action and rule.action not in TRIGGERS:
        raise ConfigError(f"{where}: 'action' = '{rule.action}' must be one of {', '.join(TRIGGERS)}")
    if rule.setting and rule.setting not in SCALABLE:
        raise ConfigError(f"{where}: 'setting' = '{rule.setting}' must be one of {', '.join(SCALABLE)}")
    if rule.setting and rule.feature == "beat" and COMMANDS[rule.setting].type is not float:
        numbers = [n for n in SCALABLE if COMMANDS[n].type is float]
        raise ConfigError(f"{where}: a beat pulses a number: 'setting' must be one of {', '.join(numbers)}")
    if rule.setting:
        check_span(rule.setting, rule.lo, rule.hi, where)


def check_rules(rules: tuple[AudioRule, ...]) -> None:
    for i, rule in enumerate(rules):
        check_rule(rule, f"audio.map[{i}]")


@dataclass
class _Pulse:
    base: float | None = None          # the operator's value the pulse rides on
    sent: float | None = None          # what the pulse set last
    beat_time: float = -math.inf


@dataclass
class Reactor:
    """Runs the rules for one frame's features at time `t` (seconds) on `commands`."""
    rules: tuple[AudioRule, ...]
    commands: Commands
    _pulses: dict[int, _Pulse] = field(default_factory=dict)
    _above: dict[int, bool] = field(default_factory=dict)
    _counts: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_rules(self.rules)

    def frame(self, features: dict[str, float], t: float) -> dict[str, float]:
        """Apply one frame; returns the settings sent (for plots and tests)."""
        changes, actions = {}, []
        for i, rule in enumerate(self.rules):
            x = features.get(rule.feature, 0.0 if rule.feature == "beat" else None)
            if x is None:
                continue            # nothing hears that here (a MIDI clock alone has beats only)
            if rule.action:
                if self._rose(i, x) and self._count(i) % rule.every == 0:
                    actions.append(rule.action)
            elif rule.feature == "beat":
                changes[rule.setting] = self._pulse(i, rule, x >= RISE, t)
            else:
                changes[rule.setting] = self.commands.scale(rule.setting, x, rule.lo, rule.hi)
        for action in actions:
            self._run(action)
        if changes:
            self._run_settings(changes)
        return changes

    def _rose(self, i: int, x: float) -> bool:
        was, self._above[i] = self._above.get(i, False), x >= RISE
        return self._above[i] and not was

    def _count(self, i: int) -> int:
        self._counts[i] = self._counts.get(i, 0) + 1
        return self._counts[i] - 1

    def _pulse(self, i: int, rule: AudioRule, beat: bool, t: float) -> float:
        p = self._pulses.setdefault(i, _Pulse())
        now = self.commands.values()[rule.setting]
        if p.base is None or now != p.sent:
            p.base = now                    # first frame, or the operator (a preset, a key) moved it
        if beat:
            p.beat_time = t
        flo, fhi = field_range(COMMANDS[rule.setting])
        lo, hi = (flo if rule.lo is None else rule.lo), (fhi if rule.hi is None else rule.hi)
        peak = min(max(p.base * (1.0 + rule.amount), lo), hi)
        p.sent = p.base + (peak - p.base) * math.exp(-(t - p.beat_time) / rule.seconds)
        return p.sent

    def _run(self, action: str) -> None:
        try:
            self.commands.run(action, source="audio")
        except CommandError as exc:
            log.debug("audio: %s refused: %s", action, exc)

    def _run_settings(self, changes: dict[str, float]) -> None:
        try:
            self.commands.set_many(changes, source="audio")
        except CommandError as exc:
            log.debug("audio: %s refused: %s", changes, exc)
