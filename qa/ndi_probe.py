"""python -m qa.ndi_probe: is the picture arriving? An NDI receiver on this machine, as
Resolume or OBS would be: finds the source, takes every frame it sends for a while and
says how many arrived, at what rate and size, and how many NDI dropped.

    python -m qa.ndi_probe [--name Dreamcam] [--seconds 30] [--json FILE]

Exit 0 when frames arrived, 1 when the source was found but sent nothing, 2 when no source
of that name appeared within --wait seconds (or cyndilib is missing)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from live.cli import Parser

POLL = 250.0         # frame-sync polls a second: well above any frame rate sent


def build_parser() -> Parser:
    p = Parser(prog="python -m qa.ndi_probe", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--name", default="Dreamcam", help="the source's name ([output] ndi_name)")
    p.add_argument("--seconds", type=float, default=30.0, help="how long to receive")
    p.add_argument("--wait", type=float, default=30.0, help="how long to look for the source")
    p.add_argument("--json", help="also write the figures here")
    return p


def find(name: str, wait: float):
    """The NDI source whose name ends in '(name)', or None."""
    from cyndilib.finder import Finder
    finder = Finder()
    finder.open()
    end = time.monotonic() + wait
    try:
        while time.monotonic() < end:
            finder.wait_for_sources(1.0)
            for n in finder.get_source_names():
                if n.endswith(f"({name})"):
                    return finder.get_source(n), finder
        return None, finder
    except BaseException:
        finder.close()
        raise


def receive(source, seconds: float) -> dict:
    """Every video frame for `seconds`, told apart by the sender's timestamp (NDI's frame
    sync is polled at POLL Hz and holds the newest frame): count, rate, size, NDI's own
    totals and drops."""
    from cyndilib import RecvBandwidth, RecvColorFormat
    from cyndilib.receiver import Receiver
    from cyndilib.video_frame import VideoFrameSync
    rx = Receiver(color_format=RecvColorFormat.BGRX_BGRA, bandwidth=RecvBandwidth.highest)
    vf = VideoFrameSync()
    rx.frame_sync.set_video_frame(vf)
    rx.set_source(source)
    stamps, first, last, size = set(), None, None, (0, 0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rx.frame_sync.capture_video()
        stamp = vf.get_timestamp_posix()
        if stamp and stamp not in stamps:
            now = time.monotonic()
            first = first or now
            last, size = now, vf.get_resolution()
            stamps.add(stamp)
        time.sleep(1.0 / POLL)
    stats = rx.get_performance_data()
    rx.disconnect()
    got = len(stamps)
    fps = (got - 1) / (last - first) if got > 1 and last > first else 0.0
    return {"frames": got, "fps": round(fps, 2), "size": list(size), "seconds": seconds, "ndi": stats}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import cyndilib  # noqa: F401
    except ImportError as exc:
        print(f"ndi_probe: error: needs cyndilib ({exc}); pip install cyndilib", file=sys.stderr)
        return 2
    source, finder = find(args.name, args.wait)
    try:
        if source is None:
            print(f"ndi_probe: error: no NDI source '({args.name})' within {args.wait:g} s; is [output] ndi on, "
                  "and NDI_CONFIG_DIR the same as the sender's?", file=sys.stderr)
            return 2
        r = receive(source, args.seconds)
    finally:
        finder.close()
    r["source"] = source.name
    print(f"{r['source']}: {r['frames']} frames in {args.seconds:g} s, {r['fps']:.1f} fps, "
          f"{r['size'][0]}x{r['size'][1]}; NDI: {r['ndi']}")
    if args.json:
        Path(args.json).write_text(json.dumps(r))
    return 0 if r["frames"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
