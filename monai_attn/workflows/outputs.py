"""Outputs of inference: the output folder check, case names and the atomic segmentation writer."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from monai_attn.atomic import atomic_write
from monai_attn.errors import BadInputError

from .inputs import IMAGE_SUFFIXES, VOLUME_SUFFIXES, strip_suffix

__all__ = ["check_output_dir", "case_name_formatter", "SaveSegmentationd"]

logger = logging.getLogger(__name__)


def check_output_dir(output_dir: str, inputs: Sequence[dict] | None = None) -> str:
    """Create ``output_dir`` and refuse one that is not writable or that holds any input file."""
    out = Path(output_dir).expanduser().resolve()
    for it in inputs or []:
        images = it["image"] if isinstance(it["image"], (list, tuple)) else [it["image"]]
        for img in images:
            folder = Path(os.path.realpath(Path(img).parent))  # realpath: a symlink loop fails its case later, not here
            if folder.is_relative_to(out):  # the input's folder or one of its ancestors
                raise BadInputError(out, f"output folder contains the input {img}", "choose a separate --output_dir")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInputError(out, f"cannot create the output folder ({e.strerror})", "choose a writable --output_dir") from e
    if not os.access(out, os.W_OK):
        raise BadInputError(out, "output folder is not writable", "choose a writable --output_dir")
    return str(out)


def case_name_formatter(dataset: str) -> Callable[[dict, object], dict]:
    """``SaveImaged(output_name_formatter=...)`` naming outputs after the case, not the first modality:
    BraTS ``<case>/<case>_flair.nii.gz`` (or the DICOM series folder ``<case>/<case>_flair/``) →
    ``<case>``; ISLES ``case_<n>/SMIR...CT_CBF.<id>/...nii`` (or that map folder holding a DICOM series)
    → ``case_<n>``; 2D images → the file's stem."""
    levels = {"brats2018": 1, "isles2018": 2}.get(dataset, 0)

    def formatter(metadict: dict, saver: object) -> dict:
        path = Path(str(metadict.get("filename_or_obj", "case")))
        if levels:
            # an ISLES map folder holding a DICOM series stands one level above the map's .nii file
            up = 1 if dataset == "isles2018" and path.is_dir() else levels
            subject = path.parents[up - 1].name
        else:
            subject = strip_suffix(path.name, IMAGE_SUFFIXES + VOLUME_SUFFIXES) or path.stem
        return {"subject": subject, "idx": metadict.get("patch_index")}

    return formatter


class SaveSegmentationd:
    """Save a predicted label map next to nothing it came from: ``<output_dir>/<case><postfix>``.

    Volumes (3 spatial dims) are written as uint8 NIfTI with the prediction's affine (after
    ``Invertd``, the input's); 2D images as 0/255 PNG. Files are written to a temporary name and
    renamed into place, so an interrupted run never leaves a half-written output; an existing input
    file is never overwritten. MONAI's ``SaveImaged(resample=False)`` is avoided because it fails on
    permuted (non-RAS, e.g. LPS-with-swapped-axes) affines.

    Args:
        keys: the prediction key (channel-first, one channel).
        output_dir: destination folder (create/check it with :func:`check_output_dir`).
        dataset: names outputs after the case (see :func:`case_name_formatter`).
        postfix: appended to the case name. Defaults to ``"_seg"``.
    """

    def __init__(self, keys: str = "pred", output_dir: str = "predictions", dataset: str = "brats2018",
                 postfix: str = "_seg") -> None:
        self.key = keys
        self.output_dir = Path(output_dir)
        self.formatter = case_name_formatter(dataset)
        self.postfix = postfix

    def __call__(self, data: dict) -> dict:
        import nibabel as nib
        import numpy as np
        from PIL import Image

        pred = data[self.key]
        meta = dict(getattr(pred, "meta", {}) or {})
        arr = np.asarray(pred.detach().cpu() if isinstance(pred, torch.Tensor) else pred)
        if arr.ndim not in (3, 4) or arr.shape[0] != 1:
            raise ValueError(f"{meta.get('filename_or_obj', '?')}: expected a one-channel 2D/3D prediction, "
                             f"got shape {arr.shape}")
        labels = (arr[0] > 0).astype(np.uint8)
        subject = self.formatter(meta, self)["subject"]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if labels.ndim == 3:
            affine = np.asarray(getattr(pred, "affine", np.eye(4)), dtype=np.float64)
            path = self.output_dir / f"{subject}{self.postfix}.nii.gz"
            image = nib.Nifti1Image(labels, affine)
            image.header.set_data_dtype(np.uint8)
            writer = lambda tmp: nib.save(image, tmp)  # noqa: E731
        else:
            path = self.output_dir / f"{subject}{self.postfix}.png"
            # MONAI's PIL reader gives (W, H) arrays: transpose back to the file's (H, W) rows
            writer = lambda tmp: Image.fromarray(labels.T * 255).save(tmp, format="PNG")  # noqa: E731
        source = meta.get("filename_or_obj")
        if source and Path(str(source)).resolve() == path.resolve():
            raise BadInputError(path, "refusing to overwrite the input file", "write predictions to a separate --output_dir")
        atomic_write(path, writer)
        logger.info("saved %s", path)
        data[f"{self.key}_saved_to"] = str(path)
        return data
