"""Small real data shipped with the package (see ``dsb2018/README.md`` for attribution)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["DSB2018_SAMPLE_DIR", "load_dsb2018_sample"]

DSB2018_SAMPLE_DIR = Path(__file__).resolve().parent / "dsb2018"


def load_dsb2018_sample() -> tuple[np.ndarray, np.ndarray]:
    """Return the real DSB 2018 sample as ``(image float32 in [0, 1], binary mask uint8)``, 512×512."""
    import tifffile

    image = tifffile.imread(DSB2018_SAMPLE_DIR / "image.tif").astype(np.float32)
    mask = tifffile.imread(DSB2018_SAMPLE_DIR / "mask.tif")
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-8)
    return image, (mask > 0).astype(np.uint8)
