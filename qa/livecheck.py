"""The live installation's done-when, measured: `python -m live` on a video under a
virtual screen (Xvfb 1280x720, config defaults), started twice; the second start is the
one judged (the first may export and decide once per machine).

    python -m qa.livecheck [--source ../shared/media/pedestrians.mp4] [--seconds 60] [--out-dir out/livecheck]
    python -m qa.livecheck --source ped720.mp4 --avx2 --cpu-share 0.5   # the slow AVX2-only machine, stood in for

Wanted on the 2-core reference CPU: >= 12 dream steps/s at the full working size
(adaptive quality never stepped down), display >= 30 fps, first dream < 5 s after the
start. It runs the app as a separate process (`--stats FILE.json`, see DESIGN.md) and
prints each run's figures with the load average; a busy machine makes them meaningless."""
from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from live.cli import Parser, UsageError, run
from .slowcpu import CpuShareError, StandIn, add_arguments

WANTED = {"dream_steps_per_second": 12.0, "display_fps": 30.0, "first_dream_seconds": 5.0}


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m qa.livecheck", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=str(Path("..") / "shared" / "media" / "pedestrians.mp4"))
    p.add_argument("--seconds", type=float, default=60.0, help="length of each run (default 60)")
    p.add_argument("--runs", type=int, default=2, help="starts; the last one is judged (default 2)")
    p.add_argument("--set", action="append", default=[], help="passed on to python -m live")
    p.add_argument("--out-dir", default="out/livecheck")
    add_arguments(p)
    return p


def start_xvfb(timeout: float = 10.0) -> tuple[subprocess.Popen | None, str]:
    """A virtual 1280x720 screen on a free display number (DISPLAY as it is when set). Xvfb
    picks the number itself (-displayfd): it tells a stale lock of a killed server from a
    live one, which a look at /tmp/.X*-lock cannot (after 50 killed servers no number
    looked free). Stop it with `stop_xvfb`, so it removes its own lock."""
    if os.environ.get("DISPLAY"):
        return None, os.environ["DISPLAY"]
    if shutil.which("Xvfb") is None:
        raise UsageError("no DISPLAY and no Xvfb: install xvfb (apt install xvfb) or run it on the desktop")
    read, write = os.pipe()
    try:
        proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                                pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        write = -1
        ready, _, _ = select.select([read], [], [], timeout)
        number = os.read(read, 16).decode().strip() if ready else ""
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    if not number.isdigit():
        stop_xvfb(proc)
        raise RuntimeError("could not start Xvfb")
    return proc, f":{number}"


def stop_xvfb(proc: subprocess.Popen | None) -> None:
    """SIGTERM, so the server removes its lock and socket (SIGKILL left them behind)."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class AppFailed(Exception):
    """`python -m live` ended without its figures (`code`: its exit code)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def one_run(i: int, args: argparse.Namespace, display: str, out: Path, slow: StandIn) -> dict:
    stats, log, said = out / f"run{i}.json", out / f"run{i}.log", out / f"run{i}.out"
    cmd = [sys.executable, "-m", "live", "--source", args.source, "--seconds", f"{args.seconds:g}",
           "--stats", str(stats), "--log-file", str(log), *(a for s in args.set for a in ("--set", s))]
    load = [round(v, 2) for v in os.getloadavg()]
    stats.unlink(missing_ok=True)
    with said.open("w") as output:   # what it printed: a refusal comes before its log file exists
        code = slow.run(cmd, {"DISPLAY": display}, stdout=output, stderr=subprocess.STDOUT).returncode
    if code != 0 or not stats.is_file():
        lines = [line for line in said.read_text(errors="replace").splitlines() if line.strip()]
        last = f": {lines[-1].strip()}" if lines else ""
        raise AppFailed(f"python -m live (run {i}) ended with exit code {code}{last} (all it printed: {said})", code)
    figures = json.loads(stats.read_text())
    return figures | {"load_before": load, "load_after": [round(v, 2) for v in os.getloadavg()]}


def verdict(f: dict) -> list[str]:
    full = f.get("working_size_smallest") == f.get("working_size") and f.get("adaptive_level") == 0
    checks = [(f["dream_steps_per_second"] >= WANTED["dream_steps_per_second"], "dream >= 12 steps/s"),
              (full, "full working size all the time"),
              ((f["display_fps"] or 0) >= WANTED["display_fps"], "display >= 30 fps"),
              ((f["first_dream_seconds"] or 1e9) < WANTED["first_dream_seconds"], "first dream < 5 s")]
    return [f"{'ok ' if ok else 'NOT'} {what}" for ok, what in checks]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not Path(args.source).is_file():
        raise UsageError(f"--source '{args.source}': no such file")
    out = Path(args.out_dir)
    try:
        with StandIn(args.avx2, args.cpu_share) as slow:
            out.mkdir(parents=True, exist_ok=True)
            return judged(args, out, slow)
    except CpuShareError as exc:
        raise UsageError(f"--cpu-share: {exc}") from None
    except AppFailed as exc:   # its refusal of a --set is ours: exit 2 as well
        print(f"error: {exc}", file=sys.stderr)
        return 2 if exc.code == 2 else 1


def judged(args: argparse.Namespace, out: Path, slow: StandIn) -> int:
    """The runs under one virtual screen, the last one judged."""
    xvfb, display = start_xvfb()
    try:
        results = []
        for i in range(1, args.runs + 1):
            f = one_run(i, args, display, out, slow)
            results.append(f)
            print(f"run {i}: {f['dream_steps_per_second']:.1f} steps/s at {f['working_size']} (smallest "
                  f"{f['working_size_smallest']}), display {f['display_fps']} fps ({f['picture_fps']} new pictures/s), "
                  f"latency {f['latency_ms_median']} / {f['latency_ms_p95']} ms, first dream "
                  f"{f['first_dream_seconds']} s, {f['backend']} {f['precision']}; load {f['load_before']} -> "
                  f"{f['load_after']}")
    finally:
        stop_xvfb(xvfb)
    lines = verdict(results[-1])
    print("\n".join(lines))
    (out / "livecheck.json").write_text(json.dumps({"runs": results, "verdict": lines}, indent=1))
    return 0 if all(line.startswith("ok") for line in lines) else 1


if __name__ == "__main__":
    run(main)
