"""One table from keys to commands (README, Keys). The help overlay is generated from
the same table, so it can never disagree with what the keys do.

Each binding names a command of the one command layer (live/commands.py), the same
commands OSC, MIDI and the web remote run. In kiosk mode only bindings marked `kiosk`
work, so visitors can play with the picture but only Ctrl+Shift+Q quits."""
from __future__ import annotations

from dataclasses import dataclass

import pygame

from .commands import NO_VALUE, CommandError, Commands

CTRL, SHIFT, ALT = pygame.KMOD_CTRL, pygame.KMOD_SHIFT, pygame.KMOD_ALT


@dataclass(frozen=True)
class Binding:
    keys: tuple[int, ...]
    action: str             # a command of live/commands.py
    label: str              # the keys as the help overlay shows them
    help: str
    arg: int | None = None  # the command's value (preset number, 1-based)
    mods: int = 0           # modifier groups that must be held (CTRL, SHIFT, ALT)
    kiosk: bool = True      # allowed in kiosk mode


BINDINGS: tuple[Binding, ...] = (
    Binding((pygame.K_q,), "quit", "Ctrl+Shift+Q", "quit (the only way out in kiosk mode)", mods=CTRL | SHIFT),
    Binding((pygame.K_ESCAPE, pygame.K_q), "quit", "Esc / q", "quit", kiosk=False),
    Binding((pygame.K_F11, pygame.K_f), "toggle_fullscreen", "F11 / f", "fullscreen or window", kiosk=False),
    Binding((pygame.K_SPACE,), "toggle_freeze", "Space", "freeze frame"),
    Binding((pygame.K_RIGHT,), "next_preset", "Right", "next preset"),
    Binding((pygame.K_LEFT,), "previous_preset", "Left", "previous preset"),
    Binding((pygame.K_UP,), "deeper", "Up", "deeper layer (eyes, animals)"),
    Binding((pygame.K_DOWN,), "shallower", "Down", "shallower layer (strokes, ornaments)"),
    Binding((pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS), "stronger", "+", "stronger dream"),
    Binding((pygame.K_MINUS, pygame.K_KP_MINUS), "weaker", "-", "weaker dream"),
    Binding((pygame.K_RIGHTBRACKET,), "more_dream", "]", "more dream in the blend"),
    Binding((pygame.K_LEFTBRACKET,), "less_dream", "[", "more live picture in the blend"),
    *(Binding((getattr(pygame, f"K_{i}"), getattr(pygame, f"K_KP{i}")), "preset", "1-9",
              "preset by number", arg=i) for i in range(1, 10)),
    Binding((pygame.K_z,), "toggle_zoom", "z", "endless-zoom drift"),
    Binding((pygame.K_n,), "toggle_noise", "n", "dream from noise (again: back to the camera)"),
    Binding((pygame.K_r,), "reset_dream", "r", "reset the dream"),
    Binding((pygame.K_s,), "snapshot", "s", "snapshot (PNG of the screen)"),
    Binding((pygame.K_v,), "souvenir", "v", "visitor's souvenir: the screen as a QR code ([souvenir])"),
    Binding((pygame.K_TAB,), "toggle_hud", "Tab", "HUD: fps, ms/step, layer, backend, device"),
    Binding((pygame.K_h, pygame.K_F1), "toggle_help", "h / F1", "this help"),
    Binding((pygame.K_m,), "toggle_mirror", "m", "mirror"),
    Binding((pygame.K_l,), "toggle_midi_learn", "l", "MIDI learn: then move a control (binds to the last-changed setting)",
            kiosk=False),
)


def lookup(key: int, mod: int = 0, kiosk: bool = False) -> Binding | None:
    """The binding a key press triggers, or None (unbound, or not allowed in kiosk mode).
    Bindings needing modifiers come first in the table, so they win."""
    for b in BINDINGS:
        if key not in b.keys:
            continue
        if any(b.mods & group and not mod & group for group in (CTRL, SHIFT, ALT)):
            continue
        return b if (b.kiosk or not kiosk) else None
    return None


def handle(event: pygame.event.Event, commands: Commands, kiosk: bool = False) -> str | None:
    """Run the command a key-down event is bound to; returns its name, if any. A refused
    command (a snapshot in kiosk mode, a preset that does not exist) is said on screen."""
    if event.type != pygame.KEYDOWN:
        return None
    b = lookup(event.key, getattr(event, "mod", 0), kiosk)
    if b is None:
        return None
    try:
        commands.run(b.action, NO_VALUE if b.arg is None else b.arg, source="key")
    except CommandError as exc:
        commands.state.say(str(exc))
    return b.action


def help_lines(kiosk: bool = False, snapshots: bool = True) -> list[tuple[str, str]]:
    """(keys, what they do) for the help overlay, one line per distinct label; only what
    works here (kiosk mode blocks some keys, and may have snapshots off)."""
    seen: set[str] = set()
    lines = []
    for b in BINDINGS:
        if b.label in seen or (kiosk and not b.kiosk) or (b.action == "snapshot" and not snapshots):
            continue
        seen.add(b.label)
        lines.append((b.label, b.help))
    return lines
