"""Synthetic cohorts written in the real datasets' on-disk layouts (``monai-attn synth``).

Every generator is vectorised numpy, seeded per case (``numpy.random.default_rng([seed, i])``) so
that a case does not depend on the cohort size, and returns the folder that the corresponding
adapter accepts as its root.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from ..base import SYNTHETIC_MARKER
from .brats2018 import BRATS_SHAPE, synth_brats2018, synth_brats_case
from .dsb2018 import synth_dsb2018, synth_dsb_case
from .isic2018 import synth_isic2018, synth_isic_case
from .isles2018 import synth_isles2018, synth_isles_case

__all__ = [
    "SYNTHESIZERS",
    "SYNTHETIC_MARKER",
    "synthesize",
    "synth_brats2018",
    "synth_brats_case",
    "synth_isles2018",
    "synth_isles_case",
    "synth_isic2018",
    "synth_isic_case",
    "synth_dsb2018",
    "synth_dsb_case",
    "BRATS_SHAPE",
]

#: dataset name -> generator ``(out, cases, seed, shape, **kwargs) -> folder``
SYNTHESIZERS: dict[str, Callable[..., Path]] = {
    "isic2018": synth_isic2018,
    "dsb2018": synth_dsb2018,
    "brats2018": synth_brats2018,
    "isles2018": synth_isles2018,
}



def synthesize(dataset: str, out: str | Path, cases: int, seed: int = 0, shape: Sequence[int] | None = None,
               **kwargs) -> Path:
    """Write a synthetic cohort of ``dataset`` (one of :data:`SYNTHESIZERS`) under ``out``."""
    if dataset not in SYNTHESIZERS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(SYNTHESIZERS)}")
    if cases < 1:
        raise ValueError(f"cases must be >= 1, got {cases}")
    root = SYNTHESIZERS[dataset](out, cases=cases, seed=seed, shape=shape, **kwargs)
    # lets tools (``monai-attn reproduce``) tell a synthetic cohort from the real dataset
    (Path(out) / SYNTHETIC_MARKER).write_text(f"synthetic {dataset} cohort written by monai-attn synth (seed {seed})\n")
    return root
