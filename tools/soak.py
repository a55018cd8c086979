"""Soak test: run the headless pipeline (clouds -> dream -> blended recording) for N
minutes and watch this process's memory, to show that weeks unattended will not creep.

    python -m tools.soak --minutes 5 --size 160x120 --out out/soak

Samples the resident set size every few seconds (from /proc/self/statm, the standard
library only), writes soak.csv and soak.png (RSS over time with the fitted trend), and
prints the start, end and largest RSS and the slope in MB/hour after the warm-up (the
first minute, or the first fifth of a shorter run, when caches and allocators fill).
`--fault-every S` also injects a dream fault every S seconds, so the engine restart path
is soaked too. Exit codes: 0 ok, 2 bad arguments, 1 unexpected failure."""
from __future__ import annotations

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import csv
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from live import cli
from live.cli import Parser, parse_size, positive

log = logging.getLogger("tools.soak")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass(frozen=True)
class Sample:
    seconds: float
    rss_mb: float
    threads: int
    dream_steps: int
    faults: int


def rss_mb() -> float:
    """Resident set size of this process in MB (/proc/self/statm: pages)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_MB


def slope_mb_per_hour(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over time."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(s.seconds for s in samples) / n
    mr = sum(s.rss_mb for s in samples) / n
    var = sum((s.seconds - mt) ** 2 for s in samples)
    if var == 0:
        return 0.0
    return sum((s.seconds - mt) * (s.rss_mb - mr) for s in samples) / var * 3600.0


def warm(samples: list[Sample], total_seconds: float) -> list[Sample]:
    """The samples after the warm-up."""
    cut = min(60.0, total_seconds / 5)
    return [s for s in samples if s.seconds >= cut]


class Sampler(threading.Thread):
    def __init__(self, app, interval: float):
        super().__init__(name="soak-sampler", daemon=True)
        self.app, self.interval = app, interval
        self.samples: list[Sample] = []
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()

    def take(self) -> None:
        d = self.app.dreamer
        self.samples.append(Sample(time.monotonic() - self.t0, rss_mb(), threading.active_count(),
                                   d.steps, d.faults))

    def run(self) -> None:
        self.take()
        while not self.stop_event.wait(self.interval):
            self.take()


def inject_faults(app, every: float) -> None:
    """Make the dream step raise every `every` seconds (through restarts too)."""
    due = [time.monotonic() + every]

    def wrap(eng):
        real = eng.dream

        def dream(*args, **kwargs):
            if time.monotonic() >= due[0]:
                due[0] = time.monotonic() + every
                raise RuntimeError("soak: injected dream fault")
            return real(*args, **kwargs)

        eng.dream = dream
        return eng

    factory = app.dreamer.make_engine
    app.dreamer.make_engine = lambda size, settings: wrap(factory(size, settings))
    wrap(app.dreamer.engine)


def write_csv(samples: list[Sample], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seconds", "rss_mb", "threads", "dream_steps", "faults"])
        for s in samples:
            w.writerow([f"{s.seconds:.1f}", f"{s.rss_mb:.2f}", s.threads, s.dream_steps, s.faults])


def plot(samples: list[Sample], after: list[Sample], slope: float, title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.seconds / 60 for s in samples]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax.plot(minutes, [s.rss_mb for s in samples], ".-", lw=1, ms=3, label="RSS")
    if len(after) >= 2:
        t0, r0 = after[0].seconds, sum(s.rss_mb for s in after) / len(after)
        mt = sum(s.seconds for s in after) / len(after)
        xs = [after[0].seconds, after[-1].seconds]
        ax.plot([x / 60 for x in xs], [r0 + slope / 3600 * (x - mt) for x in xs], "r--",
                label=f"trend after warm-up: {slope:+.1f} MB/h")
        ax.axvline(t0 / 60, color="grey", lw=0.8, ls=":")
    lo = min(s.rss_mb for s in samples)
    hi = max(s.rss_mb for s in samples)
    ax.set_ylim(lo - max(20, 0.1 * lo), hi + max(20, 0.1 * hi))   # a flat line should look flat
    ax.set_xlabel("minutes")
    ax.set_ylabel("resident memory (MB)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    p = Parser(prog="python -m tools.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=positive, default=5.0, help="how long to run (default 5)")
    p.add_argument("--size", type=lambda t: parse_size(t), default=(160, 120), help="dream working size and video size (160x120)")
    p.add_argument("--interval", type=positive, default=5.0, help="seconds between memory samples (default 5)")
    p.add_argument("--source", default="clouds", help="source (default clouds)")
    p.add_argument("--fault-every", type=positive, metavar="S", help="inject a dream fault every S seconds")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="config override")
    p.add_argument("--out", default="out/soak", help="folder for soak.csv, soak.png, soak.mp4, soak.log")
    args = p.parse_args()

    from live import config
    from live.app import App
    from live.headless import run_headless
    from live.supervision import logs

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        cli.fail(f"--out '{out}': cannot create the folder ({exc.strerror or exc})")
    w, h = args.size
    overrides = [f"dream.size=[{w}, {h}]", f"render.width={w}", f"render.height={h}", *args.set]
    cfg = config.load(None, overrides)
    logs.setup("INFO", out / "soak.log", max_bytes=int(cfg.log.max_mb * 1e6), backups=cfg.log.backups)
    app = App(cfg, args.source)
    if args.fault_every:
        inject_faults(app, args.fault_every)
    sampler = Sampler(app, args.interval)
    seconds = args.minutes * 60
    log.info("soak: %.1f min, %dx%d, source %s, sampling every %gs%s", args.minutes, w, h, args.source,
             args.interval, f", a dream fault every {args.fault_every:g}s" if args.fault_every else "")
    sampler.start()
    try:
        code = run_headless(app, None, out / "soak.mp4", seconds=seconds)
    finally:  # (no sample after the run: shutting down is not the steady state)
        sampler.stop_event.set()
        sampler.join()
    samples = sampler.samples
    after = warm(samples, samples[-1].seconds)
    slope = slope_mb_per_hour(after)
    rss = [s.rss_mb for s in samples]
    write_csv(samples, out / "soak.csv")
    title = (f"Dreamcam soak: {args.source}, {w}x{h}, {samples[-1].seconds / 60:.1f} min, "
             f"{samples[-1].dream_steps} dream steps, {samples[-1].faults} faults")
    plot(samples, after, slope, title, out / "soak.png")
    print(f"soak: {samples[-1].seconds / 60:.1f} min, {len(samples)} samples, {samples[-1].dream_steps} dream steps, "
          f"{samples[-1].faults} dream faults, {app.dreamer.restarts} engine restarts, "
          f"threads at most {max(s.threads for s in samples)}")
    print(f"RSS start {rss[0]:.1f} MB, end {rss[-1]:.1f} MB, max {max(rss):.1f} MB; "
          f"slope after warm-up {slope:+.2f} MB/hour ({len(after)} samples)")
    print(f"wrote {out / 'soak.csv'}, {out / 'soak.png'}, {out / 'soak.mp4'}, {out / 'soak.log'}")
    return code


if __name__ == "__main__":
    cli.run(main)
