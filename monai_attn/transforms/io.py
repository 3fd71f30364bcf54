"""Loading transforms: volumes (NIfTI through nibabel, NRRD/MHA/... through ITK) and the union of
per-instance mask files (DSB 2018)."""
from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import LoadImage, LoadImaged, MapTransform

__all__ = ["LoadVolumed", "LoadUnionMask", "LoadUnionMaskd"]


class LoadVolumed(LoadImaged):
    """:class:`monai.transforms.LoadImaged` that reads ``.nii``/``.nii.gz`` with ``NibabelReader``
    and every other format (NRRD, MHA, NRRD series, ...) with ``ITKReader``.

    A list of paths under one key (e.g. BraTS' four modalities) is stacked as channels in the
    list's order. All arguments are those of ``LoadImaged`` except ``reader``.
    """

    def __init__(self, keys: KeysCollection, image_only: bool = True, dtype=np.float32, **kwargs):
        if "reader" in kwargs:
            raise ValueError("LoadVolumed chooses its readers itself; use LoadImaged to set `reader`")
        super().__init__(keys, reader=None, image_only=image_only, dtype=dtype, **kwargs)
        from monai.data import ITKReader, NibabelReader

        # auto-selection tries the most recently registered reader first: nibabel takes the NIfTI
        # suffixes, ITK (which accepts every suffix) takes the rest
        self.register(ITKReader())
        self.register(NibabelReader())


class LoadUnionMask:
    """Load several binary mask files (e.g. one PNG per DSB nucleus) and return their union as a
    channel-first ``(1, ...)`` float32 MetaTensor in ``{0, 1}`` (metadata of the first file).

    Uses the same reader as :class:`monai.transforms.LoadImage` would (Pillow for PNG, with its
    axis order), so the mask lines up with an image loaded by ``LoadImaged``.
    """

    def __init__(self, reader=None, threshold: float = 0.0):
        self.loader = LoadImage(reader=reader, image_only=True, dtype=None)
        self.threshold = threshold

    def __call__(self, paths: str | Sequence[str]) -> MetaTensor:
        if isinstance(paths, (str, bytes)) or not isinstance(paths, Sequence):
            paths = [paths]
        if len(paths) == 0:
            raise ValueError("LoadUnionMask: empty list of mask files")
        union = None
        first = None
        for p in paths:
            m = self.loader(p)
            if m.ndim != 2:
                raise ValueError(f"{p}: expected a single-channel 2D mask, got shape {tuple(m.shape)}")
            arr = m.numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
            if first is None:
                first, union = m, np.zeros(arr.shape, dtype=bool)
            elif arr.shape != union.shape:
                raise ValueError(f"{p}: mask shape {tuple(arr.shape)} differs from {paths[0]}'s {tuple(union.shape)}")
            np.logical_or(union, arr > self.threshold, out=union)
        meta = {k: v for k, v in first.meta.items() if k != "affine"}
        meta["original_channel_dim"] = 0
        return MetaTensor(torch.from_numpy(union[None].astype(np.float32)), affine=first.affine, meta=meta)


class LoadUnionMaskd(MapTransform):
    """Dictionary wrapper of :class:`LoadUnionMask`: each key holds a list of mask paths."""

    def __init__(self, keys: KeysCollection, reader=None, threshold: float = 0.0, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadUnionMask(reader=reader, threshold=threshold)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d
