"""Catch misspelt command-line overrides of a bundle run before anything runs.

``python -m monai.bundle run --config_file train.json --flod 1`` silently *adds* a key ``flod``
and trains fold 0. The bundles' ``initialize`` steps start with
:func:`check_overrides`, which reads the command line of the running ``monai.bundle run``,
loads the same config files, and stops the run (exit status 1) when an override names no key of
the config, suggesting the closest one::

    train.json: unknown override --flod (did you mean --fold?)

Accepted: every key of the merged configs (nested keys as ``--parent#key``), the arguments of
``monai.bundle run`` itself, and new arguments of a config component (``--loss#smooth_nr 0``)
when its ``_target_`` accepts them. A new top-level key, or a new key in a plain section, is
refused: write it in a config file (e.g. a third one merged on the command line) instead.
"""
from __future__ import annotations

import ast
import difflib
import inspect
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["as_bool", "check_overrides", "unknown_overrides", "parse_cli_overrides", "literal_value", "config_ids", "run_arguments"]

logger = logging.getLogger(__name__)

#: settings that ``--tracking mlflow`` adds to a config
_TRACKING_KEYS = {"output_dir", "tracking_uri", "experiment_name", "run_name", "save_execute_config",
                  "execute_config", "is_not_rank0"}


def as_bool(value, name: str = "value") -> bool:
    """``value`` as a bool; strings from a command line (``--resume true``, ``False``, ``0``, ``yes``)
    are read by their meaning, so ``"false"`` is ``False`` (a non-empty string would be truthy)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes", "y", "on"):
            return True
        if text in ("false", "0", "no", "n", "off", "", "none"):
            return False
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return bool(value)


def run_arguments() -> set[str]:
    """Names of the arguments of ``monai.bundle run`` that are not config overrides."""
    from monai.bundle import ConfigWorkflow
    from monai.bundle.scripts import create_workflow, run

    names = {"workflow_name", "workflow_type", "properties_path"}
    for fn in (run, create_workflow, ConfigWorkflow.__init__):
        for p in inspect.signature(fn).parameters.values():
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self":
                names.add(p.name)
    return names


def parse_cli_overrides(argv: Sequence[str]) -> dict[str, Any]:
    """The ``--key value`` / ``--key=value`` / ``--flag`` pairs of a ``monai.bundle run`` command
    line (``argv`` after ``run``), the way ``fire`` reads them: ``-`` in keys becomes ``_``, values are
    Python literals when they parse as such."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("--") or token == "--":
            continue  # a positional argument (run_id)
        key, eq, value = token[2:].partition("=")
        if not eq:
            if i < len(argv) and not argv[i].startswith("--"):
                value = argv[i]
                i += 1
            else:
                value = "True"
        out[key.replace("-", "_")] = literal_value(value)
    return out


def literal_value(value: str) -> Any:
    """A command-line value as ``fire`` reads it: a Python literal when it parses as one, else the string."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def config_ids(config: Any, prefix: str = "") -> dict[str, Any]:
    """Every id of a (merged, nested) config, ``#``-separated, mapped to its node."""
    ids: dict[str, Any] = {}
    if isinstance(config, Mapping):
        children = ((str(k), v) for k, v in config.items())
    elif isinstance(config, list):
        children = ((str(i), v) for i, v in enumerate(config))
    else:
        return ids
    for key, value in children:
        cid = f"{prefix}#{key}" if prefix else key
        ids[cid] = value
        ids.update(config_ids(value, cid))
    return ids


def _target_callable(target: Any):
    from pydoc import locate

    if not isinstance(target, str) or target.startswith(("$", "@", "%")):
        return None
    obj = locate(target)
    if obj is None:
        from monai.bundle.config_item import ComponentLocator

        module = ComponentLocator().get_component_module_name(target)
        if isinstance(module, list):
            module = module[0] if module else None
        obj = locate(f"{module}.{target}") if module else None
    return obj


def _component_accepts(node: Any, name: str) -> tuple[bool, list[str]]:
    """Whether a config component (a dict with ``_target_``) takes an argument ``name``, and the
    names it takes (for suggestions)."""
    if not isinstance(node, Mapping) or "_target_" not in node:
        return False, []
    if name.startswith("_") and name.endswith("_"):
        return True, []  # _disabled_, _requires_, _desc_, _mode_
    obj = _target_callable(node["_target_"])
    if obj is None:
        return True, []  # cannot tell: let MONAI report it
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return True, []
    names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return name in names or any(p.kind == p.VAR_KEYWORD for p in params), names


def unknown_overrides(config: Mapping, keys: Iterable[str], run_args: Iterable[str] = ()) -> list[str]:
    """Messages for the override ``keys`` that name nothing in ``config`` (merged config dict).

    A key is accepted when it is an id of the config, an argument of ``monai.bundle run``
    (``run_args``), ``_meta_#...``, or a new argument of a component whose ``_target_`` takes it.
    """
    ids = config_ids(config)
    run_args = set(run_args)
    keys = list(keys)
    messages = []
    for raw in keys:
        key = str(raw).replace("::", "#")
        if key in ids or key in run_args or key.startswith("_meta_"):
            continue
        if "tracking" in keys and key in _TRACKING_KEYS:
            continue
        parent, _, leaf = key.rpartition("#")
        candidates = list(ids) + sorted(run_args)
        if parent and parent in ids:
            accepted, names = _component_accepts(ids[parent], leaf)
            if accepted:
                continue
            candidates = [f"{parent}#{n}" for n in names] + candidates
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
        hint = f"; did you mean --{close[0]}?" if close else ""
        where = f"under '{parent}'" if parent and parent in ids else "in the config"
        messages.append(f"--{raw}: no such key {where}{hint}")
    return messages


def _is_bundle_run(argv: Sequence[str]) -> bool:
    if len(argv) < 2 or argv[1] != "run":
        return False
    parts = Path(argv[0]).parts
    return len(parts) >= 3 and parts[-3:] == ("monai", "bundle", "__main__.py")


def _load_structured(path: str) -> dict:
    from monai.bundle import ConfigParser

    return dict(ConfigParser.load_config_file(path))


def check_overrides(argv: Sequence[str] | None = None) -> list[str]:
    """Stop a ``python -m monai.bundle run`` whose command line overrides a key that the configs do not
    have (a misspelling such as ``--flod 1``), before anything runs.

    Reads ``sys.argv`` (or ``argv``); does nothing unless it is a ``monai.bundle run`` command line
    (so it is harmless when a config is parsed from Python). On unknown keys, logs them and raises
    ``SystemExit`` with a message naming the config files, each unknown key and the closest
    existing key: ``python -m monai.bundle run`` exits with status 1.

    Returns the (empty) list of problems otherwise.
    """
    from monai.bundle import ConfigParser

    argv = list(sys.argv if argv is None else argv)
    if not _is_bundle_run(argv):
        return []
    overrides = parse_cli_overrides(argv[2:])
    args_file = overrides.get("args_file")
    if args_file:
        for k, v in _load_structured(str(args_file)).items():
            overrides.setdefault(k, v)
    config_file = overrides.get("config_file")
    if not config_file:
        return []
    try:
        config = ConfigParser.load_config_files(config_file)
    except Exception as e:  # noqa: BLE001 - MONAI reports unreadable configs itself
        logger.debug("check_overrides: cannot load %s (%s)", config_file, e)
        return []
    problems = unknown_overrides(config, list(overrides), run_arguments())
    if problems:
        paths = [config_file] if isinstance(config_file, str) else [str(f) for f in config_file]
        files, names = ", ".join(paths), ", ".join(os.path.basename(f) for f in paths)
        text = (f"{names}: unknown override(s) on the command line, nothing was run (a misspelt key would "
                f"otherwise be added silently):\n" + "\n".join(f"  {m}" for m in problems)
                + f"\n(config files: {files})")
        logger.error("%s", text)
        raise SystemExit(text)
    return problems
