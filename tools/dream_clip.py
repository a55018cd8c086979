"""Frame-exact clip dreaming, the video half of tools.dream:

    python -m tools.dream CLIP OUT.mp4 [--frames N] [--size WxH] [--config F] [--set section.key=value ...]

Every frame of CLIP, in order, through the live installation's pipeline as config.toml
sets it up ([dream] engine and backend, [motion] flow and motion response, [attract],
render.blend): dt = 1 / the clip's frame rate. OUT has the clip's frame count (or N),
frame rate and size, no mirror, no crop, and the clip's sound; with [audio] enabled the
soundtrack drives the settings frame by frame (live/audio). Ctrl+C keeps a playable
video of the frames finished (exit 130)."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from live import config
from live.audio.clip import follow_soundtrack
from live.cli import Parser, UsageError, parse_size, positive_int
from live.dream.clip import ClipDreamer, ClipReader, clip_engine, dream_clip, frames_to_write
from live.dream.files import check_output
from live.dream.video import VIDEO_SUFFIXES
from tqdm import tqdm

from .outcome import load_model, outcome

log = logging.getLogger("tools.dream")


def build_parser() -> Parser:
    p = Parser(prog="python -m tools.dream", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("clip", metavar="CLIP", help="video file to dream, every frame in order")
    p.add_argument("output", metavar="OUT", help=f"video ({', '.join(VIDEO_SUFFIXES)})")
    p.add_argument("--frames", type=positive_int, metavar="N", help="only the first N frames")
    p.add_argument("--size", metavar="WxH", help="the dream's working size (pixel budget; its shape follows "
                   "the clip, as live); default [dream] size, gpu_size on CUDA")
    p.add_argument("--config", default=None, help="config file (default config.toml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config setting, e.g. --set render.blend=1.0 (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="jitter sequence (the same run gives the same video)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="log details (and tracebacks)")
    return p


def render(args: argparse.Namespace) -> int:
    """Check everything, then dream the clip; returns the frames written."""
    cfg = config.load(args.config, args.set)
    asked = parse_size(args.size, "--size") if args.size else None
    out = check_output(args.output, "OUT")
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"OUT '{args.output}': a clip is dreamed into a video; use {' or '.join(VIDEO_SUFFIXES)}")
    with ClipReader(args.clip, "CLIP") as reader:
        info = reader.info
        backbone = load_model(cfg.dream.model, cfg.dream.device)
        engine = clip_engine(backbone, cfg.dream, info.size, args.seed, asked)
        size = engine.size
        try:
            music = follow_soundtrack(cfg, info.path, info.fps, engine)
            dreamer = ClipDreamer(engine, info.fps, cfg.motion, cfg.attract, cfg.render.blend)
            blend = (lambda: music.commands.state.view().blend) if music else None
            log.info("%s: %dx%d at %s fps, working size %dx%d, backend %s", info.path, *info.size, info.fps,
                     *size, engine.backend)
            with tqdm(total=frames_to_write(info, args.frames), unit="frame", desc="dream", disable=args.quiet,
                      dynamic_ncols=True) as bar:
                return dream_clip(reader, dreamer, out, args.frames, on_frame=lambda _: bar.update(),
                                  blend=blend, before=music)
        finally:
            engine.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"dream: error: {exc}", file=sys.stderr)
        return 2
    return outcome(lambda: f" ({render(args)} frames)", args)
