"""How a render ends, for every tool that renders (stills, zooms, clips, the beat report):
one line and the exit code, 0 done, 2 bad input, 1 a failed write or a crash, 130 Ctrl+C
(what was finished is kept); and the network loaded once per process."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from functools import lru_cache
from typing import Callable

import models
from live.cli import user_errors
from live.dream.files import WriteError

log = logging.getLogger("tools.dream")


@lru_cache(maxsize=2)
def load_model(name: str, device: str) -> models.Backbone:
    """Cached: a process that renders several times (tests, scripts) loads the net once."""
    return models.load(name, device)


def outcome(work: Callable[[], str], args: argparse.Namespace) -> int:
    """Run a render (also the clip renderer's) and turn how it ended into one line and the
    exit code: 0, 2 bad input, 1 a failed write or a crash, 130 Ctrl+C (what was finished
    is kept). `work` returns what to add to the closing line."""
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    try:
        done = work()
    except user_errors() as exc:
        print(f"dream: error: {exc}", file=sys.stderr)
        return 2
    except WriteError as exc:  # a sound request the disk could not carry: 1, not 2
        print(f"dream: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dream: interrupted; what was finished is in {args.output}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns crashes into exit 1
        if args.verbose:
            log.exception("unexpected failure")
        print(f"dream: unexpected failure: {exc!r} (run with --verbose for details)", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"wrote {args.output}{done} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0
