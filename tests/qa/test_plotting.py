"""matplotlib is an optional extra: a measuring tool without it skips its plot in one line."""
from __future__ import annotations

import logging
import sys

from qa.plotting import pyplot


def test_without_matplotlib_a_plot_is_one_line(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    caplog.set_level(logging.WARNING)
    assert pyplot("out/x.png") is None
    assert [r.getMessage() for r in caplog.records] == [
        "no plot out/x.png: it needs matplotlib (pip install 'dreamcam[plots]')"]


def test_with_matplotlib_it_draws_to_files():
    plt = pyplot("x")
    assert plt is not None and plt.get_backend().lower() == "agg"
