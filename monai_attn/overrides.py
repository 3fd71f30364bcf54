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

__all__ = ["as_bool", "check_overrides", "unknown_overrides", "override_type_problems", "parse_cli_overrides",
           "literal_value", "config_ids", "run_arguments"]

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

    names = {"workflow_name", "workflow_type", "properties_path", "help"}  # --help: check_overrides lists the keys
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


#: keys whose value must be at least 1 (counts) or above 0 (rates), whatever the bundle
_POSITIVE_INTS = {"num_epochs", "batch_size", "val_interval", "sw_batch_size", "in_channels", "out_channels"}
_POSITIVE_FLOATS = {"learning_rate"}
_KIND_WORDS = {bool: "true or false", int: "an integer", float: "a number"}


def _is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("$", "@", "%"))


def _is_shape_key(key: str) -> bool:
    """Keys whose list value is a shape, one entry per spatial dimension (``roi_size``, ``image_size``,
    ``spacing``...): only these must keep their length."""
    return key.rpartition("#")[2].endswith(("size", "shape", "spacing"))


def _value_kind_problem(value: Any, default: Any, fixed_length: bool = True) -> str | None:
    """Why ``value`` (an override, as fire parsed it) cannot stand for ``default`` (the config's value),
    judged by the default's type: ints take ints (``2.5`` and ``"abc"`` are refused, not rounded or
    passed on), floats take numbers, bools take true/false, lists take lists of the same length and
    element kind (any length unless ``fixed_length``: a list of epochs, say, is not a shape). ``None`` when it
    fits, or when the default gives no type (strings, None, expressions)."""
    if _is_expression(value) or default is None or _is_expression(default):
        return None
    if isinstance(default, bool):
        if isinstance(value, bool) or value in (0, 1):
            return None
        if isinstance(value, str):
            try:
                as_bool(value)
                return None
            except ValueError:
                pass
        return f"expected true or false, got {value!r}"
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return None
        return f"expected an integer, got {value!r}"
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
        return f"expected a number, got {value!r}"
    if isinstance(default, (list, tuple)) and default and not isinstance(default[0], (dict, list, tuple)):
        kinds = {type(d) for d in default}
        kind = float if kinds <= {int, float} and float in kinds else kinds.pop() if len(kinds) == 1 else None
        count = f"{len(default)} " if fixed_length else ""
        what = f"a list of {count}{_KIND_WORDS.get(kind, 'values')}".replace("an integer", "integers") \
            .replace("a number", "numbers").replace("true or false", "booleans")
        example = "[" + ", ".join(map(str, default)) + "]"
        if not isinstance(value, (list, tuple)) or (fixed_length and len(value) != len(default)):
            return f"expected {what} like {example}, got {value!r}"
        for v in value:
            if kind in _KIND_WORDS and _value_kind_problem(v, kind(default[0])):
                return f"expected {what} like {example}, got {value!r}"
        return None
    return None


def _range_problem(key: str, value: Any) -> str | None:
    leaf = key.rpartition("#")[2]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if leaf == "roi_size" and isinstance(value, (list, tuple)) and any(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v < 1 for v in value):
            return f"every size must be at least 1, got {list(value)}"
        return None
    if leaf in _POSITIVE_INTS and value < 1:
        return f"must be at least 1, got {value!r}"
    if leaf in _POSITIVE_FLOATS and value <= 0:
        return f"must be positive, got {value!r}"
    return None


def _device_problem(value: Any) -> str | None:
    if _is_expression(value) or not isinstance(value, str):
        return None
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        return f"not a device: {value!r} (expected cpu, cuda or cuda:N)"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine (no GPU, or a CPU-only torch); use --device cpu"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"there is no GPU {device.index} (this machine has {torch.cuda.device_count()})"
    return None


def _dataset_name(config: Mapping) -> str | None:
    from monai_attn.data import ADAPTERS

    for key in ("dataset_name", "dataset"):
        value = config.get(key)
        if isinstance(value, str) and value in ADAPTERS:
            return value
    return None


def _network_problem(config: Mapping, overrides: Mapping[str, Any]) -> tuple[str, str] | None:
    """(key, problem) when the overridden ``roi_size`` / ``in_channels`` / ``network_name`` do not suit the
    data or the network: ``in_channels`` must be the dataset's number of channels, and the network's own
    size rule (``check_input_size``, when it has one) must accept a ``roi_size`` patch."""
    from monai_attn.data import ADAPTERS

    dataset = _dataset_name(config)
    channels = overrides.get("in_channels")
    if dataset and isinstance(channels, int) and not isinstance(channels, bool):
        expected = ADAPTERS[dataset].channels
        if expected and channels != len(expected):
            return "in_channels", (f"{dataset} images have {len(expected)} channels ({', '.join(expected)}), "
                                   f"not {channels}; leave --in_channels at {len(expected)}")
    if "network_def" not in config or not ({"roi_size", "network_name", "in_channels", "network_def"} & set(overrides)):
        return None
    from monai.bundle import ConfigParser

    parser = ConfigParser(dict(config))
    for key, value in overrides.items():
        if key in config_ids(config):
            parser[key.replace("::", "#")] = value
    try:
        network = parser.get_parsed_content("network_def", instantiate=True)
        roi = parser.get_parsed_content("roi_size") if "roi_size" in config else None
        in_channels = parser.get_parsed_content("in_channels") if "in_channels" in config else None
    except Exception as e:  # noqa: BLE001 - the run itself will report it, with its file
        logger.debug("check_overrides: cannot build the network to check its input size (%s)", e)
        return None
    check = getattr(network, "check_input_size", None)
    if callable(check) and isinstance(roi, (list, tuple)) and isinstance(in_channels, int):
        try:
            check([1, in_channels, *roi])
        except ValueError as e:
            key = "roi_size" if "roi_size" in overrides or "network_name" not in overrides else "network_name"
            return key, f"{str(e).rstrip('.')}; choose another --roi_size"
    return None


def override_type_problems(config: Mapping, overrides: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, problem)`` for each override whose value does not fit the config: its type differs from
    the config's default value (an int key given ``abc`` or ``2.5``, a list key given a number or a list
    of another length), a count below 1 or a learning rate not above 0, a CUDA ``device`` on a machine
    without CUDA, an ``in_channels`` other than the dataset's number of channels, or a ``roi_size`` that
    the network's own size rule (``check_input_size``) refuses."""
    ids = config_ids(config)
    problems: list[tuple[str, str]] = []
    for raw, value in overrides.items():
        key = str(raw).replace("::", "#")
        if key not in ids:
            continue
        problem = _device_problem(value) if key.rpartition("#")[2] == "device" else None
        problem = problem or _value_kind_problem(value, ids[key], _is_shape_key(key)) \
            or _range_problem(key, value)
        if problem:
            problems.append((key, problem))
    if not problems:
        found = _network_problem(config, overrides)
        if found:
            problems.append(found)
    return problems


def _is_bundle_run(argv: Sequence[str]) -> bool:
    if len(argv) < 2 or argv[1] != "run":
        return False
    parts = Path(argv[0]).parts
    return len(parts) >= 3 and parts[-3:] == ("monai", "bundle", "__main__.py")


def _load_structured(path: str) -> dict:
    from monai.bundle import ConfigParser

    return dict(ConfigParser.load_config_file(path))


def _options_hint(paths: Sequence[str]) -> str:
    """The command listing the options of the config files ``paths``: ``monai-attn options BUNDLE CONFIG``
    (or ``--help`` on the same command line when the files are not in a bundle's configs/ folder)."""
    last = Path(paths[-1])
    names = tuple(Path(p).name for p in paths)
    from monai_attn.options import CONFIG_SETS

    config = next((n for n, files in CONFIG_SETS.items() if files == names), None)
    if last.parent.name == "configs" and config:
        return f"monai-attn options {last.parent.parent} {config}"
    return "add --help to this command line"


def check_overrides(argv: Sequence[str] | None = None) -> list[str]:
    """Stop a ``python -m monai.bundle run`` whose command line overrides a key that the configs do not
    have (a misspelling such as ``--flod 1``), before anything runs.

    Reads ``sys.argv`` (or ``argv``); does nothing unless it is a ``monai.bundle run`` command line
    (so it is harmless when a config is parsed from Python). On unknown keys, logs them and raises
    ``SystemExit`` with a message naming the config files, each unknown key and the closest
    existing key: ``python -m monai.bundle run`` exits with status 1. With ``--help`` it prints every
    top-level key of the configs with its default and meaning (:mod:`monai_attn.options`) and exits 0.

    Returns the (empty) list of problems otherwise.
    """
    from monai.bundle import ConfigParser

    argv = list(sys.argv if argv is None else argv)
    if not _is_bundle_run(argv):
        return []
    from monai_attn.errors import install_excepthook

    install_excepthook()
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
    paths = [config_file] if isinstance(config_file, str) else [str(f) for f in config_file]
    files, names = ", ".join(paths), ", ".join(os.path.basename(f) for f in paths)
    if "help" in overrides or "h" in overrides:  # `--help`: the options of these configs, then stop
        from monai_attn.options import format_options, option_rows

        sys.stdout.write(format_options(option_rows(config, paths[-1]), f"{names}: every option (--<key> <value>), "
                                        "its default and its meaning:") + "\n")
        raise SystemExit(0)
    problems = unknown_overrides(config, list(overrides), run_arguments())
    if problems:
        keys = ", ".join(m.split(":", 1)[0] for m in problems)
        text = (f"{names}: unknown override(s) on the command line, nothing was run (a misspelt key would "
                f"otherwise be added silently):\n" + "\n".join(f"  {m}" for m in problems)
                + f"\n(config files: {files})\nerror: {keys}: no such key in {names}; fix the spelling (nested "
                f"keys are written --parent#key; a new key goes in a config file; every key, its default and "
                f"meaning: {_options_hint(paths)})")
        logger.error("%s", text.rsplit("\n", 1)[0])
        raise SystemExit(text)
    wrong = override_type_problems(config, overrides)
    if wrong:
        text = "\n".join(f"error: --{key}: {problem}" + ("" if "; " in problem else "; nothing was run, fix the value")
                         for key, problem in wrong)
        raise SystemExit(text)
    return problems
