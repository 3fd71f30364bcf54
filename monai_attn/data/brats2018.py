"""BraTS 2018 adapter (Paying Attention to Mistakes: HGG only, enhancing tumour, 5-fold CV).

Layout of the official training download::

    MICCAI_BraTS_2018_Data_Training/
        HGG/<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz     210 cases (each may instead be a folder
                                                           <case>_<role>/ holding a DICOM series)
        LGG/<case>/...                                     75 cases (ignored for PATM)
        survival_data.csv

Volumes are 240×240×155 at 1 mm. Labels: 0 background, 1 necrosis / non-enhancing tumour,
2 oedema, 4 enhancing tumour. Datalist items: ``{"id", "image": [flair, t1, t1ce, t2], "label":
seg, "fold": k}``, all in ``training`` (``validation``/``test`` are empty; pick a fold with
:func:`monai_attn.data.select_fold`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from .base import KNOWN_EXTRA_NAMES, Case, DatasetAdapter, Problem, kfold_assign
from .checks import check_volume_group
from .dicom import is_dicom_series

__all__ = ["BraTS2018", "BRATS_MODALITIES", "BRATS_LABEL_VALUES", "BRATS_TOP_FOLDER"]

#: channel order of the datalist's ``image`` list
BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")
BRATS_LABEL_VALUES = frozenset({0, 1, 2, 4})
BRATS_TOP_FOLDER = "MICCAI_BraTS_2018_Data_Training"
_ROLES = BRATS_MODALITIES + ("seg",)
_FILE_RE = re.compile(r"^(?P<case>.+)_(?P<role>flair|t1|t1ce|t2|seg)\.nii(\.gz)?$")
_SERIES_RE = re.compile(r"^(?P<case>.+)_(?P<role>flair|t1|t1ce|t2|seg)$")
_ROOT_EXTRAS = frozenset({"survival_data.csv", "name_mapping.csv", "survival_evaluation.csv"})


class BraTS2018(DatasetAdapter):
    """BraTS 2018 training set → datalist with case-wise folds.

    Args:
        root: ``MICCAI_BraTS_2018_Data_Training`` (the folder holding ``HGG``), its parent, or its
            ``HGG`` folder.
        grades: which grade folders to use (PATM: ``("HGG",)``; the others are noted, not checked).
    """

    name = "brats2018"
    description = "BraTS 2018 training set (HGG), enhancing tumour, case-wise cross-validation"
    channels = BRATS_MODALITIES
    label_values = BRATS_LABEL_VALUES
    labels = {"0": "background", "1": "necrosis / non-enhancing tumour", "2": "oedema",
              "4": "enhancing tumour"}
    reference = "Paying Attention to Mistakes (PATM): HGG only, 5-fold case-wise CV"
    default_folds = 5

    def __init__(self, root, grades: Sequence[str] = ("HGG",)):
        self.grades = tuple(grades)
        super().__init__(root)

    @classmethod
    def resolve_root(cls, root: Path) -> Path:
        for cand in (root, root / BRATS_TOP_FOLDER, root.parent):
            if (cand / "HGG").is_dir():
                return cand
        raise FileNotFoundError(
            f"{root}: no BraTS 2018 layout found (expected {BRATS_TOP_FOLDER}/HGG/<case>/<case>_flair.nii.gz)"
        )

    def scan(self) -> tuple[list[Case], list[Problem], list[str]]:
        cases: list[Case] = []
        problems: list[Problem] = []
        notes: list[str] = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and entry.name in ("HGG", "LGG"):
                if entry.name not in self.grades:
                    n = sum(1 for d in entry.iterdir() if d.is_dir())
                    notes.append(f"{entry.name}: {n} case(s) ignored (using {', '.join(self.grades)})")
                continue
            if entry.name not in _ROOT_EXTRAS and entry.name not in KNOWN_EXTRA_NAMES:
                problems.append(self.problem(entry, "unexpected entry (ignored)", severity="warning"))
        for grade in self.grades:
            gdir = self.root / grade
            if not gdir.is_dir():
                problems.append(self.problem(gdir, f"missing {grade} folder"))
                continue
            for cdir in sorted(gdir.iterdir()):
                if not cdir.is_dir():
                    if cdir.name not in KNOWN_EXTRA_NAMES:
                        problems.append(self.problem(cdir, "unexpected file (ignored)", severity="warning"))
                    continue
                cases.append(self._scan_case(cdir, grade, problems))
        return cases, problems, notes

    def _scan_case(self, cdir: Path, grade: str, problems: list[Problem]) -> Case:
        case = Case(cdir.name, group=grade)
        for f in sorted(cdir.iterdir()):
            m = _FILE_RE.match(f.name)
            if f.is_dir():  # <case>_<role>/ holding the role's DICOM series
                m = _SERIES_RE.match(f.name)
                m = m if m and is_dicom_series(f) else None
            if m and m["case"] == cdir.name:
                role = "label" if m["role"] == "seg" else m["role"]
                if role in case.files:
                    problems.append(self.problem(f, f"second {m['role']} file for the case", case.id))
                else:
                    case.files[role] = f
            elif f.name not in KNOWN_EXTRA_NAMES:
                problems.append(self.problem(f, "unexpected file (ignored)", case.id, "warning"))
        for role in _ROLES:
            key = "label" if role == "seg" else role
            if key not in case.files:
                problems.append(self.problem(cdir / f"{cdir.name}_{role}.nii.gz", f"missing {role} file", case.id))
        return case

    def check_case(self, case: Case) -> list[Problem]:
        files = {r: case.files[r] for r in (*BRATS_MODALITIES, "label") if r in case.files}
        found = check_volume_group(files, "label", self.label_values)
        return [self.problem(p, m, case.id) for p, m in found]

    def assign_splits(self, ids: Sequence[str], seed: int, folds: int | None) -> dict[str, Any]:
        fold_of = kfold_assign(ids, folds or self.default_folds, seed)
        return {"training": sorted(ids), "validation": [], "test": [], "fold": fold_of}
