"""Ignite handlers for MONAI evaluators: HD95 with spacing, and the full segmentation report.

Both are ``monai.handlers.IgniteMetricHandler`` subclasses, so a ``SupervisedEvaluator`` can
take them as ``key_val_metric`` or ``additional_metrics`` (in Python or in a bundle config)::

    evaluator = SupervisedEvaluator(
        ...,
        key_val_metric={"val_mean_dice": MeanDice(output_transform=from_engine(["pred", "label"]))},
        additional_metrics={
            "val_hd95": HausdorffHandler(percentile=95, output_transform=from_engine(["pred", "label"])),
            "val_report": SegmentationReportHandler(output_dir="eval", output_transform=from_engine(["pred", "label"])),
        },
    )

Unlike MONAI's ``HausdorffDistance`` handler, the spacing reaches the metric: an explicit
``spacing`` argument wins; otherwise it is read from the labels' (or predictions')
``MetaTensor`` affine, per image; otherwise from ``engine.state.batch[meta_key]["pixdim"]``
when ``meta_key`` is given; otherwise unit spacing (distances in voxels).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data.utils import affine_to_spacing
from monai.handlers import IgniteMetricHandler
from monai.utils import IgniteInfo, MetricReduction, min_version, optional_import

from .hausdorff import ASSDMetric, HausdorffMetric, NormalizedSurfaceDiceMetric, split_spacing
from .lesions import lesion_report, lesion_rows, write_lesions_csv
from .report import REPORT_METRICS, SegmentationReport
from .surface_distance import SpacingType

reinit__is_reduced, _ = optional_import(
    "ignite.metrics.metric",
    IgniteInfo.OPT_IMPORT_VERSION,
    min_version,
    "reinit__is_reduced",
    as_type="decorator",
)
idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")

__all__ = [
    "ASSDHandler",
    "HausdorffHandler",
    "SegmentationReportHandler",
    "SurfaceDiceHandler",
    "spacing_from_meta",
]

logger = logging.getLogger(__name__)


def _item_spacing(t: Any, spatial_dims: int) -> list[float] | None:
    affine = getattr(t, "affine", None)
    if affine is None:
        return None
    affine = torch.as_tensor(affine)
    if affine.ndim != 2:
        return None
    r = min(spatial_dims, affine.shape[0] - 1)
    sp = [float(v) for v in affine_to_spacing(affine, r=r)]
    return sp + [1.0] * (spatial_dims - len(sp))


def spacing_from_meta(y: Any, batch: Any = None, meta_key: str | None = None) -> list[list[float]] | None:
    """Per-image spacing ``[[s_1, ..., s_D], ...]`` from MetaTensor affines or a meta dict.

    Args:
        y: a batch-first MetaTensor ``[B, C, *spatial]`` or a list of channel-first MetaTensors.
        batch: ``engine.state.batch`` (a collated dict or a list of dicts), used with ``meta_key``.
        meta_key: key of a meta dict with a NIfTI ``pixdim`` (``pixdim[1:D+1]`` is the spacing),
            e.g. ``"image_meta_dict"``; used only when ``y`` carries no affine.

    Returns:
        one spacing per image, or ``None`` when none is available.
    """
    items = list(y) if isinstance(y, (list, tuple)) else None
    if items is not None:
        sp = [_item_spacing(t, t.ndim - 1) for t in items]
        if sp and all(s is not None for s in sp):
            return sp  # type: ignore[return-value]
        n, dims = len(items), (items[0].ndim - 1 if items else 0)
    elif isinstance(y, torch.Tensor):
        n, dims = int(y.shape[0]), y.ndim - 2
        affine = getattr(y, "affine", None)
        if affine is not None:
            affine = torch.as_tensor(affine)
            if affine.ndim == 3 and affine.shape[0] == n:
                return [[float(v) for v in affine_to_spacing(a, r=min(dims, a.shape[0] - 1))] for a in affine]
            if affine.ndim == 2:
                one = _item_spacing(y, dims)
                return [one] * n if one is not None else None
    else:
        return None
    if meta_key is None or batch is None:
        return None
    metas = [b.get(meta_key) for b in batch] if isinstance(batch, (list, tuple)) else batch.get(meta_key)
    if metas is None:
        return None
    if isinstance(metas, list):
        pix = [m.get("pixdim") if isinstance(m, dict) else None for m in metas]
        if any(p is None for p in pix):
            return None
        rows = [torch.as_tensor(p, dtype=torch.float64).reshape(-1) for p in pix]
    else:
        pixdim = metas.get("pixdim") if isinstance(metas, dict) else None
        if pixdim is None:
            return None
        pixdim = torch.as_tensor(pixdim, dtype=torch.float64)
        rows = list(pixdim.reshape(n, -1)) if pixdim.ndim == 2 else [pixdim.reshape(-1)] * n
    if len(rows) != n:
        return None
    return [[float(v) for v in r[1 : dims + 1]] for r in rows]


class _SpacingMixin:
    """``update`` that passes the spacing (explicit, or found in the metadata) to the metric."""

    spacing: SpacingType
    meta_key: str | None
    metric_fn: Any
    _engine: Any

    def _spacing(self, y_pred: Any, y: Any) -> Any:
        if self.spacing is not None:
            return self.spacing
        batch = getattr(getattr(self._engine, "state", None), "batch", None)
        return spacing_from_meta(y, batch, self.meta_key) or spacing_from_meta(y_pred, batch, self.meta_key)


class HausdorffHandler(_SpacingMixin, IgniteMetricHandler):
    """Hausdorff distance / HD95 handler (``HausdorffMetric``) that uses the voxel spacing.

    Args:
        include_background, distance_metric, percentile, directed, reduction, empty: as
            :class:`~monai_attn.metrics.HausdorffMetric` (defaults: ``False``, ``"euclidean"``,
            ``None``, ``False``, ``"mean"``, ``"diagonal"``).
        spacing: explicit spacing for every image; ``None`` (default) reads it from the metadata.
        meta_key: meta dict in ``engine.state.batch`` whose ``pixdim`` gives the spacing when the
            data carry no affine, e.g. ``"label_meta_dict"``. Defaults to ``None``.
        output_transform: maps ``engine.state.output`` to ``(y_pred, y)``, e.g.
            ``from_engine(["pred", "label"])``.
        save_details: keep the per-image values in ``engine.state.metric_details[name]``.
        convention: ``"monai"`` (default), ``"pooled"`` or ``"surface"`` (:func:`hausdorff_distance`).

    Masks must be binary (bool or 0/1; e.g. after ``AsDiscrete``); anything else raises ``ValueError``.
    After each epoch the numbers of empty cases are logged and stored in
    ``engine.state.metric_details[name + "_empty"]`` when ``save_details``.
    """

    def __init__(
        self,
        include_background: bool = False,
        distance_metric: str = "euclidean",
        percentile: float | None = None,
        directed: bool = False,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        empty: str | float = "diagonal",
        spacing: SpacingType = None,
        meta_key: str | None = None,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
        convention: str = "monai",
    ) -> None:
        metric_fn = HausdorffMetric(
            include_background=include_background,
            distance_metric=distance_metric,
            percentile=percentile,
            directed=directed,
            reduction=reduction,
            empty=empty,
            convention=convention,
        )
        self.spacing = spacing
        self.meta_key = meta_key
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)

    @reinit__is_reduced
    def update(self, output: Sequence[Any]) -> None:
        if len(output) != 2:
            raise ValueError(f"output must have length 2 (y_pred, y), got {len(output)}.")
        y_pred, y = output
        self.metric_fn(y_pred, y, spacing=self._spacing(y_pred, y))

    def compute(self) -> Any:
        result = super().compute()
        counts = self.metric_fn.empty_counts()
        logger.info(f"{self._name}: empty cases {counts}")
        if self.save_details and self._engine is not None:
            self._engine.state.metric_details[f"{self._name}_empty"] = counts
        return result


class SegmentationReportHandler(_SpacingMixin, IgniteMetricHandler):
    """The evaluation table as an evaluator metric: per-case Dice, IoU, precision, recall,
    FP/FN rates and HD95 (:class:`~monai_attn.metrics.SegmentationReport`).

    Its value (``engine.state.metrics[name]``) is the mean of ``key_metric``; the means of all
    metrics are also stored as ``engine.state.metrics[f"{name}_{metric}"]``, and when
    ``output_dir`` is given the per-case table and the summary are written after every run as
    ``{output_dir}/{filename}.csv`` and ``.json`` (by rank 0). Case ids come from the batch's
    ``id_key`` entries (the datalist's ``"id"``) when present, else from the labels'
    ``filename_or_obj`` metadata (a DSB label's is its first nucleus mask: name the cases by ``id``).

    Args:
        output_dir: folder for the CSV/JSON files; ``None`` (default) writes nothing.
        filename: base name of the files. Defaults to ``"metrics"``.
        include_background, percentile, empty, class_names, key_metric: as
            :class:`~monai_attn.metrics.SegmentationReport` (defaults: ``False``, ``95``,
            ``"diagonal"``, ``None``, ``"dice"``).
        spacing, meta_key, output_transform, save_details: as :class:`HausdorffHandler`.
        lesions: also run :func:`~monai_attn.metrics.lesion_report` on every (case, class) and
            write ``{output_dir}/lesions.csv`` (one row per ground-truth or false-positive lesion)
            beside the metrics; ``True`` for the defaults, or a dict of ``lesion_report``
            arguments (e.g. ``{"brats": "BraTS-GLI"}``). The summed lesion counts are stored as
            ``engine.state.metrics[f"{name}_lesion_recall"]`` etc. Defaults to ``False``.
        convention: of the ``hd95`` column (:func:`hausdorff_distance`). Defaults to ``"monai"``.
        units: the unit of ``hd95`` recorded in the JSON (``"mm"``, ``"pixels"``); see
            :class:`~monai_attn.metrics.SegmentationReport`. Defaults to ``None``.
        id_key: key of the case id in ``engine.state.batch``. Defaults to ``"id"``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        filename: str = "metrics",
        include_background: bool = False,
        percentile: float | None = 95,
        empty: str | float = "diagonal",
        class_names: Sequence[str] | None = None,
        key_metric: str = "dice",
        spacing: SpacingType = None,
        meta_key: str | None = None,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
        lesions: bool | dict = False,
        convention: str = "monai",
        units: str | None = None,
        id_key: str | None = "id",
    ) -> None:
        metric_fn = SegmentationReport(
            include_background=include_background,
            percentile=percentile,
            empty=empty,
            class_names=class_names,
            key_metric=key_metric,
            convention=convention,
            units=units,
        )
        self.id_key = id_key
        self.spacing = spacing
        self.meta_key = meta_key
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.filename = filename
        if not isinstance(lesions, (bool, dict)):
            raise ValueError(f"lesions must be True/False or a dict of lesion_report arguments, got {lesions!r}.")
        self.lesion_options = (dict(lesions) if isinstance(lesions, dict) else {}) if lesions else None
        self.lesion_rows: list[dict] = []
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)

    @reinit__is_reduced
    def reset(self) -> None:
        super().reset()
        self.lesion_rows = []

    @reinit__is_reduced
    def update(self, output: Sequence[Any]) -> None:
        if len(output) != 2:
            raise ValueError(f"output must have length 2 (y_pred, y), got {len(output)}.")
        y_pred, y = output
        spacing = self._spacing(y_pred, y)
        ids = self._case_ids(len(y_pred) if isinstance(y_pred, (list, tuple)) else int(y_pred.shape[0]))
        self.metric_fn(y_pred, y, spacing=spacing, **({"case_ids": ids} if ids else {}))
        if self.lesion_options is not None:
            self._lesions(y_pred, y, spacing)

    def _case_ids(self, n: int) -> list[str] | None:
        """The ``id_key`` entries of the engine's current batch (a decollated list of dicts or a collated
        dict) for the next ``n`` images: ignite updates a metric once per item of a decollated batch, so
        the items of one iteration are taken in order. ``None`` when the batch has no such ids."""
        state = getattr(self._engine, "state", None)
        batch = getattr(state, "batch", None)
        if self.id_key is None or batch is None:
            return None
        if isinstance(batch, (list, tuple)):
            ids = [b.get(self.id_key) if isinstance(b, dict) else None for b in batch]
        elif isinstance(batch, dict):
            ids = batch.get(self.id_key)
            ids = [ids] if isinstance(ids, str) else ids
        else:
            return None
        if not isinstance(ids, (list, tuple)) or any(i is None for i in ids):
            return None
        iteration = getattr(state, "iteration", None)
        if iteration != getattr(self, "_ids_iteration", None):
            self._ids_iteration, self._ids_used = iteration, 0
        start = self._ids_used if len(ids) > n else 0
        taken = list(ids[start : start + n])
        if len(taken) != n:
            return None
        self._ids_used = start + n
        return [str(i) for i in taken]

    def _lesions(self, y_pred: Any, y: Any, spacing: Any) -> None:
        report: SegmentationReport = self.metric_fn
        preds = list(y_pred) if isinstance(y_pred, (list, tuple)) else list(y_pred.unbind(0))
        labels = list(y) if isinstance(y, (list, tuple)) else list(y.unbind(0))
        cases = report.case_ids[-len(preds) :]
        names = report.classes()
        offset = report._channel_offset
        for p, t, sp, case in zip(preds, labels, split_spacing(spacing, len(preds)), cases):
            sp = None if sp is None else [float(v) for v in torch.as_tensor(sp).reshape(-1)]
            for c, cname in enumerate(names):
                rep = lesion_report(p[c + offset], t[c + offset], spacing=sp, **self.lesion_options)
                self.lesion_rows += lesion_rows(rep, case, cname)

    def compute(self) -> Any:
        result = super().compute()
        report: SegmentationReport = self.metric_fn
        summary = report.summary()
        if self._engine is not None and self._name is not None:
            for m in REPORT_METRICS:
                self._engine.state.metrics[f"{self._name}_{m}"] = summary["all"][m]["mean"]
            if self.lesion_options is not None:
                gt = [r for r in self.lesion_rows if r["kind"] == "gt"]
                found = sum(bool(r["detected"]) for r in gt)
                self._engine.state.metrics[f"{self._name}_lesion_recall"] = found / len(gt) if gt else float("nan")
                self._engine.state.metrics[f"{self._name}_fp_lesions"] = len(self.lesion_rows) - len(gt)
        if self.output_dir is not None and idist.get_rank() == 0:
            csv_path = report.to_csv(self.output_dir / f"{self.filename}.csv")
            report.to_json(self.output_dir / f"{self.filename}.json")
            logger.info(f"{self._name}: wrote {csv_path} and {csv_path.with_suffix('.json')}")
            if self.lesion_options is not None:
                path = write_lesions_csv(self.lesion_rows, self.output_dir / "lesions.csv")
                logger.info(f"{self._name}: wrote {path}")
        return result


class ASSDHandler(HausdorffHandler):
    """Average symmetric surface distance handler (:class:`~monai_attn.metrics.ASSDMetric`) that
    uses the voxel spacing like :class:`HausdorffHandler`.

    Args:
        include_background, distance_metric, symmetric, reduction, empty, convention: as
            :class:`~monai_attn.metrics.ASSDMetric`.
        spacing, meta_key, output_transform, save_details: as :class:`HausdorffHandler`.
    """

    def __init__(
        self,
        include_background: bool = False,
        distance_metric: str = "euclidean",
        symmetric: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        empty: str | float = "diagonal",
        spacing: SpacingType = None,
        meta_key: str | None = None,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
        convention: str = "monai",
    ) -> None:
        metric_fn = ASSDMetric(
            include_background=include_background, distance_metric=distance_metric, symmetric=symmetric,
            reduction=reduction, empty=empty, convention=convention,
        )  # fmt: skip
        self.spacing = spacing
        self.meta_key = meta_key
        IgniteMetricHandler.__init__(self, metric_fn=metric_fn, output_transform=output_transform,
                                     save_details=save_details)  # fmt: skip


class SurfaceDiceHandler(HausdorffHandler):
    """Normalised surface Dice handler (:class:`~monai_attn.metrics.NormalizedSurfaceDiceMetric`)
    that uses the voxel spacing like :class:`HausdorffHandler`.

    Args:
        class_thresholds, include_background, distance_metric, reduction, both_empty, convention:
            as :class:`~monai_attn.metrics.NormalizedSurfaceDiceMetric`.
        spacing, meta_key, output_transform, save_details: as :class:`HausdorffHandler`.
    """

    def __init__(
        self,
        class_thresholds: float | Sequence[float],
        include_background: bool = False,
        distance_metric: str = "euclidean",
        reduction: MetricReduction | str = MetricReduction.MEAN,
        both_empty: float = 1.0,
        spacing: SpacingType = None,
        meta_key: str | None = None,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
        convention: str = "surface",
    ) -> None:
        metric_fn = NormalizedSurfaceDiceMetric(
            class_thresholds, include_background=include_background, distance_metric=distance_metric,
            reduction=reduction, both_empty=both_empty, convention=convention,
        )  # fmt: skip
        self.spacing = spacing
        self.meta_key = meta_key
        IgniteMetricHandler.__init__(self, metric_fn=metric_fn, output_transform=output_transform,
                                     save_details=save_details)  # fmt: skip
