"""Offline gallery renderer: full-quality DeepDream stills, class dreams, guided dreams,
layer contact sheets and endless-zoom videos.

    python -m tools.dream IN OUT [options]

IN is a picture, `noise` or `clouds` (size from --size); OUT is a picture (.png/.jpg),
or an .mp4 with --zoom-frames N. IN a video clip and OUT a video: every frame of the clip
dreamed frame-exactly through the live pipeline (tools/dream_clip.py, its own --help). Ctrl+C keeps what is finished. Exit codes: 0 ok,
2 bad arguments or files (one line on stderr), 1 unexpected failure, 130 interrupted."""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

import models
from live.cli import PICTURE_MAX, Parser, UsageError, finite, parse_size
from live.dream.clip import is_clip
from live.dream.clouds import clouds
from live.dream.files import atomic, check_output as check_writable
from live.dream.images import feed_back, noise
from live.dream.offline import Interrupted, OfflineSettings, Renderer, total_steps
from live.dream.prior import GRAD_NORMS
from live.dream.video import VIDEO_SUFFIXES, VideoWriter
from . import targets
from .outcome import load_model, outcome
from .sheet import contact_sheet, spread

log = logging.getLogger("tools.dream")

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_SIZE = (640, 480)  # for noise and clouds without --size
MIN_SIDE = 32              # the smallest picture the network can dream on (as --size)
JPEG_QUALITY = 92

# Defaults per kind of render; any option given on the command line wins.
STILL = OfflineSettings()
# Class dreams from noise need the whole prior: random rescales, Laplacian normalisation,
# more octaves and steps, so the picture keeps saying "banana" when cropped or resized.
CLASS = OfflineSettings(octaves=4, octave_scale=1.5, iterations=40, strength=0.015, jitter=16,
                      scale_jitter=0.15, grad_norm="laplacian", smooth=1.0, decorrelate=1.0)
# Zoom frames after the first: the picture already dreams, a few steps keep it growing.
FRAME = OfflineSettings(octaves=2, iterations=5)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tools.dream", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", help="picture path, 'noise' or 'clouds'")
    p.add_argument("output", metavar="OUT", help="picture (.png/.jpg) or video (.mp4, with --zoom-frames)")
    p.add_argument("--size", metavar="WxH", help="working size: resizes IN, or the size of noise/clouds "
                   f"(default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]})")
    g = p.add_argument_group("what to dream")
    g.add_argument("--layer", action="append", default=[], metavar="LAYER[:WEIGHT]",
                   help="layer to amplify, repeatable with weights: --layer blocks.8:0.5 --layer blocks.12")
    g.add_argument("--channel", action="append", default=[], metavar="LAYER:N", help="one feature map (repeatable)")
    g.add_argument("--class", dest="class_name", metavar="NAME|INDEX", help="an ImageNet class, e.g. banana")
    g.add_argument("--guide", metavar="IMAGE", help="dream toward the features of this picture")
    g.add_argument("--model", default=models.DEFAULT_MODEL, help="network (default %(default)s)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda")
    g = p.add_argument_group("the prior (defaults depend on the kind of render)")
    g.add_argument("--octaves", type=int, help=f"image pyramid levels (still {STILL.octaves}, class {CLASS.octaves})")
    g.add_argument("--octave-scale", type=finite, help=f"size ratio between octaves ({STILL.octave_scale})")
    g.add_argument("--iterations", type=int, help=f"steps per octave (still {STILL.iterations}, class {CLASS.iterations})")
    g.add_argument("--strength", "--step-size", dest="strength", type=finite,
                   help=f"change per step in 0..1 units (still {STILL.strength})")
    g.add_argument("--jitter", type=int, help=f"random shift in pixels per step (still {STILL.jitter})")
    g.add_argument("--scale-jitter", type=finite, help=f"random rescale 1 +- this per step (class {CLASS.scale_jitter})")
    g.add_argument("--grad-norm", choices=GRAD_NORMS, help="gradient normalisation (still mean, class laplacian)")
    g.add_argument("--smooth", type=finite, help=f"blur of the gradient, sigma in pixels (still {STILL.smooth}, class {CLASS.smooth})")
    g.add_argument("--decorrelate", type=finite, help=f"natural-colour preconditioning 0..2 (still {STILL.decorrelate}, class {CLASS.decorrelate})")
    g.add_argument("--tile", type=int, default=STILL.tile, help="gradient tile side in pixels (%(default)s): memory bound")
    g.add_argument("--keep-colors", action="store_true", help="restore the original colour statistics")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("contact sheet and zoom video")
    g.add_argument("--sheet", action="store_true", help="a labelled sheet of IN dreamed at each --layer "
                   "(default: 8 layers from shallow to deep)")
    g.add_argument("--zoom-frames", type=int, metavar="N", help="endless zoom: N frames, OUT must be .mp4")
    g.add_argument("--zoom", type=finite, default=1.04, help="zoom per frame (%(default)s)")
    g.add_argument("--rotate", type=finite, default=0.0, help="rotation per frame in degrees (%(default)s)")
    g.add_argument("--fps", type=finite, default=24.0, help="video frame rate (%(default)s)")
    g.add_argument("--frame-octaves", type=int, default=FRAME.octaves, help="octaves per zoom frame after the first (%(default)s)")
    g.add_argument("--frame-iterations", type=int, default=FRAME.iterations, help="steps per octave per zoom frame after the first (%(default)s)")
    p.add_argument("--quality", type=int, default=JPEG_QUALITY, help="JPEG quality 1..100 (%(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="log details (and tracebacks)")
    return p


# -- inputs and outputs ---------------------------------------------------------------


def read_image(path: str, what: str) -> np.ndarray:
    if Path(path).is_dir():
        raise UsageError(f"{what} '{path}' is a directory; give a picture file")
    if not Path(path).is_file():
        raise UsageError(f"{what} '{path}' does not exist")
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise UsageError(f"{what} '{path}' is not a picture OpenCV can read")
    return np.ascontiguousarray(img[..., ::-1])


def load_input(spec: str, size: tuple[int, int] | None, seed: int) -> np.ndarray:
    """The start picture (uint8 RGB)."""
    if spec in ("noise", "clouds"):
        w, h = size or DEFAULT_SIZE
        return noise(w, h, seed) if spec == "noise" else clouds(w, h, t=0.0, seed=seed)
    img = read_image(spec, "input")
    if not size and min(img.shape[:2]) < MIN_SIDE:
        raise UsageError(f"input '{spec}' is {img.shape[1]}x{img.shape[0]}, smaller than {MIN_SIDE}x{MIN_SIDE}; "
                         f"give a larger picture or --size to scale it up")
    if size and (img.shape[1], img.shape[0]) != size:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if size[0] < img.shape[1] else cv2.INTER_CUBIC)
    return img


def check_output(path: str, video: bool) -> None:
    """Fail before a long render, not after it."""
    out = check_writable(path, "OUT")
    ext = out.suffix.lower()
    if video and ext not in VIDEO_SUFFIXES:
        raise UsageError(f"--zoom-frames writes a video: OUT '{path}' must end in {' or '.join(VIDEO_SUFFIXES)}")
    if not video and ext in VIDEO_SUFFIXES:
        raise UsageError(f"OUT '{path}' is a video: add --zoom-frames N for an endless-zoom video")
    if not video and (ext not in IMAGE_EXTS or not cv2.haveImageWriter(str(out))):
        raise UsageError(f"OUT '{path}' must be a picture ({', '.join(IMAGE_EXTS)})")


def write_image(path: str, img: np.ndarray, quality: int = JPEG_QUALITY) -> None:
    """Encode in memory, then write atomically: never a broken picture under its name."""
    ext = Path(path).suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(ext, np.ascontiguousarray(img[..., ::-1]), params)
    if not ok:
        raise UsageError(f"cannot encode OUT '{path}' as {ext}")
    with atomic(path, "OUT") as tmp:
        tmp.write_bytes(data.tobytes())


# -- settings -------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """Everything a render needs, resolved from the arguments."""

    start: np.ndarray
    target: targets.Target
    settings: OfflineSettings
    frame_settings: OfflineSettings
    quality: int = JPEG_QUALITY


def settings_from(args: argparse.Namespace) -> tuple[OfflineSettings, OfflineSettings]:
    base = CLASS if args.class_name is not None else STILL
    given = {k: v for k, v in {
        "octaves": args.octaves, "octave_scale": args.octave_scale, "iterations": args.iterations,
        "strength": args.strength, "jitter": args.jitter, "scale_jitter": args.scale_jitter,
        "grad_norm": args.grad_norm, "smooth": args.smooth, "decorrelate": args.decorrelate}.items() if v is not None}
    try:
        s = base.with_(tile=args.tile, keep_colors=args.keep_colors, seed=args.seed, **given)
        frame = s.with_(octaves=args.frame_octaves, iterations=args.frame_iterations)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return s, frame


def job_from(args: argparse.Namespace) -> Job:
    size = parse_size(args.size, "--size", PICTURE_MAX) if args.size else None
    video = args.zoom_frames is not None
    if video and args.zoom_frames < 1:
        raise UsageError("--zoom-frames must be at least 1")
    if video and args.sheet:
        raise UsageError("--sheet makes a picture; it cannot be combined with --zoom-frames")
    if args.sheet and args.class_name is not None:
        raise UsageError("--sheet compares layers; it cannot be combined with --class")
    if not 0.5 <= args.zoom <= 2.0:
        raise UsageError(f"--zoom {args.zoom} is out of range (0.5..2; 1.04 is a gentle zoom)")
    if args.fps <= 0:
        raise UsageError("--fps must be positive")
    if not 1 <= args.quality <= 100:
        raise UsageError(f"--quality {args.quality} is out of range (1..100)")
    check_output(args.output, video)
    settings, frame = settings_from(args)
    start = load_input(args.input, size, args.seed)
    target = targets.Target(
        layers=tuple(targets.parse_layer(s) for s in args.layer),
        channels=tuple(targets.parse_channel(s) for s in args.channel),
        class_name=args.class_name,
        guide=read_image(args.guide, "--guide picture") if args.guide else None)
    return Job(start, target, settings, frame, args.quality)


# -- the three kinds of render ----------------------------------------------------------
def _bar(total: int, unit: str, quiet: bool, desc: str = "") -> tqdm:
    return tqdm(total=total, unit=unit, desc=desc, disable=quiet, dynamic_ncols=True, leave=True)


def render_still(backbone: models.Backbone, job: Job, out: str, quiet: bool) -> None:
    with Renderer(backbone, targets.build(backbone, job.target), job.settings) as r:
        h, w = job.start.shape[:2]
        log.info("objective: %s", r.objective.description)
        with _bar(total_steps(h, w, job.settings), "step", quiet, "dream") as bar:
            try:
                img = r.dream(job.start, on_step=bar.update)
            except Interrupted as stop:
                write_image(out, stop.image, job.quality)
                raise
    write_image(out, img, job.quality)
    if job.target.class_name is not None and not quiet:
        print(class_check(backbone, img, job.target.class_name), file=sys.stderr)


def class_check(backbone: models.Backbone, img: np.ndarray, class_name: str, crops: int = 16) -> str:
    """Does the network still call the dream by its class when shown random crops and
    rescales of it (not the exact pixels that were optimised)?"""
    idx = backbone.class_index(class_name)
    p = targets.crop_probabilities(backbone, img, n=crops, seed=1)
    top = int((p.argmax(1) == idx).sum())
    return (f"{backbone.classes[idx]}: mean probability {p[:, idx].mean():.2f} over {crops} random "
            f"crops and rescales, top-1 in {top}/{crops}")


def sheet_layers(backbone: models.Backbone, target: targets.Target) -> tuple[str, ...]:
    if len(target.layers) > 1:
        return tuple(n for n, _ in target.layers)
    return spread(backbone.layers)


def render_sheet(backbone: models.Backbone, job: Job, out: str, quiet: bool) -> None:
    layers = sheet_layers(backbone, job.target)
    for name in layers:
        backbone.check_layer(name)
    h, w = job.start.shape[:2]
    cells: list[tuple[str, np.ndarray]] = [("original", job.start)]
    try:
        with _bar(total_steps(h, w, job.settings) * len(layers), "step", quiet, "sheet") as bar:
            for name in layers:
                tgt = targets.Target(layers=((name, 1.0),), channels=job.target.channels, guide=job.target.guide)
                with Renderer(backbone, targets.build(backbone, tgt), job.settings) as r:
                    bar.set_postfix_str(name)
                    cells.append((name, r.dream(job.start, on_step=bar.update)))
    except KeyboardInterrupt:
        write_image(out, contact_sheet(cells), job.quality)
        raise
    write_image(out, contact_sheet(cells), job.quality)


def render_zoom(backbone: models.Backbone, job: Job, out: str, frames: int, factor: float,
                angle: float, fps: float, quiet: bool) -> None:
    """Dream, write, zoom, feed back. Ctrl+C (or any error) keeps the finished frames as
    a complete video; a full disk keeps the complete part (live/dream/video.py)."""
    h, w = job.start.shape[:2]
    frame = job.start
    with VideoWriter(out, fps, (w, h), what="OUT", frames=frames) as video, \
            Renderer(backbone, targets.build(backbone, job.target), job.settings) as r, \
            _bar(frames, "frame", quiet, "zoom") as bar:
        for i in range(frames):
            frame = r.dream(frame, job.settings if i == 0 else job.frame_settings)
            video.write(frame)
            bar.update()
            frame = feed_back(frame, factor, angle)


def clip_job(argv: Sequence[str] | None) -> bool:
    """Is IN a video clip (then tools/dream_clip.py renders it, with its own flags)?"""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a not in ("-h", "--help")]
    try:
        known, _ = build_parser().parse_known_args(args)
    except UsageError:
        return False
    return is_clip(known.input)


def main(argv: Sequence[str] | None = None) -> int:
    if clip_job(argv):
        from .dream_clip import main as clip_main
        return clip_main(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"dream: error: {exc}", file=sys.stderr)
        return 2
    return outcome(lambda: render(args), args)


def render(args: argparse.Namespace) -> str:
    job = job_from(args)
    backbone = load_model(args.model, args.device)
    if args.zoom_frames is not None:
        render_zoom(backbone, job, args.output, args.zoom_frames, args.zoom, args.rotate, args.fps, args.quiet)
    elif args.sheet:
        render_sheet(backbone, job, args.output, args.quiet)
    else:
        render_still(backbone, job, args.output, args.quiet)
    return ""


if __name__ == "__main__":
    sys.exit(main())
