"""Files that survive an interruption: write under a temporary name, flush it to disk,
then rename over the final name. A Ctrl+C, SIGTERM or power cut in the middle of a write
leaves at most a hidden `.NAME.partial` file, never a corrupt file under the final name."""
from __future__ import annotations

import os
from pathlib import Path


def partial_name(path: Path) -> Path:
    """The temporary name `path` is written under (same folder, so the rename is atomic)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def finish(tmp: Path, path: Path) -> Path:
    """fsync `tmp`, rename it to `path`, fsync the folder (so the rename itself is on disk)."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return path
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    return path
