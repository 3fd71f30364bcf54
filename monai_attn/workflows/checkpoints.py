"""Training state: checkpoint discovery, resume and the best-model bookkeeping."""
from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path

import torch

from monai_attn.errors import BadInputError
from monai_attn.overrides import as_bool

from .atomic import use_atomic_saving
from .rng import TrainingRNG

__all__ = ["checkpoints", "latest_checkpoint", "attach_training_state", "key_metric_tracker", "prepare_training_dir",
           "release_training_dir", "TrainingDirError", "TRAINING_LOCK"]

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


#: the lock file that a training holds in its checkpoint folder while it runs
TRAINING_LOCK = ".train.lock"
_held_locks: dict[str, int] = {}  # checkpoint folder -> open file descriptor holding its lock (this process)


class TrainingDirError(BadInputError):
    """A checkpoint folder that a training may not use as it is (it holds another run, or is in use)."""


def _refuse(path: str | os.PathLike, problem: str, hint: str) -> None:
    """Stop: a one-line ``SystemExit`` (``error: <path>: <problem>; <hint>``, exit status 1, no traceback)
    in a ``python -m monai.bundle run``, else :class:`TrainingDirError`."""
    from monai_attn.overrides import _is_bundle_run

    if _is_bundle_run(sys.argv):
        raise SystemExit(f"error: {path}: {problem}; {hint}")
    raise TrainingDirError(path, problem, hint)


def _lock_training_dir(folder: Path) -> None:
    """Hold an exclusive ``flock`` on ``<folder>/.train.lock`` until this process ends (or
    :func:`release_training_dir`); refuse when another process holds it."""
    key = str(folder.resolve())
    if key in _held_locks:
        return
    fd = os.open(folder / TRAINING_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        _refuse(folder, f"another training is running into this folder ({holder})",
                "wait for it to end or stop it; two trainings into one folder would overwrite each other's "
                "checkpoints")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
    _held_locks[key] = fd


def release_training_dir(ckpt_dir: str | os.PathLike) -> None:
    """Release the lock that :func:`prepare_training_dir` took on ``ckpt_dir`` (it is released anyway when
    the process ends)."""
    fd = _held_locks.pop(str(Path(ckpt_dir).resolve()), None)
    if fd is not None:
        os.close(fd)


def _run_files(folder: Path, prefix: str, best: str) -> list[Path]:
    """The files of a training run in ``folder``: its best model and its checkpoints."""
    files = [folder / best] if (folder / best).is_file() else []
    return files + [Path(p) for p in checkpoints(str(folder), prefix)]


def prepare_training_dir(ckpt_dir: str | os.PathLike, resume=False, overwrite=False, prefix: str = "checkpoint",
                         best: str = "model.pt", main_process: bool = True) -> Path:
    """Make sure that a training never overwrites or mixes with another run; call it first in a training
    config's ``initialize`` (before the datasets are cached).

    - A folder holding a run (``best``, e.g. ``model.pt``, or ``<prefix>*.pt`` checkpoints) is refused
      unless ``resume`` (continue that run) or ``overwrite`` (move that run to
      ``<ckpt_dir>/previous-<time>/``, so nothing is lost, and train afresh) is given; both at once are
      refused. ``resume`` with a best model but no checkpoint to resume from is refused too (training
      would start afresh and replace the best model).
    - Temporary files of a save that was killed (``.tmp-*``, see :mod:`monai_attn.atomic`) are removed
      (logged).
    - The folder is locked (``flock`` on ``.train.lock``, held until the process ends): a second training
      into the same folder is refused while the first runs.

    Refusals are one line: in ``python -m monai.bundle run``, ``SystemExit("error: <folder>: <what is
    there>; <choices>")`` (exit status 1); else :class:`TrainingDirError`. ``resume``/``overwrite`` may be
    command-line strings (``true``/``false``). ``main_process=False`` (the non-zero ranks of a distributed
    run) only checks, leaving the moving, cleaning and locking to rank 0.

    Returns the folder (created if missing).
    """
    resume, overwrite = as_bool(resume, "resume"), as_bool(overwrite, "overwrite")
    folder = Path(ckpt_dir).absolute()
    if resume and overwrite:
        _refuse("overwrite", "--resume true and --overwrite true given together",
                f"choose one: --resume true continues the run in {folder}, --overwrite true moves it aside and "
                "trains afresh")
    if not main_process and overwrite:
        return folder
    if main_process:
        folder.mkdir(parents=True, exist_ok=True)
        _lock_training_dir(folder)
    try:
        _check_training_dir(folder, resume, overwrite, prefix, best, main_process)
    except BaseException:
        release_training_dir(folder)  # nothing will be trained
        raise
    return folder


def _check_training_dir(folder: Path, resume: bool, overwrite: bool, prefix: str, best: str,
                        main_process: bool) -> None:
    if main_process:
        for tmp in sorted(folder.glob(".tmp-*")):
            logger.warning("removing %s: the temporary file of a save that was interrupted", tmp)
            tmp.unlink(missing_ok=True)
    found = _run_files(folder, prefix, best) if folder.is_dir() else []
    if not found:
        return
    names = ", ".join(p.name for p in found)
    if resume:
        if not checkpoints(str(folder), prefix):
            _refuse(folder / best, f"--resume true but there is no {prefix}*.pt checkpoint to resume from beside it",
                    f"--overwrite true moves it to {folder}/previous-<time>/ and trains afresh")
        return
    if not overwrite:
        _refuse(folder, f"holds a trained run ({names}); nothing was trained",
                f"--resume true continues it, --overwrite true moves it to {folder}/previous-<time>/ and trains "
                "afresh")
    if main_process:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = folder / f"previous-{stamp}"
        n = 1
        while target.exists():
            n += 1
            target = folder / f"previous-{stamp}-{n}"
        target.mkdir()
        for path in found:
            shutil.move(str(path), str(target / path.name))
        logger.warning("--overwrite: moved the previous run (%s) to %s", names, target)


def _loadable_checkpoint(ckpt_dir: str, prefix: str) -> tuple[str, set[str]] | None:
    """The newest checkpoint that loads with ``weights_only=True`` and its keys; older ones are tried when
    the newest is truncated or corrupt (e.g. written by a version without atomic saving). A checkpoint that
    holds anything but tensors and plain containers is refused (``BadInputError``), never unpickled."""
    for path in checkpoints(ckpt_dir, prefix):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            if "weights_only" in str(e) or "Weights only load failed" in str(e):
                from .weights import load_failure

                # names the refused globals; torch's advice to retry with weights_only=False is not passed on
                raise load_failure(path, e) from None
            logger.warning("%s: cannot load this checkpoint (%s: %s); trying an older one", path, type(e).__name__,
                           str(e)[:200])
            continue
        return path, set(state) if isinstance(state, dict) else set()
    return None


def attach_training_state(trainer, ckpt_dir: str, save_dict: dict, resume: bool = False, save_interval: int = 1,
                          n_saved: int = 1, prefix: str = "checkpoint", save: bool = True,
                          rng: bool = True) -> str | None:
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

    With ``rng`` (the default), the random state (:class:`~monai_attn.workflows.rng.TrainingRNG`: Python,
    NumPy, torch and the random transforms of ``trainer.data_loader``) is checkpointed as ``"rng"`` and
    restored on resume, so that a resumed run matches an uninterrupted one (see docs/bundles.md for what
    can still differ); so is the trainer's AMP ``scaler`` when it has one. A checkpoint without them
    (written by an older version) resumes with a warning.

    ``save=False`` only resumes (for the non-zero ranks of a distributed run).

    Returns the checkpoint resumed from, or None.
    """
    from ignite.handlers import Checkpoint
    from monai.handlers import CheckpointLoader, CheckpointSaver

    resume = as_bool(resume, "resume")
    for value in save_dict.values():
        if isinstance(value, Checkpoint):
            use_atomic_saving(value)
    added = {}
    if rng and "rng" not in save_dict:
        added["rng"] = TrainingRNG(getattr(trainer, "data_loader", None))
    if getattr(trainer, "scaler", None) is not None and "scaler" not in save_dict:
        added["scaler"] = trainer.scaler  # AMP's loss scale (MONAI's trainers with amp=True)
    save_dict = {**save_dict, **added}
    found = _loadable_checkpoint(ckpt_dir, prefix) if resume else None
    path = found[0] if found else None
    if resume and path is None:
        logger.warning("resume requested but no %s*.pt in %s: starting from scratch", prefix, ckpt_dir)
    if path is not None:
        missing = [k for k in added if k not in found[1]]
        if missing:
            logger.warning("%s holds no %s (written by an older version): the resumed run will differ from an "
                           "uninterrupted one", path, " or ".join({"rng": "random state", "scaler": "AMP loss scale"}[k]
                                                                 for k in missing))
        load_dict = {k: v for k, v in save_dict.items() if k not in missing}
        CheckpointLoader(load_path=path, load_dict=load_dict, map_location="cpu").attach(trainer)
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
