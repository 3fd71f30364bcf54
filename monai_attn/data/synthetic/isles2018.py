"""Synthetic ISLES 2018 cohort in the official layout.

Each case is a slab of few (2–22) thick slices (anisotropic spacing, e.g. 0.9×0.9×5 mm) through
a brain: perfusion maps CBF (ml/100 g/min), CBV (ml/100 g), MTT (s) and Tmax (s) with grey/white
matter contrast, an ischaemic territory in one hemisphere (Tmax and MTT up, CBF down) around an
infarct core (CBF and CBV strongly down) that is the ``OT`` lesion ({0, 1}) and touches only
some of the slices. Also written: the plain ``CT`` (HU, with a skull ring) and a tiny ``CT_4DPWI``
(a few time points), both unused by the PATM pipeline. Files are ``.nii`` in
``SMIR.Brain.XX.O.<MAP>.<id>/`` folders with a distinct number per folder.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..isles2018 import isles_folder_name
from ._common import case_rng, ellipsoid_distance, save_nifti, smooth_noise

__all__ = ["synth_isles2018", "synth_isles_case", "ISLES_INPLANE"]

logger = logging.getLogger(__name__)

ISLES_INPLANE = (256, 256)
#: (grey matter, white matter, factor in the ischaemic territory, further factor in the core)
_MAPS = {
    "CBF": (55.0, 25.0, 0.6, 0.3),
    "CBV": (4.0, 2.2, 1.05, 0.35),
    "MTT": (4.0, 4.6, 1.6, 1.4),
    "Tmax": (1.2, 1.5, 5.5, 1.5),
}


def synth_isles_case(shape: Sequence[int], rng: np.random.Generator):
    """Return ``(maps dict name -> float32 (X, Y, Z), lesion uint8, ct int16, spacing)``."""
    X, Y, Z = (int(s) for s in shape)
    shape = (X, Y, Z)
    f32 = np.float32
    spacing = (float(rng.uniform(0.8, 1.0)),) * 2 + (float(rng.choice([4.0, 5.0, 5.0, 6.0])),)
    # slab through an ellipsoidal brain: the in-plane radius shrinks towards the slab's ends
    z_phys = (np.arange(Z) - (Z - 1) / 2) * spacing[2]
    half_height = max(70.0, 0.6 * Z * spacing[2])
    z_scale = np.sqrt(np.clip(1 - (z_phys / half_height) ** 2, 0.2, 1.0)).astype(f32)
    centre = (X / 2 + rng.uniform(-3, 3), Y / 2 + rng.uniform(-3, 3), (Z - 1) / 2)
    d2 = ellipsoid_distance((X, Y, 1), centre[:2] + (0,), (0.36 * X, 0.44 * Y, 1))  # (X, Y, 1)
    d = d2 / z_scale[None, None, :]
    wobble = smooth_noise(shape, rng, grid=(6, 6, max(2, Z // 4)))
    d = d - f32(0.02) * wobble
    brain = d < 1.0
    texture = smooth_noise(shape, rng, grid=(16, 16, max(2, Z // 2)))
    grey = (texture + 3.0 * (d - 0.75)) > 0.0
    # ischaemic territory in one hemisphere; the core lies inside it and spans few slices
    side = rng.choice([-1, 1])
    t_centre = (X / 2 + side * 0.16 * X, Y / 2 + rng.uniform(-0.12, 0.12) * Y, rng.uniform(0, Z - 1))
    t_r = rng.uniform(0.09, 0.16) * X
    z_r = max(1.0, rng.uniform(0.3, 0.6) * Z)
    lobes = smooth_noise(shape, rng, grid=(8, 8, max(2, Z // 3)))
    d_t = ellipsoid_distance(shape, t_centre, (t_r, t_r * rng.uniform(0.8, 1.3), z_r)) - f32(0.15) * lobes
    penumbra = brain & (d_t < 1.0)
    core = brain & (d_t < rng.uniform(0.45, 0.7))
    if not core.any():  # make sure the case has a lesion
        core = brain & (d_t <= np.min(d_t[brain]) + 0.05)
        penumbra |= core
    maps = {}
    for name, (gm, wm, pen, cor) in _MAPS.items():
        m = np.where(grey, f32(gm), f32(wm)) * (1.0 + 0.08 * texture)
        m = np.where(penumbra, m * f32(pen), m)
        m = np.where(core, m * f32(cor), m)
        m = m * (1.0 + f32(0.06) * rng.standard_normal(shape, dtype=f32))
        m = np.clip(m, 0.01, None)
        m[~brain] = 0.0
        maps[name] = m.astype(f32)
    # plain CT: HU brain/CSF, skull ring, air outside
    ct = np.where(grey, 38.0, 30.0) + 3.0 * rng.standard_normal(shape)
    ct[~brain] = 5.0
    ct[(d >= 1.02) & (d < 1.12)] = 1000.0
    ct[d >= 1.12] = -1000.0
    return maps, core.astype(np.uint8), np.round(ct).astype(np.int16), spacing


def synth_isles2018(out: str | Path, cases: int = 4, seed: int = 0, shape: Sequence[int] | None = None,
                    pwi_timepoints: int = 4, progress: bool | None = None) -> Path:
    """Write a synthetic ISLES 2018 cohort: ``out/TRAINING/case_<n>/SMIR.Brain.XX.O.*``.

    Args:
        out: output folder.
        cases: number of cases.
        seed: random seed (one generator per case).
        shape: ``(X, Y)`` in-plane size (default 256×256; the slice count is drawn from 2–22) or
            ``(X, Y, Z)`` to fix the slice count too.
        pwi_timepoints: time points of the (unused) ``CT_4DPWI`` series; 0 leaves it out.

    Returns:
        The ``TRAINING`` folder.
    """
    from ...progress import progress as progress_bar

    shape = tuple(shape or ISLES_INPLANE)
    if len(shape) not in (2, 3):
        raise ValueError(f"ISLES shape must be (X, Y) or (X, Y, Z), got {shape}")
    root = Path(out) / "TRAINING"
    for i in progress_bar(range(cases), cases, "synth isles2018", progress):
        rng = case_rng(seed, i, salt=2)
        z = int(shape[2]) if len(shape) == 3 else int(rng.integers(2, 23))
        maps, lesion, ct, spacing = synth_isles_case((shape[0], shape[1], z), rng)
        affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
        affine[:3, 3] = (spacing[0] * shape[0] / 2, spacing[1] * shape[1] / 2, -spacing[2] * z / 2)
        base = 345000 + 10 * (i + 1) + int(rng.integers(0, 3))
        cdir = root / f"case_{i + 1}"
        series = [("CT", ct), ("CT_CBF", maps["CBF"]), ("CT_CBV", maps["CBV"]), ("CT_MTT", maps["MTT"]),
                  ("CT_Tmax", maps["Tmax"]), ("OT", lesion)]
        if pwi_timepoints > 0:
            t = np.arange(pwi_timepoints, dtype=np.float32)[None, None, None, :]
            pwi = (ct[..., None].clip(0, 100) + 20 * np.exp(-((t - pwi_timepoints / 2) ** 2))).astype(np.int16)
            series.insert(1, ("CT_4DPWI", pwi))
        for k, (mod, arr) in enumerate(series):
            name = isles_folder_name(mod, base + k)
            (cdir / name).mkdir(parents=True, exist_ok=True)
            save_nifti(arr, affine, cdir / name / f"{name}.nii")
    logger.info("wrote %d synthetic ISLES cases to %s", cases, root)
    return root
