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
    from monai_attn.errors import BadInputError, MissingInputError

    if datalist:
        path = Path(datalist).expanduser()
        if path.is_dir():
            raise BadInputError(path, "is a folder, not a datalist JSON",
                                "set --datalist to the JSON written by `monai-attn prepare` (or --dataset_dir to the "
                                "raw download)")
        if not path.is_file():
            raise MissingInputError(path, "datalist not found",
                                    "set --datalist to a JSON written by `monai-attn prepare` (or --dataset_dir to the raw "
                                    "download)")
        return str(path)
    if not dataset_dir:
        raise BadInputError("--dataset_dir", "set either 'dataset_dir' (the raw download) or 'datalist' (a prepared "
                            "JSON)", "e.g. --dataset_dir /data/MICCAI_BraTS_2018_Data_Training")
    out = Path(out_dir) / f"datalist_{dataset}.json"
    data, report, _ = get_adapter(dataset, dataset_dir).prepare(out, seed=seed, folds=folds)
    if data is None:
        raise BadInputError(dataset_dir, f"the integrity check failed, nothing was prepared:\n{report.format()}",
                            "fix the files listed above, or write a datalist without them with `monai-attn prepare "
                            "--skip-bad` and pass it as --datalist")
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
    from monai_attn.errors import BadInputError

    if split not in ("training", "validation", "test"):
        raise ValueError(f"split must be 'training', 'validation' or 'test', got {split!r}")
    if fold is not None and int(fold) >= 0:
        listed = load_datalist(datalist_file, "training", required_keys=required_keys, check_files=check_files)
        try:
            train, held_out = select_fold(listed, int(fold))
        except ValueError as e:
            raise BadInputError("--fold", f"{e} ({datalist_file})",
                                "choose one of the datalist's folds (or -1 for its own training/validation lists)") from e
        items = train if split == "training" else held_out
    else:
        items = load_datalist(datalist_file, split, required_keys=required_keys, check_files=check_files)
    if not items:
        raise BadInputError(datalist_file, f"the {split!r} split is empty",
                            "add cases to it (e.g. `monai-attn prepare` again), or choose another split or --fold")
    return items
