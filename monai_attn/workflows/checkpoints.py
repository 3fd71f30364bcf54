"""Training state: checkpoint discovery, resume and the best-model bookkeeping."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from monai_attn.overrides import as_bool

from .atomic import use_atomic_saving

__all__ = ["checkpoints", "latest_checkpoint", "attach_training_state", "key_metric_tracker"]

logger = logging.getLogger(__name__)


def _checkpoint_number(path: Path) -> int:
    m = re.search(r"=(\d+)\.pt$", path.name)
    return int(m.group(1)) if m else -1


def checkpoints(ckpt_dir: str, prefix: str = "checkpoint") -> list[str]:
    """The ``<prefix>*.pt`` files in ``ckpt_dir``, newest first (by the epoch/iteration number in
    their names, then by modification time). Temporary files of an interrupted write are not listed."""
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return []
    found = sorted(folder.glob(f"{prefix}*.pt"), key=lambda p: (_checkpoint_number(p), p.stat().st_mtime))
    return [str(p) for p in reversed(found)]


def latest_checkpoint(ckpt_dir: str, prefix: str = "checkpoint") -> str | None:
    """The newest ``<prefix>*.pt`` in ``ckpt_dir`` (by the epoch/iteration number in its name), or None."""
    found = checkpoints(ckpt_dir, prefix)
    return found[0] if found else None


def _loadable_checkpoint(ckpt_dir: str, prefix: str) -> str | None:
    """The newest checkpoint that loads with ``weights_only=True``; older ones are tried when the newest
    is truncated or corrupt (e.g. written by a version without atomic saving). A checkpoint that holds
    anything but tensors and plain containers is refused (``BadInputError``), never unpickled."""
    from monai_attn.errors import BadInputError

    for path in checkpoints(ckpt_dir, prefix):
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            if "weights_only" in str(e) or "Weights only load failed" in str(e):
                raise BadInputError(path, "refused: the checkpoint holds objects other than weights (loading it "
                                          "could run code); weights_only=True loading failed",
                                    "delete it if you did not write it yourself") from e
            logger.warning("%s: cannot load this checkpoint (%s: %s); trying an older one", path, type(e).__name__,
                           str(e)[:200])
            continue
        return path
    return None


def attach_training_state(trainer, ckpt_dir: str, save_dict: dict, resume: bool = False, save_interval: int = 1,
                          n_saved: int = 1, prefix: str = "checkpoint", save: bool = True) -> str | None:
    """Checkpoint the full training state and optionally resume from it.

    Attaches MONAI's ``CheckpointSaver`` writing ``<ckpt_dir>/<prefix>_checkpoint_epoch=N.pt``
    (model, optimizer, scheduler and trainer state every ``save_interval`` epochs, ``n_saved`` kept),
    saving atomically (:class:`AtomicDiskSaver`: a kill never leaves a truncated checkpoint, and the
    previous one is deleted only once the new one is complete). ignite ``Checkpoint`` objects in
    ``save_dict`` (e.g. :func:`key_metric_tracker`, the best-model saver) are made atomic too.
    It is attached here rather than listed in the trainer's handlers because ``save_dict`` holds the
    trainer itself (a config reference cycle otherwise).

    With ``resume``, the newest loadable checkpoint is restored through MONAI's ``CheckpointLoader``
    (``weights_only=True``) before the first epoch, so training continues from the saved epoch with
    the saved optimizer/scheduler state up to the same ``max_epochs``; the resumed checkpoint counts
    among the ``n_saved`` kept, so it is deleted when superseded. ``resume`` may be a string from
    the command line (``--resume true`` / ``false``, see :func:`as_bool`).

    ``save=False`` only resumes (for the non-zero ranks of a distributed run).

    Returns the checkpoint resumed from, or None.
    """
    from ignite.handlers import Checkpoint
    from monai.handlers import CheckpointLoader, CheckpointSaver

    resume = as_bool(resume, "resume")
    for value in save_dict.values():
        if isinstance(value, Checkpoint):
            use_atomic_saving(value)
    path = _loadable_checkpoint(ckpt_dir, prefix) if resume else None
    if resume and path is None:
        logger.warning("resume requested but no %s*.pt in %s: starting from scratch", prefix, ckpt_dir)
    if path is not None:
        CheckpointLoader(load_path=path, load_dict=save_dict, map_location="cpu").attach(trainer)
        logger.info("resuming from %s", path)
    if save:
        saver = CheckpointSaver(save_dir=ckpt_dir, save_dict=save_dict, file_prefix=prefix,
                                save_interval=save_interval, epoch_level=True, n_saved=n_saved)
        use_atomic_saving(saver)
        if path is not None and saver._interval_checkpoint is not None and _checkpoint_number(Path(path)) >= 0:
            # the saver's list of kept files starts with the resumed one (a new process knows none)
            saver._interval_checkpoint.load_state_dict(
                {"_saved": [(_checkpoint_number(Path(path)), Path(path).name)]})
        saver.attach(trainer)
    return path


def key_metric_tracker(saver):
    """The best-model bookkeeping of a MONAI ``CheckpointSaver(save_key_metric=True)``, as an object with
    ``state_dict``/``load_state_dict``, to be put in :func:`attach_training_state`'s ``save_dict``.

    Without it, a resumed run forgets the best score so far and its first validation overwrites the
    best checkpoint (e.g. ``models/model.pt``) even when it is worse. With it, the score of the saved
    best model is checkpointed with the training state and restored on ``resume``.
    """
    tracker = getattr(saver, "_key_metric_checkpoint", None)
    if tracker is None:
        raise ValueError(f"{type(saver).__name__}: not a CheckpointSaver with save_key_metric=True")
    return tracker
