"""Inference inputs: the cases in a folder in a dataset's raw layout, or a datalist split."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from monai_attn.errors import BadInputError, MissingInputError

from .datalists import datalist_items

__all__ = ["VOLUME_SUFFIXES", "IMAGE_SUFFIXES", "inference_items", "strip_suffix"]

logger = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")
_ISLES_MAPS = ("CBF", "MTT", "CBV", "Tmax")


def strip_suffix(name: str, suffixes: Sequence[str]) -> str | None:
    lower = name.lower()
    for s in suffixes:
        if lower.endswith(s):
            return name[: -len(s)]
    return None


def _is_series(path: Path) -> bool:
    from monai_attn.data.dicom import is_dicom_series

    return is_dicom_series(path)


def _entries(folder: Path, expected: Sequence[str]) -> list[Path] | dict:
    """The entries of a case folder; when it cannot be listed (permission denied, a symbolic link loop), the
    case with its ``expected`` file names: loading it then fails with the true cause, that case alone."""
    try:
        return list(folder.iterdir())
    except OSError as e:
        logger.warning("%s: cannot list this case folder (%s); the case will fail", folder, e.strerror or e)
        return {"id": folder.name, "image": [str(folder / name) for name in expected]}


def _brats_case(folder: Path) -> dict | None:
    found: dict[str, Path] = {}
    entries = _entries(folder, [f"{folder.name}_{m}.nii.gz" for m in _BRATS_MODALITIES])
    if isinstance(entries, dict):
        return entries
    for f in entries:
        # a volume file, or a folder <case>_<modality>/ holding the modality's DICOM series
        stem = f.name if f.is_dir() else strip_suffix(f.name, VOLUME_SUFFIXES)
        if stem is None:
            continue
        m = re.match(r"^(?P<case>.+)_(?P<mod>flair|t1|t1ce|t2)$", stem, re.IGNORECASE)
        if m and (f.is_file() or _is_series(f)):
            found[m.group("mod").lower()] = f
    if not found:
        return None
    missing = [m for m in _BRATS_MODALITIES if m not in found]
    if missing:
        # kept, with the expected file name: loading reports "file not found" and the run goes on
        ref = next(iter(found.values()))
        stem = strip_suffix(ref.name, VOLUME_SUFFIXES) or ref.name
        case, suffix = stem.rsplit("_", 1)[0], ref.name[len(stem):]
        for m in missing:
            found[m] = folder / f"{case}_{m}{suffix}"
        logger.warning("%s: missing modality file(s) %s (expected <case>_<modality>.nii.gz for %s)", folder,
                       [found[m].name for m in missing], list(_BRATS_MODALITIES))
    return {"id": folder.name, "image": [str(found[m]) for m in _BRATS_MODALITIES]}


def _isles_case(folder: Path) -> dict | None:
    found: dict[str, Path] = {}
    entries = _entries(folder, [f"SMIR.Brain.XX.O.CT_{m}.<id>/<unreadable>.nii" for m in _ISLES_MAPS])
    if isinstance(entries, dict):
        return entries
    for sub in entries:
        m = re.match(r"^SMIR\.Brain\.XX\.O\.CT_(?P<map>CBF|CBV|MTT|Tmax)\.\d+$", sub.name, re.IGNORECASE)
        if m and sub.is_dir():
            listed = _entries(sub, [f"{sub.name}.nii"])
            if isinstance(listed, dict):  # an unreadable map folder: its expected file fails with the cause
                found[m.group("map").upper().replace("TMAX", "Tmax")] = Path(listed["image"][0])
                continue
            files = sorted(f for f in listed if strip_suffix(f.name, VOLUME_SUFFIXES) is not None)
            if not files and _is_series(sub):
                files = [sub]  # the map's folder holds a DICOM series
            if files:
                found[m.group("map").upper().replace("TMAX", "Tmax")] = files[0]
    if not found:
        return None
    missing = [m for m in _ISLES_MAPS if m not in found]
    if missing:
        # kept with a placeholder path: loading reports "file not found" and the run goes on
        for m in missing:
            found[m] = folder / f"SMIR.Brain.XX.O.CT_{m}.<id>" / "<missing>.nii"
        logger.warning("%s: missing perfusion map folder(s) %s (expected SMIR.Brain.XX.O.CT_<MAP>.<id>/...nii)",
                       folder, missing)
    return {"id": folder.name, "image": [str(found[m]) for m in _ISLES_MAPS]}


def _images_2d(folder: Path) -> list[dict]:
    items = []
    for f in sorted(folder.rglob("*")):
        if f.is_file() and strip_suffix(f.name, IMAGE_SUFFIXES) is not None and "masks" not in f.parts \
                and not f.name.endswith(("_segmentation.png", "_seg.png")):
            items.append({"id": strip_suffix(f.name, IMAGE_SUFFIXES), "image": str(f)})
    return items


def _refuse_colliding_outputs(dataset: str, items: Sequence[dict]) -> None:
    """Refuse two inputs whose predictions would get one name (``img.tif`` and ``img.bmp``, or two case folders
    of one name): the second would silently overwrite the first."""
    from .outputs import case_name_formatter

    name = case_name_formatter(dataset)
    seen: dict[str, str] = {}
    for it in items:
        images = it["image"] if isinstance(it["image"], (list, tuple)) else [it["image"]]
        first = str(images[0])
        subject = name({"filename_or_obj": first}, None)["subject"]
        if subject in seen:
            raise BadInputError(first, f"its prediction would have the name of {seen[subject]}'s ('{subject}', "
                                       "the second overwriting the first)",
                                "rename one of the two inputs (predictions are named after the case or the image "
                                "file's name without its extension)")
        seen[subject] = first


def inference_items(dataset: str, input_dir: str | None = None, datalist: str | None = None,
                    split: str = "test", fold: int | None = None) -> list[dict]:
    """Cases to run inference on: a folder in the dataset's raw layout, or a datalist split.

    ``input_dir`` (the bundles' ``dataset_dir``, MONAI's inference property; ``input_dir`` is its
    older alias) may hold case folders (BraTS ``<case>/<case>_{flair,t1,t1ce,t2}.nii.gz`` in NIfTI,
    NRRD or MHA, or a folder ``<case>/<case>_<modality>/`` holding a DICOM series; ISLES
    ``case_<n>/SMIR.Brain.XX.O.CT_<MAP>.<id>/`` holding a ``*.nii`` or a DICOM series), be one case
    folder, or hold 2D images (ISIC/DSB; searched recursively, masks skipped). Labels are not needed.

    A case with a missing modality, or a datalist path that does not exist, is kept (with a
    warning): loading it fails with "file not found", and :class:`KeepGoingDataLoader` skips it
    and lists it at the end, so the other cases are still processed.
    """
    if datalist:
        items = datalist_items(datalist, split, fold, required_keys=("image",), check_files=False)
        items = [{k: v for k, v in it.items() if k in ("id", "image")} for it in items]
        _refuse_colliding_outputs(dataset, items)
        return items
    if not input_dir:
        raise BadInputError("--dataset_dir", "set either 'dataset_dir' (a folder of cases; 'input_dir' is an alias) "
                            "or 'datalist' for inference", "e.g. --dataset_dir /data/cases")
    root = Path(input_dir).expanduser()
    if not root.is_dir():
        raise MissingInputError(root, "input folder does not exist", "check --dataset_dir")
    if dataset in ("isic2018", "dsb2018"):
        items = _images_2d(root)
    else:
        reader: Callable[[Path], dict | None] = _brats_case if dataset == "brats2018" else _isles_case
        # case folders, and links to folders that cannot be followed (a loop): those fail alone, with the cause
        folders = sorted(p for p in root.iterdir() if p.is_dir() or (p.is_symlink() and not p.exists()))
        items = [it for it in [reader(root)] if it] or [it for d in folders for it in [reader(d)] if it]
    _refuse_colliding_outputs(dataset, items)
    if not items:
        raise BadInputError(root, f"no {dataset} cases found", "point --dataset_dir at the folder holding the cases, in "
                                  "the dataset's layout (see docs/bundles.md)")
    logger.info("inference: %d %s case(s) under %s", len(items), dataset, root)
    return items
