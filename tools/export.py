"""Export the whole dream step (picture in -> dreamed picture out) to ONNX, validated
against PyTorch on a photo and on noise.

    python -m tools.export --model efficientnet_lite0 --layer blocks.10 --size 320x240 --out step.onnx

The graph's inputs are `image` (1x3xHxW float RGB in 0..1) and `strength` (a scalar);
its output `dreamed` is the updated picture. Jitter stays outside: roll the picture
before and back after. Exports are cached in ~/.cache/dreamcam/onnx ($XDG_CACHE_HOME;
the engine's onnx backend uses the same cache). A file that differs from PyTorch beyond the tolerance is
not written (exit code 1). Bad arguments: one line on stderr, exit code 2."""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path
from typing import Sequence

import torch

import models
from live.cli import Parser, UsageError, parse_size, run
from live.dream.backends import onnx as ob
from live.dream.backends import validate
from live.dream.backends.trace import ExportError, on_cpu
from live.dream.files import atomic, check_output
from live.dream.prior import GRAD_NORMS
from live.dream.step import DreamStep, make_step


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tools.export", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=models.DEFAULT_MODEL, help=f"network (default {models.DEFAULT_MODEL})")
    p.add_argument("--layer", help="layer to dream on (default: the model's default layer)")
    p.add_argument("--size", default="320x240", metavar="WxH", help="working size (default 320x240)")
    p.add_argument("--objective", default="amplify", help="amplify | channel:N | class:NAME | LAYER:N, joined with +")
    p.add_argument("--grad-norm", default="mean", choices=GRAD_NORMS, help="gradient normalisation (default mean)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                   help="where the network is loaded (default cpu); tracing and validating always "
                        "happen on the CPU, and the file runs anywhere")
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="where to write the exported step")
    p.add_argument("--fresh", action="store_true", help="export again even if the cache has this step")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    return p


def write_copy(src: Path, dst: Path) -> None:
    with atomic(dst) as tmp:
        shutil.copyfile(src, tmp)


def export_or_check(backbone: models.Backbone, step: DreamStep, layer: str, size: tuple[int, int],
                    args: argparse.Namespace) -> tuple[Path, dict[str, validate.Diff], str]:
    """The cached export of this step (made now if missing or --fresh), validated."""
    cached = ob.cache_path(backbone, layer, args.objective, size, args.grad_norm)
    if args.fresh or not cached.is_file():
        print(f"exporting {backbone.name} {layer} ({args.objective}, {size[0]}x{size[1]}, "
              f"grad_norm {args.grad_norm}) ...", flush=True)
        exported = ob.export_step(backbone, step, size, cached)
        return cached, exported.report, f"exported in {exported.seconds:.1f} s"
    cpu = torch.device("cpu")
    with on_cpu(step) as reference:  # checked on the CPU whatever --device, as the export is
        report = validate.compare(ob.OrtStep(cached, cpu), reference, size, cpu)
    validate.check(report, "the cached export")
    return cached, report, "from the cache"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    size = parse_size(args.size)
    out = Path(args.out)
    if out.suffix.lower() != ".onnx":
        raise UsageError(f"--out '{out}' must end in .onnx")
    check_output(out, "--out")
    backbone = models.load(args.model, args.device)
    layer = args.layer or backbone.default_layer
    step = make_step(backbone, layer, args.objective, args.grad_norm)
    try:
        cached, report, note = export_or_check(backbone, step, layer, size, args)
    except ExportError as exc:
        print(f"export: refused: {exc}", file=sys.stderr)
        return 1
    finally:
        step.close()
    print(f"validated against PyTorch, one step of {validate.VALIDATION_STEP} in 0..1 picture units "
          f"(tolerance: {validate.TOLERANCE}):")
    for name, d in report.items():
        print(f"  {name:6s} max diff {d.max:.2e}   mean diff {d.mean:.2e}   "
              f"{100 * d.share:.3f}% of values > {validate.FAR:g}")
    write_copy(cached, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {note}; inputs image 1x3x{size[1]}x{size[0]}, "
          f"strength; output dreamed)")
    return 0


if __name__ == "__main__":
    run(main)
