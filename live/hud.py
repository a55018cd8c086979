"""Text over the picture: the HUD (what the installation is doing, Tab), the help
overlay generated from the key table (h), short notices (preset names, snapshots) and,
beside the HUD, the web remote's address with its token as a QR code for staff to scan.
Each panel is rendered once per change of its text and blitted every frame."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pygame
import segno

from .state import State
from .stats import Stats

if TYPE_CHECKING:  # the dreamer pulls in torch; the HUD only reads a Dream's fields
    from .dreamer import Dream

HUD_COLOR = (235, 235, 235)
PANEL_RGBA = (0, 0, 0, 160)
MESSAGE_SECONDS = 2.5


def hud_lines(state: State, stats: Stats, dream: Dream | None, source: str, adaptive_level: int,
              steps_per_frame: int = 1) -> tuple[str, ...]:
    """The HUD's lines for the newest dream."""
    s = state
    info = dream.info if dream is not None and dream.info else {}
    ms = (dream.ms / steps_per_frame) if dream is not None and dream.ms else 0.0
    rate = dream.steps_per_second if dream is not None else 0.0
    size = "x".join(map(str, dream.size)) if dream is not None else "-"
    flags = [n for n, on in (("FROZEN", s.frozen), ("ZOOM", s.zooming), ("NOISE", s.noise),
                             ("mirror", s.mirror), ("kiosk", s.kiosk)) if on]
    return (
        f"display {stats.fps:.0f} fps ({stats.picture_fps:.0f} new)   live latency {stats.latency_ms():.0f} ms",
        f"dream {rate:.1f} steps/s   {ms:.0f} ms/step   {size}" + (f" (adaptive -{adaptive_level})" if adaptive_level else ""),
        f"layer {s.layer}   objective {s.objective}",
        f"strength {s.strength:.4f}   blend {s.blend:.2f}   preset {s.preset_name}",
        f"backend {info.get('backend', '-')}{' (auto)' if info.get('setting') == 'auto' else ''}   "
        f"device {info.get('device', '-')}   precision {info.get('precision', '-')}"
        + (f"   building {info['building']}" if info.get("building") else ""),
        f"source {source}" + (f"   [{' '.join(flags)}]" if flags else ""),
    )


class Panels:
    """Renders and caches the text panels; `draw` puts the visible ones on a target."""

    def __init__(self, font_px: int | None = None):
        pygame.font.init()
        self.font_px = font_px
        self._fonts: dict[int, pygame.font.Font] = {}
        self._hud_cache: tuple[tuple, pygame.Surface] | None = None
        self._help_cache: tuple[tuple, pygame.Surface] | None = None
        self._msg_cache: tuple[str, pygame.Surface] | None = None
        self.qr: str | None = None     # the web remote's URL with its token, shown with the HUD
        self.souvenir: tuple[str, str] | None = None   # a visitor's souvenir: (its URL, the consent line)
        self._qr_cache: dict[tuple, pygame.Surface] = {}

    def draw(self, target: pygame.Surface, hud: tuple[str, ...] = (), message: str = "",
             help_lines: list[tuple[str, str]] | None = None) -> None:
        if hud:
            self._draw_hud(target, tuple(hud))
            if self.qr:
                self._draw_qr(target, self.qr, ("web remote: scan",), right=True, scale=1.0)
        if self.souvenir:
            url, consent = self.souvenir
            self._draw_qr(target, url, ("Your dream: scan to take it home", consent), right=False, scale=1.4)
        if message:
            self._draw_message(target, message)
        if help_lines:
            self._draw_help(target, help_lines)

    def _font(self, target: pygame.Surface, scale: float = 1.0) -> pygame.font.Font:
        px = int((self.font_px or max(14, target.get_height() // 38)) * scale)
        if px not in self._fonts:
            self._fonts[px] = pygame.font.Font(None, px)
        return self._fonts[px]

    def _panel(self, rows: list[pygame.Surface], pad: int) -> pygame.Surface:
        w = max(r.get_width() for r in rows) + 2 * pad
        h = sum(r.get_height() for r in rows) + 2 * pad
        panel = pygame.Surface((w, h), pygame.SRCALPHA)
        panel.fill(PANEL_RGBA)
        y = pad
        for r in rows:
            panel.blit(r, (pad, y))
            y += r.get_height()
        return panel

    def _draw_hud(self, target: pygame.Surface, lines: tuple[str, ...]) -> None:
        key = (lines, target.get_height())
        if self._hud_cache is None or self._hud_cache[0] != key:
            font = self._font(target)
            self._hud_cache = (key, self._panel([font.render(t, True, HUD_COLOR) for t in lines], 8))
        target.blit(self._hud_cache[1], (10, 10))

    def _draw_help(self, target: pygame.Surface, lines: list[tuple[str, str]]) -> None:
        key = (tuple(lines), target.get_size())
        if self._help_cache is None or self._help_cache[0] != key:
            font = self._font(target, 1.15)
            keys_w = max(font.size(k)[0] for k, _ in lines) + 24
            rows = [font.render("Dreamcam keys", True, (255, 220, 120))]
            for k, text in lines:
                row = pygame.Surface((keys_w + font.size(text)[0], font.get_linesize()), pygame.SRCALPHA)
                row.blit(font.render(k, True, (255, 220, 120)), (0, 0))
                row.blit(font.render(text, True, HUD_COLOR), (keys_w, 0))
                rows.append(row)
            self._help_cache = (key, self._panel(rows, 16))
        panel = self._help_cache[1]
        tw, th = target.get_size()
        target.blit(panel, ((tw - panel.get_width()) // 2, max(0, (th - panel.get_height()) // 2)))

    def _draw_message(self, target: pygame.Surface, text: str) -> None:
        if self._msg_cache is None or self._msg_cache[0] != text:
            font = self._font(target, 1.3)
            self._msg_cache = (text, self._panel([font.render(text, True, HUD_COLOR)], 10))
        panel = self._msg_cache[1]
        tw, th = target.get_size()
        target.blit(panel, ((tw - panel.get_width()) // 2, th - panel.get_height() - th // 12))

    def _draw_qr(self, target: pygame.Surface, url: str, labels: tuple[str, ...], right: bool,
                 scale: float) -> None:
        """The URL as a QR code (dark modules on white, 4-module quiet zone) under its labels,
        in the bottom right (the remote) or bottom left (a souvenir) corner."""
        key = (url, labels, target.get_height(), scale)
        if key not in self._qr_cache:
            dark = np.array(segno.make(url, error="m").matrix, dtype=bool)
            dark = np.pad(dark, 4)                                   # the quiet zone scanners need
            px = max(2, target.get_height() // 3 // dark.shape[0])
            grey = np.where(dark, 0, 255).astype(np.uint8).repeat(px, 0).repeat(px, 1)
            code = pygame.surfarray.make_surface(np.ascontiguousarray(np.stack([grey.T] * 3, axis=-1)))
            rows = [self._font(target, scale).render(text, True, HUD_COLOR) for text in labels]
            if len(self._qr_cache) > 8:
                self._qr_cache.clear()
            self._qr_cache[key] = self._panel(rows + [code], 8)
        panel = self._qr_cache[key]
        tw, th = target.get_size()
        x = tw - panel.get_width() - 10 if right else 10
        target.blit(panel, (x, th - panel.get_height() - 10))

    def text_center(self, target: pygame.Surface, text: str) -> None:
        surf = self._font(target, 1.3).render(text, True, HUD_COLOR)
        tw, th = target.get_size()
        target.blit(surf, ((tw - surf.get_width()) // 2, (th - surf.get_height()) // 2))
