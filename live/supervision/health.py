"""Health of a running installation, for the gallery's office: the figures now, a bounded
history of them (one sample every 10 s over the last 24 h), one summary line in the log
every few minutes, and the same figures in Prometheus' text format for galleries that run
one. The web remote serves them (`GET /api/health`, `GET /metrics`, both with the token).

Time comes from an injected clock, so a day can be simulated in a test."""
from __future__ import annotations

import logging
import os
import resource
import threading
import time
from collections import deque
from typing import Any, Callable

log = logging.getLogger(__name__)

PERIOD = 10.0                 # seconds between history samples
KEEP = 24 * 3600.0            # seconds of history kept
LOG_PERIOD = 300.0            # seconds between summary lines in the log
FIELDS = ("uptime_s", "display_fps", "dream_steps_per_second", "working_size", "backend", "rss_mb",
          "restarts", "camera_reconnects", "faults")   # what /api/health answers at least (issue 27)
Clock = Callable[[], float]


def rss_mb() -> float:
    """This process's resident memory now (Linux /proc), else its peak (getrusage)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20, 1)
    except (OSError, ValueError, IndexError):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Health:
    """`read()` gives the installation's figures now (all of FIELDS but uptime and memory);
    `tick()` samples them into the history when a period has passed (a thread of its own
    calls it once a second after `start()`); `report()` is what /api/health answers."""

    def __init__(self, read: Callable[[], dict[str, Any]], clock: Clock = time.monotonic,
                 period: float = PERIOD, keep: float = KEEP, log_period: float = LOG_PERIOD):
        self.read, self.clock, self.period, self.log_period = read, clock, period, log_period
        self.started = clock()
        self.history: deque[dict[str, Any]] = deque(maxlen=max(1, int(keep // period)))
        self._next_sample = self.started + period
        self._next_log = self.started + log_period
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> dict[str, Any]:
        figures = {"uptime_s": round(self.clock() - self.started, 1), "rss_mb": rss_mb(), **self.read()}
        return {k: figures.get(k) for k in FIELDS} | figures

    def tick(self) -> None:
        t = self.clock()
        if t < self._next_sample and t < self._next_log:
            return
        figures = self.now()
        with self._lock:
            if t >= self._next_sample:
                self.history.append(figures)
                self._next_sample = t + self.period
        if t >= self._next_log:
            self._next_log = t + self.log_period
            log.info("health: %s", summary(figures))

    def report(self) -> dict[str, Any]:
        with self._lock:
            history = list(self.history)
        return {**self.now(), "history_period_s": self.period, "history": history}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.tick()
            except Exception:   # a figure that cannot be read must not end the sampling
                log.debug("health sample failed", exc_info=True)


def summary(f: dict[str, Any]) -> str:
    """The figures as one log line."""
    size = f.get("working_size")
    fps = f.get("display_fps")
    up = f["uptime_s"]
    return (f"up {f'{up // 60:.0f} min' if up < 3600 else f'{up / 3600:.1f} h'}, display {'-' if fps is None else f'{fps:.1f}'} fps, "
            f"dream {f.get('dream_steps_per_second') or 0:.1f} steps/s at "
            f"{'x'.join(map(str, size)) if size else '-'} ({f.get('backend') or '-'}), "
            f"{f['rss_mb']:.0f} MB, restarts {f.get('restarts', 0)}, camera reconnects "
            f"{f.get('camera_reconnects', 0)}, faults {f.get('faults', 0)}")


def metrics(f: dict[str, Any]) -> bytes:
    """The figures in Prometheus' text format (prometheus_client), from a registry of their
    own (nothing global): gauges for the rates and sizes, counters for the events."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Figures:
        def collect(self):
            gauges = {"uptime_seconds": ("uptime_s", "seconds since the installation started"),
                      "display_fps": ("display_fps", "frames shown per second, recent"),
                      "dream_steps_per_second": ("dream_steps_per_second", "dream steps per second, recent"),
                      "resident_memory_megabytes": ("rss_mb", "resident memory of the process")}
            for name, (key, text) in gauges.items():
                if f.get(key) is not None:
                    yield GaugeMetricFamily(f"dreamcam_{name}", text, value=float(f[key]))
            size = f.get("working_size") or (0, 0)
            g = GaugeMetricFamily("dreamcam_working_size_pixels", "the dream's working size", labels=["axis"])
            g.add_metric(["width"], float(size[0]))
            g.add_metric(["height"], float(size[1]))
            yield g
            b = GaugeMetricFamily("dreamcam_backend_info", "the backend running the dream step", labels=["backend"])
            b.add_metric([str(f.get("backend") or "none")], 1.0)
            yield b
            for key, text in (("restarts", "thread restarts by the watchdog"),
                              ("camera_reconnects", "times the camera came back"),
                              ("faults", "dream steps that failed")):
                yield CounterMetricFamily(f"dreamcam_{key}", text, value=float(f.get(key) or 0))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Figures())
    return generate_latest(registry)
