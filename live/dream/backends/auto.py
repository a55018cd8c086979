"""`backend = "auto"`: which backend runs the step fastest is measured once per machine,
network, layer, objective, working size and normalisation, on real dream steps (every
trial step is a frame of the dream, so deciding costs nothing), and kept on disk in the
user's cache folder, so every later start simply uses the answer.

`precision = "auto"` needs no measuring: fp16 autocast on CUDA, fp32 on CPU (bf16 on
this CPU failed the validation tolerance, cosine 0.88 to the fp32 update, and was no
faster: see docs/measurements.md, Speed)."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from models import Backbone
from ..files import atomic
from .cache import cache_dir, code_fingerprint

log = logging.getLogger(__name__)

TRIAL_ROUNDS = 3         # rounds of the trial; each candidate runs TRIAL_STEPS steps per round
TRIAL_STEPS = 4          # the first step of each candidate is a warm-up and not counted
QUIET_CORES = 0.5        # a trial while other programs used more CPU than this is not written down
TIE = 0.1                # a candidate must beat the ones listed before it by this share to be chosen
ISA = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def precision_for(device: torch.device) -> str:
    return "fp16" if device.type == "cuda" else "fp32"


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def candidates(device: torch.device) -> tuple[str, ...]:
    """What auto weighs against the eager step (which always stands by). OpenVINO first:
    the fastest here; ONNX Runtime wins when other programs load the CPU heavily."""
    if device.type == "cuda":
        return ("onnx",)
    return tuple(n for n, pkg in (("openvino", "openvino"), ("onnx", "onnxruntime")) if installed(pkg))


def _version(package: str) -> str:
    try:
        from importlib.metadata import version
        return version(package)
    except Exception:
        return "-"


@lru_cache(maxsize=1)
def machine() -> str:
    """CPU model, the instruction sets that change the answer, usable cores, libraries."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    libs = [f"{p}{_version(p)}" for p in ("torch", "onnxruntime", "onnxruntime-gpu", "openvino")]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-"
    return "|".join([model, ",".join(sorted(flags & set(ISA))), str(cores), gpu, *libs])


def decision_key(backbone: Backbone, layer: str, objective: str, size: tuple[int, int], grad_norm: str,
                 precision: str) -> str:
    parts = (machine(), backbone.name, backbone.fingerprint(), code_fingerprint(), layer, objective,
             f"{size[0]}x{size[1]}", grad_norm, precision, backbone.device.type)
    return hashlib.blake2b("|".join(parts).encode(), digest_size=10).hexdigest()


class Decisions:
    """{key: {"choice", "ms", "when", "what"}} in one small JSON file in the cache folder."""

    _lock = threading.Lock()

    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir("decisions") / "backends.json"

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, key: str) -> str | None:
        entry = self._load().get(key)
        return entry.get("choice") if isinstance(entry, dict) else None

    def put(self, key: str, choice: str, ms: dict[str, float], what: str) -> None:
        with self._lock:
            data = self._load()
            data[key] = {"choice": choice, "ms": {k: round(v, 2) for k, v in ms.items()},
                         "when": time.strftime("%Y-%m-%d %H:%M"), "what": what}
            with atomic(self.path) as tmp:
                tmp.write_text(json.dumps(data, indent=1))


class Meter:
    """What a trial reads: a clock, and the CPU time other programs have used. Under load
    the runtimes rank differently (ONNX Runtime suffers less than OpenVINO from competing
    threads), so a trial taken while the machine was busy holds for that run only."""

    def now(self) -> float:
        return time.perf_counter()

    def others(self) -> float:
        """CPU seconds used by all other processes so far (Linux; 0 elsewhere)."""
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return 0.0
        ticks = [int(v) for v in fields[:8]]
        busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
        return busy / os.sysconf("SC_CLK_TCK") - time.process_time()


class Trial:
    """Alternates the candidates, TRIAL_STEPS steps each per round, and names the one
    with the smallest median (ties to the first listed) once TRIAL_ROUNDS rounds are done."""

    def __init__(self, names: tuple[str, ...], meter: Meter):
        self.names = names
        self.meter = meter
        self.total = TRIAL_ROUNDS * TRIAL_STEPS * len(names)
        self.steps = TRIAL_STEPS
        self.calls = 0
        self.ms: dict[str, list[float]] = {n: [] for n in names}
        self._seen: set[str] = set()
        self._start: tuple[float, float] | None = None
        self.others_cores = 0.0   # CPU cores other programs used on average during the trial

    def begin(self) -> None:
        self._start = (self.meter.now(), self.meter.others())

    def finish(self) -> None:
        if self._start is not None:
            wall = self.meter.now() - self._start[0]
            self.others_cores = (self.meter.others() - self._start[1]) / wall if wall > 0 else 0.0

    @property
    def quiet(self) -> bool:
        return self.others_cores <= QUIET_CORES

    def next(self) -> str:
        return self.names[(self.calls // self.steps) % len(self.names)]

    def record(self, name: str, seconds: float) -> str | None:
        """Count one timed step; the winner when the trial is over, else None."""
        self.calls += 1
        if name in self._seen:
            self.ms[name].append(seconds * 1000)
        self._seen.add(name)  # a candidate's first step warms it up
        if self.calls < self.total:
            return None
        return self.winner()

    def winner(self) -> str:
        """The first candidate (in the order listed) within TIE of the fastest. A tie goes
        to the first: OpenVINO's and ONNX Runtime's steps took 37.4 and 37.3 ms in one
        trial on the 2-core AVX2 stand-in, and the installation then dreamed 10.8 steps/s
        with ONNX Runtime, 12.4-13.1 with OpenVINO (its step leaves more to the rest)."""
        ms = self.medians()
        fastest = min(ms.values(), default=float("inf"))
        return next((n for n in self.names if ms.get(n, float("inf")) <= fastest * (1.0 + TIE)), self.names[0])

    def medians(self) -> dict[str, float]:
        return {n: float(np.median(v)) for n, v in self.ms.items() if v}
