"""Composed MONAI transform pipelines for the four datasets (bundles wire these).

Volumes (BraTS 2018, ISLES 2018), trained slice-wise in 2D:

* deterministic part (cached by ``CacheDataset``/``PersistentDataset``): :class:`LoadVolumed`
  (NIfTI via nibabel, other formats via ITK), ``EnsureChannelFirstd``, ``Orientationd("RAS")``,
  per-case per-modality z-score over non-zero voxels (:class:`LeanNormalizeIntensityd`, MONAI's
  ``NormalizeIntensityd(nonzero=True, channel_wise=True)`` without its full-size temporaries), centre crop in-plane (``ResizeWithPadOrCropd``; 160×160 BraTS,
  224×224 ISLES), label map (BraTS enhancing tumour = label 4; ISLES lesion), optional cast for a
  smaller cache, :class:`SliceAxisFirstd` (axial slices contiguous) and :class:`SliceIndexd`;
* random part (every epoch): :class:`RandAxialSlicesd` samples axial slices with a
  foreground/background ratio, optional flips/rotations.

The ``*_eval_transforms`` stop before slicing: they give cropped, normalised volumes for
``BatchedSliceInferer(roi_size=roi_size, spatial_dim=2)`` (or MONAI's ``SliceInferer``) and are invertible (``Invertd``).

2D datasets (ISIC 2018, DSB 2018): load, RGB, scale to [0, 1], resize to 256×256 with
anti-aliasing (bilinear for the mask too), mask binarised at 0.5.
"""
from __future__ import annotations

from typing import Sequence

import torch
from monai.transforms import (
    AsDiscreted,
    CastToTyped,
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    Orientationd,
    RandFlipd,
    RandRotate90d,
    Resized,
    ResizeWithPadOrCropd,
    ScaleIntensityRanged,
)

from .channels import EnsureRGBd
from .intensity import LeanNormalizeIntensityd
from .io import CheckSameSized, LoadImage2Dd, LoadUnionMaskd, LoadVolumed
from .labels import ISLES_LESION, SelectLabelsd
from .slices import RandAxialSlicesd, SliceAxisFirstd, SliceIndexd

__all__ = [
    "volume_preprocess",
    "slice_sampling",
    "brats2018_train_transforms",
    "brats2018_eval_transforms",
    "isles2018_train_transforms",
    "isles2018_eval_transforms",
    "isic2018_transforms",
    "dsb2018_transforms",
    "BRATS_ROI",
    "ISLES_ROI",
    "IMAGE_SIZE_2D",
]

BRATS_ROI = (160, 160)
ISLES_ROI = (224, 224)
IMAGE_SIZE_2D = (256, 256)
KEYS = ("image", "label")
#: values a label file may hold: BraTS 2018 (0 background, 1 necrosis/NET, 2 oedema, 4 enhancing),
#: ISLES 2018 (0/1), ISIC 2018 masks (0/255)
BRATS_LABEL_VALUES = (0, 1, 2, 4)
ISLES_LABEL_VALUES = (0, 1)
ISIC_MASK_VALUES = (0, 255)


def _dtype(d) -> torch.dtype:
    if isinstance(d, str):
        return getattr(torch, d)
    return d


def volume_preprocess(labels: Sequence[int] | str, roi_size: Sequence[int], axcodes: str = "RAS",
                      cache_dtype: torch.dtype | str | None = None, slice_index: bool = True,
                      image_key: str = "image", label_key: str = "label", modalities: int | None = 4,
                      label_values: Sequence[float] | None = None) -> list:
    """Deterministic volume pipeline (see the module docstring).

    The loader (:class:`LoadVolumed`) checks every case: the files exist and are readable 3D
    volumes with positive spacing on one voxel grid, ``modalities`` of them, with finite, non-zero
    intensities and labels within ``label_values``; a bad case raises a
    :class:`~monai_attn.errors.BadInputError` naming the file.

    Args:
        labels: label values (or BraTS region ``"ET"``/``"TC"``/``"WT"``) forming the target.
        roi_size: in-plane ``(H, W)`` of the centre crop (padded when the volume is smaller).
        axcodes: orientation (``"RAS"``: the last axis is axial).
        cache_dtype: if set, cast the image to it (e.g. ``torch.float16`` halves the cache) and
            the label to uint8; :class:`RandAxialSlicesd` casts slices back to float32.
        slice_index: append :class:`SliceAxisFirstd` (axial axis first, contiguous) and
            :class:`SliceIndexd`, for :func:`slice_sampling` (which then slices along axis 0).
        modalities: number of image files (channels) per case.
        label_values: the values a label file may hold (``None``: not checked).
    """
    keys = [image_key, label_key]
    out = [
        LoadVolumed(keys, modalities=modalities, label_keys=[label_key], label_values=label_values),
        EnsureChannelFirstd(keys),
        Orientationd(keys, axcodes=axcodes, labels=None),
        LeanNormalizeIntensityd(image_key, nonzero=True, channel_wise=True),
        ResizeWithPadOrCropd(keys, spatial_size=(*tuple(roi_size), -1)),
        SelectLabelsd(label_key, labels=labels),
    ]
    if cache_dtype is not None:
        out.append(CastToTyped(keys, dtype=[_dtype(cache_dtype), torch.uint8]))
    if slice_index:
        # axial slices become contiguous blocks (axis 2 → first spatial axis), then indexed
        out += [SliceAxisFirstd(keys, axis=2), SliceIndexd(label_key=label_key, image_key=image_key, axis=0)]
    return out


def slice_sampling(num_samples: int = 8, fg_ratio: float = 0.5, augment: bool = False,
                   keys: Sequence[str] = KEYS) -> list:
    """Random part: axial slices (``fg_ratio`` of them with foreground), optional 2D flips and
    90° rotations."""
    out: list = [RandAxialSlicesd(list(keys), label_key=keys[1], image_key=keys[0], num_samples=num_samples,
                                  fg_ratio=fg_ratio, axis=0)]  # after SliceAxisFirstd
    if augment:
        out += [RandFlipd(list(keys), prob=0.5, spatial_axis=0), RandFlipd(list(keys), prob=0.5, spatial_axis=1),
                RandRotate90d(list(keys), prob=0.5, max_k=3)]
    return out


def brats2018_train_transforms(roi_size: Sequence[int] = BRATS_ROI, region: str = "ET", num_samples: int = 8,
                               fg_ratio: float = 0.5, augment: bool = False,
                               cache_dtype: torch.dtype | str | None = None) -> Compose:
    """BraTS 2018 slice training (PATM): 4 channels (flair, t1, t1ce, t2), target enhancing
    tumour (label 4), 160×160 axial slices."""
    return Compose(volume_preprocess(region, roi_size, cache_dtype=cache_dtype, label_values=BRATS_LABEL_VALUES)
                   + slice_sampling(num_samples, fg_ratio, augment))


def brats2018_eval_transforms(roi_size: Sequence[int] = BRATS_ROI, region: str = "ET") -> Compose:
    """BraTS 2018 evaluation: cropped, normalised 4-channel volumes and the binary target."""
    return Compose(volume_preprocess(region, roi_size, slice_index=False, label_values=BRATS_LABEL_VALUES)
                   + [EnsureTyped(list(KEYS))])


def isles2018_train_transforms(roi_size: Sequence[int] = ISLES_ROI, num_samples: int = 4, fg_ratio: float = 0.5,
                               augment: bool = False, cache_dtype: torch.dtype | str | None = None) -> Compose:
    """ISLES 2018 slice training (PATM): 4 channels (CBF, MTT, CBV, Tmax), lesion target,
    224×224 slices."""
    return Compose(volume_preprocess(ISLES_LESION, roi_size, cache_dtype=cache_dtype, label_values=ISLES_LABEL_VALUES)
                   + slice_sampling(num_samples, fg_ratio, augment))


def isles2018_eval_transforms(roi_size: Sequence[int] = ISLES_ROI) -> Compose:
    """ISLES 2018 evaluation: cropped, normalised 4-channel volumes and the lesion."""
    return Compose(volume_preprocess(ISLES_LESION, roi_size, slice_index=False, label_values=ISLES_LABEL_VALUES)
                   + [EnsureTyped(list(KEYS))])


def _image_2d(label_loader, image_size: Sequence[int], train: bool, augment: bool, label_scale: bool) -> Compose:
    keys = list(KEYS)
    out: list = [LoadImage2Dd("image"), label_loader,
                 EnsureChannelFirstd(keys if label_scale else "image"), CheckSameSized("label", ref_key="image"),
                 EnsureRGBd("image"),
                 ScaleIntensityRanged("image", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True)]
    if label_scale:
        out.append(ScaleIntensityRanged("label", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True))
    out += [Resized(keys, spatial_size=tuple(image_size), mode=("bilinear", "bilinear"), anti_aliasing=True),
            AsDiscreted("label", threshold=0.5)]
    if train and augment:
        out += [RandFlipd(keys, prob=0.5, spatial_axis=0), RandFlipd(keys, prob=0.5, spatial_axis=1),
                RandRotate90d(keys, prob=0.5, max_k=3)]
    out.append(EnsureTyped(keys, dtype=torch.float32))
    return Compose(out)


def isic2018_transforms(train: bool = True, image_size: Sequence[int] = IMAGE_SIZE_2D, augment: bool = False) -> Compose:
    """ISIC 2018 (FocusNet++): RGB in [0, 1] and 0/255 mask (other mask values are refused),
    resized to 256×256 with anti-aliasing, mask binarised at 0.5."""
    return _image_2d(LoadImage2Dd("label", label_values=ISIC_MASK_VALUES), image_size, train, augment, True)


def dsb2018_transforms(train: bool = True, image_size: Sequence[int] = IMAGE_SIZE_2D, augment: bool = False) -> Compose:
    """DSB 2018 (FocusNet++): RGB in [0, 1] (alpha dropped, grey repeated), union of the nucleus
    masks, resized to 256×256 with anti-aliasing, mask binarised at 0.5."""
    return _image_2d(LoadUnionMaskd("label", reader="PILReader"), image_size, train, augment, False)
