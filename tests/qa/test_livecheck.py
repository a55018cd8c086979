"""qa.livecheck's virtual screen: Xvfb picks a free display itself and is stopped so that
it removes its own socket and lock (killed servers' had used up every number it looked at)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa.livecheck import start_xvfb, stop_xvfb


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="no Xvfb here (apt install xvfb)")
def test_a_virtual_screen_starts_and_leaves_nothing_behind(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    server, display = start_xvfb()
    socket = Path(f"/tmp/.X11-unix/X{display[1:]}")
    try:
        assert display[1:].isdigit() and server.poll() is None and socket.exists()
    finally:
        stop_xvfb(server)
    assert server.returncode is not None and not socket.exists()
    assert not Path(f"/tmp/.X{display[1:]}-lock").exists()
