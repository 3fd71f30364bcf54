"""Shared machinery of the dataset adapters: cases, integrity reports, seeded splits, datalist writing.

An adapter (one per dataset, see :mod:`monai_attn.data.isic2018` etc.) knows a raw download's
layout. It

1. :meth:`~DatasetAdapter.scan` s the root: finds the cases, notes missing and unexpected files;
2. :meth:`~DatasetAdapter.check_case` s every case's content: readable, consistent geometry,
   expected label values, finite intensities (run by :meth:`~DatasetAdapter.verify`);
3. :meth:`~DatasetAdapter.prepare` s a MONAI decathlon-style datalist (``training``,
   ``validation``, ``test``; ``fold`` on cross-validation items) with the papers' seeded splits,
   written atomically, and only when the check passes (unless bad cases are skipped explicitly).

Splits are *stable*: ids are ordered by ``sha256(f"{seed}:{id}")``, so the same seed gives the
same split on any machine, Python version and file-system listing order.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from abc import ABC, abstractmethod
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

from monai_attn.atomic import write_text_atomic  # noqa: F401 - re-exported (data.write_text_atomic)
from monai_attn.errors import MissingInputError
from monai_attn.progress import progress as progress_bar

__all__ = [
    "Case",
    "Problem",
    "IntegrityReport",
    "DatasetAdapter",
    "stable_order",
    "split_by_fractions",
    "kfold_assign",
    "write_json_atomic",
    "KNOWN_EXTRA_NAMES",
]

logger = logging.getLogger(__name__)

PathList = Union[Path, list]

#: The file ``monai-attn synth`` leaves in the root of a cohort it writes.
SYNTHETIC_MARKER = ".monai_attn_synthetic"

#: Files that come with the official downloads (or with the operating system) and are ignored silently.
KNOWN_EXTRA_NAMES = frozenset(
    {".DS_Store", "Thumbs.db", "desktop.ini", "LICENSE.txt", "ATTRIBUTION.txt", "README.txt", "README.md",
     SYNTHETIC_MARKER}
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a raw dataset.

    Args:
        path: the file (or folder) concerned, relative to the adapter's root where possible.
        message: what is wrong, in words.
        case: the case id the problem belongs to (``None`` for dataset-level problems).
        severity: ``"error"`` (the case is unusable / the check fails) or ``"warning"``
            (reported, e.g. an unexpected extra file, but harmless).
    """

    path: str
    message: str
    case: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else f"[{self.severity}] "
        return f"{tag}{self.path}: {self.message}"


@dataclass
class Case:
    """One case of a dataset: its id and its files by role (``"image"``/modality names, ``"label"``).

    A role maps to one path or, for DSB's per-nucleus masks, to a list of paths. Roles whose file
    is missing are absent (the scan reports them as problems).
    """

    id: str
    files: dict = field(default_factory=dict)
    group: str | None = None  # e.g. "HGG"


@dataclass
class IntegrityReport:
    """The outcome of :meth:`DatasetAdapter.verify`: every problem found, with file names."""

    dataset: str
    root: Path
    n_cases: int = 0
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    @property
    def bad_cases(self) -> list[str]:
        """Sorted ids of the cases with at least one error."""
        return sorted({p.case for p in self.errors if p.case is not None})

    @property
    def ok(self) -> bool:
        """``True`` when no errors were found (warnings allowed)."""
        return not self.errors

    def format(self) -> str:
        """A human-readable, multi-line summary listing every problem."""
        lines = [
            f"{self.dataset} at {self.root}: {self.n_cases} cases checked, "
            f"{len(self.errors)} errors in {len(self.bad_cases)} cases, {len(self.warnings)} warnings"
        ]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  {p}" for p in self.errors]
        lines += [f"  {p}" for p in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "root": str(self.root),
            "n_cases": self.n_cases,
            "ok": self.ok,
            "bad_cases": self.bad_cases,
            "notes": list(self.notes),
            "problems": [
                {"path": p.path, "message": p.message, "case": p.case, "severity": p.severity}
                for p in self.problems
            ],
        }

    def raise_if_failed(self) -> None:
        """Raise ``ValueError`` listing every error when the check failed."""
        if not self.ok:
            raise ValueError(f"integrity check failed:\n{self.format()}")


# --------------------------------------------------------------------------------------- splits
def _check_ids(ids: Iterable[str]) -> list[str]:
    ids = [str(i) for i in ids]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate case ids: {dupes[:10]}")
    return ids


def stable_order(ids: Iterable[str], seed: int = 0) -> list[str]:
    """Order ids by ``sha256(f"{seed}:{id}")``: a seeded shuffle independent of the input order,
    the platform and the Python version."""
    ids = _check_ids(ids)
    return sorted(ids, key=lambda i: (hashlib.sha256(f"{seed}:{i}".encode()).hexdigest(), i))


def split_by_fractions(
    ids: Iterable[str], fractions: Mapping[str, Any], seed: int = 0
) -> dict[str, list[str]]:
    """Seeded, stable split of ``ids`` into named parts.

    Every part but the last gets ``floor(n * fraction)`` ids (exact rational arithmetic); the last
    part gets the rest. E.g. ``{"training": 0.7, "validation": 0.1, "test": 0.2}`` splits ISIC's
    2594 images 1815/259/520 and ISLES' 94 cases 65/9/20; ``{"training": Fraction(540, 670),
    "validation": ...}`` splits DSB's 670 images 540/130. Each part is returned sorted.

    Raises:
        ValueError: fractions that are negative or sum to more than 1, or duplicate ids.
    """
    if not fractions:
        raise ValueError("fractions must name at least one part")
    fracs = {k: Fraction(v).limit_denominator(10**6) if isinstance(v, float) else Fraction(v)
             for k, v in fractions.items()}
    if any(f < 0 for f in fracs.values()) or sum(fracs.values()) > 1:
        raise ValueError(f"fractions must be non-negative and sum to at most 1, got {dict(fractions)}")
    order = stable_order(ids, seed)
    n = len(order)
    names = list(fracs)
    out: dict[str, list[str]] = {}
    start = 0
    for i, name in enumerate(names):
        size = n - start if i == len(names) - 1 else int(n * fracs[name])  # int(Fraction) floors
        out[name] = sorted(order[start : start + size])
        start += size
    return out


def kfold_assign(ids: Iterable[str], folds: int = 5, seed: int = 0) -> dict[str, int]:
    """Seeded, stable case-wise k-fold assignment ``{id: fold}``; fold sizes differ by at most one."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    order = stable_order(ids, seed)
    n = len(order)
    if n < folds:
        raise ValueError(f"cannot make {folds} folds from {n} cases")
    return {cid: (i * folds) // n for i, cid in enumerate(order)}


# -------------------------------------------------------------------------------------- writing
def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (see :func:`write_text_atomic`)."""
    return write_text_atomic(json.dumps(obj, indent=2) + "\n", path)


# -------------------------------------------------------------------------------------- adapter
class DatasetAdapter(ABC):
    """Base class of the dataset adapters.

    Subclasses set the class attributes and implement :meth:`resolve_root`, :meth:`scan`,
    :meth:`check_case` and :meth:`assign_splits`.

    Args:
        root: the raw download (the adapters accept the folder holding the dataset's top-level
            folders, or that folder itself; see each adapter's ``resolve_root``).
    """

    #: short name used on the command line
    name: str = ""
    #: human-readable description written into the datalist
    description: str = ""
    #: channel order of ``image`` (multi-modal datasets) or the image's channels (2D)
    channels: tuple = ()
    #: label values a valid label file may hold
    label_values: frozenset = frozenset()
    #: decathlon-style ``labels`` description
    labels: dict = {}
    #: reference publication of the split protocol
    reference: str = ""

    def __init__(self, root: str | os.PathLike):
        root = Path(root).expanduser()
        if not root.is_dir():
            raise MissingInputError(root, "dataset root does not exist or is not a folder",
                                    "set --dataset_dir (monai-attn: --root) to the raw download")
        self.root = self.resolve_root(root.resolve())

    # ---- to implement
    @classmethod
    @abstractmethod
    def resolve_root(cls, root: Path) -> Path:
        """Return the folder that the datalist's relative paths start from; raise
        ``FileNotFoundError`` naming what is missing when ``root`` is not this dataset."""

    @abstractmethod
    def scan(self) -> tuple[list[Case], list[Problem], list[str]]:
        """Find the cases. Returns ``(cases, problems, notes)``: layout problems (missing files,
        unexpected files) and notes (e.g. ignored LGG cases)."""

    @abstractmethod
    def check_case(self, case: Case) -> list[Problem]:
        """Read the case's files and report what is wrong with their content."""

    @abstractmethod
    def assign_splits(self, ids: Sequence[str], seed: int, folds: int | None) -> dict[str, Any]:
        """Return ``{"training": [...], "validation": [...], "test": [...]}`` (lists of ids) and,
        for cross-validation datasets, ``{"fold": {id: k}}``."""

    def item(self, case: Case) -> dict:
        """The datalist item of a case (paths relative to :attr:`root`)."""
        item: dict[str, Any] = {"id": case.id}
        if self.channels and len(self.channels) > 1 and all(c in case.files for c in self.channels):
            item["image"] = [self.rel(case.files[c]) for c in self.channels]
        else:
            item["image"] = self.rel(case.files["image"])
        item["label"] = self.rel(case.files["label"])
        return item

    # ---- shared
    def rel(self, path: PathList) -> Any:
        """Path(s) relative to the root, as POSIX strings."""
        if isinstance(path, (list, tuple)):
            return [self.rel(p) for p in path]
        path = Path(path)
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def verify(self, workers: int = 0, progress: bool | None = None) -> tuple[IntegrityReport, list[Case]]:
        """Scan the root and check every case's content.

        Args:
            workers: processes for the content checks (0: in this process).
            progress: show a tqdm bar (default: when stderr is a terminal).

        Returns:
            ``(report, cases)``: the report lists *all* problems found.
        """
        cases, problems, notes = self.scan()
        if not cases and not any(p.severity == "error" for p in problems):
            # an empty download (e.g. an empty HGG/) is not "OK": prepare would write an empty datalist
            problems = [*problems, Problem(str(self.root), f"no {self.name} cases found (an empty or unpacked-"
                                                           f"elsewhere download? see docs/datasets.md for the layout)")]
        report = IntegrityReport(self.name, self.root, len(cases), list(problems), list(notes))
        logger.info("%s: checking %d cases under %s", self.name, len(cases), self.root)
        if workers and workers > 0 and len(cases) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = pool.map(self.check_case, cases, chunksize=max(1, len(cases) // (8 * workers)))
                for found in progress_bar(results, len(cases), f"verify {self.name}", progress):
                    report.problems.extend(found)
        else:
            for case in progress_bar(cases, len(cases), f"verify {self.name}", progress):
                report.problems.extend(self.check_case(case))
        for p in report.errors:
            logger.debug("%s", p)
        return report, cases

    def datalist(self, cases: Sequence[Case], seed: int = 0, folds: int | None = None,
                 absolute_paths: bool = False) -> dict:
        """Build the decathlon-style datalist dictionary of ``cases`` with the seeded split."""
        by_id = {c.id: c for c in cases}
        splits = self.assign_splits(sorted(by_id), seed, folds)
        fold_of = splits.pop("fold", None)
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "reference": self.reference,
            "root": str(self.root),
            "seed": seed,
            "modality": {str(i): c for i, c in enumerate(self.channels)},
            "labels": dict(self.labels),
        }
        if fold_of is not None:
            out["numFolds"] = max(fold_of.values()) + 1 if fold_of else 0
        for part in ("training", "validation", "test"):
            items = []
            for cid in splits.get(part, []):
                item = self.item(by_id[cid])
                if absolute_paths:
                    item["image"] = _absolute(self.root, item["image"])
                    item["label"] = _absolute(self.root, item["label"])
                if fold_of is not None:
                    item["fold"] = fold_of[cid]
                items.append(item)
            out[f"num{part.capitalize()}"] = len(items)
            if items or part != "test":
                # an empty "test" list is left out: MONAI's load_decathlon_datalist fails on one
                # (IndexError) but reports a missing key clearly
                out[part] = items
        return out

    def prepare(
        self,
        out: str | os.PathLike,
        seed: int = 0,
        folds: int | None = None,
        skip_bad: bool = False,
        workers: int = 0,
        absolute_paths: bool = False,
        progress: bool | None = None,
    ) -> tuple[dict | None, IntegrityReport, list[str]]:
        """Verify the dataset and write its datalist JSON to ``out`` (atomically).

        Nothing is written when the check finds errors, unless ``skip_bad`` is set: then the bad
        cases are left out (and returned) and the split is made from the remaining ones.

        Returns:
            ``(datalist or None, report, skipped case ids)``.
        """
        report, cases = self.verify(workers=workers, progress=progress)
        skipped: list[str] = []
        if not report.ok:
            if not skip_bad:
                logger.error("%s", report.format())
                return None, report, skipped
            bad = set(report.bad_cases)
            skipped = sorted(bad)
            cases = [c for c in cases if c.id not in bad]
            if any(p.case is None for p in report.errors):
                logger.error("%s", report.format())
                return None, report, skipped
        if not cases:
            raise ValueError(f"{self.root}: no usable {self.name} cases found")
        data = self.datalist(cases, seed=seed, folds=folds, absolute_paths=absolute_paths)
        if skipped:
            data["skipped"] = skipped
        write_json_atomic(data, out)
        logger.info("%s: wrote %s (%s)", self.name, out,
                    ", ".join(f"{k} {len(data.get(k, []))}" for k in ("training", "validation", "test")))
        return data, report, skipped

    def problem(self, path: PathList, message: str, case: str | None = None, severity: str = "error") -> Problem:
        return Problem(str(self.rel(path)), message, case, severity)


def _absolute(root: Path, rel: Any) -> Any:
    if isinstance(rel, list):
        return [_absolute(root, r) for r in rel]
    return str((root / rel).resolve())
