"""Pre- and post-processing pipelines the bundles' configs call (inference without labels, RFNA label reversal)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["with_label_reversal", "segmentation_postprocessing", "volume_inference_preprocessing",
           "image_inference_preprocessing"]


def with_label_reversal(transform: Callable, enabled: bool, keys: str | Sequence[str] = "label") -> Callable:
    """``transform`` followed by :class:`~monai_attn.transforms.ReverseLabeld` when ``enabled`` (RFNA)."""
    from monai.transforms import Compose

    from monai_attn.transforms import ReverseLabeld

    return Compose([transform, ReverseLabeld(keys)]) if enabled else transform


def segmentation_postprocessing(reverse_labels: bool = False, threshold: float = 0.5, pred_key: str = "pred",
                                label_key: str | None = "label") -> Callable:
    """Logits → binary mask: un-reverse RFNA outputs (when trained on reversed labels), sigmoid,
    threshold. ``label_key`` is cast to the same dtype so MONAI metrics can compare them."""
    from monai.transforms import Activationsd, AsDiscreted, Compose, EnsureTyped

    from monai_attn.transforms import UnreverseLogitsd

    steps: list = [UnreverseLogitsd(pred_key)] if reverse_labels else []
    steps += [Activationsd(pred_key, sigmoid=True), AsDiscreted(pred_key, threshold=threshold)]
    if label_key:
        steps.append(EnsureTyped(label_key, dtype=torch.float32, allow_missing_keys=True))
    return Compose(steps)


def volume_inference_preprocessing(roi_size: Sequence[int], axcodes: str = "RAS", image_key: str = "image",
                                   in_channels: int | None = None):
    """Image-only version of the volume evaluation pipeline (no label needed), invertible by ``Invertd``:
    load (NIfTI via nibabel, NRRD/MHA via ITK) with :class:`~monai_attn.transforms.LoadVolumed`'s
    checks (``in_channels`` modality files per case), channel first, orientation, per-modality
    non-zero z-score, in-plane centre crop/pad to ``roi_size``."""
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        Orientationd,
        ResizeWithPadOrCropd,
    )

    from monai_attn.transforms import LeanNormalizeIntensityd, LoadVolumed

    return Compose([
        LoadVolumed(image_key, modalities=in_channels),
        EnsureChannelFirstd(image_key),
        Orientationd(image_key, axcodes=axcodes, labels=None),
        LeanNormalizeIntensityd(image_key, nonzero=True, channel_wise=True),
        ResizeWithPadOrCropd(image_key, spatial_size=(*tuple(roi_size), -1)),
        EnsureTyped(image_key),
    ])


def image_inference_preprocessing(image_size: Sequence[int] = (256, 256), image_key: str = "image"):
    """Image-only version of the 2D (ISIC 2018 / DSB 2018) pipeline, for inference without masks.

    The same steps, with the same arguments, as the image branch of
    :func:`monai_attn.transforms.isic2018_transforms` / ``dsb2018_transforms(train=False)``: load with
    Pillow (:class:`~monai_attn.transforms.LoadImage2Dd`: checked to be a readable 2D image), channel first, RGB (alpha dropped, grey repeated), scale 0..255 to [0, 1], resize to
    ``image_size`` (bilinear, anti-aliased). The resize is recorded, so ``Invertd`` brings a
    prediction back to the file's original resolution.
    """
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        Resized,
        ScaleIntensityRanged,
    )

    from monai_attn.transforms import EnsureRGBd, LoadImage2Dd

    return Compose([
        LoadImage2Dd(image_key),
        EnsureChannelFirstd(image_key),
        EnsureRGBd(image_key),
        ScaleIntensityRanged(image_key, a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True),
        Resized(image_key, spatial_size=tuple(image_size), mode="bilinear", anti_aliasing=True),
        EnsureTyped(image_key, dtype=torch.float32),
    ])
