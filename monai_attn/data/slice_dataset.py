"""Slice-level training set over cached volumes: PATM's training protocol (Xu et al., BMVC 2020, Table 2).

The official code trains on 2D slices stored one per file (``preprocessing/preprocessing_brats.py``) with a
``DataLoader(batch_size=50 or 80, shuffle=True, drop_last=True)``: every step mixes slices of many volumes and an
epoch is one pass over the training slices. :class:`VolumeSliceDataset` gives the same from the volumes: each volume
goes once through the deterministic pipeline (load, orient, z-score, crop) and is cached slice-major
(``(D, C, H, W)``, optionally as float16), the slices the official preprocessing would have written are indexed
(:func:`~monai_attn.metrics.patm_slice_mask`, drawn once with ``seed``), and item ``i`` is one 2D slice, copied out
and passed through ``slice_transform`` (the random 2D augmentation, :func:`patm_slice_augmentation`).

Memory: the cache holds the cropped volumes once. BraTS 2018 HGG, 4 of 5 folds (168 cases, 4×160×160×155):
10.6 GB as float32, 5.3 GB with ``cache_dtype="float16"`` (the bundle's default), labels 0.7 GB as uint8.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from monai.data.meta_tensor import MetaTensor
from monai.transforms import Compose, RandFlipd, RandRotate90d, apply_transform

from ..metrics.patm import patm_slice_mask
from ..progress import progress as progress_bar

__all__ = ["VolumeSliceDataset", "patm_slice_augmentation", "SLICE_SELECTIONS", "AUGMENTATIONS"]

logger = logging.getLogger(__name__)

#: which slices of each volume are training items
SLICE_SELECTIONS = ("patm", "content", "all")
#: 2D augmentations (see :func:`patm_slice_augmentation`)
AUGMENTATIONS = ("hflip", "flips", "flips_rot90", "none")


def patm_slice_augmentation(augmentation: str = "hflip", keys: Sequence[str] = ("image", "label")) -> Compose:
    """The random 2D augmentation of a ``(C, H, W)`` slice of a RAS volume (H runs left-right).

    * ``"hflip"`` (PATM's text, section 4.4): left-right flip with probability 0.5;
    * ``"flips"`` (the official code's ``all_flip``): no flip, either flip or both, each with probability 1/4;
    * ``"flips_rot90"`` (this package's earlier default): both flips and a random multiple of 90°, each p = 0.5;
    * ``"none"``.
    """
    k = list(keys)
    if augmentation == "hflip":
        return Compose([RandFlipd(k, prob=0.5, spatial_axis=0)])
    if augmentation == "flips":
        return Compose([RandFlipd(k, prob=0.5, spatial_axis=0), RandFlipd(k, prob=0.5, spatial_axis=1)])
    if augmentation == "flips_rot90":
        return Compose([RandFlipd(k, prob=0.5, spatial_axis=0), RandFlipd(k, prob=0.5, spatial_axis=1),
                        RandRotate90d(k, prob=0.5, max_k=3)])
    if augmentation == "none":
        return Compose([])
    raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {augmentation!r}")


def _plain(x: Any) -> torch.Tensor:
    return x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x)


class VolumeSliceDataset(torch.utils.data.Dataset):
    """One item per selected 2D slice (along the last axis) of cached, preprocessed volumes.

    Args:
        data: datalist items (dicts with ``image`` and ``label`` paths, ``id`` optional).
        transform: deterministic volume pipeline giving channel-first ``(C, H, W, D)`` image and ``(1, H, W, D)``
            binary label (e.g. :func:`~monai_attn.transforms.brats2018_eval_transforms`); run once per volume.
        slice_transform: random transform of each 2D item (``(C, H, W)`` image and ``(1, H, W)`` label), e.g.
            :func:`patm_slice_augmentation`; None: none.
        selection: ``"patm"`` (default): the official preprocessing's slices (every slice with content in all
            modalities and more than one label pixel, and a random ``bg_fraction`` of the other slices with
            content); ``"content"``: every slice with content in all modalities; ``"all"``: every slice.
        bg_fraction: share of the slices without tumour kept by ``"patm"``. Defaults to 0.5 (official).
        seed: seed of that choice (drawn once, volume by volume in datalist order). Defaults to 0.
        cache_dtype: dtype of the cached images (e.g. ``"float16"`` halves the memory); items are float32.
        num_workers: threads preprocessing the volumes. Defaults to 0 (in the calling thread).
        image_key, label_key: keys of the image and the label.
        progress: draw a bar while the volumes are cached; ``None`` (default): in a terminal, not under ``CI=true``
            (:func:`monai_attn.progress.show_progress`).
    """

    def __init__(self, data: Sequence[dict], transform: Callable, slice_transform: Callable | None = None,
                 selection: str = "patm", bg_fraction: float = 0.5, seed: int = 0,
                 cache_dtype: torch.dtype | str | None = None, num_workers: int = 0,
                 image_key: str = "image", label_key: str = "label", progress: bool | None = None) -> None:
        if selection not in SLICE_SELECTIONS:
            raise ValueError(f"selection must be one of {SLICE_SELECTIONS}, got {selection!r}")
        if not 0.0 <= bg_fraction <= 1.0:
            raise ValueError(f"bg_fraction must be in [0, 1], got {bg_fraction}")
        if len(data) == 0:
            raise ValueError("VolumeSliceDataset: the datalist part is empty (check the datalist and the fold)")
        self.data, self.transform, self.slice_transform = list(data), transform, slice_transform
        self.selection, self.bg_fraction, self.seed = selection, bg_fraction, seed
        self.cache_dtype = getattr(torch, cache_dtype) if isinstance(cache_dtype, str) else cache_dtype
        self.image_key, self.label_key = image_key, label_key
        rng = np.random.default_rng(seed)
        self.images: list[torch.Tensor] = []  # (D, C, H, W) each: one slice is contiguous
        self.labels: list[torch.Tensor] = []
        index = []
        with ThreadPoolExecutor(max(1, num_workers)) as pool:
            # map() yields in datalist order (the seeded choice stays the same with any number of threads);
            # each volume is stored slice-major as it arrives, so the peak memory is the cache plus a few volumes
            cases = range(len(self.data))
            loaded = pool.map(self._load, cases) if num_workers > 0 else map(self._load, cases)
            for v, (img, lab) in enumerate(progress_bar(loaded, len(cases), "caching volumes", progress)):
                keep = self._select(img.permute(1, 2, 3, 0), lab.permute(1, 2, 3, 0), rng)
                index += [(v, int(k)) for k in np.flatnonzero(keep)]
                self.images.append(img)
                self.labels.append(lab)
        if not index:
            raise ValueError(f"VolumeSliceDataset: no slice of the {len(self.data)} volumes was selected "
                             f"(selection={selection!r}); check the images and labels")
        self.index = torch.tensor(index, dtype=torch.int64)
        nbytes = sum(t.numel() * t.element_size() for t in (*self.images, *self.labels))
        logger.info("VolumeSliceDataset: %d slices of %d volumes (selection %s), cache %.2f GB", len(self.index),
                    len(self.images), selection, nbytes / 1e9)

    def _load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = apply_transform(self.transform, dict(self.data[i]))
        img, lab = _plain(item[self.image_key]), _plain(item[self.label_key])
        if img.ndim != 4 or lab.ndim != 4 or img.shape[1:] != lab.shape[1:]:
            raise ValueError(f"{self.data[i].get('id', i)}: the volume transform must give (C, H, W, D) image and "
                             f"(1, H, W, D) label, got {tuple(img.shape)} and {tuple(lab.shape)}")
        img = img.to(self.cache_dtype) if self.cache_dtype is not None else img.float()
        # slice-major (D, C, H, W), made contiguous here in the loading thread
        return img.permute(3, 0, 1, 2).contiguous(), (lab > 0.5).to(torch.uint8).permute(3, 0, 1, 2).contiguous()

    def _select(self, img: torch.Tensor, lab: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
        d = img.shape[-1]
        if self.selection == "all":
            return np.ones(d, dtype=bool)
        if self.selection == "content":
            return patm_slice_mask(img.float(), torch.ones_like(lab), 1.0, rng)
        return patm_slice_mask(img.float(), lab, self.bg_fraction, rng)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        v, k = (int(x) for x in self.index[i])
        item = {self.image_key: self.images[v][k].to(torch.float32, copy=True),
                self.label_key: self.labels[v][k].to(torch.float32, copy=True),
                "id": str(self.data[v].get("id", v)), "slice_index": k}
        return apply_transform(self.slice_transform, item) if self.slice_transform is not None else item

    def volumes(self) -> list[int]:
        """Volume index of each item (for checks and statistics)."""
        return self.index[:, 0].tolist()
