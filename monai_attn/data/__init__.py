"""monai_attn.data: dataset adapters (raw download → integrity check → datalist JSON), synthetic
cohorts in the real layouts, and datalist loading helpers.

==========  ==========================  ================================  =================
name        adapter                     ``image`` (channel order)          split
==========  ==========================  ================================  =================
isic2018    :class:`ISIC2018`           RGB JPG                            1815/259/520
dsb2018     :class:`DSB2018`            RGBA/grey PNG; label = mask list   540/130
brats2018   :class:`BraTS2018`          [flair, t1, t1ce, t2]              5 folds of HGG
isles2018   :class:`ISLES2018`          [CBF, MTT, CBV, Tmax]              0.7/0.1/0.2
==========  ==========================  ================================  =================
"""
from __future__ import annotations

from .base import (
    Case,
    DatasetAdapter,
    IntegrityReport,
    Problem,
    kfold_assign,
    split_by_fractions,
    stable_order,
    write_json_atomic,
)
from .brats2018 import BRATS_MODALITIES, BraTS2018
from .dsb2018 import DSB2018, write_dsb2018_case, write_dsb2018_sample
from .isic2018 import ISIC2018
from .isles2018 import ISLES2018, ISLES_MAPS
from .loading import datalist_fold, load_datalist, make_dataset, select_fold
from .slice_dataset import AUGMENTATIONS, SLICE_SELECTIONS, VolumeSliceDataset, patm_slice_augmentation
from .synthetic import SYNTHESIZERS, synthesize

__all__ = [
    "ADAPTERS",
    "get_adapter",
    "Case",
    "DatasetAdapter",
    "IntegrityReport",
    "Problem",
    "stable_order",
    "split_by_fractions",
    "kfold_assign",
    "write_json_atomic",
    "ISIC2018",
    "DSB2018",
    "BraTS2018",
    "ISLES2018",
    "BRATS_MODALITIES",
    "ISLES_MAPS",
    "write_dsb2018_case",
    "write_dsb2018_sample",
    "load_datalist",
    "select_fold",
    "datalist_fold",
    "make_dataset",
    "VolumeSliceDataset",
    "patm_slice_augmentation",
    "SLICE_SELECTIONS",
    "AUGMENTATIONS",
    "SYNTHESIZERS",
    "synthesize",
]

#: dataset name (as on the command line) -> adapter class
ADAPTERS = {"isic2018": ISIC2018, "dsb2018": DSB2018, "brats2018": BraTS2018, "isles2018": ISLES2018}


def get_adapter(name: str, root, **kwargs) -> DatasetAdapter:
    """The adapter for dataset ``name`` on the raw download at ``root``."""
    if name not in ADAPTERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(ADAPTERS)}")
    return ADAPTERS[name](root, **kwargs)
