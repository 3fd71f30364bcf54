"""Fixtures shared by the metric tests."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # the metric tests run many small tensor ops, which are faster on one thread than on two
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
