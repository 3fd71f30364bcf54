"""Reading prepared datalists and building (cached) datasets from them."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["load_datalist", "select_fold", "datalist_fold", "make_dataset"]


def _base_dir(path: Path, base_dir: str | os.PathLike | None) -> Path:
    if base_dir is not None:
        return Path(base_dir)
    with open(path) as f:
        root = json.load(f).get("root")
    if root and Path(root).is_dir():
        return Path(root)
    return path.parent


def load_datalist(path: str | os.PathLike, key: str = "training", base_dir: str | os.PathLike | None = None) -> list[dict]:
    """Items of ``key`` in a datalist written by ``monai-attn prepare``, with absolute paths.

    Relative paths are joined to ``base_dir``; by default to the JSON's ``root`` entry when that
    folder exists, else to the JSON's folder (the decathlon convention).
    """
    from monai.data import load_decathlon_datalist

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: datalist not found")
    with open(path) as f:
        raw = json.load(f)
    if key not in raw:
        lists = [k for k, v in raw.items() if isinstance(v, list) and (not v or isinstance(v[0], dict))]
        raise ValueError(f"{path}: no {key!r} list in the datalist (it has {lists})")
    if not raw[key]:
        return []
    return load_decathlon_datalist(path, is_segmentation=True, data_list_key=key, base_dir=_base_dir(path, base_dir))


def select_fold(items: Sequence[dict], fold: int) -> tuple[list[dict], list[dict]]:
    """Split cross-validation items (with a ``fold`` entry) into ``(training, validation)`` for ``fold``."""
    if not items:
        raise ValueError("no items to split")
    missing = [it.get("id", i) for i, it in enumerate(items) if "fold" not in it]
    if missing:
        raise ValueError(f"items without a 'fold' entry: {missing[:5]}")
    folds = sorted({int(it["fold"]) for it in items})
    if fold not in folds:
        raise ValueError(f"fold {fold} not in the datalist's folds {folds}")
    return [it for it in items if int(it["fold"]) != fold], [it for it in items if int(it["fold"]) == fold]


def datalist_fold(path: str | os.PathLike, fold: int, base_dir: str | os.PathLike | None = None):
    """``select_fold(load_datalist(path, "training", base_dir), fold)``."""
    return select_fold(load_datalist(path, "training", base_dir), fold)


def make_dataset(data: Sequence[dict], transform: Callable, cache: str = "memory", cache_dir: str | None = None,
                 cache_rate: float = 1.0, num_workers: int | None = 0, progress: bool = False,
                 copy_cache: bool = False):
    """A MONAI dataset that caches the deterministic prefix of ``transform``.

    Args:
        data: datalist items.
        transform: e.g. :func:`monai_attn.transforms.brats2018_train_transforms`.
        cache: ``"memory"`` (``CacheDataset``), ``"disk"`` (``PersistentDataset`` under ``cache_dir``)
            or ``"none"`` (``Dataset``: re-reads and re-normalises every epoch).
        cache_rate, num_workers, progress: for ``CacheDataset``.
        copy_cache: deep-copy the cached item before the random transforms (``CacheDataset``'s
            default). Off by default: the slice sampler copies the slices it takes and never
            modifies the cached volume, and copying a 60 MB BraTS volume per fetch would cost
            4× the sampling itself. Turn it on for random transforms that work in place.
    """
    from monai.data import CacheDataset, Dataset, PersistentDataset

    if cache == "memory":
        return CacheDataset(list(data), transform, cache_rate=cache_rate, num_workers=num_workers, progress=progress,
                            copy_cache=copy_cache)
    if cache == "disk":
        if cache_dir is None:
            raise ValueError("cache='disk' needs cache_dir")
        return PersistentDataset(list(data), transform, cache_dir=cache_dir)
    if cache == "none":
        return Dataset(list(data), transform)
    raise ValueError(f"cache must be 'memory', 'disk' or 'none', got {cache!r}")
