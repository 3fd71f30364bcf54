"""Datalists for bundle runs: prepare one from a raw download, or read a split/fold of one."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["prepare_datalist", "datalist_items"]


def prepare_datalist(dataset: str, dataset_dir: str | None = None, datalist: str | None = None,
                     out_dir: str = "eval", seed: int = 0, folds: int | None = None) -> str:
    """Return the path of a datalist JSON for a bundle run.

    With ``datalist`` (a JSON written by ``monai-attn prepare``) it is checked and returned. With
    ``dataset_dir`` (a raw download), the dataset's adapter verifies it and writes
    ``<out_dir>/datalist_<dataset>.json`` (nothing is written when the integrity check fails).
    """
    from monai_attn.data import get_adapter

    if datalist:
        path = Path(datalist).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: datalist not found (set 'datalist' to a JSON from `monai-attn prepare`)")
        return str(path)
    if not dataset_dir:
        raise ValueError("set either 'dataset_dir' (the raw download) or 'datalist' (a prepared JSON), "
                         "e.g. --dataset_dir /data/MICCAI_BraTS_2018_Data_Training")
    out = Path(out_dir) / f"datalist_{dataset}.json"
    data, report, _ = get_adapter(dataset, dataset_dir).prepare(out, seed=seed, folds=folds)
    if data is None:
        raise ValueError(f"{dataset_dir}: the integrity check failed, nothing was prepared:\n{report.format()}")
    return str(out)


def datalist_items(datalist_file: str, split: str = "training", fold: int | None = None,
                   required_keys: Sequence[str] = ("image", "label"), check_files: bool = True) -> list[dict]:
    """Items of one split of a datalist, with absolute paths; every item must hold ``required_keys``
    and, with ``check_files``, every listed file must exist (see :func:`monai_attn.data.load_datalist`).
    Evaluation passes ``check_files=False``: a missing file then fails only its case, which
    :class:`KeepGoingDataLoader` skips and lists.

    For cross-validation datalists (BraTS: every case in ``training`` with a ``fold``), pass ``fold``:
    ``"training"`` gives the other folds and ``"validation"``/``"test"`` the held-out fold.
    """
    from monai_attn.data import load_datalist, select_fold

    if split not in ("training", "validation", "test"):
        raise ValueError(f"split must be 'training', 'validation' or 'test', got {split!r}")
    if fold is not None and int(fold) >= 0:
        train, held_out = select_fold(load_datalist(datalist_file, "training", required_keys=required_keys,
                                                    check_files=check_files), int(fold))
        items = train if split == "training" else held_out
    else:
        items = load_datalist(datalist_file, split, required_keys=required_keys, check_files=check_files)
    if not items:
        raise ValueError(f"{datalist_file}: the {split!r} split is empty")
    return items
