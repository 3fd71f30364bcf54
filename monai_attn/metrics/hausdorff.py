"""``HausdorffMetric``: a drop-in for MONAI's ``HausdorffDistanceMetric`` with an explicit
empty-mask policy, computed batched on any device by :func:`hausdorff_distance`; the same for
the average symmetric surface distance (``ASSDMetric``) and the normalised surface Dice
(``NormalizedSurfaceDiceMetric``; MONAI's own ``SurfaceDiceMetric`` keeps its name)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.metrics import Cumulative, CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

from .surface_distance import (
    CONVENTIONS,
    EMPTY_POLICIES,
    SpacingType,
    average_surface_distance,
    hausdorff_distance,
    surface_dice,
)

__all__ = [
    "ASSDMetric",
    "EMPTY_CODES",
    "HausdorffMetric",
    "ListAsBatchMixin",
    "NormalizedSurfaceDiceMetric",
    "split_spacing",
]

#: meaning of the codes returned with ``return_empty=True`` and kept by :class:`HausdorffMetric`.
EMPTY_CODES = {0: "none", 1: "pred_empty", 2: "gt_empty", 3: "both_empty"}


class _Buffer(Cumulative):
    """A plain cumulative buffer (synchronised across ranks by ``get_buffer``)."""

    def aggregate(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - not used
        return self.get_buffer()


def split_spacing(spacing: Any, n: int) -> list:
    """One spacing per image: split a per-image spacing (``n`` sequences or an ``[n, D]``
    array/tensor), or repeat a shared one (``None``, a number, one sequence of numbers)."""
    if spacing is None or isinstance(spacing, (int, float)):
        return [spacing] * n
    if isinstance(spacing, (torch.Tensor, np.ndarray)):
        return list(spacing) if spacing.ndim == 2 and spacing.shape[0] == n else [spacing] * n
    items = list(spacing)
    if len(items) == n and all(isinstance(s, (Sequence, np.ndarray, torch.Tensor)) for s in items):
        return items
    return [spacing] * n


class ListAsBatchMixin:
    """For ``IterationMetric``s: a list of channel-first images of one shape is stacked into a
    batch and computed in one call (MONAI computes list items one by one); items of different
    shapes are computed one by one, each with its own entry of a per-image ``spacing``."""

    def _compute_list(self, y_pred: Any, y: Any = None, **kwargs: Any) -> Any:
        if y is None:
            raise ValueError(f"{type(self).__name__} needs the ground truth `y`.")
        y_pred, y = list(y_pred), list(y)
        if len(y_pred) != len(y):
            raise ValueError(f"got {len(y_pred)} predictions and {len(y)} labels.")
        spacing = kwargs.pop("spacing", None)
        plain = [torch.as_tensor(t).as_subclass(torch.Tensor) for t in y_pred]
        labels = [torch.as_tensor(t).as_subclass(torch.Tensor) for t in y]
        if len({tuple(t.shape) for t in plain + labels}) == 1:
            return self._compute_tensor(
                torch.stack(plain).detach(), torch.stack(labels).detach(), spacing=spacing, **kwargs
            )
        per = split_spacing(spacing, len(plain))
        out = [
            self._compute_tensor(p.detach()[None], t.detach()[None], spacing=s, **kwargs)
            for p, t, s in zip(plain, labels, per)
        ]
        return torch.cat(out, 0)


class HausdorffMetric(ListAsBatchMixin, CumulativeIterationMetric):
    """Hausdorff distance (e.g. HD95) per image and class, accumulated over iterations.

    Same constructor arguments and behaviour as :class:`monai.metrics.HausdorffDistanceMetric`
    (``include_background``, ``distance_metric``, ``percentile``, ``directed``, ``reduction``,
    ``get_not_nans``, ``ignore_index``; ``spacing`` passed per call as a keyword), computed by
    :func:`monai_attn.metrics.hausdorff_distance` — all images and classes of a batch at once, on
    the inputs' device, with exact distances — plus an explicit empty-mask policy:

    * both masks empty → ``0`` (MONAI: NaN);
    * exactly one empty → ``empty``: ``"diagonal"`` (default) the image diagonal in physical
      units (larger than any possible distance, so a missed lesion or a false detection on an
      empty image can never improve the mean), ``"nan"`` (MONAI-compatible: NaN, left out of the
      mean and counted as missing in ``not_nans``), ``"inf"``, or a fixed number.

    The number of cases with an empty prediction / ground truth / both is kept and reported by
    :meth:`empty_counts` (and by :meth:`aggregate` with ``with_counts=True``).

    Args:
        include_background: keep the first channel. Defaults to ``False``.
        distance_metric: ``"euclidean"`` (default), ``"chessboard"`` or ``"taxicab"``.
        percentile: ``None`` (maximum, the classic Hausdorff distance) or a value in
            ``[0, 100]``; ``95`` gives HD95. Defaults to ``None``.
        directed: prediction → ground truth only. Defaults to ``False``.
        reduction: as in MONAI (``"mean"``, ``"sum"``, ``"mean_batch"``, ``"sum_batch"``,
            ``"mean_channel"``, ``"sum_channel"``, ``"none"``), over non-NaN values. Defaults to ``"mean"``.
        get_not_nans: ``aggregate`` also returns the count of non-NaN values. Defaults to ``False``.
        ignore_index: label value to ignore (as MONAI: masks those voxels, and a class equal to it
            gives NaN). Defaults to ``None``.
        empty: the empty-mask policy above. Defaults to ``"diagonal"``.
        spacing: default voxel spacing, used when a call passes none (MONAI's forms: a number, a
            sequence per dimension, or one per image). Defaults to ``None`` (1).
        convention: ``"monai"`` (default), ``"pooled"`` (medpy) or ``"surface"`` (DeepMind); see
            :func:`~monai_attn.metrics.hausdorff_distance`.

    Inputs must be binary (bool or 0/1); anything else raises ``ValueError``.

    Example::

        metric = HausdorffMetric(percentile=95)
        for batch in loader:
            metric(y_pred=post(model(batch["image"])), y=batch["label"], spacing=[1.0, 1.0, 2.5])
        hd95 = metric.aggregate().item()
        counts = metric.empty_counts()  # {"pred_empty": ..., "gt_empty": ..., "both_empty": ...}
        metric.reset()
    """

    def __init__(
        self,
        include_background: bool = False,
        distance_metric: str = "euclidean",
        percentile: float | None = None,
        directed: bool = False,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
        ignore_index: int | None = None,
        empty: str | float = "diagonal",
        spacing: SpacingType = None,
        convention: str = "monai",
    ) -> None:
        if isinstance(empty, str) and empty not in EMPTY_POLICIES:
            raise ValueError(f"empty must be one of {EMPTY_POLICIES} or a number, got {empty!r}.")
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}.")
        self.convention = convention
        self._codes = _Buffer()
        super().__init__()
        self.include_background = include_background
        self.distance_metric = distance_metric
        self.percentile = percentile
        self.directed = directed
        self.reduction = reduction
        self.get_not_nans = get_not_nans
        self.ignore_index = ignore_index
        self.empty = empty
        self.spacing = spacing

    def reset(self) -> None:
        super().reset()
        if hasattr(self, "_codes"):
            self._codes.reset()

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        """Hausdorff distance ``[B, C]`` of a batch; ``spacing`` may be passed as a keyword."""
        if y_pred.ndim < 3:
            raise ValueError(
                f"y_pred should have at least three dimensions [B, C, *spatial], got {list(y_pred.shape)}."
            )
        if y is None:
            raise ValueError("HausdorffMetric needs the ground truth `y`.")
        spacing = kwargs.get("spacing", None)
        if spacing is None:
            spacing = self.spacing
        if self.ignore_index is not None:
            from monai.metrics.utils import create_ignore_mask

            mask = create_ignore_mask(y, self.ignore_index)
            if mask is not None:
                y_pred, y = y_pred * mask, y * mask
        hd, codes = self._values(y_pred, y, spacing)
        if self.ignore_index is not None:
            offset = 0 if self.include_background else 1  # as MONAI, even when C == 1
            col = self.ignore_index - offset
            if 0 <= col < hd.shape[1]:
                hd[:, col] = float("nan")
                codes[:, col] = 0
        self._codes.extend(codes)
        return hd

    def _values(self, y_pred: torch.Tensor, y: torch.Tensor, spacing: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return hausdorff_distance(
            y_pred,
            y,
            include_background=self.include_background,
            distance_metric=self.distance_metric,
            percentile=self.percentile,
            directed=self.directed,
            spacing=spacing,
            empty=self.empty,
            return_empty=True,
            convention=self.convention,
        )

    def empty_codes(self) -> torch.Tensor | None:
        """Per-case codes ``[N, C]`` accumulated so far (see :data:`EMPTY_CODES`)."""
        return self._codes.get_buffer()

    def empty_counts(self) -> dict[str, int]:
        """How many (image, class) cases had an empty prediction only, an empty ground truth only,
        or both empty; ``cases`` is the total number of (image, class) values."""
        codes = self._codes.get_buffer()
        if codes is None:
            return {"cases": 0, "pred_empty": 0, "gt_empty": 0, "both_empty": 0}
        return {
            "cases": int(codes.numel()),
            "pred_empty": int((codes == 1).sum()),
            "gt_empty": int((codes == 2).sum()),
            "both_empty": int((codes == 3).sum()),
        }

    def aggregate(  # type: ignore[override]
        self, reduction: MetricReduction | str | None = None, with_counts: bool = False
    ) -> Any:
        """Reduce the accumulated values (over non-NaN entries, as MONAI).

        Returns the reduced tensor, ``(value, not_nans)`` when ``get_not_nans``, and with
        ``with_counts=True`` additionally the :meth:`empty_counts` dict as the last element.
        """
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError(
                "the data to aggregate must be a PyTorch Tensor: call the metric on some data first."
            )
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        out: tuple = (f, not_nans) if self.get_not_nans else (f,)
        if with_counts:
            out = out + (self.empty_counts(),)
        return out if len(out) > 1 else out[0]


class ASSDMetric(HausdorffMetric):
    """Average symmetric surface distance per image and class (:func:`average_surface_distance`),
    accumulated over iterations; MONAI's ``SurfaceDistanceMetric(symmetric=True)`` with the
    explicit empty-mask policy and conventions of :class:`HausdorffMetric`.

    Args:
        symmetric: both directions (default) or prediction → ground truth only.
        convention: ``"monai"`` (default) = ``"pooled"`` (MONAI, medpy ``assd``) or
            ``"surface"`` (DeepMind, area-weighted).
        Other arguments as :class:`HausdorffMetric` (no ``percentile``/``directed``).
    """

    def __init__(
        self,
        include_background: bool = False,
        distance_metric: str = "euclidean",
        symmetric: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
        ignore_index: int | None = None,
        empty: str | float = "diagonal",
        spacing: SpacingType = None,
        convention: str = "monai",
    ) -> None:
        super().__init__(
            include_background=include_background, distance_metric=distance_metric, directed=not symmetric,
            reduction=reduction, get_not_nans=get_not_nans, ignore_index=ignore_index, empty=empty,
            spacing=spacing, convention=convention,
        )  # fmt: skip
        self.symmetric = symmetric

    def _values(self, y_pred: torch.Tensor, y: torch.Tensor, spacing: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return average_surface_distance(
            y_pred, y, include_background=self.include_background, distance_metric=self.distance_metric,
            symmetric=self.symmetric, spacing=spacing, convention=self.convention, empty=self.empty,
            return_empty=True,
        )  # fmt: skip


class NormalizedSurfaceDiceMetric(HausdorffMetric):
    """Normalised surface Dice at a tolerance per image and class (:func:`surface_dice`),
    accumulated over iterations; MONAI's ``SurfaceDiceMetric`` (``convention="monai"``: edge
    voxels counted, MONAI's default) or DeepMind's / MONAI's ``use_subvoxels=True``
    (``convention="surface"``, default: area-weighted corner surface elements).

    Args:
        class_thresholds: tolerance in physical units, one number or one per reported class.
        both_empty: value when both masks are empty (MONAI: NaN). Defaults to ``1.0``.
        Other arguments as :class:`HausdorffMetric`. Empty counts are kept as there.
    """

    def __init__(
        self,
        class_thresholds: float | Sequence[float],
        include_background: bool = False,
        distance_metric: str = "euclidean",
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
        ignore_index: int | None = None,
        both_empty: float = 1.0,
        spacing: SpacingType = None,
        convention: str = "surface",
    ) -> None:
        super().__init__(
            include_background=include_background, distance_metric=distance_metric, reduction=reduction,
            get_not_nans=get_not_nans, ignore_index=ignore_index, spacing=spacing, convention=convention,
        )  # fmt: skip
        self.class_thresholds = class_thresholds
        self.both_empty = both_empty

    def _values(self, y_pred: torch.Tensor, y: torch.Tensor, spacing: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return surface_dice(
            y_pred, y, self.class_thresholds, include_background=self.include_background, spacing=spacing,
            convention=self.convention, distance_metric=self.distance_metric, both_empty=self.both_empty,
            return_empty=True,
        )  # fmt: skip
