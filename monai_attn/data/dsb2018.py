"""Data Science Bowl 2018 (stage 1 train) adapter (FocusNet++: 540 / 130 split of 670 images).

Layout of the official download::

    stage1_train/<id>/images/<id>.png        RGBA (or grey) microscopy image
    stage1_train/<id>/masks/<hash>.png       one binary (0 / 255) PNG per nucleus
    stage1_train_labels.csv                  run-length encoding (unused)

Datalist items: ``{"id", "image": png, "label": [mask png, ...]}``; the union of the masks is the
binary target (:class:`monai_attn.transforms.LoadUnionMaskd`). Seeded split 540 / 130 of 670
(training ``floor(n * 540 / 670)``, the rest validation).
"""
from __future__ import annotations

import hashlib
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import KNOWN_EXTRA_NAMES, Case, DatasetAdapter, Problem, split_by_fractions
from .checks import read_image_2d, unique_values

__all__ = ["DSB2018", "DSB_FRACTIONS", "write_dsb2018_case", "write_dsb2018_sample"]

logger = logging.getLogger(__name__)

DSB_FRACTIONS = {"training": Fraction(540, 670), "validation": Fraction(130, 670)}
_ROOT_EXTRAS = frozenset({"stage1_train_labels.csv", "stage1_sample_submission.csv", "stage1_test",
                          "stage1_solution.csv", "stage2_test_final", "stage2_sample_submission_final.csv"})
_IMAGE_MODES = ("RGBA", "RGB", "L", "LA", "I;16", "I")


class DSB2018(DatasetAdapter):
    """DSB 2018 stage-1 training set → datalist with the FocusNet++ split.

    Args:
        root: the folder holding ``stage1_train`` (or ``stage1_train`` itself).
    """

    name = "dsb2018"
    description = "Data Science Bowl 2018 stage 1 training set, nuclei (binary union of instance masks)"
    channels = ("R", "G", "B")
    label_values = frozenset({0, 255})
    labels = {"0": "background", "1": "nucleus"}
    reference = "FocusNet++: 540 training / 130 validation of 670, seeded"

    @classmethod
    def resolve_root(cls, root: Path) -> Path:
        for cand in (root, root.parent):
            if (cand / "stage1_train").is_dir():
                return cand
        raise FileNotFoundError(f"{root}: no DSB 2018 layout found (expected stage1_train/<id>/images/<id>.png)")

    def scan(self) -> tuple[list[Case], list[Problem], list[str]]:
        problems: list[Problem] = []
        cases: list[Case] = []
        for entry in sorted(self.root.iterdir()):
            if entry.name != "stage1_train" and entry.name not in _ROOT_EXTRAS | KNOWN_EXTRA_NAMES:
                problems.append(self.problem(entry, "unexpected entry (ignored)", severity="warning"))
        for cdir in sorted((self.root / "stage1_train").iterdir()):
            if not cdir.is_dir():
                if cdir.name not in KNOWN_EXTRA_NAMES:
                    problems.append(self.problem(cdir, "unexpected file (ignored)", severity="warning"))
                continue
            case = Case(cdir.name)
            image = cdir / "images" / f"{cdir.name}.png"
            if image.is_file():
                case.files["image"] = image
            else:
                problems.append(self.problem(image, "missing image", case.id))
            mdir = cdir / "masks"
            masks = sorted(f for f in mdir.glob("*.png") if f.is_file()) if mdir.is_dir() else []
            if masks:
                case.files["label"] = masks
            else:
                problems.append(self.problem(mdir, "no nucleus masks (masks/*.png)", case.id))
            for sub in sorted(cdir.iterdir()):
                if sub.name in ("images", "masks"):
                    extras = [f for f in sorted(sub.iterdir()) if f != image and f not in masks]
                else:
                    extras = [sub]
                for f in extras:
                    if f.name not in KNOWN_EXTRA_NAMES:
                        problems.append(self.problem(f, "unexpected file (ignored)", case.id, "warning"))
            cases.append(case)
        return cases, problems, []

    def check_case(self, case: Case) -> list[Problem]:
        out: list[Problem] = []
        size = None
        if "image" in case.files:
            path = case.files["image"]
            try:
                img, mode = read_image_2d(path)
                size = img.shape[:2]
                if mode not in _IMAGE_MODES:
                    out.append(self.problem(path, f"unsupported image mode {mode}", case.id))
            except Exception as e:  # noqa: BLE001
                out.append(self.problem(path, f"cannot read image ({type(e).__name__}: {e})", case.id))
        for path in case.files.get("label", []):
            try:
                mask, mode = read_image_2d(path)
            except Exception as e:  # noqa: BLE001
                out.append(self.problem(path, f"cannot read mask ({type(e).__name__}: {e})", case.id))
                continue
            if mask.ndim != 2:
                out.append(self.problem(path, f"mask must be single-channel, got mode {mode}", case.id))
                continue
            values = set(unique_values(mask).tolist())
            if not (values <= {0, 255} or values <= {0, 1}):
                bad = sorted(values - {0, 1, 255}) or sorted(values)
                out.append(self.problem(path, f"mask is not binary: values {bad[:8]} (expected {{0, 255}})", case.id))
            elif values == {0}:
                out.append(self.problem(path, "empty mask", case.id, "warning"))
            if size is not None and mask.shape != size:
                out.append(self.problem(path, f"mask size {mask.shape[::-1]} (W×H) differs from the image's "
                                              f"{size[::-1]}", case.id))
        return out

    def assign_splits(self, ids: Sequence[str], seed: int, folds: int | None) -> dict[str, Any]:
        parts = split_by_fractions(ids, DSB_FRACTIONS, seed)
        parts["test"] = []
        return parts


def write_dsb2018_case(root: str | Path, case_id: str, image: np.ndarray, instances: np.ndarray,
                       rgba: bool = True) -> Path:
    """Write one image and its instance labels in the DSB layout under ``root/stage1_train``.

    Args:
        root: dataset root (``stage1_train`` is created inside).
        case_id: folder and file stem.
        image: 2D grey (uint8, or float in [0, 1]) or (H, W, 3) RGB uint8 image.
        instances: (H, W) integer instance labels (0 = background); one mask PNG per label.
        rgba: store the image as RGBA like most of the real stage-1 images.
    """
    from PIL import Image

    cdir = Path(root) / "stage1_train" / case_id
    (cdir / "images").mkdir(parents=True, exist_ok=True)
    (cdir / "masks").mkdir(parents=True, exist_ok=True)
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(np.round(img.astype(np.float64) * (255.0 if img.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if rgba:
        img = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    Image.fromarray(img).save(cdir / "images" / f"{case_id}.png")
    for k in np.unique(instances):
        if k == 0:
            continue
        name = hashlib.sha1(f"{case_id}:{int(k)}".encode()).hexdigest()
        Image.fromarray(((instances == k) * 255).astype(np.uint8)).save(cdir / "masks" / f"{name}.png")
    return cdir


def write_dsb2018_sample(root: str | Path, case_id: str | None = None) -> Path:
    """Write the real DSB 2018 sample shipped with the package (512×512, 125 nuclei) into the
    ``stage1_train/<id>/images|masks/`` layout under ``root``; returns the case folder."""
    import tifffile

    from ..sample_data import DSB2018_SAMPLE_DIR

    image = tifffile.imread(DSB2018_SAMPLE_DIR / "image.tif").astype(np.float64)
    instances = tifffile.imread(DSB2018_SAMPLE_DIR / "mask.tif")
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-8)
    case_id = case_id or "bbbc038_stardist_img2d"
    return write_dsb2018_case(root, case_id, image, instances)
