"""Network cost helpers shared by the reproduce runner and the benchmarks."""

from __future__ import annotations

import copy

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops"]


def count_flops(net: torch.nn.Module, x: torch.Tensor) -> int:
    """Forward FLOPs of ``net`` on ``x`` in the reference formulation.

    ``torch.utils.flop_counter`` counts convolutions and matrix products (2 FLOPs per multiply-add; a
    grouped convolution its grouped work) on a train-mode copy, so inference rewrites (folded batch norms,
    shifted multiply-adds, polyphase convolutions) are credited with the work of the definition. The copy
    lives on the ``meta`` device when the module allows it (no memory, no time), else on the CPU; ``net``
    itself is left untouched.
    """
    try:
        probe, inp = copy.deepcopy(net).to("meta").train(), x.to("meta")
    except Exception:  # a module that cannot move to meta
        probe, inp = copy.deepcopy(net).cpu().train(), x.cpu()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        probe(inp)
    return int(counter.get_total_flops())
