"""Learning-rate schedules of the papers' official code that MONAI/ignite do not have as such.

:class:`EpochRampWarmup` is the warm-up of PATM's official code for RFNA (``NNTrain.py``; the paper does not
mention it): during the first ``epochs`` epochs, after every optimisation step, the learning rate is set to
``base_lr * j / n`` (``j``: the 0-based index of that step in its epoch, ``n``: steps per epoch), so it ramps from 0
to nearly ``base_lr`` within each of those epochs, restarting every epoch. Afterwards it is left where the ramp
ended (``base_lr * (n - 1) / n``) for the epoch-level schedule (``MultiStepLR``) to continue from.
"""
from __future__ import annotations

import torch

__all__ = ["EpochRampWarmup"]


class EpochRampWarmup:
    """Ignite handler: PATM's official per-epoch linear ramp of the learning rate (see the module doc).

    Args:
        optimizer: the trainer's optimizer.
        epochs: epochs with the ramp; 0 (the bundles' default) attaches nothing.
        base_lr: the learning rate ramped to; None: each parameter group's ``initial_lr`` (set by the
            scheduler) or its ``lr`` when attached.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, epochs: int = 10, base_lr: float | None = None) -> None:
        if epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs}")
        self.optimizer, self.epochs, self.base_lr = optimizer, int(epochs), base_lr
        self._base: list[float] = []

    def attach(self, engine) -> None:
        from ignite.engine import Events

        if self.epochs == 0:
            return
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _started(self, engine) -> None:
        self._base = [self.base_lr if self.base_lr is not None else g.get("initial_lr", g["lr"])
                      for g in self.optimizer.param_groups]

    def __call__(self, engine) -> None:
        if engine.state.epoch > self.epochs:  # ignite counts epochs from 1
            return
        n = engine.state.epoch_length
        j = (engine.state.iteration - 1) % n  # 0-based step index within the epoch
        for group, base in zip(self.optimizer.param_groups, self._base):
            group["lr"] = base * j / n
