"""Atomic file writing: every output (text tables, JSON, predictions, checkpoints) goes to a temporary
name in its destination folder and is renamed into place, so a killed run never leaves a half-written
file and an existing file is replaced only by a complete one."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "write_text_atomic"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], mode: int = 0o666) -> Path:
    """Write ``path`` through ``write(tmp)``: ``tmp`` is a temporary name in the same folder (created
    if missing) with ``path``'s extension (writers such as nibabel and Pillow read it). The file is
    given ``mode`` minus the umask (0644 under the usual umask, as ``open()`` would; ``mkstemp``'s
    private 0600 would otherwise stick), then renamed into place; the temporary file is removed if
    anything fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{path.name}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`), flushed to disk before the rename."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)
