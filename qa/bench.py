"""Dream-step throughput: ms/step and steps/s of DreamEngine.dream() (one step per call,
the live default) for each backend x precision x working size x layer, beside a naive
baseline measured in the same run: the usual notebook loop (full-network forward, a hook
registered every step, fp32 eager, BatchNorm not fused).

    python -m qa.bench [--quick] [--json OUT] [--out-dir DIR]

Writes bench.md (table), bench.json and bench.png into --out-dir (docs/bench; out/bench
with --quick). Timings are medians of
interleaved rounds (every method runs once per round, so a burst of load elsewhere hits
them all alike); the load average before and after is recorded because a shared machine
makes the absolute numbers noisy. Ratios measured in one run are the robust figure."""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

import models
from live.cli import Parser, UsageError, parse_size, run
from live.dream import DreamEngine, DreamSettings
from live.dream.backends import threads
from live.dream.backends.onnx import cache_path, cpu_threads
from live.dream.backends.validate import sample_photo
from live.dream.prior import jitter_offsets, resolve_norm, roll
from live.dream.step import make_step
from qa.bench_report import DEFAULT, NAIVE, Row, describe_goal, markdown, plot, print_table, summarise, verdict

log = logging.getLogger("qa.bench")

SIZES = ((160, 120), (320, 240), (640, 480))
QUICK_SIZES = ((160, 120), (320, 240))
STRENGTH, JITTER = DreamSettings.strength, DreamSettings.jitter  # the installation's defaults
GRAD_NORM = DreamSettings.grad_norm


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m qa.bench", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="default layer at 160x120 and 320x240 only, fewer rounds (under two minutes)")
    p.add_argument("--json", metavar="OUT", help="where to write the JSON (default OUT-DIR/bench.json)")
    p.add_argument("--out-dir", help="folder for bench.md, bench.json, bench.png (default docs/bench, "
                                     "with --quick out/bench so a quick run never replaces the full table)")
    p.add_argument("--model", default=models.DEFAULT_MODEL)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precisions", help="comma-separated precisions to time (fp32, fp16, bf16; default all the "
                                        "device has); the naive loop and the default are always timed")
    p.add_argument("--sizes", help="comma-separated WxH list (default 160x120,320x240,640x480)")
    p.add_argument("--layers", help="comma-separated layers (default: shallow, default and deep of the model)")
    p.add_argument("--rounds", type=int, help="interleaved timing rounds (default 7, quick 4)")
    p.add_argument("--steps", type=int, default=3, help="timed calls per method per round (default 3)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    return tuple(parse_size(part, "--sizes") for part in text.split(","))


def pick_layers(backbone: models.Backbone, spec: str | None, quick: bool) -> list[tuple[str, str]]:
    """(layer, depth label): a shallow one (about 30% in), the default, the deepest block."""
    if spec:
        names = [s.strip() for s in spec.split(",") if s.strip()]
        for n in names:
            backbone.check_layer(n)
        return [(n, "default" if n == backbone.default_layer else "custom") for n in names]
    layers = backbone.layers
    chosen = [(backbone.default_layer, "default")]
    if not quick:
        shallow = layers[round(0.3 * (len(layers) - 1))]
        deep = layers[-2] if len(layers) > 2 else layers[-1]
        chosen = [(shallow, "shallow"), (backbone.default_layer, "default"), (deep, "deep")]
    return chosen


# -- facts ----------------------------------------------------------------------------
def machine_facts(device: torch.device) -> dict:
    import onnxruntime as ort
    cpu, isa, ghz = cpu_info()
    facts = {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": cpu_threads(),
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__,
        "platform": platform.platform(), "device": str(device),
        "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "ort_providers": ort.get_available_providers(),
        "bf16_cpu": bool(getattr(torch.backends.mkldnn, "is_available", lambda: False)()),
    }
    limited = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    facts |= {"isa": isa, "ghz": ghz, "onednn_max_cpu_isa": limited or None,
              "peak_gflops": peak_gflops(isa, ghz, cpu_threads()) if device.type == "cpu" else None}
    return facts


VECTOR_ISA = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
              "amx_bf16", "amx_tile")
FMA_FLOP_PER_CYCLE = 32   # fp32 per core: two 256-bit FMA pipes (AVX-512 counted alike: Zen 4 splits it in two)


def cpu_info() -> tuple[str, list[str], float]:
    """The CPU's model, its vector instruction sets (as /proc/cpuinfo names them) and its
    top clock in GHz as the kernel reports it (0 when unknown)."""
    model, flags, mhz = platform.processor() or "", set(), 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (p.strip() for p in line.partition(":"))
            if key == "model name":
                model = value
            elif key == "flags":
                flags |= set(value.split())
            elif key == "cpu MHz":
                mhz = max(mhz, float(value))
    except (OSError, ValueError):
        pass
    return model, [f for f in VECTOR_ISA if f in flags], mhz / 1000.0


def peak_gflops(isa: list[str], ghz: float, cores: int) -> float | None:
    """The fp32 arithmetic limit of these cores (FMA at full width on every core): what a
    step could reach at best. None where it cannot be told (no FMA, no clock, a GPU)."""
    if "fma" not in isa or ghz <= 0:
        return None
    return round(cores * ghz * FMA_FLOP_PER_CYCLE, 1)


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# -- what is timed ----------------------------------------------------------------------
def naive_step(backbone: models.Backbone, layer: str, rng: random.Random) -> Callable[[np.ndarray], np.ndarray]:
    """The notebook loop: picture -> tensor, hook, full forward, backward, normalise,
    update, clamp, hook removed, picture out. Unfused, NCHW, fp32, eager."""
    module = backbone.module(layer)

    def step(frame: np.ndarray) -> np.ndarray:
        threads.use("torch")     # eager: all of PyTorch's threads, whatever ran before it
        x = torch.from_numpy(frame).to(backbone.device).permute(2, 0, 1)[None].float() / 255
        dy, dx = jitter_offsets(JITTER, rng)
        x = roll(x, dy, dx).detach().requires_grad_(True)
        acts = {}
        handle = module.register_forward_hook(lambda _m, _i, out: acts.__setitem__("a", out))
        try:
            backbone.net(backbone.normalize(x))
        finally:
            handle.remove()
        acts["a"].pow(2).mean().backward()
        g = x.grad
        x = (x.detach() + STRENGTH * g / (g.abs().mean() + 1e-8)).clamp(0, 1)
        x = roll(x, -dy, -dx)
        return (x[0] * 255).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()

    return step


def count_flops(fn: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / 1e9


def methods_for(device: torch.device, precisions: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(method, precision): the naive loop, the installation's default (auto, auto), then
    every backend with each precision that exists on the device (the exported steps are
    fp32 graphs; OpenVINO's bf16 failed validation here, see docs/measurements.md). On CUDA: fp16 and
    bf16 autocast, eager and compiled (CUDA graphs), ONNX Runtime's CUDA provider (fp32 and
    the fp16 graph); no
    OpenVINO (it would run on the CPU). `precisions` keeps only those (and the first two)."""
    if device.type == "cuda":
        rows = [("torch", "fp32"), ("torch", "fp16"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "fp16"),
                ("compile", "fp32"), ("compile", "fp16"), ("compile", "bf16")]
    else:
        rows = [("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("openvino", "fp32"), ("compile", "fp32")]
    rows = [r for r in rows if precisions is None or r[1] in precisions]
    return [(NAIVE, "fp32"), (DEFAULT, "auto"), *rows]


def step_timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """ms of one call. On CUDA between CUDA events on the stream (the device's time from
    the call's first kernel to its last, not the host's launch overhead alone); on the
    CPU the wall clock."""
    if device.type == "cuda":
        def timed(fn: Callable[[], object]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        return timed

    def wall(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000
    return wall


def runs_on(eng: DreamEngine) -> str:
    """Where an exported step runs: ONNX Runtime's provider, OpenVINO's device."""
    step = eng.current_step()
    if hasattr(step, "providers"):
        return step.providers[0].replace("ExecutionProvider", " EP")
    return f"OpenVINO {step.device}" if hasattr(step, "device") and isinstance(step.device, str) else ""


def decide(eng: DreamEngine, call: Callable[[], object]) -> str:
    """Drive auto's trial (real dream steps) until it has picked; 'auto -> what it runs'."""
    fresh = not eng.settled()
    for _ in range(200):
        if eng.settled():
            break
        call()
    call()
    return f"auto -> {eng.running}" + (" (measured now)" if fresh else " (decision on disk)")


class Bench:
    def __init__(self, backbone: models.Backbone, naive_backbone: models.Backbone, rounds: int, steps: int):
        self.backbone = backbone
        self.naive_backbone = naive_backbone
        self.rounds = rounds
        self.steps = steps
        self.timed = step_timer(backbone.device)

    def callables(self, layer: str, size: tuple[int, int], methods: list[tuple[str, str]],
                  notes: dict[str, str]) -> tuple[dict[str, Callable], list[Callable]]:
        """One ready-to-time callable per method (built and warmed here), and closers."""
        frame = sample_photo(size)
        calls, closers = {}, []
        for method, precision in methods:
            key = f"{method}/{precision}"
            try:
                if method == NAIVE:
                    fn = naive_step(self.naive_backbone, layer, random.Random(0))
                    calls[key] = lambda fn=fn: fn(frame)
                else:
                    norm, _ = resolve_norm(GRAD_NORM, size[0])   # what the engine exports "auto" as
                    if method != "torch" and not cache_path(self.backbone, layer, "amplify", size, norm).is_file():
                        tqdm.write(f"exporting the step for {layer} at {size[0]}x{size[1]} (first use, cached)")
                    eng = DreamEngine(self.backbone, layer, size=size, backend=method, precision=precision,
                                      strength=STRENGTH, jitter=JITTER, seed=0)
                    closers.append(eng.close)
                    calls[key] = lambda eng=eng: eng.dream(frame)
                    t0 = time.perf_counter()
                    if not eng.wait_ready(timeout=900):
                        raise RuntimeError(f"{method} could not be built")
                    if method == "compile":
                        notes[key] = f"compiled in {time.perf_counter() - t0:.0f} s"
                    if method == DEFAULT:
                        notes[key] = decide(eng, calls[key])
                calls[key]()
                for _ in range(2):  # warm-up: first-call allocations, oneDNN caches
                    calls[key]()
                if method in ("onnx", "openvino"):
                    notes[key] = runs_on(eng)
            except Exception as exc:  # one broken method must not sink the whole table
                log.warning("%s at %s %dx%d failed: %s", key, layer, *size, exc)
                notes[key] = f"failed: {exc}"
                calls.pop(key, None)
        return calls, closers

    def time_all(self, calls: dict[str, Callable], bar: tqdm) -> dict[str, list[float]]:
        """Interleaved rounds: each method runs `steps` calls per round."""
        times: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(self.rounds):
            for key, fn in calls.items():
                for _ in range(self.steps):
                    times[key].append(self.timed(fn))
                bar.update(1)
        return times

    def flops(self, layer: str, size: tuple[int, int]) -> tuple[float, float]:
        """GFLOP per step: the engine's truncated step, and the naive full-network step."""
        w, h = size
        x = torch.rand(1, 3, h, w, device=self.backbone.device)
        step = make_step(self.backbone, layer, grad_norm=GRAD_NORM)
        try:
            engine_gflop = count_flops(lambda: step(x, STRENGTH))
        finally:
            step.close()
        naive = naive_step(self.naive_backbone, layer, random.Random(0))
        frame = np.zeros((h, w, 3), np.uint8)
        return engine_gflop, count_flops(lambda: naive(frame))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    sizes = parse_sizes(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else SIZES)
    rounds = args.rounds or (4 if args.quick else 7)
    if rounds < 1 or args.steps < 1:
        raise UsageError("--rounds and --steps must be at least 1")
    out_dir = Path(args.out_dir or ("out/bench" if args.quick else "docs/bench"))
    json_path = Path(args.json) if args.json else out_dir / "bench.json"

    backbone = models.load(args.model, args.device)
    naive_backbone = models.load(args.model, args.device, fuse=False)
    naive_backbone.net.to(memory_format=torch.contiguous_format)  # the notebook's default layout
    layers = pick_layers(backbone, args.layers, args.quick)
    facts = machine_facts(backbone.device)
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items() if v not in (None, "")))
    load_before = load_average()
    if load_before and load_before[0] > 0.5 * facts["usable_cpus"]:
        print(f"note: load average {load_before} — other work is running; absolute times will be noisy")

    precisions = [p.strip() for p in args.precisions.split(",")] if args.precisions else None
    if precisions and not set(precisions) <= {"fp32", "fp16", "bf16"}:
        raise UsageError(f"--precisions {args.precisions}: choose among fp32, fp16, bf16")
    methods = methods_for(backbone.device, precisions)
    bench = Bench(backbone, naive_backbone, rounds, args.steps)
    combos = [(layer, depth, size) for size in sizes for layer, depth in layers]
    rows: list[Row] = []
    t_start = time.perf_counter()
    with tqdm(total=len(combos) * len(methods) * rounds, unit="round", desc="bench", file=sys.stderr) as bar:
        for layer, depth, size in combos:
            w, h = size
            bar.set_postfix_str(f"{layer} {w}x{h}")
            notes: dict[str, str] = {}
            engine_gflop, naive_gflop = bench.flops(layer, size)
            calls, closers = bench.callables(layer, size, methods, notes)
            try:
                times = bench.time_all(calls, bar)
            finally:
                for close in closers:
                    close()
            bar.update((len(methods) - len(calls)) * rounds)
            for method, precision in methods:
                key = f"{method}/{precision}"
                rows.append(Row(layer, depth, f"{w}x{h}", method, precision,
                                gflop=naive_gflop if method == NAIVE else engine_gflop,
                                note=notes.get(key, ""), times=times.get(key, [])))
    summarise(rows, facts["peak_gflops"])
    goal = verdict(rows)
    meta = {"quick": args.quick, "rounds": rounds, "steps": args.steps, "seconds": round(time.perf_counter() - t_start, 1),
            "date": time.strftime("%Y-%m-%d %H:%M"), "load_before": load_before, "load_after": load_average(),
            "model": backbone.name, "strength": STRENGTH, "jitter": JITTER,
            "timer": "CUDA events" if backbone.device.type == "cuda" else "wall clock"}

    print_table(rows)
    if goal:
        print(describe_goal(goal))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.md").write_text(markdown(rows, facts, meta, goal))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"machine": facts, "meta": meta, "target": goal,
                                     "rows": [{k: v for k, v in asdict(r).items() if k != "times"} | {
                                         "times_ms": [round(t, 3) for t in r.times]} for r in rows]},
                                    indent=1, default=str))
    plot(rows, out_dir / "bench.png",
         f"Dream step, {backbone.name}, {facts['device']} ({facts['usable_cpus']} CPUs); "
         f"load {meta['load_before']} -> {meta['load_after']}")
    print(f"wrote {out_dir / 'bench.md'}, {json_path}, {out_dir / 'bench.png'} ({meta['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    run(main)
