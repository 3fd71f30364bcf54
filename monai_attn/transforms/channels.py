"""Channel adaptation for 2D photographs and microscopy images."""
from __future__ import annotations

from typing import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_tensor

__all__ = ["EnsureRGB", "EnsureRGBd"]


class EnsureRGB(Transform):
    """Make a channel-first image 3-channel RGB: drop the alpha of RGBA (DSB 2018 PNGs), repeat
    a grey (or grey+alpha) channel three times, keep RGB as is."""

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        img = convert_to_tensor(img, track_meta=True)
        c = img.shape[0]
        if c == 3:
            return img
        if c == 4:
            return img[:3]
        if c in (1, 2):
            return img[:1].repeat(3, *([1] * (img.ndim - 1)))
        raise ValueError(f"EnsureRGB: expected 1-4 channels (channel-first), got shape {tuple(img.shape)}")


class EnsureRGBd(MapTransform):
    """Dictionary wrapper of :class:`EnsureRGB`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.t = EnsureRGB()

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.t(d[key])
        return d
