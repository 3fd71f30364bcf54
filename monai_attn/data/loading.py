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


def load_datalist(path: str | os.PathLike, key: str = "training", base_dir: str | os.PathLike | None = None,
                  required_keys: Sequence[str] = ("image",), check_files: bool = True) -> list[dict]:
    """Items of ``key`` in a datalist written by ``monai-attn prepare``, with absolute paths.

    Relative paths are joined to ``base_dir``; by default to the JSON's ``root`` entry when that
    folder exists, else to the JSON's folder (the decathlon convention).

    Every item must be an object holding ``required_keys``; with ``check_files`` every ``image``
    and ``label`` path must exist. All problems are reported at once in a
    :class:`~monai_attn.errors.BadInputError` naming the datalist, the items and the files.
    """
    from monai.data import load_decathlon_datalist

    from monai_attn.errors import BadInputError, MissingInputError

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(path, "datalist not found")
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(path, f"not a readable JSON datalist ({type(e).__name__}: {e})") from e
    if not isinstance(raw, dict):
        raise BadInputError(path, f"a datalist is a JSON object with 'training'/'validation'/'test' lists, "
                                  f"got a {type(raw).__name__}")
    if key not in raw:
        lists = [k for k, v in raw.items() if isinstance(v, list) and (not v or isinstance(v[0], dict))]
        raise BadInputError(path, f"no {key!r} list in the datalist (it has {lists})")
    if not isinstance(raw[key], list):
        raise BadInputError(path, f"{key!r} must be a list of items, got a {type(raw[key]).__name__}")
    if not raw[key]:
        return []
    problems = _item_problems(raw[key], key, required_keys)
    if problems:
        raise BadInputError(path, _summarise(problems, key))
    items = load_decathlon_datalist(path, is_segmentation=True, data_list_key=key, base_dir=_base_dir(path, base_dir))
    if check_files:
        problems = [f"{_item_name(key, i, it)}: {k} file not found: {p}"
                    for i, it in enumerate(items) for k in ("image", "label") if k in it
                    for p in (it[k] if isinstance(it[k], (list, tuple)) else [it[k]])
                    if not (Path(str(p)).is_file() or Path(str(p)).is_dir())]  # a folder: a DICOM series
        if problems:
            raise MissingInputError(path, _summarise(problems, key),
                                    "fix the paths, or re-create the datalist with `monai-attn prepare`")
    return items


def _item_name(key: str, i: int, item) -> str:
    cid = item.get("id") if isinstance(item, dict) else None
    return f"{key}[{i}]" + (f" ({cid})" if cid else "")


def _item_problems(items: Sequence, key: str, required_keys: Sequence[str]) -> list[str]:
    problems = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"{_item_name(key, i, item)}: expected an object like "
                            f"{{\"image\": ..., \"label\": ...}}, got {type(item).__name__}")
            continue
        missing = [k for k in required_keys if k not in item]
        if missing:
            problems.append(f"{_item_name(key, i, item)}: missing key(s) {missing}")
        for k in ("image", "label"):
            v = item.get(k)
            if k in item and not (isinstance(v, str) and v) and not (
                    isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)):
                problems.append(f"{_item_name(key, i, item)}: {k!r} must be a path or a list of paths, got {v!r}")
    return problems


def _summarise(problems: list[str], key: str, shown: int = 10) -> str:
    more = f"; ... and {len(problems) - shown} more" if len(problems) > shown else ""
    return f"{len(problems)} problem(s) in the {key!r} list: " + "; ".join(problems[:shown]) + more


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
