"""The longest gap between two dreams when the working size or the layer changes, with
the engine built as the live installation builds it (backend and precision from
config.toml, exports in the background, every size prepared ahead as adaptive quality
does). The picture must never freeze: a change should cost about one step.

    python -m qa.gaps [--sizes 320x240,256x192] [--layers blocks.10,blocks.8] [--seconds 12]

Phases, each --seconds long: dreaming at the first size (until auto has settled), the
second size, back to the first, the second layer, back to the first layer. Prints the
median interval before each change and the longest gap across it (from the last dream
before the change to the first after it, and the longest in the second after), writes
gaps.json and gaps.png (ms per dream over time, coloured by the backend that ran) into
--out-dir (out/gaps)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

import models
from live import config
from live.cli import Parser, UsageError, parse_size, run
from live.dream import DreamEngine
from live.dream.backends.validate import sample_photo
from .plotting import pyplot

log = logging.getLogger("qa.gaps")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m qa.gaps", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="320x240,256x192", help="start size, then the size changed to")
    p.add_argument("--layers", default="blocks.10,blocks.8", help="start layer, then the layer changed to")
    p.add_argument("--seconds", type=float, default=12.0, help="seconds per phase (default 12)")
    p.add_argument("--settle", type=float, default=120.0,
                   help="at most this long for the start size's fast step before the first change (default 120)")
    p.add_argument("--config", help="config file (default config.toml)")
    p.add_argument("--out-dir", default="out/gaps")
    return p


class Recorder:
    """Dream after dream, with the time each one ended and the backend that ran it."""

    def __init__(self, engine: DreamEngine, frame: np.ndarray):
        self.engine, self.frame = engine, frame
        self.events: list[dict] = []     # {"t", "ms", "backend", "phase"}
        self.t0 = time.perf_counter()

    def dream(self, phase: str) -> None:
        self.engine.dream(self.frame)
        self.events.append({"t": time.perf_counter() - self.t0, "ms": self.engine.last_ms,
                            "backend": self.engine.running, "phase": phase})

    def run(self, phase: str, seconds: float, until=None) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end and not (until and until()):
            self.dream(phase)


def gap_report(events: list[dict], phases: list[str]) -> list[dict]:
    """Per change: median interval over the second before it, the gap across it, and the
    longest interval within the second after it."""
    t = np.array([e["t"] for e in events])
    rows = []
    for phase in phases[1:]:
        first = next(i for i, e in enumerate(events) if e["phase"] == phase)
        last = first - 1
        before = np.diff(t[np.searchsorted(t, t[last] - 1.0):last + 1])
        window = t[last:max(int(np.searchsorted(t, t[last] + 1.0, side="right")), first + 1)]
        rows.append({"change": phase, "median_ms_before": round(float(np.median(before)) * 1000, 1) if len(before) else None,
                     "gap_ms": round(float(t[first] - t[first - 1]) * 1000, 1),
                     "longest_ms_second_after": round(float(np.diff(window).max()) * 1000, 1),
                     "backend_after": events[first]["backend"]})
    return rows


def plot(events: list[dict], path: Path, title: str) -> None:
    plt = pyplot(str(path))
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(11, 4.2))
    t = np.array([e["t"] for e in events])
    gaps = np.diff(t, prepend=t[0]) * 1000
    for i, name in enumerate(sorted({e["backend"] for e in events})):
        idx = [k for k, e in enumerate(events) if e["backend"] == name]
        ax.scatter(t[idx], gaps[idx], s=7, label=name, color=plt.get_cmap("tab10")(i))
    for k in range(1, len(events)):
        if events[k]["phase"] != events[k - 1]["phase"]:
            ax.axvline(t[k], color="grey", lw=0.8, ls="--")
            ax.text(t[k], ax.get_ylim()[1] if k > 1 else 0, " " + events[k]["phase"], fontsize=7, va="top", rotation=90)
    ax.set_yscale("log")
    ax.set_xlabel("seconds")
    ax.set_ylabel("ms since the previous dream (log)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, markerscale=2)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sizes = [parse_size(s, "--sizes") for s in args.sizes.split(",")]
    layers = [s.strip() for s in args.layers.split(",")]
    if len(sizes) != 2 or len(layers) != 2:
        raise UsageError("--sizes and --layers each take two values: the start one and the one changed to")
    cfg = config.load(args.config, [])
    backbone = models.load(cfg.dream.model, cfg.dream.device)
    for layer in layers:
        backbone.check_layer(layer)
    eng = DreamEngine(backbone, settings=cfg.dream.on(backbone.device.type), layer=layers[0], size=sizes[0], background=True, seed=0)
    rec = Recorder(eng, sample_photo((640, 480)))
    phases = [f"start {layers[0]} {args.sizes.split(',')[0]}", f"size {sizes[1][0]}x{sizes[1][1]}",
              f"size {sizes[0][0]}x{sizes[0][1]}", f"layer {layers[1]}", f"layer {layers[0]}"]
    try:
        eng.prepare(sizes)
        with tqdm(total=len(phases), unit="phase", file=sys.stderr) as bar:
            rec.run(phases[0], args.settle, until=lambda: eng.settled() and eng.ready(sizes[1]))
            rec.run(phases[0], 2.0)  # a steady second or two before the first change
            bar.update(1)
            for phase, change in zip(phases[1:], ({"size": sizes[1]}, {"size": sizes[0]},
                                                  {"layer": layers[1]}, {"layer": layers[0]})):
                eng.configure(**change)
                if "layer" in change:
                    eng.prepare(sizes)
                rec.run(phase, args.seconds)
                bar.update(1)
    finally:
        eng.close()
    rows = gap_report(rec.events, phases)
    load = [round(v, 2) for v in os.getloadavg()]
    for r in rows:
        print(f"{r['change']:>22}: before {r['median_ms_before']} ms/dream (median), gap across the change "
              f"{r['gap_ms']} ms, longest in the second after {r['longest_ms_second_after']} ms ({r['backend_after']})")
    print(f"longest gap across any change: {max(r['gap_ms'] for r in rows):.0f} ms; load average {load}")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gaps.json").write_text(json.dumps({"rows": rows, "load": load, "events": rec.events}, indent=1))
    plot(rec.events, out / "gaps.png", f"Dreams across size and layer changes ({cfg.dream.backend} backend, "
                                       f"background builds); load average {load}")
    print(f"wrote {out / 'gaps.json'}, {out / 'gaps.png'}")
    return 0


if __name__ == "__main__":
    run(main)
