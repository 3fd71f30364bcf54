"""Every code block of README.md and docs/*.md is exercised, so the docs cannot rot.

* ```python blocks run (``exec``) in a temporary folder.
* ```json blocks parse (a fragment such as ``"key": {...}`` inside braces); bundle-config snippets with
  ``imports`` resolve with MONAI's ``ConfigParser``; every ``_target_`` names a component that exists.
* ```bash blocks: every command is checked without running the long work it describes:
  ``make`` targets exist in the Makefile; ``monai-attn``/``python -m monai_attn`` command lines parse
  with the real argument parser; ``python -m monai.bundle run`` (also under ``torchrun``) names config
  files that exist and only overrides keys those configs have (the bundles' own misspelling check);
  other ``monai.bundle`` subcommands name existing files and network ids; ``python SCRIPT.py`` scripts
  exist and answer ``--help``; ``pip install`` names existing extras; ``cd`` goes to an existing folder.
  A command no rule knows fails the test: add a rule here, or write the block as ```text.
* A ```bash block whose fence is preceded by the line ``<!-- docs-test: run -->`` (or
  ``<!-- docs-test: run slow -->``, for the ``slow`` marker) is in addition *executed* with bash in a
  temporary folder that links the repository's ``bundles/``, with this interpreter's ``bin/`` first on
  ``PATH`` (so ``python`` and ``monai-attn`` are the ones under test).
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
RUN_MARK = re.compile(r"<!--\s*docs-test:\s*run(\s+slow)?\s*-->\s*$")
SHELLS = {"bash", "sh", "shell", "console"}


def _blocks(lang: set[str]):
    """(doc, index, code, run_mark) of the fenced blocks in ``lang``; run_mark is None, "run" or "run slow"."""
    for doc in DOCS:
        text = doc.read_text()
        counts: dict[str, int] = {}
        for match in FENCE.finditer(text):
            tag = match.group(1)
            if tag not in lang:
                continue
            i = counts[tag] = counts.get(tag, -1) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            mark = RUN_MARK.search(before)
            yield doc, f"{tag}{i}", match.group(2), (None if not mark else "run slow" if mark.group(1) else "run")


def _param(doc, key, *values, marks=()):
    return pytest.param(*values, id=f"{doc.relative_to(ROOT)}#{key}", marks=marks)


# ------------------------------------------------------------------------------------------- python
@pytest.mark.parametrize("code", [_param(d, k, c) for d, k, c, _ in _blocks({"python"})])
def test_python_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<doc>", "exec"), {"__name__": "__doc_example__"})


def test_readme_has_the_drop_in_example():
    assert "AdaptiveLogLoss(TverskyBCELoss(sigmoid=True))" in (ROOT / "README.md").read_text()


# --------------------------------------------------------------------------------------------- json
def _targets(node):
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            yield node["_target_"]
        for v in node.values():
            yield from _targets(v)
    elif isinstance(node, list):
        for v in node:
            yield from _targets(v)


@pytest.mark.parametrize("text", [_param(d, k, c) for d, k, c, _ in _blocks({"json"})])
def test_json_block_parses_and_names_real_components(text):
    from monai.bundle import ConfigParser
    from monai.bundle.config_item import ComponentLocator

    import monai_attn  # noqa: F401  (registers the short names)

    stripped = text.strip()
    config = json.loads(stripped if stripped.startswith(("{", "[")) else "{" + stripped + "}")
    locator = ComponentLocator()
    for target in _targets(config):
        assert locator.get_component_module_name(target) or "." in target, f"unknown _target_ {target!r}"
    if isinstance(config, dict) and "imports" in config:
        parser = ConfigParser(config)
        for key in config:
            if key != "imports":
                assert parser.get_parsed_content(key) is not None


# --------------------------------------------------------------------------------------------- bash
def _commands(code: str) -> list[list[str]]:
    """The block's commands as argument lists: continuation lines joined, comments and ``VAR=value``
    prefixes dropped, ``&&``-chains split."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        while tokens and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[0]):
            tokens.pop(0)
        command: list[str] = []
        for tok in tokens + ["&&"]:
            if tok in ("&&", ";", "||"):
                if command:
                    out.append(command)
                command = []
            else:
                command.append(tok)
    return out


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.M))


def _extras() -> set[str]:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg")
    return set(cfg["options.extras_require"])


def _literal(value: str):
    import ast

    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _config_files(value, cwd: Path) -> list[Path]:
    value = _literal(value) if isinstance(value, str) else value
    files = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [(cwd / str(f).strip()).resolve() for f in files]


def _check_bundle(args: list[str], cwd: Path) -> None:
    """``python -m monai.bundle SUBCOMMAND ARGS`` run from ``cwd``."""
    from monai.bundle import ConfigParser

    from monai_attn.overrides import parse_cli_overrides, run_arguments, unknown_overrides

    sub, rest = args[0], args[1:]
    opts = parse_cli_overrides(rest)
    assert "config_file" in opts, f"monai.bundle {sub} without --config_file"
    files = _config_files(opts["config_file"], cwd)
    if cwd == ROOT and not all(f.is_file() for f in files):
        # a command shown without its `cd`: it must hold in (at least) one bundle's folder
        errors = []
        for bundle in sorted((ROOT / "bundles").iterdir()):
            try:
                return _check_bundle(args, bundle)
            except AssertionError as e:
                errors.append(f"{bundle.name}: {e}")
        pytest.fail("valid in no bundle folder:\n" + "\n".join(errors))
    for f in files:
        assert f.is_file(), f"config file {f} does not exist"
    for key in ("meta_file", "logging_file"):
        if key in opts:
            assert (cwd / str(opts[key])).is_file(), f"--{key} {opts[key]} does not exist"
    config = ConfigParser.load_config_files([str(f) for f in files])
    if sub == "run":
        problems = unknown_overrides(config, list(opts), run_arguments())
        assert not problems, problems
        return
    import monai.bundle.scripts as scripts

    assert callable(getattr(scripts, sub, None)), f"monai.bundle has no subcommand {sub}"
    positional = [t for t in rest if not t.startswith("--")][:1]
    net_id = opts.get("net_id") or (positional[0] if positional else None)
    if net_id:
        assert net_id in config, f"{net_id!r} is not a key of {[f.name for f in files]}"


def _check_command(tokens: list[str], cwd: Path) -> Path:
    """Check one command; returns the working directory after it."""
    name, args = tokens[0], tokens[1:]
    if name == "cd":
        new = (cwd / args[0]).resolve()
        assert new.is_dir(), f"cd {args[0]}: no such folder"
        return new
    if name == "make":
        targets = [a for a in args if not a.startswith("-") and "=" not in a]
        missing = set(targets) - _make_targets()
        assert not missing, f"make targets not in the Makefile: {missing}"
        return cwd
    if name == "torchrun":
        assert "-m" in args, "torchrun without -m"
        return _check_command(["python", *args[args.index("-m"):]], cwd)
    if name == "monai-attn":
        name, args = "python", ["-m", "monai_attn", *args]
    if name in ("pip", "pip3"):
        name, args = "python", ["-m", "pip", *args]
    if name in ("python", "python3"):
        if args[:2] == ["-m", "pip"]:
            assert args[2:3] == ["install"], f"unexpected pip command {args}"
            for spec in args[3:]:
                m = re.match(r"^\.\[([\w,-]+)\]$", spec)
                if m:
                    assert set(m.group(1).split(",")) <= _extras(), f"unknown extra in {spec}"
            return cwd
        if args[:2] == ["-m", "monai_attn"]:
            from monai_attn.cli import build_parser

            try:
                build_parser().parse_args(args[2:])
            except SystemExit as e:
                pytest.fail(f"monai-attn {' '.join(args[2:])}: not a valid command line (exit {e.code})")
            return cwd
        if args[:2] == ["-m", "monai.bundle"]:
            _check_bundle(args[2:], cwd)
            return cwd
        if args and args[0].endswith(".py"):
            script = cwd / args[0]
            assert script.is_file(), f"{args[0]}: no such script"
            proc = subprocess.run([sys.executable, str(script), "--help"], cwd=cwd, capture_output=True, text=True,
                                  timeout=300)
            assert proc.returncode == 0, proc.stderr[-2000:]
            return cwd
    pytest.fail(f"no docs-test rule for the command {' '.join(tokens)!r}: add one to tests/test_docs.py, "
                "or write the block as ```text")


def _shell_blocks():
    """The shell blocks with the folder each starts in: a doc is read as one session, so a ``cd`` in one
    block holds for the doc's later blocks."""
    cwd: dict[Path, Path] = {}
    for doc, key, code, _ in _blocks(SHELLS):
        start = cwd.get(doc, ROOT)
        here = start
        for tokens in _commands(code):
            if tokens[0] == "cd" and len(tokens) > 1:
                here = (here / tokens[1]).resolve()
        cwd[doc] = here
        yield _param(doc, key, code, start)


@pytest.mark.parametrize("code, cwd", list(_shell_blocks()))
def test_shell_block_commands_are_valid(code, cwd):
    commands = _commands(code)
    assert commands, "empty shell block"
    for tokens in commands:
        cwd = _check_command(tokens, cwd)


def _runnable():
    for doc, key, code, mark in _blocks(SHELLS):
        if mark:
            yield _param(doc, key, code, marks=[pytest.mark.slow] if mark == "run slow" else [])


@pytest.mark.parametrize("code", list(_runnable()))
def test_marked_shell_block_runs(code, tmp_path):
    (tmp_path / "bundles").symlink_to(ROOT / "bundles")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONWARNINGS": "ignore", "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize("line", [
    "make no-such-target",
    "monai-attn prepare no_such_dataset --root x --out y",
    "cd bundles/mistakes_brats2018 && python -m monai.bundle run --config_file configs/train.json --flod 1",
    "python -m monai.bundle run --config_file bundles/mistakes_brats2018/configs/no_such.json",
    "pip install -e .[no_such_extra]",
    "rm -rf /",
])
def test_shell_checks_catch_mistakes(line):
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        cwd = ROOT
        for tokens in _commands(line):
            cwd = _check_command(tokens, cwd)


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_relative_links_point_to_files(doc):
    for target in LINK.findall(doc.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"
