"""`make run`: the installation when there is a screen; on a machine without one, a short
headless recording (out/dreamcam.mp4 and out/dreamcam.png), so a fresh checkout always
shows something."""
from __future__ import annotations

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # keep the console to our own lines

import sys

from .__main__ import main as live_main
from .window import display_problem

OUT_VIDEO = "out/dreamcam.mp4"
OUT_STILL = "out/dreamcam.png"
FRAMES = 90


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    problem = display_problem()
    if problem is None:
        return live_main(argv)
    print(f"dreamcam: {problem}; recording {FRAMES} frames headless to {OUT_VIDEO} instead", file=sys.stderr)
    code = live_main(["--headless", "--frames", str(FRAMES), "--record", OUT_VIDEO, "--png", OUT_STILL, *argv])
    if code == 0:
        print(f"dreamcam: done; open {OUT_VIDEO} and {OUT_STILL} to see the dream", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
