"""Label maps: BraTS regions (enhancing tumour = label 4), ISLES lesion, generic label selection.

Binarisation of resized masks (ISIC, DSB) is MONAI's ``AsDiscreted(keys, threshold=0.5)``.
"""
from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_tensor

__all__ = ["SelectLabels", "SelectLabelsd", "BRATS_REGIONS", "BRATS_ET", "BRATS_TC", "BRATS_WT", "ISLES_LESION"]

#: BraTS 2018 labels: 1 necrosis / non-enhancing tumour, 2 oedema, 4 enhancing tumour
BRATS_ET = (4,)
BRATS_TC = (1, 4)
BRATS_WT = (1, 2, 4)
BRATS_REGIONS = {"ET": BRATS_ET, "TC": BRATS_TC, "WT": BRATS_WT}
ISLES_LESION = (1,)


def _resolve(labels) -> tuple:
    if isinstance(labels, str):
        if labels.upper() not in BRATS_REGIONS:
            raise ValueError(f"unknown region {labels!r}; expected one of {sorted(BRATS_REGIONS)} or label values")
        return BRATS_REGIONS[labels.upper()]
    labels = tuple(labels)
    if not labels:
        raise ValueError("labels must name at least one label value")
    return labels


class SelectLabels(Transform):
    """Binary map of the voxels whose label is one of ``labels``.

    Args:
        labels: label values forming the foreground, or a BraTS region name ``"ET"`` (label 4),
            ``"TC"`` (1, 4) or ``"WT"`` (1, 2, 4).
        dtype: output dtype (default float32).
    """

    def __init__(self, labels: Sequence[int] | str = BRATS_ET, dtype: torch.dtype = torch.float32):
        self.labels = _resolve(labels)
        self.dtype = dtype

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        img = convert_to_tensor(img, track_meta=True)
        values = torch.as_tensor(self.labels, dtype=img.dtype, device=img.device)
        return torch.isin(img, values).to(self.dtype)


class SelectLabelsd(MapTransform):
    """Dictionary wrapper of :class:`SelectLabels`."""

    def __init__(self, keys: KeysCollection, labels: Sequence[int] | str = BRATS_ET,
                 dtype: torch.dtype = torch.float32, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.t = SelectLabels(labels, dtype)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.t(d[key])
        return d
