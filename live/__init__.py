"""Dreamcam: the live installation (this package), its dream core (live.dream) and the
tools built on it."""
import time

STARTED = time.perf_counter()  # the start of the process, near enough (for "start to first dream")
