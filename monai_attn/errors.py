"""Exception types for bad inputs: every message starts with the file concerned, then the problem.

See docs/troubleshooting.md for the catalogue of bad inputs, their messages and what to do.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["BadInputError", "MissingInputError", "find_bad_input", "find_user_error", "error_line",
           "install_excepthook", "debug_requested", "DEBUG_ENV", "EXIT_OK", "EXIT_DATA", "EXIT_USAGE"]

#: environment variable that asks for the full traceback instead of the one ``error:`` line
DEBUG_ENV = "MONAI_ATTN_DEBUG"
#: what to do when a message carries no advice of its own
DEFAULT_HINT = "see docs/troubleshooting.md"
#: OS errors that name a file and come from the user's setup (permissions, folders, links)
_USER_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
_PACKAGE_DIR = str(Path(__file__).resolve().parent)

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
    return next((e for e in _chain(error) if isinstance(e, BadInputError)), None)


def _raised_by_package(error: BaseException) -> bool:
    """Whether ``error`` is one of this package's checks (the innermost frame of its traceback is our code)
    or, for an OS error (permission denied, not a directory ...), one met by an OS call that our code made
    on a user's file (our code is on its traceback) -- not a library's internal failure."""
    tb = error.__traceback__
    ours = []
    while tb is not None:
        ours.append(os.path.realpath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep))
        tb = tb.tb_next
    return bool(ours) and (ours[-1] or (isinstance(error, OSError) and any(ours)))


def _chain(error: BaseException):
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def find_user_error(error: BaseException) -> BaseException | None:
    """The user mistake behind ``error``, found in its chain of causes (MONAI wraps the errors of config
    expressions and transforms in ``RuntimeError`` s): a :class:`BadInputError`, or a ``ValueError`` /
    ``FileNotFoundError`` / ``PermissionError`` / ``IsADirectoryError`` / ``NotADirectoryError`` raised
    by this package's code. ``None`` for anything else (an internal failure keeps its traceback)."""
    bad = find_bad_input(error)
    if bad is not None:
        return bad
    for e in _chain(error):
        if isinstance(e, (ValueError,) + _USER_OS_ERRORS) and _raised_by_package(e):
            return e
    return None


def error_line(error: BaseException) -> str:
    """``error: <file or key>: <problem>; <what to do>`` for a user mistake (see :func:`find_user_error`);
    a message of several lines gives its first line here (print the others before it)."""
    if isinstance(error, BadInputError):
        return f"error: {error.path}: {error.problem}; {error.hint or DEFAULT_HINT}"
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        problem = error.strerror[0].lower() + error.strerror[1:]
        if isinstance(error, FileExistsError) and not os.path.isdir(error.filename):
            problem = "is a file where a folder is needed"  # mkdir(exist_ok=True) on a file
        return f"error: {error.filename}: {problem}; check the path and its permissions"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    head, dash, hint = text.partition(" — ")
    if dash:
        return f"error: {head}; {hint}"
    return f"error: {text}" if "; " in text else f"error: {text}; {DEFAULT_HINT}"


def debug_requested() -> bool:
    """Whether the environment asks for full tracebacks (``MONAI_ATTN_DEBUG=1``)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def _excepthook(exc_type, error, tb, previous=None) -> None:
    user = None if debug_requested() or not isinstance(error, Exception) else find_user_error(error)
    if user is None:
        (previous or sys.__excepthook__)(exc_type, error, tb)
        return
    for line in str(user).strip().splitlines()[1:]:  # the details of a message of several lines
        sys.stderr.write(line + "\n")
    sys.stderr.write(error_line(user) + "\n")
    sys.stderr.flush()


def install_excepthook() -> None:
    """Make an uncaught user mistake (see :func:`find_user_error`) end the process with one line,
    ``error: <file or key>: <problem>; <what to do>``, and exit status 1, instead of a traceback through
    MONAI's config parser. Anything else keeps Python's traceback; so does everything when
    ``MONAI_ATTN_DEBUG=1``. Installed by :func:`monai_attn.overrides.check_overrides`, the first
    ``initialize`` step of every bundle config; installing twice is harmless."""
    if getattr(sys.excepthook, "_monai_attn", False):
        return
    previous = sys.excepthook

    def hook(exc_type, error, tb):
        _excepthook(exc_type, error, tb, previous)

    hook._monai_attn = True  # type: ignore[attr-defined]
    sys.excepthook = hook
