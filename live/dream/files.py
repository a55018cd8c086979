"""Files that survive an interruption: write under a temporary name, flush it to disk,
then rename over the final name. A Ctrl+C, SIGTERM or power cut in the middle of a write
leaves at most a hidden `.NAME.partial` file, never a corrupt file under the final name.
Every file Dreamcam writes (recordings, snapshots, stills, exported steps) goes through
here; a write that fails (disk full, file too large, I/O error) is a `WriteError` naming
the file and the cause, and the final name is left as it was."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class WriteError(OSError):
    """A file could not be written (disk full, too large, I/O error); the message is the
    one line the user sees, naming the file and the cause. Exit code 1, not 2: the
    request was sound, the machine could not carry it out."""


def cause(exc: BaseException) -> str:
    """The short reason of an OSError ("No space left on device"), else its text."""
    if isinstance(exc, WriteError) and exc.__cause__ is not None:
        return cause(exc.__cause__)
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


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


@contextmanager
def atomic(path: str | Path, what: str = "file") -> Iterator[Path]:
    """`with atomic(path) as tmp:` write `tmp`; on success it becomes `path`, on any
    failure (or Ctrl+C) it is removed and `path` is left as it was. An OSError while
    writing or finishing comes out as a WriteError naming `what` and `path`."""
    path = Path(path)
    tmp = partial_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        finish(tmp, path)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(f"{what} '{path}': cannot write ({cause(exc)})") from exc
    finally:
        tmp.unlink(missing_ok=True)


class OutputError(ValueError):
    """A file that cannot be written where the user asked; the message is one line."""


def check_output(path: str | Path, what: str) -> Path:
    """Say in one line why a file could not be written at `path`, without creating
    anything (called before long work, so a typo does not cost a minute)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} '{path}' is a directory; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{what} '{path}': the file exists and is not writable")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{what} '{path}': cannot create the folder, '{existing}' is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{what} '{path}': cannot write in '{existing}' (not writable)")
    return path


def prepare_output(path: str | Path, what: str) -> Path:
    """Create the folder a file will be written to, or say in one line why not."""
    path = check_output(path, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what} '{path}': cannot create the folder ({exc.strerror or exc})") from None
    return path
