"""Synthetic DSB 2018 (stage 1 train) cohort in the official layout.

Most images are fluorescence-like (bright textured nuclei on a dark background, stored as RGBA
like the real ones); some are brightfield/H&E-like (purple nuclei on a light background). Nuclei
are non-overlapping ellipses of varied size, orientation and brightness, blurred and noisy; each
nucleus gets its own binary (0/255) mask PNG.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..dsb2018 import write_dsb2018_case
from ._common import case_rng, smooth_noise

__all__ = ["synth_dsb2018", "synth_dsb_case"]

logger = logging.getLogger(__name__)

_SIZES = ((256, 256), (256, 320), (360, 360), (520, 696))


def synth_dsb_case(shape: Sequence[int], rng: np.random.Generator):
    """Return ``(image (H, W, 3) uint8, instance labels (H, W) int32)``."""
    import torch
    import torch.nn.functional as F

    H, W = (int(s) for s in shape)
    scale = min(H, W) / 256.0
    labels = np.zeros((H, W), np.int32)
    brightness = np.zeros((H, W), np.float32)
    n_target = max(2, int(rng.integers(8, 60) * (H * W) / 256**2))
    r_mean = rng.uniform(4.0, 11.0) * max(scale, 0.5)
    k = 0
    for _ in range(n_target * 3):
        if k >= n_target:
            break
        ry, rx = r_mean * rng.uniform(0.7, 1.3, 2)
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        a = rng.uniform(0, np.pi)
        y0, y1 = int(max(0, cy - max(ry, rx) - 1)), int(min(H, cy + max(ry, rx) + 2))
        x0, x1 = int(max(0, cx - max(ry, rx) - 1)), int(min(W, cx + max(ry, rx) + 2))
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        u = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
        v = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
        inside = (u / rx) ** 2 + (v / ry) ** 2 < 1.0
        free = inside & (labels[y0:y1, x0:x1] == 0)
        if free.sum() < max(8, 0.7 * inside.sum()):
            continue  # mostly overlapping an existing nucleus: try elsewhere
        k += 1
        labels[y0:y1, x0:x1][free] = k
        brightness[y0:y1, x0:x1][free] = rng.uniform(0.35, 1.0)
    if k == 0:  # tiny image: one nucleus in the middle
        yy, xx = np.mgrid[0:H, 0:W]
        labels[((yy - H / 2) / max(H / 4, 1)) ** 2 + ((xx - W / 2) / max(W / 4, 1)) ** 2 < 1] = 1
        brightness[labels == 1] = 0.8
    tex = smooth_noise((H, W), rng, grid=(max(4, H // 12), max(4, W // 12)))
    signal = brightness * (1.0 + 0.15 * tex)
    blur = torch.from_numpy(signal)[None, None]
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    blur = F.conv2d(F.pad(blur, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5))
    blur = F.conv2d(F.pad(blur, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1))
    signal = blur[0, 0].numpy()
    if rng.random() < 0.8:  # fluorescence
        bg = rng.uniform(0.0, 0.08)
        grey = bg + signal * rng.uniform(0.5, 0.95) + rng.normal(0, 0.015, (H, W))
        rgb = np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=-1)
    else:  # brightfield, H&E-like
        paper = np.array([0.93, 0.88, 0.92]) * rng.uniform(0.9, 1.0)
        stain = np.array([0.45, 0.25, 0.6]) * rng.uniform(0.7, 1.1)
        rgb = paper[None, None] * (1 - signal[..., None]) + stain[None, None] * signal[..., None]
        rgb += rng.normal(0, 0.015, rgb.shape)
    image = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
    return image, labels


def synth_dsb2018(out: str | Path, cases: int = 8, seed: int = 0, shape: Sequence[int] | None = None,
                  progress: bool | None = None) -> Path:
    """Write a synthetic DSB 2018 cohort: ``out/stage1_train/<id>/{images,masks}/``.

    Args:
        out: output folder.
        cases: number of images.
        seed: random seed (one generator per case).
        shape: ``(H, W)`` for every image; default: drawn from the real dataset's common sizes.

    Returns:
        The ``stage1_train`` folder.
    """
    from ...progress import progress as progress_bar

    out = Path(out)
    for i in progress_bar(range(cases), cases, "synth dsb2018", progress):
        rng = case_rng(seed, i, salt=4)
        hw = _SIZES[int(rng.integers(len(_SIZES)))] if shape is None else tuple(int(s) for s in shape)
        if len(hw) != 2:
            raise ValueError(f"DSB shape must be (H, W), got {shape}")
        image, labels = synth_dsb_case(hw, rng)
        case_id = hashlib.sha256(f"synthetic-dsb2018:{seed}:{i}".encode()).hexdigest()
        write_dsb2018_case(out, case_id, image, labels, rgba=True)
    logger.info("wrote %d synthetic DSB images to %s", cases, out / "stage1_train")
    return out / "stage1_train"
