"""Non-learned baselines for reports (the demo compares the trained FocusNet++ with Otsu thresholding)."""
from __future__ import annotations

import numpy as np

__all__ = ["otsu_threshold", "otsu_segment"]


def otsu_threshold(image: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the grey level that maximises the between-class variance of the histogram."""
    values = np.asarray(image, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        raise ValueError("Otsu's threshold needs an image with at least two distinct finite values")
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_lo = np.cumsum(hist)
    weight_hi = weight_lo[-1] - weight_lo
    sum_lo = np.cumsum(hist * centres)
    mean_lo = sum_lo / np.maximum(weight_lo, 1)
    mean_hi = (sum_lo[-1] - sum_lo) / np.maximum(weight_hi, 1)
    between = weight_lo * weight_hi * (mean_lo - mean_hi) ** 2
    # the threshold sits between bin i and i+1: everything above edges[i + 1] is foreground
    return float(edges[int(np.argmax(between[:-1])) + 1])


def otsu_segment(image: np.ndarray) -> np.ndarray:
    """Binary mask ``image > otsu_threshold(image)`` (bright foreground, e.g. fluorescent nuclei)."""
    return (np.asarray(image) > otsu_threshold(image)).astype(np.uint8)
