"""Synthetic BraTS 2018 cohort in the official layout.

Each case is a skull-stripped head: an ellipsoidal brain with grey/white-matter texture, ventricles
and a CSF/dura-like rim, plus a lobulated tumour: oedema (label 2) around a core whose outer shell
enhances (label 4) around a necrotic centre (label 1). The four modalities have distinct
contrasts (FLAIR: bright oedema; T1ce: bright enhancing rim; T2: bright CSF and oedema; T1: dark
lesion), a smooth bias field and Gaussian noise; background is exactly 0 as in BraTS. Volumes are
int16 at 1 mm with a BraTS-like affine ``diag(-1, -1, 1)``. LGG cases have no enhancing tumour.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..brats2018 import BRATS_MODALITIES, BRATS_TOP_FOLDER
from ._common import bias_field, case_rng, ellipsoid_distance, save_nifti, smooth_noise

__all__ = ["synth_brats2018", "synth_brats_case", "BRATS_SHAPE"]

logger = logging.getLogger(__name__)

BRATS_SHAPE = (240, 240, 155)

# tissue classes: 0 background, 1 rim (CSF/dura), 2 grey matter, 3 white matter, 4 ventricles,
# 5 oedema, 6 enhancing tumour, 7 necrosis; relative intensities per modality (flair, t1, t1ce, t2)
_CONTRAST = np.array(
    [
        [0.00, 0.00, 0.00, 0.00],
        [0.20, 0.30, 0.50, 0.95],
        [0.62, 0.55, 0.55, 0.60],
        [0.50, 0.75, 0.75, 0.42],
        [0.12, 0.22, 0.22, 1.00],
        [0.95, 0.50, 0.50, 0.85],
        [0.75, 0.55, 1.25, 0.65],
        [0.45, 0.30, 0.30, 0.95],
    ],
    dtype=np.float32,
)
_SCALE = np.array([350.0, 600.0, 900.0, 1100.0], dtype=np.float32)
_LABEL_OF_CLASS = np.array([0, 0, 0, 0, 0, 2, 4, 1], dtype=np.uint8)


def brats_affine(shape: Sequence[int]) -> np.ndarray:
    """BraTS-like affine: 1 mm, x and y flipped (``diag(-1, -1, 1)``), origin ``(0, Y-1, 0)``."""
    aff = np.diag([-1.0, -1.0, 1.0, 1.0])
    aff[1, 3] = float(shape[1] - 1)
    return aff


def synth_brats_case(shape: Sequence[int], rng: np.random.Generator, grade: str = "HGG"):
    """Return ``(images (4, X, Y, Z) int16 in BRATS_MODALITIES order, seg (X, Y, Z) uint8)``."""
    shape = tuple(int(s) for s in shape)
    X, Y, Z = shape
    f32 = np.float32
    wobble = smooth_noise(shape, rng, grid=(5, 5, 4))
    centre = np.array([X / 2, Y / 2 * rng.uniform(0.97, 1.05), Z / 2 * rng.uniform(0.92, 1.0)])
    radii = np.array([0.36 * X, 0.43 * Y, 0.42 * Z]) * rng.uniform(0.9, 1.05, 3)
    d_brain = ellipsoid_distance(shape, centre, radii) - f32(0.03) * wobble
    cls = np.zeros(shape, np.uint8)
    brain = d_brain < 1.0
    texture = smooth_noise(shape, rng, grid=(14, 14, 10))
    wm = (texture + 3.0 * (0.8 - d_brain)) > 0.6
    cls[brain] = 2
    cls[brain & wm] = 3
    cls[brain & (d_brain > 0.94)] = 1
    for side in (-1, 1):  # ventricles
        vc = centre + np.array([side * 0.09 * X, 0.02 * Y, 0.05 * Z])
        vr = np.array([0.04 * X, 0.13 * Y, 0.08 * Z]) * rng.uniform(0.8, 1.2, 3)
        cls[ellipsoid_distance(shape, vc, vr) < 1.0] = 4

    # tumour: lobulated nested blobs inside the brain
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    t_centre = centre + direction * radii * rng.uniform(0.15, 0.5)
    r_oedema = rng.uniform(0.10, 0.17) * X
    t_radii = r_oedema * rng.uniform(0.75, 1.25, 3) * np.array([1.0, 1.0, Z / X * 1.4])
    lobes = smooth_noise(shape, rng, grid=(8, 8, 6))
    d_t = ellipsoid_distance(shape, t_centre, t_radii)
    core_frac = rng.uniform(0.45, 0.7)
    nec_frac = core_frac * rng.uniform(0.5, 0.75)
    cls[brain & (d_t < 1.0 + 0.25 * lobes)] = 5
    core = brain & (d_t < core_frac * (1.0 + 0.12 * lobes))
    if grade == "HGG":
        cls[core] = 6
        cls[brain & (d_t < nec_frac * (1.0 + 0.12 * lobes))] = 7
    else:  # LGG: non-enhancing core (label 1), faint oedema
        cls[core] = 7

    # intensities: contrast table + texture, bias field, noise; zero outside the brain
    scale = _SCALE * rng.uniform(0.85, 1.15, 4).astype(f32)
    images = np.empty((4,) + shape, np.int16)
    for m in range(4):
        img = _CONTRAST[:, m][cls]
        img *= 1.0 + 0.04 * texture
        img *= bias_field(shape, rng, 0.12)
        img += f32(0.025) * rng.standard_normal(shape, dtype=f32)
        img *= scale[m]
        np.clip(img, 1.0, 32000.0, out=img)
        img[~brain] = 0.0
        images[m] = np.rint(img)
    return images, _LABEL_OF_CLASS[cls]


def synth_brats2018(out: str | Path, cases: int = 4, seed: int = 0, shape: Sequence[int] | None = None,
                    lgg_cases: int | None = None, progress: bool | None = None) -> Path:
    """Write a synthetic BraTS 2018 cohort: ``out/MICCAI_BraTS_2018_Data_Training/{HGG,LGG}/...``.

    Args:
        out: output folder.
        cases: number of HGG cases.
        seed: random seed (each case has its own generator, independent of ``cases``).
        shape: volume shape, default 240×240×155 (tests use e.g. 64×64×40).
        lgg_cases: LGG cases to add (ignored by the PATM adapter); default ``max(1, cases // 4)``.

    Returns:
        The ``MICCAI_BraTS_2018_Data_Training`` folder.
    """
    from ...progress import progress as progress_bar

    shape = tuple(shape or BRATS_SHAPE)
    if len(shape) != 3:
        raise ValueError(f"BraTS shape must have 3 dimensions, got {shape}")
    root = Path(out) / BRATS_TOP_FOLDER
    lgg_cases = max(1, cases // 4) if lgg_cases is None else lgg_cases
    affine = brats_affine(shape)
    jobs = [("HGG", i) for i in range(cases)] + [("LGG", i) for i in range(lgg_cases)]
    for grade, i in progress_bar(jobs, len(jobs), "synth brats2018", progress):
        rng = case_rng(seed, i, salt=0 if grade == "HGG" else 1)
        case_id = f"Brats18_SYN_{grade}_{i + 1:03d}_1"
        cdir = root / grade / case_id
        cdir.mkdir(parents=True, exist_ok=True)
        images, seg = synth_brats_case(shape, rng, grade)
        for m, mod in enumerate(BRATS_MODALITIES):
            save_nifti(images[m], affine, cdir / f"{case_id}_{mod}.nii.gz")
        save_nifti(seg, affine, cdir / f"{case_id}_seg.nii.gz")
    (root / "survival_data.csv").write_text("BraTS18ID,Age,Survival,ResectionStatus\n")
    logger.info("wrote %d HGG + %d LGG synthetic BraTS cases of %s to %s", cases, lgg_cases, shape, root)
    return root
