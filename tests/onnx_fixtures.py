"""One fresh ONNX export shared by test_export and test_backends (exporting takes
seconds): blocks.10, amplify, 160x120, in a temporary cache, so the exporter itself is
tested rather than a file left by an earlier run."""
from __future__ import annotations

import pytest

from live import onnx_backend as ob

SIZE = (160, 120)
LAYER = "blocks.10"


@pytest.fixture(scope="module")
def exported(backbone, tmp_path_factory):
    """(Exported, the fp32 torch step it was validated against). Module-scoped because
    each test module imports it; the file lives in the session's temp folder, so the
    second module finds it there and only re-validates."""
    cache = tmp_path_factory.getbasetemp() / "onnx-exported"
    mp = pytest.MonkeyPatch()
    mp.setattr(ob, "EXPORT_DIR", cache)
    step = ob.dream_step(backbone, LAYER)
    try:
        path = ob.cache_path(backbone, LAYER, "amplify", SIZE, "mean")
        if path.is_file():
            report = ob.compare(ob.OrtStep(path, backbone.device), step, SIZE, backbone.device)
            yield ob.Exported(path, report, 0.0), step
        else:
            yield ob.export_step(backbone, step, SIZE, path), step
    finally:
        step.tap.close()
        mp.undo()


@pytest.fixture
def onnx_cache(exported, monkeypatch):
    """Point the engine's cache at the shared export (a cache hit, no second export)."""
    monkeypatch.setattr(ob, "EXPORT_DIR", exported[0].path.parent)
    return exported[0].path.parent
