"""Export the whole dream step (picture in -> dreamed picture out) to ONNX, validated
against PyTorch on a photo and on noise.

    python -m tools.export --model efficientnet_lite0 --layer blocks.10 --size 320x240 --out step.onnx

The graph's inputs are `image` (1x3xHxW float RGB in 0..1) and `step_size` (a scalar);
its output `dreamed` is the updated picture. Jitter stays outside: roll the picture
before and back after. Exports are cached in models/exported/ (the engine's onnx
backend uses the same cache). A file that differs from PyTorch beyond the tolerance is
not written (exit code 1). Bad arguments: one line on stderr, exit code 2."""
from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import models
from live import onnx_backend as ob
from live.prior import GRAD_NORMS
from tools.cli import fail, run



class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage dump
        fail(f"{message} (see --help)")


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        fail(f"--size '{text}' must be WIDTHxHEIGHT, e.g. 320x240")
    w, h = int(m[1]), int(m[2])
    if not (32 <= w <= 4096 and 32 <= h <= 4096):
        fail(f"--size {w}x{h} is out of range (each side 32..4096)")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m tools.export", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=models.DEFAULT_MODEL, help=f"network (default {models.DEFAULT_MODEL})")
    p.add_argument("--layer", help="layer to dream on (default: the model's default layer)")
    p.add_argument("--size", default="320x240", metavar="WxH", help="working size (default 320x240)")
    p.add_argument("--objective", default="amplify", help="amplify | channel:N | class:NAME | LAYER:N, joined with +")
    p.add_argument("--grad-norm", default="mean", choices=GRAD_NORMS, help="gradient normalisation (default mean)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                   help="where to trace and validate (default cpu; the file runs anywhere)")
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="where to write the exported step")
    p.add_argument("--fresh", action="store_true", help="export again even if the cache has this step")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    return p


def write_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    size = parse_size(args.size)
    out = Path(args.out)
    if out.suffix.lower() != ".onnx":
        fail(f"--out '{out}' must end in .onnx")
    if out.is_dir():
        fail(f"--out '{out}' is a folder; give a file name ending in .onnx")
    backbone = models.load(args.model, args.device)
    layer = args.layer or backbone.default_layer
    step = ob.dream_step(backbone, layer, args.objective, args.grad_norm)
    try:
        cached = ob.cache_path(backbone, layer, args.objective, size, args.grad_norm)
        if args.fresh or not cached.is_file():
            print(f"exporting {backbone.name} {layer} ({args.objective}, {size[0]}x{size[1]}, "
                  f"grad_norm {args.grad_norm}) ...", flush=True)
            try:
                exported = ob.export_step(backbone, step, size, cached)
            except ob.ExportError as exc:
                print(f"export: refused: {exc}", file=sys.stderr)
                return 1
            report, note = exported.report, f"exported in {exported.seconds:.1f} s"
        else:
            report = ob.compare(ob.OrtStep(cached, backbone.device), step, size, backbone.device)
            note = "from the cache"
            try:
                ob.check(report)
            except ob.ExportError as exc:
                print(f"export: refused (cached file): {exc}", file=sys.stderr)
                return 1
    finally:
        step.tap.close()
    print(f"validated against PyTorch, one step of {ob.VALIDATION_STEP} in 0..1 picture units "
          f"(tolerance: {ob.TOLERANCE}):")
    for name, d in report.items():
        print(f"  {name:6s} max diff {d.max:.2e}   mean diff {d.mean:.2e}   "
              f"{100 * d.share:.3f}% of values > {ob.FAR:g}")
    write_copy(cached, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {note}; inputs image 1x3x{size[1]}x{size[0]}, "
          f"step_size; output dreamed)")
    return 0


if __name__ == "__main__":
    run(main)
