"""Synthetic ISIC 2018 Task 1 cohort in the official layout.

Dermoscopy-like RGB images: textured skin of varied tone with vignetting (sometimes a dark
dermoscope frame), a pigmented lesion of varied size, colour (tan to dark brown to blue-black),
irregular border (random Fourier harmonics of the radius) and sharpness, internal texture and
globules, and sometimes hairs. Masks are 0/255 PNGs of the lesion.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..isic2018 import ISIC_IMAGE_DIR, ISIC_MASK_DIR
from ._common import case_rng, smooth_noise

__all__ = ["synth_isic2018", "synth_isic_case"]

logger = logging.getLogger(__name__)

_SKIN = np.array([[232, 186, 165], [214, 160, 130], [190, 135, 110], [240, 205, 190]], np.float32)
_LESION = np.array([[165, 110, 80], [120, 70, 50], [75, 45, 35], [55, 50, 70], [140, 80, 85]], np.float32)


def synth_isic_case(shape: Sequence[int], rng: np.random.Generator):
    """Return ``(image (H, W, 3) uint8, mask (H, W) uint8 in {0, 255})``."""
    H, W = (int(s) for s in shape)
    f32 = np.float32
    yy, xx = np.mgrid[0:H, 0:W].astype(f32)
    # skin: tone, texture, vignetting
    skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.92, 1.05, 3).astype(f32)
    tex = smooth_noise((H, W), rng, grid=(12, 12))[..., None]
    img = skin[None, None, :] * (1.0 + 0.03 * tex)
    r_img = np.sqrt(((yy - H / 2) / (H / 2)) ** 2 + ((xx - W / 2) / (W / 2)) ** 2)
    img *= (1.0 - rng.uniform(0.05, 0.3) * np.clip(r_img - 0.5, 0, None) ** 2)[..., None]
    # lesion: irregular star-convex shape
    R = rng.uniform(0.12, 0.4) * min(H, W)
    cy, cx = H / 2 + rng.uniform(-0.12, 0.12) * H, W / 2 + rng.uniform(-0.12, 0.12) * W
    aspect, angle = rng.uniform(0.65, 1.0), rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / aspect
    rho, theta = np.sqrt(u**2 + v**2), np.arctan2(v, u)
    irregular = rng.uniform(0.0, 0.09)
    boundary = np.ones_like(theta)
    for k in range(2, 8):
        boundary += irregular / (k / 2) * rng.standard_normal() * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r_b = R * boundary
    mask = rho < r_b
    width = rng.uniform(1.0, max(1.5, 0.12 * R))
    alpha = 1.0 / (1.0 + np.exp(-(r_b - rho) / width * 4.0))
    alpha = np.where(mask, np.maximum(alpha, 0.5), np.minimum(alpha, 0.499))[..., None]
    colour = _LESION[rng.integers(len(_LESION))] * rng.uniform(0.85, 1.15, 3).astype(f32)
    ltex = smooth_noise((H, W), rng, grid=(10, 10))[..., None]
    centre_dark = (1.0 - 0.25 * np.clip(1 - rho / np.maximum(r_b, 1), 0, 1))[..., None]
    lesion = colour[None, None, :] * (1.0 + 0.18 * ltex) * centre_dark
    globules = smooth_noise((H, W), rng, grid=(28, 28)) > 1.6
    lesion = np.where(globules[..., None], lesion * 0.6, lesion)
    img = img * (1 - alpha) + lesion * alpha
    if rng.random() < 0.25:  # dark circular dermoscope frame
        img[r_img > rng.uniform(1.05, 1.25)] *= 0.08
    img += rng.normal(0, 3.0, img.shape).astype(f32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:  # hairs
        from PIL import Image, ImageDraw

        pil = Image.fromarray(img)
        draw = ImageDraw.Draw(pil)
        for _ in range(int(rng.integers(1, 8))):
            pts = [(float(rng.uniform(0, W)), float(rng.uniform(0, H)))]
            ang = rng.uniform(0, 2 * np.pi)
            for _ in range(4):
                ang += rng.normal(0, 0.25)
                step = rng.uniform(0.05, 0.15) * max(H, W)
                pts.append((pts[-1][0] + step * np.cos(ang), pts[-1][1] + step * np.sin(ang)))
            draw.line(pts, fill=tuple(int(c) for c in rng.integers(20, 70, 3)), width=int(rng.integers(1, 3)))
        img = np.asarray(pil)
    return img, (mask * 255).astype(np.uint8)


def synth_isic2018(out: str | Path, cases: int = 8, seed: int = 0, shape: Sequence[int] | None = None,
                   progress: bool | None = None) -> Path:
    """Write a synthetic ISIC 2018 Task 1 cohort under ``out``.

    Args:
        out: output folder (gets ``ISIC2018_Task1-2_Training_Input`` and
            ``ISIC2018_Task1_Training_GroundTruth``).
        cases: number of image/mask pairs.
        seed: random seed (one generator per case).
        shape: ``(H, W)`` for every image; default: varied sizes, 480–1024 wide, aspect 0.66–0.8.

    Returns:
        ``out`` as a ``Path``.
    """
    from PIL import Image

    from ...progress import progress as progress_bar

    out = Path(out)
    (out / ISIC_IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (out / ISIC_MASK_DIR).mkdir(parents=True, exist_ok=True)
    for i in progress_bar(range(cases), cases, "synth isic2018", progress):
        rng = case_rng(seed, i, salt=3)
        if shape is None:
            w = int(rng.integers(480, 1025))
            hw = (int(w * rng.uniform(0.66, 0.8)), w)
        else:
            hw = tuple(int(s) for s in shape)
            if len(hw) != 2:
                raise ValueError(f"ISIC shape must be (H, W), got {shape}")
        img, mask = synth_isic_case(hw, rng)
        cid = f"ISIC_{i:07d}"
        Image.fromarray(img).save(out / ISIC_IMAGE_DIR / f"{cid}.jpg", quality=92)
        Image.fromarray(mask).save(out / ISIC_MASK_DIR / f"{cid}_segmentation.png")
    for folder in (ISIC_IMAGE_DIR, ISIC_MASK_DIR):
        (out / folder / "LICENSE.txt").write_text("Synthetic data generated by monai_attn (no licence restrictions).\n")
    logger.info("wrote %d synthetic ISIC pairs to %s", cases, out)
    return out
