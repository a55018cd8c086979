"""Soak test: run the installation for N minutes and watch this process's memory, open
files and progress, to show that weeks unattended will not creep or stall.

    python -m qa.soak --minutes 5 --size 160x120 --out out/soak
    Xvfb :99 -screen 0 1280x720x24 &
    DISPLAY=:99 python -m qa.soak --window --source clip.mp4 --flap-every 120 --minutes 30

Headless by default (clouds -> dream -> blended recording); `--window` runs the real
window loop instead (needs a display: Xvfb will do). Every `--interval` seconds it samples
the resident set size and open file descriptors (/proc/self), threads, dream steps,
captured and displayed frames and whether the configured source is showing, into
soak.csv; soak.png plots them. It prints start, end and largest RSS, the slope in MB/hour
after the warm-up, the descriptor counts and any stall (a sample interval without a dream
step). `--flap-every S` moves the source file away (`--away` seconds) and back every S
seconds, as an unplugged camera or a pulled USB stick would; `--fault-every S` injects a
dream fault every S seconds, so the engine restart path is soaked too. Exit codes: 0 ok,
2 bad arguments, 1 unexpected failure."""
from __future__ import annotations

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import logging
import threading
import time
from pathlib import Path

from live import cli
from live.cli import Parser, parse_size, positive
from live.supervision.health import rss_mb
from .soak_report import Sample, plot, slope_mb_per_hour, summary, warm, write_csv

log = logging.getLogger("qa.soak")


def open_fds() -> int:
    """Open file descriptors of this process (less the one listing them)."""
    return len(os.listdir("/proc/self/fd")) - 1


class Sampler(threading.Thread):
    def __init__(self, app, interval: float):
        super().__init__(name="soak-sampler", daemon=True)
        self.app, self.interval = app, interval
        self.samples: list[Sample] = []
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()

    def take(self) -> None:
        app = self.app
        d, cap = app.dreamer, app.capture
        w, h = d.adaptive.size
        self.samples.append(Sample(time.monotonic() - self.t0, rss_mb(), open_fds(), threading.active_count(),
                                   d.steps, d.faults, cap.slot.latest()[0], app.stats.frames,
                                   not cap.status.startswith("clouds ("), w * h))

    def run(self) -> None:
        self.take()
        while not self.stop_event.wait(self.interval):
            self.take()


class Flapper(threading.Thread):
    """Moves `path` away for `away` seconds every `every` seconds, then back."""

    def __init__(self, path: Path, every: float, away: float):
        super().__init__(name="soak-flapper", daemon=True)
        self.path, self.every, self.away = path, every, min(away, every * 0.9)
        self.hidden = path.with_name(path.name + ".away")
        self.stop_event = threading.Event()
        self.flaps = 0

    def run(self) -> None:
        while not self.stop_event.wait(self.every - self.away):
            os.replace(self.path, self.hidden)
            log.info("soak: %s moved away", self.path.name)
            self.flaps += 1
            self.stop_event.wait(self.away)
            os.replace(self.hidden, self.path)
            log.info("soak: %s is back", self.path.name)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()
        if self.hidden.exists():
            os.replace(self.hidden, self.path)


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


def parser() -> Parser:
    p = Parser(prog="python -m qa.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=positive, default=5.0, help="how long to run (default 5)")
    p.add_argument("--size", type=lambda t: parse_size(t), default=(160, 120),
                   help="dream working size (and headless video size) (160x120)")
    p.add_argument("--interval", type=positive, default=5.0, help="seconds between samples (default 5)")
    p.add_argument("--source", default="clouds", help="source (default clouds)")
    p.add_argument("--window", action="store_true", help="the window loop instead of a headless recording")
    p.add_argument("--flap-every", type=positive, metavar="S", help="move the source file away and back every S s")
    p.add_argument("--away", type=positive, default=60.0, help="seconds the file stays away per flap (default 60)")
    p.add_argument("--warmup", type=positive, help="seconds left out of the trend (default: a fifth, at most 300)")
    p.add_argument("--fault-every", type=positive, metavar="S", help="inject a dream fault every S seconds")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="config override")
    p.add_argument("--out", default="out/soak", help="folder for soak.csv, soak.png, soak.log (and soak.mp4)")
    return p


def check_args(args) -> Path | None:
    """The file to flap, if any; refuses what cannot work before the long run."""
    if args.flap_every is None:
        return None
    path = Path(args.source)
    if not path.is_file():
        raise cli.UsageError(f"--flap-every moves the source file away and back: --source '{args.source}' "
                             "must be a video or picture file")
    return path


def main() -> int:
    args = parser().parse_args()
    flap_path = check_args(args)
    if args.window:
        from live.window import display_problem
        problem = display_problem()
        if problem:
            raise cli.UsageError(f"--window: {problem}; start Xvfb and set DISPLAY, or run headless")
    from live import config
    from live.app import App
    from live.headless import run_headless
    from live.supervision import logs
    from live.windowed import run_window

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        cli.fail(f"--out '{out}': cannot create the folder ({exc.strerror or exc})")
    w, h = args.size
    overrides = [f"dream.size=[{w}, {h}]"] + ([] if args.window else [f"render.width={w}", f"render.height={h}"])
    cfg = config.load(None, overrides + args.set)
    logs.setup("INFO", out / "soak.log", max_bytes=int(cfg.log.max_mb * 1e6), backups=cfg.log.backups)
    app = App(cfg, args.source)
    if args.fault_every:
        inject_faults(app, args.fault_every)
    sampler = Sampler(app, args.interval)
    flapper = Flapper(flap_path, args.flap_every, args.away) if flap_path else None
    seconds = args.minutes * 60
    log.info("soak: %.1f min, %s, dream %dx%d, source %s, sampling every %gs%s%s", args.minutes,
             "window" if args.window else "headless", w, h, args.source, args.interval,
             f", the file away {flapper.away:g}s every {args.flap_every:g}s" if flapper else "",
             f", a dream fault every {args.fault_every:g}s" if args.fault_every else "")
    sampler.start()
    if flapper:
        flapper.start()
    try:
        code = run_window(app, seconds) if args.window else run_headless(app, None, out / "soak.mp4",
                                                                          seconds=seconds)
    finally:  # (no sample after the run: shutting down is not the steady state)
        sampler.stop_event.set()
        sampler.join()
        if flapper:
            flapper.stop()
    samples = sampler.samples
    after = warm(samples, args.warmup)
    slope = slope_mb_per_hour(after)
    write_csv(samples, out / "soak.csv")
    title = (f"Dreamcam soak: {'window' if args.window else 'headless'}, {Path(args.source).name}, dream {w}x{h}, "
             f"{samples[-1].seconds / 60:.1f} min, {samples[-1].dream_steps} dream steps"
             + (f", source away {flapper.flaps}x" if flapper else "")
             + (f", {samples[-1].faults} faults" if args.fault_every else ""))
    plot(samples, after, slope, title, out / "soak.png")
    for line in summary(samples, after, slope):
        print(line)
    print(f"{app.dreamer.restarts} engine restarts; source events: {len(app.capture.events)}")
    print(f"wrote {out / 'soak.csv'}, {out / 'soak.png'}, {out / 'soak.log'}")
    return code


if __name__ == "__main__":
    cli.run(main)
