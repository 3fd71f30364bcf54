"""Fixtures for the bundle tests: run the real `python -m monai.bundle` CLI on tiny synthetic cohorts."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = ROOT / "bundles"


CLI_ENV = {"OMP_NUM_THREADS": "2", "PYTHONWARNINGS": "ignore"}


def run_cli(args: list[str], cwd: Path | None = None, timeout: int = 600, check: bool = True,
            module: str = "monai.bundle", env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args...`` (the real CLI) and fail with its output tail on error.
    ``env`` adds to (or replaces) the environment variables, e.g. ``{"OMP_NUM_THREADS": "1"}``."""
    env = {**os.environ, **CLI_ENV, **(env or {})}
    cmd = [sys.executable, "-m", module, *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return proc


def bundle_args(bundle: str, configs: list[str], bundle_root: Path, overrides: dict) -> list[str]:
    """The arguments of ``python -m monai.bundle`` for ``run`` with the bundle's configs and overrides."""
    files = [str(BUNDLES / bundle / "configs" / c) for c in configs]
    config_arg = files[0] if len(files) == 1 else "[" + ",".join(repr(f) for f in files) + "]"
    args = ["run", "--config_file", config_arg, "--meta_file", str(BUNDLES / bundle / "configs" / "metadata.json"),
            "--logging_file", str(BUNDLES / bundle / "configs" / "logging.conf"), "--bundle_root", str(bundle_root)]
    for key, value in overrides.items():
        args += [f"--{key}", str(value)]
    return args


def bundle_run(bundle: str, configs: list[str], bundle_root: Path, overrides: dict, **kw) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run`` with the bundle's configs (merged left to right) and overrides."""
    return run_cli(bundle_args(bundle, configs, bundle_root, overrides), **kw)


def bundle_popen(bundle: str, configs: list[str], bundle_root: Path, overrides: dict, log: Path,
                 env: dict | None = None) -> subprocess.Popen:
    """Start ``python -m monai.bundle run`` in the background, its output going to ``log``."""
    cmd = [sys.executable, "-m", "monai.bundle", *bundle_args(bundle, configs, bundle_root, overrides)]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **CLI_ENV, **(env or {})})


@pytest.fixture(scope="session")
def synth_cohort(tmp_path_factory):
    """``synth_cohort(dataset, cases, *shape)`` writes (once per session) a synthetic cohort in the real layout."""
    made: dict = {}

    def make(dataset: str, cases: int, *shape: int, seed: int = 0) -> Path:
        key = (dataset, cases, shape, seed)
        if key not in made:
            out = tmp_path_factory.mktemp(f"synth_{dataset}")
            args = ["synth", dataset, "--out", str(out), "--cases", str(cases), "--seed", str(seed)]
            if shape:
                args += ["--shape", *map(str, shape)]
            run_cli(args, module="monai_attn")
            made[key] = out
        return made[key]

    return make


class _CLI:
    """What the bundle tests use, handed out as a fixture (importlib mode cannot import conftest)."""

    bundles = BUNDLES
    run = staticmethod(run_cli)
    bundle_run = staticmethod(bundle_run)
    bundle_args = staticmethod(bundle_args)
    bundle_popen = staticmethod(bundle_popen)


@pytest.fixture(scope="session")
def cli() -> _CLI:
    return _CLI()
