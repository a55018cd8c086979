"""Where exported steps (and the backend decisions measured on this machine) are kept:
the user's cache folder ($XDG_CACHE_HOME/dreamcam, else ~/.cache/dreamcam), never the
package. A cached file's name carries a hash of everything that shapes it: the model's
code and weights (by content), the layer, objective, size, normalisation, the code the
step is traced from, and the library versions, so a stale file can never be hit."""
from __future__ import annotations

import hashlib
import inspect
import os
import re
from functools import lru_cache
from glob import escape as glob_escape
from pathlib import Path

import torch

from models import Backbone

EXPORT_VERSION = 5  # bump whenever the trace or its rewrites change the exported graph


def cache_dir(kind: str) -> Path:
    """$XDG_CACHE_HOME/dreamcam/<kind> (read each time, so tests can point it elsewhere)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "dreamcam" / kind


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the code a graph is traced from (the step, the prior, the objectives, the
    trace and its rewrites), so an edit there never runs a stale cached export."""
    from .. import objectives, prior, step
    from . import trace
    h = hashlib.blake2b(digest_size=8)
    for module in (step, prior, objectives, trace):
        h.update(inspect.getsource(module).encode())
    return h.hexdigest()


def step_key(backbone: Backbone, layer: str, objective: str, size: tuple[int, int], grad_norm: str,
             *extra: str) -> tuple[str, str]:
    """(readable name, hash of everything that shapes the step) for cache file names."""
    w, h = size
    parts = (backbone.name, layer, objective, f"{w}x{h}", grad_norm, f"torch{torch.__version__}",
             f"v{EXPORT_VERSION}", backbone.fingerprint(), code_fingerprint(), *extra)
    digest = hashlib.blake2b("|".join(parts).encode(), digest_size=6).hexdigest()
    slug = re.sub(r"[^A-Za-z0-9.]+", "_", f"{backbone.name}-{layer}-{objective}-{w}x{h}-{grad_norm}")
    return slug[:100], digest


def cached_file(kind: str, suffix: str, backbone: Backbone, layer: str, objective: str,
                size: tuple[int, int], grad_norm: str, *extra: str) -> Path:
    """cache_dir(kind)/<readable name>-<hash><suffix>"""
    slug, digest = step_key(backbone, layer, objective, size, grad_norm, *extra)
    return cache_dir(kind) / f"{slug}-{digest}{suffix}"


def prune_stale(path: Path) -> None:
    """Drop cached files of the same step made by older code or weights (same readable
    name, other hash), and what was kept beside them (validation stamps): they can never
    be hit again and are megabytes each."""
    slug, digest = path.stem.rsplit("-", 1)
    pattern = re.compile(re.escape(slug) + r"-([0-9a-f]{12})\.")
    for old in path.parent.glob(f"{glob_escape(slug)}-*"):
        match = pattern.match(old.name)
        if match and match.group(1) != digest:
            old.unlink(missing_ok=True)
