"""python -m qa.abswitch: one setting switched back and forth inside one run of the live
window, the dream's steps and the display's frames counted over each stretch. Separate
runs on a shared machine swing by more than the changes judged (+-0.6 steps/s at 11);
stretches interleaved in one process see the same machine.

    python -m qa.abswitch openvino-threads --source ped720.mp4 [--seconds 160] [--avx2 --cpu-share 0.5]

Switches (A / B): opencv-threads (1 / 2), openvino-threads (1 / 2: the running step must be
OpenVINO's), picture-fps (30 / every camera picture), still-flow (the dream's warps skip
what does not move / resample everything). Each stretch: `--settle` seconds
after the switch, then `--window` seconds counted; the first 15 s (start-up, exports) are
not. Prints the medians, writes OUT_DIR/abswitch.json. --avx2 and --cpu-share stand in for
the slow AVX2-only machine (qa/slowcpu.py); no DISPLAY: a virtual screen (Xvfb)."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from live.cli import Parser, UsageError, run
from .livecheck import start_xvfb, stop_xvfb
from .slowcpu import CpuShareError, StandIn, add_arguments

WARMUP = 15.0   # seconds before the first stretch counts


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m qa.abswitch", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("switch", choices=sorted(SWITCHES))
    p.add_argument("--source", default=str(Path("..") / "shared" / "media" / "pedestrians.mp4"))
    p.add_argument("--seconds", type=float, default=160.0, help="length of the run (default 160)")
    p.add_argument("--settle", type=float, default=1.0, help="seconds after each switch not counted (default 1)")
    p.add_argument("--window", type=float, default=5.0, help="seconds counted after each switch (default 5)")
    p.add_argument("--warmup", type=float, default=WARMUP, help=argparse.SUPPRESS)
    p.add_argument("--set", action="append", default=[], help="a setting for the run, as python -m live takes it")
    add_arguments(p)
    p.add_argument("--out-dir", default="out/abswitch")
    p.add_argument("--here", action="store_true", help=argparse.SUPPRESS)   # the run itself (the child)
    return p


def _opencv(app, loop) -> tuple[Callable[[], None], Callable[[], None]]:
    import cv2
    return (lambda: cv2.setNumThreads(1)), (lambda: cv2.setNumThreads(2))


def _pictures(app, loop) -> tuple[Callable[[], None], Callable[[], None]]:
    return (lambda: setattr(loop.comp, "period", 1.0 / 30)), (lambda: setattr(loop.comp, "period", 0.0))


def _openvino(app, loop) -> tuple[Callable[[], None], Callable[[], None]]:
    """A second request of the running OpenVINO step, compiled for one thread."""
    import openvino as ov
    import openvino.properties as props
    from live.dream.backends.openvino import OvStep, compile_config, core
    step = app.dreamer.engine.current_step()
    if not isinstance(step, OvStep):
        raise UsageError(f"the running step is {type(step).__name__}, not OpenVINO's: add "
                         "--set dream.backend=openvino")
    config = compile_config(step.device) | {props.inference_num_threads: 1}
    one = core().compile_model(str(step.path), step.device, config).create_infer_request()
    one.set_input_tensor(1, ov.Tensor(step._strength, shared_memory=True))
    two = step.request
    return (lambda: setattr(step, "request", one)), (lambda: setattr(step, "request", two))


def _still(app, loop) -> tuple[Callable[[], None], Callable[[], None]]:
    """The dream's quieted flow snapped to 0 below a hundredth of a pixel (the warps skip
    what does not move), or never (every block resampled, as before)."""
    from live.dream.temporal import flow
    still = flow.STILL
    return (lambda: setattr(flow, "STILL", still)), (lambda: setattr(flow, "STILL", 0.0))


SWITCHES = {"opencv-threads": (("1 thread", "2 threads"), _opencv),
            "still-flow": (("still blocks kept", "all resampled"), _still),
            "openvino-threads": (("1 thread", "2 threads"), _openvino),
            "picture-fps": (("30", "every picture"), _pictures)}


def stretches(args: argparse.Namespace, app, loop, found: dict) -> None:
    """The switching thread: A, B, A, B ... until the run ends; rates per stretch into `found`."""
    time.sleep(args.warmup)
    try:
        sides = SWITCHES[args.switch][1](app, loop)
    except UsageError as exc:
        found["error"] = str(exc)
        app.state.quit()
        return
    k = 0
    while app.state.running:
        side = k % 2
        sides[side]()
        time.sleep(args.settle)
        steps, frames, t0 = app.dreamer.steps, app.stats.frames, time.perf_counter()
        time.sleep(args.window)
        if not app.state.running:
            break
        seconds = time.perf_counter() - t0
        found["steps"][side].append(round((app.dreamer.steps - steps) / seconds, 2))
        found["display"][side].append(round((app.stats.frames - frames) / seconds, 2))
        k += 1


def here(args: argparse.Namespace) -> dict:
    """The run itself, in this process: the live window with the switching thread."""
    from live.app import App
    from live.config import load
    from live.windowed import WindowLoop
    app = App(load(None, args.set), args.source)
    loop = WindowLoop(app, seconds=args.seconds)
    found: dict = {"steps": ([], []), "display": ([], [])}
    threading.Thread(target=stretches, args=(args, app, loop, found), daemon=True).start()
    loop.run()
    if "error" in found:
        raise UsageError(found["error"])
    return found


def summary(args: argparse.Namespace, found: dict) -> dict:
    labels = SWITCHES[args.switch][0]
    sides = []
    for side, label in enumerate(labels):
        steps, display = found["steps"][side], found["display"][side]
        if not steps:
            raise UsageError(f"--seconds {args.seconds:g} left no stretch for '{label}'; give a longer run")
        sides.append({"setting": label, "steps_per_second": statistics.median(steps), "display_fps":
                      statistics.median(display), "stretches": steps})
    ahead = sum(a > b for a, b in zip(found["steps"][0], found["steps"][1]))
    return {"switch": args.switch, "sides": sides, "a_ahead": ahead, "pairs": min(map(len, found["steps"]))}


def child(argv: Sequence[str], args: argparse.Namespace, out: Path) -> dict:
    """The run as a child process: AVX2-held, in the CPU share, on a virtual screen if need be."""
    result = out / "found.json"
    cmd = [sys.executable, "-m", "qa.abswitch", *argv, "--here"]
    with StandIn(args.avx2, args.cpu_share) as slow:
        xvfb, display = start_xvfb()
        try:
            code = slow.run(cmd, {"DISPLAY": display, "ABSWITCH_OUT": str(result)}).returncode
        finally:
            stop_xvfb(xvfb)
    if code != 0:
        raise SystemExit(code)
    return json.loads(result.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.here:
        found = here(args)
        Path(os.environ["ABSWITCH_OUT"]).write_text(json.dumps(found))
        return 0
    if args.source != "clouds" and not Path(args.source).is_file():
        raise UsageError(f"--source '{args.source}': no such file")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        found = child(argv, args, out)
    except CpuShareError as exc:
        raise UsageError(f"--cpu-share: {exc}") from None
    report = summary(args, found)
    (out / "abswitch.json").write_text(json.dumps(report, indent=1))
    for s in report["sides"]:
        print(f"{args.switch} {s['setting']:>13}: {s['steps_per_second']:.2f} steps/s, display "
              f"{s['display_fps']:.1f} fps (median of {len(s['stretches'])} stretches)")
    print(f"'{report['sides'][0]['setting']}' ahead in {report['a_ahead']} of {report['pairs']} pairs")
    return 0


if __name__ == "__main__":
    run(main)
