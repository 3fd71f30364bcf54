"""ISLES 2018 adapter (Paying Attention to Mistakes: CT perfusion maps → core lesion).

Layout of the official training download (``ISLES2018_Training.zip``)::

    TRAINING/case_<n>/SMIR.Brain.XX.O.CT.<id>/SMIR.Brain.XX.O.CT.<id>.nii
                     /SMIR.Brain.XX.O.CT_4DPWI.<id>/...nii     (unused)
                     /SMIR.Brain.XX.O.CT_CBF.<id>/...nii
                     /SMIR.Brain.XX.O.CT_CBV.<id>/...nii
                     /SMIR.Brain.XX.O.CT_MTT.<id>/...nii
                     /SMIR.Brain.XX.O.CT_Tmax.<id>/...nii
                     /SMIR.Brain.XX.O.OT.<id>/...nii           (lesion, {0, 1})

A map's (or the lesion's) folder may hold a DICOM series instead of the ``.nii`` file.

94 cases of 256×256 with 2–22 thick slices; every folder has its own numeric ``<id>``. Datalist
items: ``{"id": "case_<n>", "image": [CBF, MTT, CBV, Tmax], "label": OT}``; random case split
0.7/0.1/0.2 (65/9/20 of 94: floor for training and validation, the rest for test).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from .base import KNOWN_EXTRA_NAMES, Case, DatasetAdapter, Problem, split_by_fractions
from .checks import check_volume_group
from .dicom import is_dicom_series

__all__ = ["ISLES2018", "ISLES_MAPS", "ISLES_FRACTIONS", "isles_folder_name"]

#: channel order of the datalist's ``image`` list (the folder suffixes ``CT_<map>``)
ISLES_MAPS = ("CBF", "MTT", "CBV", "Tmax")
ISLES_FRACTIONS = {"training": 0.7, "validation": 0.1, "test": 0.2}
_UNUSED = ("CT", "CT_4DPWI", "MR_DWI")
_FOLDER_RE = re.compile(r"^SMIR\.Brain\.XX\.O\.(?P<mod>CT|CT_4DPWI|CT_CBF|CT_CBV|CT_MTT|CT_Tmax|MR_DWI|OT)\.(?P<num>\d+)$")
_CASE_RE = re.compile(r"^case_(?P<n>\d+)$")


def isles_folder_name(modality: str, number: int) -> str:
    """``SMIR.Brain.XX.O.<modality>.<number>`` (modality e.g. ``"CT_CBF"`` or ``"OT"``)."""
    return f"SMIR.Brain.XX.O.{modality}.{number}"


def _case_key(name: str):
    m = _CASE_RE.match(name)
    return (0, int(m["n"]), name) if m else (1, 0, name)


class ISLES2018(DatasetAdapter):
    """ISLES 2018 training set → datalist with a seeded 0.7/0.1/0.2 case split.

    Args:
        root: the folder holding ``TRAINING`` (or ``TRAINING`` itself).
    """

    name = "isles2018"
    description = "ISLES 2018 training set, CT perfusion maps, ischaemic core lesion"
    channels = ISLES_MAPS
    label_values = frozenset({0, 1})
    labels = {"0": "background", "1": "lesion"}
    reference = "Paying Attention to Mistakes (PATM): random case split 0.7/0.1/0.2"

    @classmethod
    def resolve_root(cls, root: Path) -> Path:
        for cand in (root, root.parent):
            if (cand / "TRAINING").is_dir():
                return cand
        for sub in sorted(root.iterdir()):  # e.g. ISLES2018_Training/TRAINING
            if (sub / "TRAINING").is_dir():
                return sub
        raise FileNotFoundError(f"{root}: no ISLES 2018 layout found (expected TRAINING/case_<n>/SMIR.Brain.XX.O.*)")

    def scan(self) -> tuple[list[Case], list[Problem], list[str]]:
        cases: list[Case] = []
        problems: list[Problem] = []
        tdir = self.root / "TRAINING"
        for cdir in sorted(tdir.iterdir(), key=lambda p: _case_key(p.name)):
            if not cdir.is_dir() or not _CASE_RE.match(cdir.name):
                if cdir.name not in KNOWN_EXTRA_NAMES:
                    problems.append(self.problem(cdir, "unexpected entry (ignored)", severity="warning"))
                continue
            cases.append(self._scan_case(cdir, problems))
        return cases, problems, []

    def _scan_case(self, cdir: Path, problems: list[Problem]) -> Case:
        case = Case(cdir.name)
        reported: set[str] = set()
        for sub in sorted(cdir.iterdir()):
            m = _FOLDER_RE.match(sub.name)
            if not (sub.is_dir() and m):
                if sub.name not in KNOWN_EXTRA_NAMES:
                    problems.append(self.problem(sub, "unexpected entry (ignored)", case.id, "warning"))
                continue
            mod = m["mod"]
            inner = [f for f in (sub / f"{sub.name}.nii", sub / f"{sub.name}.nii.gz") if f.is_file()]
            if not inner and mod not in _UNUSED and is_dicom_series(sub):
                inner = [sub]  # the map's folder holds a DICOM series
            else:
                for f in sorted(sub.iterdir()):
                    if f not in inner and f.name not in KNOWN_EXTRA_NAMES:
                        problems.append(self.problem(f, "unexpected file (ignored)", case.id, "warning"))
            if mod in _UNUSED:
                continue
            role = "label" if mod == "OT" else mod[len("CT_"):]
            if not inner:
                problems.append(self.problem(sub / f"{sub.name}.nii", f"missing {mod} file", case.id))
                reported.add(role)
            elif role in case.files:
                problems.append(self.problem(sub, f"second {mod} folder for the case", case.id))
            else:
                case.files[role] = inner[0]
        for role in (*ISLES_MAPS, "label"):
            if role not in case.files and role not in reported:
                mod = "OT" if role == "label" else f"CT_{role}"
                problems.append(self.problem(cdir / f"SMIR.Brain.XX.O.{mod}.<id>", f"missing {mod} folder", case.id))
        return case

    def check_case(self, case: Case) -> list[Problem]:
        files = {r: case.files[r] for r in (*ISLES_MAPS, "label") if r in case.files}
        found = check_volume_group(files, "label", self.label_values)
        return [self.problem(p, m, case.id) for p, m in found]

    def assign_splits(self, ids: Sequence[str], seed: int, folds: int | None) -> dict[str, Any]:
        return split_by_fractions(ids, ISLES_FRACTIONS, seed)
