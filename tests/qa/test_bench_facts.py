"""qa.bench's machine facts: the vector instruction sets as the kernel lists them, the
arithmetic limit they allow, and each row's distance from it."""
from __future__ import annotations

import pytest

from qa.bench import VECTOR_ISA, cpu_info, peak_gflops
from qa.bench_report import Row, summarise


def test_the_limit_and_each_rows_distance_from_it():
    assert peak_gflops(["avx", "avx2", "fma"], 2.5, 2) == 160.0          # 2 cores x 2.5 GHz x 32 FLOP
    assert peak_gflops(["avx"], 2.5, 2) is None and peak_gflops(["fma"], 0.0, 2) is None
    row = Row("blocks.10", "deep", "320x240", "openvino", "fp32", gflop=1.5, times=[30.0, 30.0, 30.0])
    summarise([row], 160.0)
    assert row.gflops == pytest.approx(50.0) and row.x_limit == pytest.approx(3.2)   # 30 ms against 9.4 ms
    model, isa, ghz = cpu_info()
    assert isinstance(model, str) and set(isa) <= set(VECTOR_ISA) and ghz >= 0.0
