"""When to draw progress bars, and a bar over any loop: one rule for the whole package.

Bars are shown only when someone can see them (:func:`show_progress`): not under ``CI=true`` and not when stderr
is not a terminal (a log file, a pipe), where tqdm's carriage returns would only add noise.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable

__all__ = ["show_progress", "progress"]

_TRUE = ("1", "true", "yes", "on")


def show_progress(stream=None) -> bool:
    """Whether to draw progress bars: ``False`` under ``CI=true`` (any CI service sets it) or when ``stream``
    (default ``sys.stderr``, where tqdm draws) is not a terminal; ``True`` otherwise."""
    if os.environ.get("CI", "").strip().lower() in _TRUE:
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress(iterable: Iterable, total: int | None = None, desc: str = "", enabled: bool | None = None) -> Iterable:
    """``iterable`` wrapped in a tqdm bar when ``enabled`` (``None``: :func:`show_progress`), else as it is."""
    if not (show_progress() if enabled is None else enabled):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)
