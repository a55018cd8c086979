"""The benchmark's results: rows with medians and speed-ups against the naive loop of
the same run, the verdict on the target, and the reports (Markdown table, plot, console)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .plotting import pyplot

NAIVE = "naive"
DEFAULT = "auto"   # the installation's default backend: the row shows what it picked
TARGET = {"size": (320, 240), "layer": "blocks.10", "default": 3.5, "best": 4.0}  # x naive, same run


@dataclass
class Row:
    layer: str
    depth: str                 # shallow | default | deep
    size: str
    method: str                # naive | auto (the default) | torch | onnx | openvino | compile
    precision: str
    ms: float = float("nan")   # median ms per dream() call (one step)
    ms_p25: float = float("nan")
    ms_p75: float = float("nan")
    steps_per_s: float = float("nan")
    speedup: float = float("nan")  # naive ms / this ms, same size and layer, same run
    gflop: float = float("nan")    # per step, torch's flop counter
    gflops: float = float("nan")   # achieved GFLOP/s
    x_limit: float = float("nan")  # ms / the ms the arithmetic limit allows (peak GFLOP/s): 1 = at the limit
    note: str = ""
    times: list[float] = field(default_factory=list, repr=False)


def summarise(rows: list[Row], peak_gflops: float | None = None) -> None:
    timed = [r for r in rows if r.times]
    for r in timed:
        r.ms = float(np.median(r.times))
        r.ms_p25, r.ms_p75 = (float(v) for v in np.percentile(r.times, [25, 75]))
        r.steps_per_s = 1000.0 / r.ms
        r.gflops = r.gflop / (r.ms / 1000.0)
        if peak_gflops:
            r.x_limit = peak_gflops / r.gflops
    naive = {(r.layer, r.size): r.ms for r in timed if r.method == NAIVE}
    for r in timed:
        if (r.layer, r.size) in naive:
            r.speedup = naive[(r.layer, r.size)] / r.ms


def verdict(rows: list[Row]) -> dict | None:
    """The issue's target: the installation's default and the best dream() at 320x240,
    default layer, each against the naive loop of this run."""
    size = f"{TARGET['size'][0]}x{TARGET['size'][1]}"
    combo = [r for r in rows if r.size == size and r.layer == TARGET["layer"] and r.times]
    naive = [r for r in combo if r.method == NAIVE]
    engine = [r for r in combo if r.method not in (NAIVE, DEFAULT)]
    default = [r for r in combo if r.method == DEFAULT]
    if not naive or not engine:
        return None
    best = min(engine, key=lambda r: r.ms)
    goal = {"size": size, "layer": TARGET["layer"], "naive_ms": round(naive[0].ms, 2),
            "best": f"{best.method} {best.precision}", "best_ms": round(best.ms, 2),
            "best_speedup": round(best.speedup, 2), "target_best": TARGET["best"],
            "target_default": TARGET["default"]}
    met = best.speedup >= TARGET["best"]
    if default:
        d = default[0]
        goal |= {"default": d.note, "default_ms": round(d.ms, 2), "default_speedup": round(d.speedup, 2)}
        met = met and d.speedup >= TARGET["default"]
    return goal | {"met": bool(met and bool(default))}


def describe_goal(goal: dict) -> str:
    default = (f"the default ({goal['default']}) {goal['default_ms']:.1f} ms = {goal['default_speedup']:.2f}x"
               if "default" in goal else "the default was not timed")
    return (f"target {goal['size']} {goal['layer']}: naive {goal['naive_ms']:.1f} ms; {default} "
            f"(wanted >= {goal['target_default']}x); fastest {goal['best']} {goal['best_ms']:.1f} ms = "
            f"{goal['best_speedup']:.2f}x (wanted >= {goal['target_best']}x) -> {'met' if goal['met'] else 'NOT met'}")


def markdown(rows: list[Row], facts: dict, meta: dict, goal: dict | None) -> str:
    lines = ["# Dream-step benchmark", "",
             f"`python -m qa.bench{' --quick' if meta['quick'] else ''}` — {meta['date']}, "
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
             "| GFLOP/step | GFLOP/s | x limit | note |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.times:
            lines.append(f"| {r.size} | {r.layer} ({r.depth}) | {r.method} | {r.precision} | {r.ms:.1f} | "
                         f"{r.ms_p25:.1f}–{r.ms_p75:.1f} | {r.steps_per_s:.1f} | {r.speedup:.2f}x | "
                         f"{r.gflop:.2f} | {r.gflops:.1f} | {r.x_limit:.1f} | {r.note} |")
        else:
            lines.append(f"| {r.size} | {r.layer} ({r.depth}) | {r.method} | {r.precision} | – | – | – | – "
                         f"| {r.gflop:.2f} | – | – | {r.note} |")
    if goal:
        lines += ["", describe_goal(goal)[0].upper() + describe_goal(goal)[1:] + "."]
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path, title: str) -> None:
    plt = pyplot(str(path))
    if plt is None:
        return

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
    axes[1].axhline(TARGET["best"], color="red", lw=0.8, ls="--", label=f"target, fastest {TARGET['best']}x")
    axes[1].axhline(TARGET["default"], color="orange", lw=0.8, ls="--", label=f"target, default {TARGET['default']}x")
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
          f"{'speed-up':>8} {'GFLOP':>6} {'GFLOP/s':>8} {'x limit':>7}  note")
    for r in rows:
        if r.times:
            print(f"{r.size:>8} {r.layer:>10} {r.method:>14} {r.precision:>5} {r.ms:8.1f} {r.steps_per_s:8.1f} "
                  f"{r.speedup:7.2f}x {r.gflop:6.2f} {r.gflops:8.1f} {r.x_limit:7.1f}  {r.note}")
        else:
            print(f"{r.size:>8} {r.layer:>10} {r.method:>14} {r.precision:>5} {'-':>8} {'-':>8} {'-':>8} "
                  f"{r.gflop:6.2f} {'-':>8} {'-':>7}  {r.note}")


