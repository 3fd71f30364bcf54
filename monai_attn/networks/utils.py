"""Helpers shared by the networks (the eager-only speed-path switch, padding to a multiple and cropping
back) and network cost helpers shared by the reproduce runner and the benchmarks."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "eager_fast_paths", "pad_to_multiple", "crop_padding"]


def eager_fast_paths() -> bool:
    """Whether the eager-only speed paths may run: ``False`` under TorchScript (``torch.jit.script``),
    ``torch.jit.trace`` (and the legacy ``torch.onnx.export(..., dynamo=False)``, which traces), ``torch.export``
    (and ``torch.onnx.export(..., dynamo=True)``, which exports through it) and ``torch.compile``.

    The speed paths (oneDNN fused operators, folded weight caches, polyphase convolutions, shifted
    depth-wise convolutions, channels-last switches, the skipped no-op padding) compute the same function
    as the plain formulation, but use operators that exporters do not know, Python-side caches or
    decisions taken on concrete sizes; under export, tracing, scripting or compilation the networks run
    their plain formulation, which every exporter and ``torch.compile`` handle with dynamic sizes. The
    check costs well under a microsecond. (``torch.onnx.is_in_onnx_export()`` is implied by the tracing or
    exporting flag and is not asked: it costs microseconds per call.)
    """
    if torch.jit.is_scripting():
        return False
    else:
        return not (torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing())


def pad_to_multiple(x: torch.Tensor, multiple: int, always: bool = False) -> tuple[torch.Tensor, list[int]]:
    """Zero-pad every spatial dimension of ``x`` ``(B, C, *spatial)`` to the next multiple of ``multiple``,
    evenly on both sides (the extra voxel after), and return the padded tensor and the ``F.pad`` list
    (last dimension first) for :func:`crop_padding`.

    In eager mode a size that is already a multiple is not padded (no copy); with ``always`` the pad runs
    even when it is zero everywhere, so that traced and exported graphs keep the size arithmetic symbolic
    (a legacy ONNX export traced at 96² runs at 100²) instead of freezing the decision taken at trace time.
    """
    pads: list[int] = []
    needed = always
    for size in x.shape[2:][::-1]:  # F.pad lists the last dimension first
        # (the padded size written as a multiple, so that export's symbolic shapes see it is one)
        extra = (size + multiple - 1) // multiple * multiple - size
        pads += [extra // 2, extra - extra // 2]
        if not always:
            needed = needed or extra > 0
    if needed:
        x = F.pad(x, pads)
    return x, pads


def crop_padding(y: torch.Tensor, pads: list[int], always: bool = False) -> torch.Tensor:
    """Undo :func:`pad_to_multiple` on ``y`` (same number of spatial dimensions; ``always`` as there: the
    crop then runs as a negative ``F.pad``, which exporters take with symbolic sizes, where ``narrow``
    would specialise on whether anything is cropped)."""
    if always:
        return F.pad(y, [-p for p in pads])
    spatial = len(pads) // 2
    for d in range(spatial):
        before, after = pads[2 * d], pads[2 * d + 1]
        if before + after > 0:
            dim = y.dim() - 1 - d
            y = y.narrow(dim, before, y.shape[dim] - before - after)
    return y


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
