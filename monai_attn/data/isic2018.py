"""ISIC 2018 Task 1 adapter (FocusNet++: 1815 / 259 / 520 split of the 2594 training pairs).

Layout of the official training download::

    ISIC2018_Task1-2_Training_Input/ISIC_<7 digits>.jpg              RGB, various sizes
    ISIC2018_Task1_Training_GroundTruth/ISIC_<7 digits>_segmentation.png   0 / 255

Datalist items: ``{"id": "ISIC_0000000", "image": jpg, "label": png}``; seeded split
0.7 / 0.1 / 0.2 with floor for training and validation (1815 / 259 / 520 of 2594).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from .base import KNOWN_EXTRA_NAMES, Case, DatasetAdapter, Problem, split_by_fractions
from .checks import read_image_2d, value_problem

__all__ = ["ISIC2018", "ISIC_IMAGE_DIR", "ISIC_MASK_DIR", "ISIC_FRACTIONS"]

ISIC_IMAGE_DIR = "ISIC2018_Task1-2_Training_Input"
ISIC_MASK_DIR = "ISIC2018_Task1_Training_GroundTruth"
ISIC_FRACTIONS = {"training": 0.7, "validation": 0.1, "test": 0.2}
_IMAGE_RE = re.compile(r"^(ISIC_\d{7})\.jpg$")
_MASK_RE = re.compile(r"^(ISIC_\d{7})_segmentation\.png$")


class ISIC2018(DatasetAdapter):
    """ISIC 2018 Task 1 training set → datalist with the FocusNet++ split.

    Args:
        root: the folder holding ``ISIC2018_Task1-2_Training_Input`` and
            ``ISIC2018_Task1_Training_GroundTruth`` (or one of those two folders).
    """

    name = "isic2018"
    description = "ISIC 2018 Task 1 lesion boundary segmentation (training set)"
    channels = ("R", "G", "B")
    label_values = frozenset({0, 255})
    labels = {"0": "background", "255": "lesion"}
    reference = "FocusNet++: 1815 training / 259 validation / 520 test of 2594, seeded"

    @classmethod
    def resolve_root(cls, root: Path) -> Path:
        for cand in (root, root.parent):
            if (cand / ISIC_IMAGE_DIR).is_dir() or (cand / ISIC_MASK_DIR).is_dir():
                return cand
        raise FileNotFoundError(f"{root}: no ISIC 2018 layout found (expected {ISIC_IMAGE_DIR}/ and {ISIC_MASK_DIR}/)")

    def scan(self) -> tuple[list[Case], list[Problem], list[str]]:
        problems: list[Problem] = []
        found: dict[str, dict[str, Path]] = {}
        for folder, regex, role in ((ISIC_IMAGE_DIR, _IMAGE_RE, "image"), (ISIC_MASK_DIR, _MASK_RE, "label")):
            d = self.root / folder
            if not d.is_dir():
                problems.append(self.problem(d, "missing folder"))
                continue
            for f in sorted(d.iterdir()):
                m = regex.match(f.name)
                if m and f.is_file():
                    found.setdefault(m[1], {})[role] = f
                elif f.name not in KNOWN_EXTRA_NAMES:
                    problems.append(self.problem(f, "unexpected file (ignored)", severity="warning"))
        cases = []
        for cid in sorted(found):
            files = found[cid]
            if "image" not in files:
                problems.append(self.problem(self.root / ISIC_IMAGE_DIR / f"{cid}.jpg",
                                             f"missing image for mask {files['label'].name}", cid))
            if "label" not in files:
                problems.append(self.problem(self.root / ISIC_MASK_DIR / f"{cid}_segmentation.png",
                                             f"missing mask for image {files['image'].name}", cid))
            cases.append(Case(cid, dict(files)))
        return cases, problems, []

    def check_case(self, case: Case) -> list[Problem]:
        out: list[Problem] = []
        size = None
        if "image" in case.files:
            try:
                img, mode = read_image_2d(case.files["image"])
                size = img.shape[:2]
                if mode != "RGB":
                    out.append(self.problem(case.files["image"], f"image mode {mode} (expected RGB)", case.id))
            except Exception as e:  # noqa: BLE001
                out.append(self.problem(case.files["image"], f"cannot read image ({type(e).__name__}: {e})", case.id))
        if "label" in case.files:
            path = case.files["label"]
            try:
                mask, mode = read_image_2d(path)
            except Exception as e:  # noqa: BLE001
                out.append(self.problem(path, f"cannot read mask ({type(e).__name__}: {e})", case.id))
                return out
            if mask.ndim != 2:
                out.append(self.problem(path, f"mask must be single-channel, got mode {mode}", case.id))
                return out
            msg = value_problem(mask, self.label_values, "mask")
            if msg:
                out.append(self.problem(path, msg, case.id))
            if size is not None and mask.shape != size:
                out.append(self.problem(path, f"mask size {mask.shape[::-1]} (W×H) differs from the image's "
                                              f"{size[::-1]}", case.id))
        return out

    def assign_splits(self, ids: Sequence[str], seed: int, folds: int | None) -> dict[str, Any]:
        return split_by_fractions(ids, ISIC_FRACTIONS, seed)
