"""matplotlib for the measuring tools' PNG plots: an optional extra (`pip install
'dreamcam[plots]'`), so the installation does not carry it. Missing, a plot is one log
line and skipped; the figures are still printed and in the JSON."""
from __future__ import annotations

import logging
from types import ModuleType

log = logging.getLogger(__name__)


def pyplot(what: str) -> ModuleType | None:
    """matplotlib.pyplot drawing to files, or None (one line naming the plot skipped)."""
    try:
        import matplotlib
    except ImportError:
        log.warning("no plot %s: it needs matplotlib (pip install 'dreamcam[plots]')", what)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
