"""EpochRampWarmup: PATM's official RFNA warm-up (learning rate base * j / n after step j of each early epoch)."""
from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine, Events

from monai_attn.schedules import EpochRampWarmup


def _run(epochs_warm: int, max_epochs: int = 3, n: int = 4):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    seen = []

    def step(engine, batch):
        seen.append(opt.param_groups[0]["lr"])  # the rate this step uses

    engine = Engine(step)
    EpochRampWarmup(opt, epochs=epochs_warm).attach(engine)
    engine.add_event_handler(Events.COMPLETED, lambda e: seen.append(opt.param_groups[0]["lr"]))
    engine.run(range(n), max_epochs=max_epochs)
    return seen


def test_ramp_within_each_early_epoch():
    lrs = _run(2)
    # step 1 runs at the initial rate; after step j (0-based) of epochs 1-2 the rate is 0.1 * j / 4
    expected = [0.1, 0.0, 0.025, 0.05] + [0.075, 0.0, 0.025, 0.05] + [0.075] * 4 + [0.075]
    assert lrs == pytest.approx(expected)


def test_zero_epochs_attaches_nothing():
    assert _run(0) == pytest.approx([0.1] * 13)
    with pytest.raises(ValueError, match="epochs"):
        EpochRampWarmup(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), epochs=-1)
