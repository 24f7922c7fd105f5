"""Crash-safe file writes: write a temporary file beside the target, then rename over it."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to `path`; on success it replaces `path` atomically.

    If the block raises (or the disk fills up), `path` keeps its previous content and the
    temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _new_file_mode(path))  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _new_file_mode(path: Path) -> int:
    """The mode `path` has, or the one a plain `open(path, "w")` would give it under the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def safe_child(folder: str | os.PathLike, name: str) -> Path:
    """`folder/name`, refusing names that would land outside `folder` (``..``, absolute paths,
    separators, links pointing out)."""
    folder = Path(folder)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"unsafe output file name {name!r}")
    path = folder / name
    root = folder.resolve()
    if path.resolve().parent != root:
        raise ValueError(f"output file {name!r} would be written outside {folder}")
    return path
