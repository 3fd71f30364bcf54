"""Shared pytest fixtures and markers."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Skip GPU tests (with a visible reason) when no CUDA device is present."""
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _few_threads():
    # keep tests from oversubscribing the 2-core CI machine
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture(autouse=True)
def _seeded():
    # every test starts from the same RNG state, so a test's outcome does not depend on which tests ran before
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """One intra-op thread for the test (many small tensor operations run faster on one thread than on two
    on a shared 2-core machine, up to ~6x for small convolutions); the previous count is restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_thread_quiet(one_thread):
    """:func:`one_thread`, with warnings silenced (torch.jit.script's deprecation, tracer and exporter notes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT
