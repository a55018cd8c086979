"""What a soak run found: the samples as CSV, the memory trend after the warm-up, stalls
(sample intervals in which the dream made no step), and one PNG with memory, open file
descriptors and dream progress over time, the source's absences shaded. Standard library
plus matplotlib (qa/plotting.py, only to draw)."""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .plotting import pyplot


@dataclass(frozen=True)
class Sample:
    seconds: float
    rss_mb: float
    fds: int              # open file descriptors (/proc/self/fd)
    threads: int
    dream_steps: int
    faults: int
    frames: int           # captured frames published so far
    shown: int            # display frames drawn (0 headless)
    source_ok: bool       # the configured source is showing (not the clouds stand-in)
    pixels: int = 0       # the dream's working size (w*h): a larger one than ever before raises RSS once


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


def warm(samples: list[Sample], warmup: float | None = None) -> list[Sample]:
    """The samples after the warm-up (default: the first fifth of the run, at most 5 min),
    when caches and allocator pools have filled."""
    if not samples:
        return []
    cut = min(300.0, samples[-1].seconds / 5) if warmup is None else warmup
    return [s for s in samples if s.seconds >= cut]


def stalls(samples: list[Sample]) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch of sample intervals without a dream step."""
    found: list[tuple[float, float]] = []
    start = None
    for a, b in zip(samples, samples[1:]):
        if b.dream_steps == a.dream_steps:
            start = a.seconds if start is None else start
            continue
        if start is not None:
            found.append((start, a.seconds))
            start = None
    if start is not None:
        found.append((start, samples[-1].seconds))
    return found


def absences(samples: list[Sample]) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch in which the configured source was not showing."""
    spans: list[tuple[float, float]] = []
    start = None
    for s in samples:
        if not s.source_ok and start is None:
            start = s.seconds
        elif s.source_ok and start is not None:
            spans.append((start, s.seconds))
            start = None
    if start is not None:
        spans.append((start, samples[-1].seconds))
    return spans


def write_csv(samples: list[Sample], path: Path) -> None:
    names = [f.name for f in fields(Sample)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for s in samples:
            row = asdict(s)
            row["seconds"], row["rss_mb"] = f"{s.seconds:.1f}", f"{s.rss_mb:.2f}"
            row["source_ok"] = int(s.source_ok)
            w.writerow([row[n] for n in names])


def read_csv(path: Path) -> list[Sample]:
    with open(path, newline="") as f:
        return [Sample(float(r["seconds"]), float(r["rss_mb"]), int(r["fds"]), int(r["threads"]),
                       int(r["dream_steps"]), int(r["faults"]), int(r["frames"]), int(r["shown"]),
                       bool(int(r["source_ok"])), int(r.get("pixels") or 0)) for r in csv.DictReader(f)]


def plot(samples: list[Sample], after: list[Sample], slope: float, title: str, path: Path) -> None:
    plt = pyplot(str(path))
    if plt is None:
        return

    minutes = [s.seconds / 60 for s in samples]
    fig, (ax, fx, dx) = plt.subplots(3, 1, figsize=(9, 7.5), dpi=110, sharex=True,
                                     gridspec_kw={"height_ratios": [3, 1.4, 1.4]})
    for axis in (ax, fx, dx):
        for a, b in absences(samples):
            axis.axvspan(a / 60, b / 60, color="orange", alpha=0.18, lw=0)
        for a, b in stalls(samples):
            axis.axvspan(a / 60, b / 60, color="red", alpha=0.3, lw=0)
        axis.grid(alpha=0.3)
    ax.plot(minutes, [s.rss_mb for s in samples], ".-", lw=1, ms=3, label="resident memory")
    if len(after) >= 2:
        mt = sum(s.seconds for s in after) / len(after)
        r0 = sum(s.rss_mb for s in after) / len(after)
        xs = [after[0].seconds, after[-1].seconds]
        ax.plot([x / 60 for x in xs], [r0 + slope / 3600 * (x - mt) for x in xs], "r--",
                label=f"trend after warm-up: {slope:+.1f} MB/h")
        ax.axvline(after[0].seconds / 60, color="grey", lw=0.8, ls=":")
    lo, hi = min(s.rss_mb for s in samples), max(s.rss_mb for s in samples)
    ax.set_ylim(lo - max(20, 0.1 * lo), hi + max(20, 0.1 * hi))   # a flat line should look flat
    ax.set_ylabel("RSS (MB)")
    ax.set_title(title, fontsize=10)
    ax.plot([], [], color="orange", alpha=0.4, lw=6, label="source away (clouds shown)")
    ax.legend(loc="lower right", fontsize=8)
    fx.plot(minutes, [s.fds for s in samples], ".-", lw=1, ms=3, color="tab:green", label="open files")
    fx.plot(minutes, [s.threads for s in samples], ".-", lw=1, ms=3, color="tab:purple", label="threads")
    fx.set_ylim(0, max(max(s.fds for s in samples), max(s.threads for s in samples)) * 1.3 + 2)
    fx.legend(loc="lower right", fontsize=8)
    rates = [0.0] + [(b.dream_steps - a.dream_steps) / max(b.seconds - a.seconds, 1e-9)
                     for a, b in zip(samples, samples[1:])]
    dx.plot(minutes, rates, lw=1, color="tab:blue")
    dx.set_ylabel("dream steps/s")
    dx.set_ylim(bottom=0)
    if any(s.pixels for s in samples):
        px = dx.twinx()
        px.step(minutes, [s.pixels / 1000 for s in samples], where="post", lw=1, color="tab:grey", alpha=0.8)
        px.set_ylabel("working size (kpixels)", color="tab:grey", fontsize=8)
        px.set_ylim(0, max(s.pixels for s in samples) / 1000 * 1.3)
    dx.set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summary(samples: list[Sample], after: list[Sample], slope: float) -> list[str]:
    """The lines printed at the end of a soak (and quoted in docs/operations.md)."""
    rss, fds = [s.rss_mb for s in samples], [s.fds for s in samples]
    last = samples[-1]
    stuck = stalls(samples)
    longest = max((b - a for a, b in stuck), default=0.0)
    warm_fds = [s.fds for s in after] or fds
    return [
        f"soak: {last.seconds / 60:.1f} min, {len(samples)} samples, {last.dream_steps} dream steps, "
        f"{last.frames} captured frames, {last.shown} display frames, {last.faults} dream faults, "
        f"source away {len(absences(samples))} times",
        f"RSS start {rss[0]:.1f} MB, end {rss[-1]:.1f} MB, max {max(rss):.1f} MB; "
        f"slope after warm-up {slope:+.2f} MB/hour ({len(after)} samples)",
        f"open files start {fds[0]}, end {fds[-1]}, after warm-up {min(warm_fds)}..{max(warm_fds)}; "
        f"threads at most {max(s.threads for s in samples)}",
        f"stalls (sample intervals without a dream step): {len(stuck)}"
        + (f", longest {longest:.0f} s" if stuck else ""),
    ]
