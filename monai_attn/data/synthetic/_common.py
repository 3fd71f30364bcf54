"""Vectorised random fields shared by the synthetic cohort generators."""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["smooth_noise", "bias_field", "ellipsoid_distance", "case_rng", "save_nifti"]


def case_rng(seed: int, index: int, salt: int = 0) -> np.random.Generator:
    """An independent generator per (seed, case index): a case does not depend on the cohort size."""
    return np.random.default_rng([int(seed), int(index), int(salt)])


def smooth_noise(shape: Sequence[int], rng: np.random.Generator, grid: Sequence[int] | int = 6) -> np.ndarray:
    """Smooth random field of unit standard deviation: a coarse normal grid upsampled (cubic in 2D,
    trilinear in 3D) to ``shape``."""
    import torch
    import torch.nn.functional as F

    shape = tuple(int(s) for s in shape)
    grid = (grid,) * len(shape) if isinstance(grid, int) else tuple(grid)
    grid = tuple(max(2, min(int(g), s)) for g, s in zip(grid, shape))
    coarse = torch.from_numpy(rng.standard_normal(grid).astype(np.float32))[None, None]
    mode = "bicubic" if len(shape) == 2 else "trilinear"
    field = F.interpolate(coarse, size=shape, mode=mode, align_corners=True)[0, 0].numpy()
    std = float(field.std())
    return (field - field.mean()) / (std if std > 0 else 1.0)


def bias_field(shape: Sequence[int], rng: np.random.Generator, strength: float = 0.15) -> np.ndarray:
    """Multiplicative low-frequency intensity inhomogeneity ``exp(strength * smooth noise)``."""
    return np.exp(strength * smooth_noise(shape, rng, grid=3)).astype(np.float32)


def ellipsoid_distance(shape: Sequence[int], center: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    """Normalised distance ``sqrt(sum(((x - c) / r) ** 2))`` (1 on the ellipsoid surface)."""
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    total = 0.0
    for g, c, r in zip(grids, center, radii):
        total = total + ((g.astype(np.float32) - np.float32(c)) / np.float32(r)) ** 2
    return np.sqrt(total).astype(np.float32)


def save_nifti(array: np.ndarray, affine: np.ndarray, path) -> None:
    """Save with both qform and sform set (code 1, scanner), like the challenge files."""
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
