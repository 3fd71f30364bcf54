"""Exception types for bad inputs: every message starts with the file concerned, then the problem.

See docs/troubleshooting.md for the catalogue of bad inputs, their messages and what to do.
"""
from __future__ import annotations

import os

__all__ = ["BadInputError", "MissingInputError", "find_bad_input", "EXIT_OK", "EXIT_DATA", "EXIT_USAGE"]

#: exit statuses of ``monai-attn`` commands: success, a problem with the data, a usage mistake
EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2


class BadInputError(ValueError):
    """An input file (image, label, datalist, checkpoint, ...) that cannot be used as it is.

    ``str(error)`` is ``"<path>: <problem>"`` (plus ``" — <hint>"`` when a hint is given), so a
    log line or a failure list names the file first.

    Args:
        path: the file (or folder) concerned.
        problem: what is wrong with it, in words.
        hint: optionally, what to do about it.
    """

    def __init__(self, path: str | os.PathLike, problem: str, hint: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.hint = hint
        super().__init__(f"{self.path}: {problem}" + (f" — {hint}" if hint else ""))

    def __reduce__(self):  # keep the fields when sent back from a DataLoader worker process
        return (type(self), (self.path, self.problem, self.hint))


class MissingInputError(BadInputError, FileNotFoundError):
    """An input file that does not exist (also a ``FileNotFoundError``)."""


def find_bad_input(error: BaseException) -> BadInputError | None:
    """The first :class:`BadInputError` in ``error``'s chain of causes/contexts (MONAI's ``Compose``
    and config expressions wrap the errors of their steps in ``RuntimeError`` s), or ``None``."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        if isinstance(e, BadInputError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None
