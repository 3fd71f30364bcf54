"""Checkpoints that are never half-written: an ignite save handler writing through a temporary file."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from ignite.handlers.checkpoint import BaseSaveHandler

from monai_attn.atomic import atomic_write

__all__ = ["AtomicDiskSaver", "use_atomic_saving"]


class AtomicDiskSaver(BaseSaveHandler):
    """ignite ``Checkpoint`` save handler that never leaves a half-written or missing checkpoint.

    Each checkpoint is written to a temporary name in the same folder, flushed to disk and renamed
    into place. ignite asks to remove a superseded checkpoint *before* saving the new one; here the
    removal waits until the new file is in place, so a kill (even SIGKILL) at any moment leaves at
    least one complete checkpoint to resume from.

    Args:
        dirname: the checkpoint folder.
        filename: a fixed file name (e.g. ``"model.pt"`` for the best model), else ignite's names.
    """

    def __init__(self, dirname: str | os.PathLike, filename: str | None = None) -> None:
        self.dirname = Path(dirname)
        self.filename = filename
        self._superseded: list[str] = []

    def __call__(self, checkpoint, filename: str, metadata=None) -> None:
        name = self.filename or filename
        self.dirname.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())

        atomic_write(self.dirname / name, write)
        for old in self._superseded:
            if old != name:
                (self.dirname / old).unlink(missing_ok=True)
        self._superseded = []

    def remove(self, filename: str) -> None:
        self._superseded.append(self.filename or filename)


def use_atomic_saving(saver) -> object:
    """Make a MONAI ``CheckpointSaver`` (all of its checkpoints) or an ignite ``Checkpoint`` save
    through :class:`AtomicDiskSaver`. Returns ``saver``."""
    from ignite.handlers import Checkpoint, DiskSaver

    targets = [saver] if isinstance(saver, Checkpoint) else [
        getattr(saver, a, None) for a in ("_final_checkpoint", "_key_metric_checkpoint", "_interval_checkpoint")]
    for ckpt in targets:
        handler = getattr(ckpt, "save_handler", None)
        if isinstance(handler, DiskSaver):
            ckpt.save_handler = AtomicDiskSaver(handler.dirname, getattr(handler, "filename", None))
    return saver
