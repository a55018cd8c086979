"""The slow AVX2-only 2-core machine (issue 22) stood in for on a faster one: every
library's kernels held to AVX2 (`avx2_env`) and the CPU time cut to a share of the
machine's (`CpuShare`, a cgroup). On the AVX-512 machine of 2026-12-04 the live window at
half the CPU time on a 1280x720 50 fps clip gave 10.0 steps/s and display 42 fps, the
issue's own figures on the AVX2-only machine (9.2 / 42): `python -m qa.livecheck --avx2
--cpu-share 0.5`. A stand-in, not the machine: the quota throttles in 10 ms slices where
a slow CPU is slow all the time (docs/measurements.md)."""
from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path
from typing import Sequence

# Each library's own switch (names as each one spells them): oneDNN (PyTorch's and
# OpenVINO's convolutions), PyTorch's element-wise kernels, OpenCV's and numpy's dispatch.
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
            "OPENCV_CPU_DISABLE": "AVX512-SKX,AVX512-CLX,AVX_VNNI", "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL"}
SHARES = (0.05, 1.0)   # the shares a CpuShare can give
PERIOD_US = 10_000   # a short slice: the quota's throttling is felt as slowness, not as stalls
CGROUPS = Path("/sys/fs/cgroup")


class CpuShareError(RuntimeError):
    """A share out of range, or a machine that does not let this process make a cgroup
    (not root, no cpu controller)."""


def avx2_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with every library's kernels held to AVX2."""
    return dict(os.environ if env is None else env) | AVX2_ENV


class CpuShare:
    """A cgroup whose processes get `share` of the machine's CPU time (0.5 on 2 cores: one
    core's worth, spread over both). cgroup v2 (`cpu.max`) or v1 (`cpu/` with
    `cfs_quota_us`); `root` is there for tests. Use as a context manager; `enter(pid)`
    moves a process in (a child: from its preexec_fn, `os.getpid()`)."""

    def __init__(self, share: float, cores: int | None = None, root: Path | None = None, name: str = "dreamcam-slowcpu"):
        if not SHARES[0] <= share <= SHARES[1]:
            raise CpuShareError(f"cpu share {share:g} is out of range ({SHARES[0]:g}..{SHARES[1]:g})")
        self.quota_us = max(1000, round(share * (cores or os.cpu_count() or 1) * PERIOD_US))
        root = root or CGROUPS
        v2 = (root / "cgroup.controllers").is_file()
        self.path = root / name if v2 else root / "cpu" / name
        self.v2 = v2

    def __enter__(self) -> "CpuShare":
        try:
            self.path.mkdir(exist_ok=True)
            if self.v2:
                (self.path / "cpu.max").write_text(f"{self.quota_us} {PERIOD_US}\n")
            else:
                (self.path / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
                (self.path / "cpu.cfs_quota_us").write_text(f"{self.quota_us}\n")
        except OSError as exc:
            raise CpuShareError(f"cannot make the cgroup {self.path} ({exc.strerror or exc}); "
                                "run as root on a machine with the cpu controller") from None
        return self

    def enter(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def __exit__(self, *exc) -> None:
        try:
            self.path.rmdir()   # empty again once its processes have ended
        except OSError:
            pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--avx2 and --cpu-share, for the measuring tools that run the app as a child."""
    parser.add_argument("--avx2", action="store_true", help="hold every library's kernels to AVX2 (qa/slowcpu.py)")
    parser.add_argument("--cpu-share", type=float, default=1.0,
                        help=f"give the app this share of the machine's CPU time, {SHARES[0]:g}..{SHARES[1]:g} "
                             "(a cgroup: root only)")


class StandIn:
    """Child processes run as on the slow machine: `with StandIn(args.avx2, args.cpu_share)
    as slow: slow.run(cmd, env={...})` (AVX2-held when `avx2`, in a CpuShare below 1)."""

    def __init__(self, avx2: bool = False, share: float = 1.0):
        self.avx2 = avx2
        self.share = CpuShare(share) if share != 1.0 else None

    def __enter__(self) -> "StandIn":
        if self.share is not None:
            self.share.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.share is not None:
            self.share.__exit__(*exc)

    def run(self, cmd: Sequence[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
        """subprocess.run with this process's environment (AVX2-held) and `env` on top."""
        share = self.share
        return subprocess.run(cmd, env=(avx2_env() if self.avx2 else dict(os.environ)) | env,
                              preexec_fn=None if share is None else lambda: share.enter(os.getpid()), **kwargs)
