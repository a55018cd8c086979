"""Dream-step throughput: ms/step and steps/s of DreamEngine.dream() (one step per call,
the live default) for each backend x precision x working size x layer, beside a naive
baseline measured in the same run: the usual notebook loop (full-network forward, a hook
registered every step, fp32 eager, BatchNorm not fused).

    python -m tools.bench [--quick] [--json OUT] [--out-dir DIR]

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

import models
from live.cli import Parser, UsageError, parse_size, run
from live.dream import DreamEngine, DreamSettings
from live.dream.backends.onnx import cache_path, cpu_threads
from live.dream.backends.validate import sample_photo
from live.dream.prior import jitter_offsets, roll
from live.dream.step import make_step

log = logging.getLogger("tools.bench")

SIZES = ((160, 120), (320, 240), (640, 480))
QUICK_SIZES = ((160, 120), (320, 240))
TARGET = {"size": (320, 240), "layer": "blocks.10", "speedup": 2.5, "ms": 40.0}
STRENGTH, JITTER = DreamSettings.strength, DreamSettings.jitter  # the installation's defaults
GRAD_NORM = DreamSettings.grad_norm
NAIVE = "naive"


@dataclass
class Row:
    layer: str
    depth: str                 # shallow | default | deep
    size: str
    method: str                # naive | torch | onnx | compile (engine backends)
    precision: str
    ms: float = float("nan")   # median ms per dream() call (one step)
    ms_p25: float = float("nan")
    ms_p75: float = float("nan")
    steps_per_s: float = float("nan")
    speedup: float = float("nan")  # naive ms / this ms, same size and layer, same run
    gflop: float = float("nan")    # per step, torch's flop counter
    gflops: float = float("nan")   # achieved GFLOP/s
    note: str = ""
    times: list[float] = field(default_factory=list, repr=False)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tools.bench", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="default layer at 160x120 and 320x240 only, fewer rounds (under two minutes)")
    p.add_argument("--json", metavar="OUT", help="where to write the JSON (default OUT-DIR/bench.json)")
    p.add_argument("--out-dir", help="folder for bench.md, bench.json, bench.png (default docs/bench, "
                                     "with --quick out/bench so a quick run never replaces the full table)")
    p.add_argument("--model", default=models.DEFAULT_MODEL)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
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
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    facts = {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": cpu_threads(),
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__,
        "platform": platform.platform(), "device": str(device),
        "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "ort_providers": ort.get_available_providers(),
        "bf16_cpu": bool(getattr(torch.backends.mkldnn, "is_available", lambda: False)()),
    }
    return facts


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


def methods_for(device: torch.device) -> list[tuple[str, str]]:
    """(method, precision): every backend with each precision that exists on the device
    (the ONNX and compiled steps are fp32 graphs)."""
    half = "fp16" if device.type == "cuda" else "bf16"
    return [(NAIVE, "fp32"), ("torch", "fp32"), ("torch", half), ("onnx", "fp32"), ("compile", "fp32")]


class Bench:
    def __init__(self, backbone: models.Backbone, naive_backbone: models.Backbone, rounds: int, steps: int):
        self.backbone = backbone
        self.naive_backbone = naive_backbone
        self.rounds = rounds
        self.steps = steps

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
                    if method == "onnx" and not cache_path(self.backbone, layer, "amplify", size, GRAD_NORM).is_file():
                        tqdm.write(f"exporting the ONNX step for {layer} at {size[0]}x{size[1]} (first use, cached)")
                    eng = DreamEngine(self.backbone, layer, size=size, backend=method, precision=precision,
                                      strength=STRENGTH, jitter=JITTER, seed=0)
                    closers.append(eng.close)
                    calls[key] = lambda eng=eng: eng.dream(frame)
                calls[key]()  # builds the step
                if method == "compile":
                    t0 = time.perf_counter()
                    if not eng._step.wait(timeout=900):
                        raise RuntimeError(f"torch.compile failed: {eng._step.error}")
                    notes[key] = f"compiled in {time.perf_counter() - t0:.0f} s"
                for _ in range(2):  # warm-up: first-call allocations, oneDNN caches
                    calls[key]()
                if method == "onnx":
                    notes[key] = getattr(eng._step, "providers", ["?"])[0].replace("ExecutionProvider", " EP")
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
                    t0 = time.perf_counter()
                    fn()
                    times[key].append((time.perf_counter() - t0) * 1000)
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


def summarise(rows: list[Row]) -> None:
    timed = [r for r in rows if r.times]
    for r in timed:
        r.ms = float(np.median(r.times))
        r.ms_p25, r.ms_p75 = (float(v) for v in np.percentile(r.times, [25, 75]))
        r.steps_per_s = 1000.0 / r.ms
        r.gflops = r.gflop / (r.ms / 1000.0)
    naive = {(r.layer, r.size): r.ms for r in timed if r.method == NAIVE}
    for r in timed:
        if (r.layer, r.size) in naive:
            r.speedup = naive[(r.layer, r.size)] / r.ms


def verdict(rows: list[Row]) -> dict | None:
    """The issue's target: best dream() at 320x240, default layer, vs naive in this run."""
    size = f"{TARGET['size'][0]}x{TARGET['size'][1]}"
    combo = [r for r in rows if r.size == size and r.layer == TARGET["layer"] and r.times]
    naive = [r for r in combo if r.method == NAIVE]
    engine = [r for r in combo if r.method != NAIVE]
    if not naive or not engine:
        return None
    best = min(engine, key=lambda r: r.ms)
    met = best.speedup >= TARGET["speedup"] and best.ms <= TARGET["ms"]
    return {"size": size, "layer": TARGET["layer"], "best": f"{best.method} {best.precision}",
            "best_ms": round(best.ms, 2), "naive_ms": round(naive[0].ms, 2),
            "speedup": round(best.speedup, 2), "target_speedup": TARGET["speedup"],
            "target_ms": TARGET["ms"], "met": bool(met)}


# -- reports --------------------------------------------------------------------------
def markdown(rows: list[Row], facts: dict, meta: dict, goal: dict | None) -> str:
    lines = ["# Dream-step benchmark", "",
             f"`python -m tools.bench{' --quick' if meta['quick'] else ''}` — {meta['date']}, "
             f"{meta['rounds']} interleaved rounds x {meta['steps']} calls per method; "
             f"load average before {meta['load_before']}, after {meta['load_after']}.", "",
             f"Machine: {facts['cpu']} ({facts['usable_cpus']} usable CPUs, torch threads "
             f"{facts['torch_threads']}), device {facts['device']}; Python {facts['python']}, "
             f"torch {facts['torch']}, onnxruntime {facts['onnxruntime']}.", "",
             "One `DreamEngine.dream()` call = one gradient step on a 320x240-class frame, "
             "including the picture's way in and out. *naive*: full-network forward, hook "
             "registered every step, fp32 eager, BatchNorm unfused (the usual notebook loop), "
             "measured in the same run. GFLOP per step from `torch.utils.flop_counter`.", "",
             "| size | layer | method | precision | ms/step (median) | IQR | steps/s | speed-up vs naive "
             "| GFLOP/step | GFLOP/s | note |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.times:
            lines.append(f"| {r.size} | {r.layer} ({r.depth}) | {r.method} | {r.precision} | {r.ms:.1f} | "
                         f"{r.ms_p25:.1f}–{r.ms_p75:.1f} | {r.steps_per_s:.1f} | {r.speedup:.2f}x | "
                         f"{r.gflop:.2f} | {r.gflops:.1f} | {r.note} |")
        else:
            lines.append(f"| {r.size} | {r.layer} ({r.depth}) | {r.method} | {r.precision} | – | – | – | – "
                         f"| {r.gflop:.2f} | – | {r.note} |")
    if goal:
        lines += ["", f"Target ({goal['size']}, {goal['layer']}): best is {goal['best']} at "
                      f"{goal['best_ms']:.1f} ms vs naive {goal['naive_ms']:.1f} ms = "
                      f"{goal['speedup']:.2f}x (wanted >= {goal['target_speedup']}x and <= "
                      f"{goal['target_ms']:.0f} ms): {'met' if goal['met'] else 'NOT met'}."]
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    combos = list(dict.fromkeys((r.size, r.layer) for r in rows))
    methods = list(dict.fromkeys(f"{r.method} {r.precision}" for r in rows))
    fig, axes = plt.subplots(2, 1, figsize=(max(7.5, 1.25 * len(combos) + 3), 8.5), sharex=True,
                             gridspec_kw={"height_ratios": [3, 2]})
    width = 0.8 / len(methods)
    xs = np.arange(len(combos))
    colors = plt.get_cmap("tab10")
    for i, m in enumerate(methods):
        ms, err, spd = [], [[], []], []
        for size, layer in combos:
            r = next((r for r in rows if (r.size, r.layer) == (size, layer) and f"{r.method} {r.precision}" == m), None)
            ok = r is not None and bool(r.times)
            ms.append(r.ms if ok else np.nan)
            err[0].append(r.ms - r.ms_p25 if ok else 0)
            err[1].append(r.ms_p75 - r.ms if ok else 0)
            spd.append(r.speedup if ok else np.nan)
        off = (i - (len(methods) - 1) / 2) * width
        axes[0].bar(xs + off, ms, width, yerr=err, capsize=2, label=m, color=colors(i))
        if not m.startswith(NAIVE):
            bars = axes[1].bar(xs + off, spd, width, color=colors(i), label=m)
            axes[1].bar_label(bars, labels=[f"{v:.1f}x" if np.isfinite(v) else "" for v in spd], fontsize=7)
    labels = [f"{s}\n{l}" for s, l in combos]
    axes[0].set_yscale("log")
    axes[0].set_ylabel("ms per dream() step (median, IQR), log scale")
    axes[0].legend(fontsize=8, ncol=len(methods))
    axes[0].grid(axis="y", which="both", alpha=0.3)
    axes[1].axhline(1.0, color="grey", lw=0.8)
    axes[1].axhline(TARGET["speedup"], color="red", lw=0.8, ls="--", label=f"target {TARGET['speedup']}x")
    axes[1].set_ylabel("speed-up vs naive (same run)")
    axes[1].set_xticks(xs, labels, fontsize=8)
    axes[1].legend(fontsize=8)
    axes[1].grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(rows: list[Row]) -> None:
    print(f"{'size':>8} {'layer':>10} {'method':>14} {'prec':>5} {'ms/step':>8} {'steps/s':>8} "
          f"{'speed-up':>8} {'GFLOP':>6} {'GFLOP/s':>8}  note")
    for r in rows:
        if r.times:
            print(f"{r.size:>8} {r.layer:>10} {r.method:>14} {r.precision:>5} {r.ms:8.1f} {r.steps_per_s:8.1f} "
                  f"{r.speedup:7.2f}x {r.gflop:6.2f} {r.gflops:8.1f}  {r.note}")
        else:
            print(f"{r.size:>8} {r.layer:>10} {r.method:>14} {r.precision:>5} {'-':>8} {'-':>8} {'-':>8} "
                  f"{r.gflop:6.2f} {'-':>8}  {r.note}")


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

    methods = methods_for(backbone.device)
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
    summarise(rows)
    goal = verdict(rows)
    meta = {"quick": args.quick, "rounds": rounds, "steps": args.steps, "seconds": round(time.perf_counter() - t_start, 1),
            "date": time.strftime("%Y-%m-%d %H:%M"), "load_before": load_before, "load_after": load_average(),
            "model": backbone.name, "strength": STRENGTH, "jitter": JITTER}

    print_table(rows)
    if goal:
        print(f"target {goal['size']} {goal['layer']}: best {goal['best']} {goal['best_ms']:.1f} ms, naive "
              f"{goal['naive_ms']:.1f} ms, {goal['speedup']:.2f}x -> {'met' if goal['met'] else 'NOT met'} "
              f"(>= {goal['target_speedup']}x, <= {goal['target_ms']:.0f} ms)")
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
