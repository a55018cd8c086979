"""The dream core: objectives, the natural-image prior, the dream step, the live engine,
its backends, temporal coherence and offline (octave, tiled) rendering. It imports
neither pygame nor anything of the installation around it; the live app and the tools
are both built on it.

`from live.dream import DreamEngine` loads torch on first use only, so light modules of
the core (files, settings) can be imported without it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .settings import AttractSettings, DreamSettings, MotionSettings, SettingsError

if TYPE_CHECKING:
    from .engine import DreamEngine

__all__ = ["DreamEngine", "DreamSettings", "MotionSettings", "AttractSettings", "SettingsError"]


def __getattr__(name: str):
    if name == "DreamEngine":
        from .engine import DreamEngine
        return DreamEngine
    raise AttributeError(f"module 'live.dream' has no attribute '{name}'")
