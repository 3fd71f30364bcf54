"""Baselines: non-learned ones for reports (the demo compares the trained FocusNet++ with Otsu thresholding), and
MONAI's networks sized as FocusNet++'s comparison rows (``monai-attn reproduce isic2018 --networks monai_unet,...``).

FocusNet++ (Kaul et al., ISBI 2021) compares with U-Net, Wide U-Net, UNet++ and Attention U-Net (Tables 1-3). MONAI
has these families; :func:`focusnetpp_baseline` builds them with the base width whose trainable parameter count
(3 inputs, 1 output) is closest to the paper's: Table 2 (ISIC 2018) and Table 3 (DSB 2018, reduced width). The
paper gives no count for Wide U-Net; it is the U-Net widened to UNet++'s count, as UNet++'s authors sized it.
FCN, R2U-Net, BCDU-Net and FocusNet are not implemented (:data:`monai_attn.papers.NOT_IMPLEMENTED`).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["otsu_threshold", "otsu_segment", "FOCUSNETPP_BASELINES", "focusnetpp_baseline"]

#: name -> (paper row in monai_attn.papers, MONAI family, {dataset: base width}); widths solved for the paper's count
FOCUSNETPP_BASELINES: dict[str, tuple[str, str, dict[str, int]]] = {
    "monai_unet": ("unet", "UNet", {"isic2018": 35, "dsb2018": 24}),  # 7.77 M (paper 7.94), 3.66 M (3.62)
    "monai_wide_unet": ("wide_unet", "UNet", {"isic2018": 38}),  # 9.16 M (UNet++'s 9.04)
    "monai_attention_unet": ("attention_unet", "AttentionUnet", {"isic2018": 34, "dsb2018": 17}),  # 8.96 M, 2.24 M
    "monai_unetpp": ("unetpp", "BasicUNetPlusPlus", {"isic2018": 62}),  # 9.04 M (9.04)
}


class _FirstOutput(torch.nn.Module):
    """``BasicUNetPlusPlus`` returns a list (deep supervision); the bundles want the final map."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


def focusnetpp_baseline(name: str, dataset: str = "isic2018", in_channels: int = 3, out_channels: int = 1,
                        spatial_dims: int = 2) -> torch.nn.Module:
    """MONAI's network for FocusNet++'s comparison row ``name`` (:data:`FOCUSNETPP_BASELINES`), sized for
    ``dataset`` ("isic2018": Table 2, "dsb2018": Table 3); returns logits. Widths ``b, 2b, 4b, 8b, 16b`` with
    strides 2 (UNet: two residual units per level; UNet++: ``(b, b, 2b, 4b, 8b, b)``)."""
    from monai.networks.nets import AttentionUnet, BasicUNetPlusPlus, UNet

    if name not in FOCUSNETPP_BASELINES:
        raise ValueError(f"unknown FocusNet++ baseline {name!r}; expected one of {sorted(FOCUSNETPP_BASELINES)}")
    _, family, widths = FOCUSNETPP_BASELINES[name]
    if dataset not in widths:
        raise ValueError(f"FocusNet++ gives no {name} row for {dataset!r}; sized for {sorted(widths)}")
    b = widths[dataset]
    channels, strides = (b, 2 * b, 4 * b, 8 * b, 16 * b), (2, 2, 2, 2)
    if family == "UNet":
        return UNet(spatial_dims, in_channels, out_channels, channels=channels, strides=strides, num_res_units=2)
    if family == "AttentionUnet":
        return AttentionUnet(spatial_dims, in_channels, out_channels, channels=channels, strides=strides)
    return _FirstOutput(BasicUNetPlusPlus(spatial_dims, in_channels, out_channels,
                                          features=(b, b, 2 * b, 4 * b, 8 * b, b)))


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
