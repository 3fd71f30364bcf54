"""``SegmentationReport``: the papers' evaluation table, per case and aggregated.

Per (case, class): Dice, IoU, precision, recall, false-positive rate, false-negative rate and
HD95 (in the physical units of ``spacing``, i.e. mm for NIfTI images), plus the confusion counts.
The overlap metrics come from MONAI's ``get_confusion_matrix`` /
``compute_confusion_matrix_metric``; only the 0/0 cases, which MONAI leaves as NaN, are given a
value by the convention below. HD95 comes from :func:`monai_attn.metrics.hausdorff_distance`.

0/0 convention (``empty="diagonal"`` or a number; docs/metrics.md has the full table): a ratio
whose denominator counts nothing takes its *best* value when the prediction is right about the
emptiness and its *worst* value otherwise —

=============  ==========================  ==================================================
metric         0/0 when                    value
=============  ==========================  ==================================================
Dice, IoU      both masks empty            1
precision      prediction empty            1 if the ground truth is empty too, else 0
recall         ground truth empty          1 if the prediction is empty too, else 0
FN rate        ground truth empty          0 if the prediction is empty too, else 1
FP rate        ground truth fills image    0 (there are no negatives to get wrong)
HD95           one / both masks empty      ``empty`` (image diagonal) / 0
=============  ==========================  ==================================================

With ``empty="nan"`` every 0/0 ratio and every one-sided-empty HD95 is NaN instead (MONAI's
behaviour), and means leave those cases out (their number is reported as ``n``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.metrics import CumulativeIterationMetric, compute_confusion_matrix_metric, get_confusion_matrix

from ..atomic import write_text_atomic
from .hausdorff import ListAsBatchMixin
from .surface_distance import CONVENTIONS, EMPTY_POLICIES, SpacingType, _as_bool_mask, hausdorff_distance

__all__ = ["SegmentationReport", "REPORT_METRICS", "read_report_csv", "read_report_json"]

#: per-case metrics, in column order; all are ratios in [0, 1] except ``hd95`` (spacing units).
REPORT_METRICS = ("dice", "iou", "precision", "recall", "fpr", "fnr", "hd95")
_COUNTS = ("tp", "fp", "tn", "fn")
_COLUMNS = REPORT_METRICS + _COUNTS
# MONAI's names for the confusion-matrix metrics
_MONAI_NAMES = {
    "dice": "f1 score",
    "iou": "threat score",
    "precision": "precision",
    "recall": "sensitivity",
    "fpr": "fall out",
    "fnr": "miss rate",
}


def _fill_zero_division(values: dict[str, torch.Tensor], cm: torch.Tensor) -> None:
    """Replace MONAI's NaN for 0/0 by the best/worst convention (in place)."""
    tp, fp, tn, fn = cm.unbind(-1)
    pred_empty = (tp + fp) == 0
    gt_empty = (tp + fn) == 0
    one = torch.ones_like(tp)
    zero = torch.zeros_like(tp)
    both = pred_empty & gt_empty
    values["dice"] = torch.where(both, one, values["dice"])
    values["iou"] = torch.where(both, one, values["iou"])
    values["precision"] = torch.where(pred_empty, torch.where(gt_empty, one, zero), values["precision"])
    values["recall"] = torch.where(gt_empty, torch.where(pred_empty, one, zero), values["recall"])
    values["fnr"] = torch.where(gt_empty, torch.where(pred_empty, zero, one), values["fnr"])
    values["fpr"] = torch.where((fp + tn) == 0, zero, values["fpr"])


def _nan_stats(x: np.ndarray) -> dict[str, float | int]:
    """Mean and population standard deviation over the non-NaN values, and their number."""
    x = x[~np.isnan(x)]
    if x.size == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(x.mean()), "std": float(x.std()), "n": int(x.size)}


def _case_ids_from_meta(y: Any, batch_size: int) -> list[str] | None:
    """``filename_or_obj`` of a MetaTensor batch (or item), if present."""
    meta = getattr(y, "meta", None)
    if not isinstance(meta, dict) or "filename_or_obj" not in meta:
        return None
    names = meta["filename_or_obj"]
    if isinstance(names, (str, os.PathLike)):
        names = [names]
    names = [str(n) for n in names]
    return names if len(names) == batch_size else None


class SegmentationReport(ListAsBatchMixin, CumulativeIterationMetric):
    """Per-case Dice, IoU, precision, recall, FP rate, FN rate and HD95, with mean ± std.

    A ``monai.metrics.CumulativeIterationMetric``: call it on every batch (batch-first tensors
    or lists of channel-first tensors, binarized, one-hot), then read :meth:`rows`,
    :meth:`summary`, or write :meth:`to_csv` / :meth:`to_json`. ``aggregate()`` returns the
    mean of ``key_metric`` (a scalar, so it can drive checkpoint selection).

    Args:
        include_background: keep the first channel. Defaults to ``False``.
        percentile: percentile of the surface distances for the boundary metric (the ``hd95``
            column). Defaults to ``95``.
        empty: HD95 of a case where exactly one mask is empty — ``"diagonal"`` (default: the
            image diagonal in physical units), a number, ``"inf"``, or ``"nan"``. With ``"nan"``
            the 0/0 ratios are NaN as well (MONAI's behaviour); otherwise they follow the
            best/worst convention of this module.
        spacing: default voxel spacing (number, per-dimension sequence, or one per image), used
            when a call passes none. Units of ``hd95`` are those of the spacing (mm for NIfTI).
        class_names: names of the reported channels (after dropping the background); default
            ``"class_<index>"`` with the channel index of the input.
        key_metric: the metric whose mean ``aggregate()`` returns. Defaults to ``"dice"``.
        convention: how ``hd95`` pools the surface distances: ``"monai"`` (default),
            ``"pooled"`` (medpy) or ``"surface"`` (DeepMind); see :func:`hausdorff_distance`.
        units: the unit of ``hd95`` written in the JSON's settings (``"mm"``, or ``"pixels"`` for 2D
            images without a physical spacing); ``None`` (default): "physical units of the spacing".

    Masks must be binary (bool or 0/1): 0/255 masks, probabilities, label maps, NaN or Inf raise
    ``ValueError`` (MONAI would read them as ``== 1`` and could report a perfect score).

    Call keywords: ``spacing`` (overrides the default), ``case_ids`` (one per image; otherwise
    ``filename_or_obj`` from MetaTensor metadata, otherwise ``case_<n>``).
    """

    def __init__(
        self,
        include_background: bool = False,
        percentile: float | None = 95,
        empty: str | float = "diagonal",
        spacing: SpacingType = None,
        class_names: Sequence[str] | None = None,
        key_metric: str = "dice",
        convention: str = "monai",
        units: str | None = None,
    ) -> None:
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}.")
        self.convention = convention
        if isinstance(empty, str) and empty not in EMPTY_POLICIES:
            raise ValueError(f"empty must be one of {EMPTY_POLICIES} or a number, got {empty!r}.")
        if key_metric not in REPORT_METRICS:
            raise ValueError(f"key_metric must be one of {REPORT_METRICS}, got {key_metric!r}.")
        self.case_ids: list[str] = []
        super().__init__()
        self.include_background = include_background
        self.percentile = percentile
        self.empty = empty
        self.spacing = spacing
        self.class_names = list(class_names) if class_names is not None else None
        self.key_metric = key_metric
        self.units = units
        self._n_channels: int | None = None
        self._channel_offset = 0

    def reset(self) -> None:
        super().reset()
        self.case_ids = []

    # ---------------------------------------------------------------------------------------
    # computation
    # ---------------------------------------------------------------------------------------
    def __call__(self, y_pred: Any, y: Any = None, **kwargs: Any) -> Any:  # noqa: D102
        ids = kwargs.pop("case_ids", None)
        batch = len(y_pred) if isinstance(y_pred, (list, tuple)) else int(y_pred.shape[0])
        if ids is None:
            if isinstance(y_pred, (list, tuple)):
                found = [_case_ids_from_meta(t, 1) for t in (y if isinstance(y, (list, tuple)) else y_pred)]
                ids = [f[0] for f in found] if all(f is not None for f in found) else None
            else:
                ids = _case_ids_from_meta(y, batch) or _case_ids_from_meta(y_pred, batch)
        if ids is None:
            ids = [f"case_{len(self.case_ids) + i}" for i in range(batch)]
        ids = [str(i) for i in ids]
        if len(ids) != batch:
            raise ValueError(f"case_ids has {len(ids)} entries for a batch of {batch}.")
        out = super().__call__(y_pred, y, **kwargs)
        self.case_ids.extend(ids)
        return out

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("SegmentationReport needs the ground truth `y`.")
        if y_pred.shape != y.shape:
            raise ValueError(
                f"y_pred and y should have same shapes, got {list(y_pred.shape)} and {list(y.shape)}."
            )
        if y_pred.ndim < 3:
            raise ValueError(f"inputs should be [B, C, *spatial], got {list(y_pred.shape)}.")
        spacing = kwargs.get("spacing", None)
        if spacing is None:
            spacing = self.spacing
        bp, bt = _as_bool_mask(y_pred, "y_pred"), _as_bool_mask(y, "y").to(torch.as_tensor(y_pred).device)
        # [B, C, 4] counts; the ratios are then computed in float64
        cm = get_confusion_matrix(bp.float(), bt.float(), include_background=self.include_background).double()
        values = {name: compute_confusion_matrix_metric(mon, cm) for name, mon in _MONAI_NAMES.items()}
        if self.empty != "nan":
            _fill_zero_division(values, cm)
        values["hd95"] = hausdorff_distance(
            bp, bt, include_background=self.include_background, percentile=self.percentile,
            spacing=spacing, empty=self.empty, convention=self.convention,
        )  # fmt: skip
        self._n_channels = int(cm.shape[1])
        self._channel_offset = 1 if (not self.include_background and y_pred.shape[1] > 1) else 0
        cols = [values[m].to(cm.device, torch.float64) for m in REPORT_METRICS]
        cols += [c.to(torch.float64) for c in cm.unbind(-1)]
        return torch.stack(cols, -1)  # [B, C, K]

    # ---------------------------------------------------------------------------------------
    # results
    # ---------------------------------------------------------------------------------------
    def values(self) -> torch.Tensor:
        """All per-case values ``[N, C, K]`` (columns: ``REPORT_METRICS`` then tp, fp, tn, fn)."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("the report is empty: call it on some data first.")
        return data

    def classes(self) -> list[str]:
        n = self._n_channels or 0
        if self.class_names is not None:
            if len(self.class_names) != n:
                raise ValueError(f"class_names has {len(self.class_names)} names for {n} reported channels.")
            return list(self.class_names)
        return [f"class_{k + self._channel_offset}" for k in range(n)]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per (case, class): ``case``, ``class``, the metrics and the confusion counts."""
        data = self.values().cpu().numpy()
        ids = (
            self.case_ids
            if len(self.case_ids) == data.shape[0]
            else [f"case_{i}" for i in range(data.shape[0])]
        )
        names = self.classes()
        out = []
        for i, case in enumerate(ids):
            for c, cname in enumerate(names):
                row: dict[str, Any] = {"case": case, "class": cname}
                for k, col in enumerate(_COLUMNS):
                    v = float(data[i, c, k])
                    row[col] = int(v) if col in _COUNTS and math.isfinite(v) else v
                out.append(row)
        return out

    def summary(self) -> dict[str, Any]:
        """Per class (and ``"all"`` classes pooled): for every metric ``mean``, ``std`` (population,
        over non-NaN cases) and ``n`` (cases used); plus the number of cases with an empty
        prediction only, an empty ground truth only, or both."""
        data = self.values().cpu().numpy()
        names = self.classes()
        out: dict[str, Any] = {}
        blocks = [(cname, data[:, c]) for c, cname in enumerate(names)]
        blocks.append(("all", data.reshape(-1, data.shape[-1])))
        for cname, block in blocks:
            entry: dict[str, Any] = {m: _nan_stats(block[:, k]) for k, m in enumerate(REPORT_METRICS)}
            tp, fp, fn = block[:, 7], block[:, 8], block[:, 10]
            pe, ge = (tp + fp) == 0, (tp + fn) == 0
            entry["cases"] = int(block.shape[0])
            entry["pred_empty"] = int((pe & ~ge).sum())
            entry["gt_empty"] = int((ge & ~pe).sum())
            entry["both_empty"] = int((pe & ge).sum())
            out[cname] = entry
        return out

    def aggregate(self, *args: Any, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        """Mean of ``key_metric`` over all non-NaN (case, class) values (a 0-dim tensor)."""
        k = REPORT_METRICS.index(self.key_metric)
        col = self.values()[..., k]
        ok = ~torch.isnan(col)
        return col[ok].mean() if bool(ok.any()) else torch.tensor(math.nan, dtype=col.dtype)

    # ---------------------------------------------------------------------------------------
    # files
    # ---------------------------------------------------------------------------------------
    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write one row per (case, class); NaN is written as ``nan``. Returns the path.
        The file is written to a temporary name and renamed into place."""
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=["case", "class", *_COLUMNS])
        w.writeheader()
        for row in self.rows():
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
        return write_text_atomic(buf.getvalue(), path)

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write ``{"settings", "conventions", "summary", "rows"}`` (NaN as ``null``), atomically.
        Returns the path."""
        path = Path(path)
        doc = {
            "settings": {
                "include_background": self.include_background,
                "percentile": self.percentile,
                "empty": self.empty,
                "classes": self.classes(),
                "metrics": list(REPORT_METRICS),
                "hd95_units": self.units or "physical units of the spacing (mm for NIfTI)",
                "hd95_convention": self.convention,
            },
            "conventions": _conventions(self.empty),
            "summary": self.summary(),
            "rows": self.rows(),
        }
        return write_text_atomic(json.dumps(_nan_to_none(doc), indent=2, allow_nan=False), path)

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, Any]], **kwargs: Any) -> SegmentationReport:
        """Rebuild a report (e.g. from :func:`read_report_csv`) so that it can be summarised or
        merged; ``kwargs`` go to the constructor."""
        classes: list[str] = []
        cases: list[str] = []
        for r in rows:
            if r["class"] not in classes:
                classes.append(r["class"])
            if r["case"] not in cases:
                cases.append(r["case"])
        data = torch.full((len(cases), len(classes), len(_COLUMNS)), math.nan, dtype=torch.float64)
        for r in rows:
            i, c = cases.index(r["case"]), classes.index(r["class"])
            data[i, c] = torch.tensor([float(r[k]) for k in _COLUMNS], dtype=torch.float64)
        kwargs.setdefault("class_names", classes)
        rep = cls(**kwargs)
        rep.extend(data)
        rep.case_ids = cases
        rep._n_channels = len(classes)
        return rep


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


def _conventions(empty: str | float) -> dict[str, str]:
    if empty == "nan":
        return {"zero_division": "NaN (left out of means)", "hd95_one_empty": "NaN", "hd95_both_empty": "0"}
    pen = "image diagonal in physical units" if empty == "diagonal" else str(empty)
    return {
        "dice_iou_both_empty": "1",
        "precision_pred_empty": "1 if ground truth empty else 0",
        "recall_gt_empty": "1 if prediction empty else 0",
        "fnr_gt_empty": "0 if prediction empty else 1",
        "fpr_no_negatives": "0",
        "hd95_one_empty": pen,
        "hd95_both_empty": "0",
    }


def read_report_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read the rows written by :meth:`SegmentationReport.to_csv` (numbers as float/int)."""
    rows = []
    with Path(path).open(newline="") as f:
        for r in csv.DictReader(f):
            row: dict[str, Any] = {"case": r["case"], "class": r["class"]}
            for k in _COLUMNS:
                v = float(r[k])
                row[k] = int(v) if k in _COUNTS and math.isfinite(v) else v
            rows.append(row)
    return rows


def read_report_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file written by :meth:`SegmentationReport.to_json` (``null`` back to NaN)."""
    doc = json.loads(Path(path).read_text())

    def back(x: Any) -> Any:
        if x is None:
            return math.nan
        if x in ("inf", "-inf"):
            return float(x)
        return x

    for row in doc.get("rows", []):
        for k in _COLUMNS:
            row[k] = back(row[k])
    for entry in doc.get("summary", {}).values():
        for m in REPORT_METRICS:
            entry[m] = {k: back(v) for k, v in entry[m].items()}
    return doc
