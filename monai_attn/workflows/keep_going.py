"""Keep going past bad cases: a DataLoader that skips (and lists) the cases that fail to load."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from monai.data import DataLoader as MonaiDataLoader
from monai.data import list_data_collate

from .inputs import IMAGE_SUFFIXES, VOLUME_SUFFIXES, strip_suffix

__all__ = ["CaseFailure", "CaseFailures", "describe_failure", "SkipFailedCases", "KeepGoingDataLoader", "run_keep_going",
           "record_failures"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseFailure:
    """One case that could not be loaded or preprocessed: its id, the file at fault and the problem."""

    case: str
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.case}: {self.file}: {self.message}"


class CaseFailures:
    """The cases skipped during a run (filled by :class:`KeepGoingDataLoader`), in the order met."""

    def __init__(self) -> None:
        self.items: list[CaseFailure] = []

    def add(self, failure: CaseFailure) -> None:
        self.items.append(failure)
        logger.error("skipping case %s", failure)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def format(self) -> str:
        """``"N case(s) failed:"`` then one ``case: file: problem`` line per failure."""
        return f"{len(self.items)} case(s) failed and were skipped:\n" + "\n".join(f"  {f}" for f in self.items)


def describe_failure(item: object, error: BaseException, index: int = 0) -> CaseFailure:
    """A :class:`CaseFailure` for ``item`` (a datalist item) whose loading raised ``error``.

    The file and problem come from the :class:`~monai_attn.errors.BadInputError` in the error's
    chain when there is one; otherwise the innermost error is reported against the item's images.
    """
    from monai_attn.errors import find_bad_input

    images = item.get("image") if isinstance(item, dict) else None
    paths = [str(p) for p in (images if isinstance(images, (list, tuple)) else [images]) if p is not None]
    case = item.get("id") if isinstance(item, dict) else None
    if not case and paths:
        first = Path(paths[0])
        case = strip_suffix(first.name, VOLUME_SUFFIXES + IMAGE_SUFFIXES) or first.name
    bad = find_bad_input(error)
    if bad is not None:
        message = bad.problem + (f" — {bad.hint}" if bad.hint else "")
        return CaseFailure(str(case or f"item {index}"), bad.path, message)
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    return CaseFailure(str(case or f"item {index}"), ", ".join(paths) or "?",
                       f"{type(root).__name__}: {str(root)[:300]}")


class _Failed:
    """What a :class:`SkipFailedCases` item becomes when it cannot be loaded (picklable)."""

    def __init__(self, failure: CaseFailure) -> None:
        self.failure = failure


class _Collated:
    """A batch of the good items (``None`` when there are none) and the failures met in it."""

    def __init__(self, data, failures: list, size: int = 0) -> None:
        self.data = data
        self.failures = failures
        self.size = size  # items in the batch, good and failed


class _SkippingCollate:
    """Collate function (picklable, for worker processes) that sets failed items aside."""

    def __init__(self, collate_fn: Callable) -> None:
        self.collate_fn = collate_fn

    def __call__(self, batch: list) -> _Collated:
        failures = [b.failure for b in batch if isinstance(b, _Failed)]
        good = [b for b in batch if not isinstance(b, _Failed)]
        return _Collated(self.collate_fn(good) if good else None, failures, len(batch))


class SkipFailedCases(torch.utils.data.Dataset):
    """Map-style dataset wrapper: an item whose loading/preprocessing raises becomes a failure
    record (:func:`describe_failure`) instead of an exception. Used by :class:`KeepGoingDataLoader`."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            return self.dataset[index]
        except Exception as e:  # noqa: BLE001 - recorded, listed at the end of the run
            data = getattr(self.dataset, "data", None)
            item = data[index] if data is not None and not callable(data) else None
            return _Failed(describe_failure(item, e, index))


class KeepGoingDataLoader(MonaiDataLoader):
    """A MONAI ``DataLoader`` that skips the cases whose loading or preprocessing fails.

    Each failure (case id, file, problem) is logged when met and recorded in :attr:`failures`;
    the good cases are batched as usual, so an evaluator over this loader processes (and saves)
    every good case. :func:`run_keep_going` then lists the failures and exits non-zero.

    The loader has no length (``len()`` raises ``TypeError``): the number of batches is known only
    at the end. MONAI engines and ignite then end the epoch when the loader is exhausted (given a
    length, ignite would restart a loader that ends early). The number of cases is known, though:
    :attr:`num_cases`, and :attr:`cases_seen` counts those handed out so far (good and failed), which
    :class:`~monai_attn.workflows.CaseProgressBar` shows as ``Cases [3/6]``.

    Args:
        dataset: a map-style dataset, e.g. ``monai.data.Dataset(items, transform)``.
        failures: where to record the failures (a new :class:`CaseFailures` by default).
        kwargs: the other ``DataLoader`` arguments (``batch_size``, ``num_workers``, ``collate_fn``...).
    """

    def __init__(self, dataset, failures: CaseFailures | None = None, **kwargs) -> None:
        collate_fn = kwargs.pop("collate_fn", None) or list_data_collate
        super().__init__(SkipFailedCases(dataset), collate_fn=_SkippingCollate(collate_fn), **kwargs)
        self.failures = failures if failures is not None else CaseFailures()
        self.cases_seen = 0

    @property
    def num_cases(self) -> int:
        """The number of cases (items of the dataset) one pass goes through, failed ones included."""
        n = len(self.dataset)
        return n - n % self.batch_size if self.drop_last and self.batch_size else n

    def __len__(self) -> int:
        raise TypeError("KeepGoingDataLoader has no length: failed cases are skipped (see num_cases)")

    def __bool__(self) -> bool:
        return True

    def __iter__(self):
        self.cases_seen = 0
        for batch in super().__iter__():
            self.cases_seen += batch.size
            for failure in batch.failures:
                self.failures.add(failure)
            if batch.data is not None:
                yield batch.data


def _report_handlers(engine) -> list:
    """The :class:`~monai_attn.metrics.SegmentationReportHandler` s attached to ``engine`` that write files."""
    from monai_attn.metrics.handlers import SegmentationReportHandler

    found = []
    for handlers in getattr(engine, "_event_handlers", {}).values():
        for handler, *_ in handlers:
            owner = getattr(handler, "__self__", None)
            if isinstance(owner, SegmentationReportHandler) and owner.output_dir is not None and owner not in found:
                found.append(owner)
    return found


def record_failures(engine, failures: CaseFailures) -> list[Path]:
    """Add the failed cases (``case``, ``file``, ``problem``) to the metrics JSON of every report handler of
    ``engine`` under ``"failures"``; when every case failed (no JSON was written), write one with no rows,
    so a run never ends without its metrics file. Returns the files written."""
    import json

    from monai_attn.atomic import write_text_atomic

    written = []
    listed = [{"case": f.case, "file": f.file, "problem": f.message} for f in failures]
    for handler in _report_handlers(engine):
        path = Path(handler.output_dir) / f"{handler.filename}.json"
        doc = {"rows": [], "summary": {}}
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
            except ValueError:
                logger.warning("%s: unreadable, written again with the failures only", path)
        else:
            doc["note"] = "every case failed: nothing was scored"
        doc["failures"] = listed
        written.append(write_text_atomic(json.dumps(doc, indent=2) + "\n", path))
    return written


def run_keep_going(engine, failures: CaseFailures | None = None) -> None:
    """Run ``engine`` (an evaluator over a :class:`KeepGoingDataLoader`), then list every failed
    case (logged once) and end with ``SystemExit`` (exit status 1, message ``error: N case(s) failed ...``)
    if there was any.

    This is the ``run`` step of the bundles' ``inference.json`` / ``evaluate.json``: the good
    cases are all processed and written, and ``python -m monai.bundle run`` exits non-zero with
    the list of failures at the end of its output. The failures are also listed in the metrics JSON
    of evaluation (:func:`record_failures`); when every case fails, the run stops before computing
    metrics over nothing and still writes that JSON.
    """
    from ignite.engine import Events

    failures = failures if failures is not None else getattr(engine.data_loader, "failures", CaseFailures())

    def nothing_loaded(e) -> None:
        if e.state.iteration == 0 and len(failures):
            # every case failed: end the run before the metrics are computed over nothing (MONAI's would raise,
            # each handler logging a traceback); ignite has no public way to stop the other handlers of an event
            from ignite.engine.engine import _EngineTerminateException

            logger.error("every case failed: nothing to process or score")
            e.terminate(skip_completed=True)
            raise _EngineTerminateException()

    engine.add_event_handler(Events.EPOCH_COMPLETED, nothing_loaded)
    handlers = engine._event_handlers[Events.EPOCH_COMPLETED]
    handlers.insert(0, handlers.pop())  # before the metrics' handlers
    try:
        engine.run()
    except Exception as e:
        if not len(failures):
            raise
        from monai_attn.errors import error_line, find_user_error

        user = find_user_error(e)
        if user is not None:
            logger.error("the run stopped: %s", error_line(user).removeprefix("error: "))
        else:
            logger.exception("the run stopped")
    finally:
        engine.remove_event_handler(nothing_loaded, Events.EPOCH_COMPLETED)
    if len(failures):
        record_failures(engine, failures)
        logger.error("%s", failures.format())  # the list, once
        raise SystemExit(f"error: {len(failures)} case(s) failed and were skipped (listed above); fix or remove "
                         f"those files, the other cases were processed")
