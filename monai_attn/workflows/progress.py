"""Progress you can see: one bar per run counting cases, quiet where nobody watches.

ignite's ``ProgressBar`` counts iterations against ``engine.state.epoch_length``; over a
:class:`~monai_attn.workflows.KeepGoingDataLoader` (which has no length: failed cases are skipped, and a
known epoch length would make ignite restart the loader when it ends early) it reads ``[6/?] 0%``
for the whole run. :class:`CaseProgressBar` here counts the *cases* of such a loader (good and failed)
against the number of cases, and otherwise behaves as ignite's.

Bars are shown only when someone can see them (:func:`show_progress`): not under ``CI=true`` and not
when stderr is not a terminal (a log file, a pipe), where tqdm's carriage returns would only add noise.
"""
from __future__ import annotations

from typing import Any

from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar as IgniteProgressBar

from monai_attn.progress import show_progress

__all__ = ["show_progress", "CaseProgressBar"]


class CaseProgressBar(IgniteProgressBar):
    """ignite's ``ProgressBar`` that knows the number of cases of a keep-going run and stays quiet unseen.

    Attached to an engine whose ``data_loader`` is a :class:`~monai_attn.workflows.KeepGoingDataLoader`
    (inference, evaluation), the bar counts cases, failed ones included, against the number of cases:
    ``Cases [3/6] 50%|█████     | [00:12<00:12, failed=1]``. On any other engine (training) it is
    ignite's bar (iterations of the epoch).

    Args:
        persist: keep the bar on screen when it ends. Defaults to False.
        enabled: draw the bar; ``None`` (default) decides with :func:`show_progress` (off under ``CI=true``
            or when stderr is not a terminal). A command-line string (``"false"``) is read as a bool.
        tqdm_kwargs: passed to ``tqdm`` (e.g. ``desc``, ``file``).
    """

    def __init__(self, persist: bool = False, enabled: bool | str | None = None, **tqdm_kwargs: Any) -> None:
        from monai_attn.overrides import as_bool

        super().__init__(persist=persist, **tqdm_kwargs)
        self.enabled = show_progress(tqdm_kwargs.get("file")) if enabled is None else as_bool(enabled, "enabled")

    def attach(self, engine: Engine, metric_names=None, output_transform=None,  # type: ignore[override]
               event_name=Events.ITERATION_COMPLETED, closing_event_name=Events.EPOCH_COMPLETED,
               state_attributes=None) -> None:
        if not self.enabled:
            return
        from .keep_going import KeepGoingDataLoader

        loader = getattr(engine, "data_loader", None)
        if not isinstance(loader, KeepGoingDataLoader):
            super().attach(engine, metric_names, output_transform, event_name, closing_event_name, state_attributes)
            return
        engine.add_event_handler(Events.EPOCH_STARTED, self._open_cases, loader)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._update_cases, loader)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._close_cases, loader)
        engine.add_event_handler(Events.TERMINATE, self._close_cases, loader)

    def _open_cases(self, engine: Engine, loader) -> None:
        self._close(engine)
        desc = self.tqdm_kwargs.get("desc") or "Cases"
        kwargs = {k: v for k, v in self.tqdm_kwargs.items() if k != "desc"}
        self.pbar = self.pbar_cls(total=loader.num_cases, desc=desc, leave=self.persist, unit="case",
                                  bar_format="{desc} [{n_fmt}/{total_fmt}] {percentage:3.0f}%|{bar}| "
                                             "[{elapsed}<{remaining}{postfix}]", **kwargs)

    def _update_cases(self, engine: Engine, loader) -> None:
        if self.pbar is None:
            self._open_cases(engine, loader)
        failed = len(loader.failures)
        if failed:
            self.pbar.set_postfix_str(f"failed={failed}", refresh=False)
        self.pbar.update(loader.cases_seen - self.pbar.n)

    def _close_cases(self, engine: Engine, loader) -> None:
        if self.pbar is not None:
            self._update_cases(engine, loader)
        self._close(engine)
