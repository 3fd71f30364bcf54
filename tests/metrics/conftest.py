"""Fixtures shared by the metric tests."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    # the metric tests run many small tensor ops, which are faster on one thread than on two
    yield
