"""Dreamcam: the live installation (this package), its dream core (live.dream) and the
tools built on it. Every entry point imports this package before torch loads (tools via
tools/__init__.py), so the process environment below applies to all of them."""
import os
import time

STARTED = time.perf_counter()  # the start of the process, near enough (for "start to first dream")

# OpenMP's default wait policy spins its idle threads; with two cores shared by the
# renderer, the capture and the exports, torch's 2-thread step then collapsed from 119 ms
# to 1520 ms whenever another thread was runnable. Passive threads sleep instead.
# (Read once, when torch loads its OpenMP runtime: it must be set before that.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
