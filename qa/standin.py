"""python -m qa.standin: footage that is not here, stood in for by a clip that is. The clip
cut to the screen's aspect (the middle kept), resized and each frame written `--repeat`
times: issue 22's 1280x720 50 fps hall footage from pedestrians.mp4 (640x480, 25 fps).

    python -m qa.standin ../shared/media/pedestrians.mp4 out/ped720.mp4 [--size 1280x720] [--repeat 2]

With --repeat 2 every other input frame is an exact copy, so flicker measured against the
input's own reads high; --repeat 1 keeps the clip's own rate and motion."""
from __future__ import annotations

import argparse
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from live.cli import Parser, UsageError, parse_size, run
from live.dream.clip import ClipReader
from live.dream.images import resize_image
from live.dream.video import VideoWriter


def build_parser() -> Parser:
    p = Parser(prog="python -m qa.standin", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("clip", help="the clip to make it from")
    p.add_argument("out", metavar="OUT.mp4", help="the stand-in to write")
    p.add_argument("--size", default="1280x720", help="its frame size WxH (%(default)s)")
    p.add_argument("--repeat", type=int, default=2, help="times each frame is written, 1..8 (%(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def crop_to_aspect(img: np.ndarray, aspect: float) -> np.ndarray:
    """The middle of the picture with width / height = aspect."""
    h, w = img.shape[:2]
    if w / h > aspect:
        cw = round(h * aspect)
        return img[:, (w - cw) // 2:(w - cw) // 2 + cw]
    ch = round(w / aspect)
    return img[(h - ch) // 2:(h - ch) // 2 + ch]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    size = parse_size(args.size, "--size")
    if not 1 <= args.repeat <= 8:
        raise UsageError(f"--repeat {args.repeat} is out of range (1..8)")
    reader = ClipReader(args.clip)
    info = reader.info
    total = info.frames * args.repeat or None
    with reader, VideoWriter(args.out, info.fps * args.repeat, size, what="OUT", frames=total) as video, \
            tqdm(total=total, unit="frame", disable=args.quiet, desc="stand-in") as bar:
        for frame in reader:
            cropped = crop_to_aspect(frame, size[0] / size[1])
            picture = resize_image(cropped, size, None if cropped.shape[1] > size[0] else cv2.INTER_CUBIC)
            for _ in range(args.repeat):
                video.write(picture)
            bar.update(args.repeat)
    print(f"wrote {args.out}: {video.frames} frames, {size[0]}x{size[1]} at {float(info.fps * args.repeat):g} fps")
    return 0


if __name__ == "__main__":
    run(main)
