"""The child process that exports and validates steps for a running installation:

    python -m live.dream.backends.worker '{"model": ..., "layer": ..., "objective": ...,
        "grad_norm": ..., "size": [w, h], "backends": ["openvino", "onnx"], "expect": PATH}'

A process, not a thread: tracing and exporting are seconds of pure Python that would hold
the GIL, and the dream step beside it (hundreds of small ops, each taking the GIL) ran 8x
slower with an export thread next to it. Here it runs at low priority on one thread while
the eager step dreams on. It prints one JSON line: {"dreamcam": {"ok": [...], "errors": {...}}}."""
from __future__ import annotations

import json
import os
import sys

MARK = "dreamcam"


def run(job: dict) -> dict:
    import torch

    import models
    from ..step import make_step
    from . import exported_module, onnx as ob

    torch.set_num_threads(1)  # the other core belongs to the dream
    backbone = models.load(job["model"], "cpu")
    size = tuple(job["size"])
    half = bool(job.get("half"))  # the fp16 graph, for ONNX Runtime on CUDA
    path = ob.cache_path(backbone, job["layer"], job["objective"], size, job["grad_norm"], half)
    if str(path) != job["expect"]:
        return {"ok": [], "errors": {"all": f"the child's network or code differs ({path.name} != "
                                            f"{os.path.basename(job['expect'])})"}}
    step = make_step(backbone, job["layer"], job["objective"], job["grad_norm"])
    ok, errors = [], {}
    try:
        for name in job["backends"]:
            try:
                exported_module(name).prepare(backbone, step, job["layer"], job["objective"], size,
                                              job["grad_norm"], half and name == "onnx")
                ok.append(name)
            except Exception as exc:  # reported to the parent, which keeps dreaming eagerly
                errors[name] = f"{type(exc).__name__}: {exc}"
    finally:
        step.close()
    return {"ok": ok, "errors": errors}


def main() -> int:
    try:
        os.nice(10)  # the live dream and the renderer come first
    except (AttributeError, OSError):
        pass
    try:
        result = run(json.loads(sys.argv[1]))
    except Exception as exc:
        result = {"ok": [], "errors": {"all": f"{type(exc).__name__}: {exc}"}}
    print(json.dumps({MARK: result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
