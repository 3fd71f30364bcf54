"""PATM's evaluation rules (Xu, Oxtoby, Alexander, Jacob, "Learning to Pay Attention to Mistakes", BMVC 2020).

PATM's Tables 4-6 are not textbook metrics. Its official code (``moucheng2017/Pay_Attention_To_Mistakes``:
``NNUtils.test``, ``NNMetrics.segmentation_scores``, ``f1_score`` and ``hd95``, test loader of batch 1) scores every
2D test slice on its own and averages over the slices:

* **"IoU"** is the mean over the two classes (background, foreground) of the Dice coefficient
  ``2 |A ∩ B| / (|A| + |B| + 1e-8)``: a slice with neither tumour nor prediction scores 0.5;
* **FP rate** ``(FP + 1e-10) / (N + 1e-10)`` and **FN rate** ``(FN + 1e-10) / (P + 1e-10)``, per slice: a slice
  without tumour has FN rate 1 (``1e-10 / 1e-10``);
* **HD95** only on slices where the prediction and the label each have more than one pixel, in pixels, the 95th
  percentile (linear interpolation) of the pooled distances of both directions (medpy's ``hd95``). The official
  code hands medpy-style code ``(1, 1, H, W)`` arrays with a 4D cross footprint: its one-voxel erosion empties every
  mask (the neighbours along the two singleton axes lie outside the array), so every foreground pixel counts as
  surface, not only the boundary. The HD95 column is the mean over the slices where it is defined.

:func:`patm_scores` computes these for binary ``(B, 1, H, W[, D])`` tensors (each 2D image, or each slice along the
last axis of a volume, is one slice). :class:`PatmMetric` accumulates them over an evaluation (per-case sums, then
the pooled mean over all slices, as the official ``test()``), and :class:`PatmHandler` is its ignite handler for
bundle evaluators. :func:`patm_slice_mask` is the official preprocessing's choice of slices (``preprocessing/
preprocessing_brats.py``), used both to select test slices and, by :class:`~monai_attn.data.VolumeSliceDataset`,
training slices. See docs/metrics.md.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric
from monai.utils import IgniteInfo, min_version, optional_import
from scipy.ndimage import distance_transform_edt

reinit__is_reduced, _ = optional_import(
    "ignite.metrics.metric", IgniteInfo.OPT_IMPORT_VERSION, min_version, "reinit__is_reduced", as_type="decorator")
idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")

__all__ = ["PATM_KEYS", "patm_slice_scores", "patm_scores", "patm_slice_mask", "PatmMetric", "PatmHandler"]

logger = logging.getLogger(__name__)

#: the keys of :func:`patm_scores` (fractions and pixels) and the slice counts
PATM_KEYS = ("iou", "fp_rate", "fn_rate", "hd95", "slices", "hd95_slices")
_DICE_EPS, _RATE_EPS = 1e-8, 1e-10
# per-case sums kept by PatmMetric: slices, iou, fp rate, fn rate, hd95, hd95 slices
_SUMS = ("slices", "iou", "fp_rate", "fn_rate", "hd95", "hd95_slices")


def _as_slices(x: Any, name: str) -> np.ndarray:
    """``(B, 1, H, W[, D])`` -> boolean ``(S, H, W)`` (``x > 0.5``), slices along the last axis of each volume."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim not in (4, 5) or a.shape[1] != 1:
        raise ValueError(f"{name} must be a binary (B, 1, H, W) or (B, 1, H, W, D) array, got shape {a.shape}")
    a = a[:, 0] > 0.5
    if a.ndim == 4:  # (B, H, W, D) -> (B * D, H, W)
        a = np.moveaxis(a, -1, 1).reshape(-1, *a.shape[1:3])
    return a


def _hd95_pixels(pred: np.ndarray, label: np.ndarray) -> float:
    """Official HD95 of one 2D slice: every foreground pixel of each mask against the other mask, pooled."""
    to_label = distance_transform_edt(~label)[pred]
    to_pred = distance_transform_edt(~pred)[label]
    return float(np.percentile(np.concatenate([to_label, to_pred]), 95))


def patm_slice_scores(pred: Any, label: Any) -> dict[str, np.ndarray]:
    """Per-slice PATM values (see the module doc): ``iou``, ``fp_rate``, ``fn_rate`` (float64, one per slice) and
    ``hd95`` (NaN where not defined: either mask with at most one pixel)."""
    p, y = _as_slices(pred, "pred"), _as_slices(label, "label")
    if p.shape != y.shape:
        raise ValueError(f"pred and label must have the same shape, got {tuple(np.shape(pred))} and "
                         f"{tuple(np.shape(label))}")
    flat_p, flat_y = p.reshape(len(p), -1), y.reshape(len(y), -1)
    tp = np.count_nonzero(flat_p & flat_y, axis=1).astype(np.float64)
    fp = np.count_nonzero(flat_p & ~flat_y, axis=1).astype(np.float64)
    fn = np.count_nonzero(~flat_p & flat_y, axis=1).astype(np.float64)
    tn = flat_p.shape[1] - tp - fp - fn
    positives, negatives = tp + fn, tn + fp
    dice_fg = 2 * tp / (positives + (tp + fp) + _DICE_EPS)
    dice_bg = 2 * tn / (negatives + (tn + fn) + _DICE_EPS)
    hd = np.full(len(p), np.nan)
    for s in np.flatnonzero(((tp + fp) > 1) & (positives > 1)):
        hd[s] = _hd95_pixels(p[s], y[s])
    return {"iou": (dice_fg + dice_bg) / 2, "fp_rate": (fp + _RATE_EPS) / (negatives + _RATE_EPS),
            "fn_rate": (fn + _RATE_EPS) / (positives + _RATE_EPS), "hd95": hd}


def _summary(sums: np.ndarray) -> dict[str, float]:
    n, hd_n = float(sums[0]), float(sums[5])
    out = {k: (float(sums[i]) / n if n else math.nan) for i, k in enumerate(_SUMS) if k in ("iou", "fp_rate", "fn_rate")}
    out["hd95"] = float(sums[4]) / hd_n if hd_n else math.nan
    out["slices"], out["hd95_slices"] = int(n), int(hd_n)
    return out


def _sums(scores: dict[str, np.ndarray], keep: np.ndarray | None = None) -> np.ndarray:
    if keep is not None:
        scores = {k: v[keep] for k, v in scores.items()}
    hd = scores["hd95"][~np.isnan(scores["hd95"])]
    return np.array([len(scores["iou"]), scores["iou"].sum(), scores["fp_rate"].sum(), scores["fn_rate"].sum(),
                     hd.sum(), len(hd)], dtype=np.float64)


def patm_scores(pred: Any, label: Any) -> dict[str, float]:
    """PATM's official metrics of binary ``(B, 1, H, W[, D])`` predictions (tensors or arrays, foreground ``> 0.5``).

    Each 2D image, or each slice along the last axis of a 3D volume, is one slice. Returns ``iou``, ``fp_rate`` and
    ``fn_rate`` (fractions, means over all slices), ``hd95`` (pixels, mean over the slices where it is defined, NaN
    when none), ``slices`` and ``hd95_slices`` (the counts). Multiply the fractions by 100 for PATM's tables.
    """
    return _summary(_sums(patm_slice_scores(pred, label)))


def patm_slice_mask(image: Any, label: Any, bg_fraction: float = 0.5,
                    generator: np.random.Generator | int | None = None) -> np.ndarray:
    """Which slices (along the last axis) of one volume the official BraTS preprocessing keeps.

    ``image`` ``(C, H, W, D)`` z-scored per modality (over its non-zero voxels), ``label`` ``(1, H, W, D)`` binary.
    A slice is a candidate when every channel has a value above 0 (the modality's non-zero mean); candidates with
    more than one label pixel are kept, the others each with probability ``bg_fraction`` (the official code keeps a
    random half). ``generator``: a NumPy generator or a seed.
    """
    if not 0.0 <= bg_fraction <= 1.0:
        raise ValueError(f"bg_fraction must be in [0, 1], got {bg_fraction}")
    img = image.detach().cpu() if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image))
    lab = label.detach().cpu() if isinstance(label, torch.Tensor) else torch.as_tensor(np.asarray(label))
    if img.ndim != 4 or lab.ndim != 4 or img.shape[1:] != lab.shape[1:]:
        raise ValueError(f"image (C, H, W, D) and label (1, H, W, D) must share H, W, D; got {tuple(img.shape)} and "
                         f"{tuple(lab.shape)}")
    d = img.shape[-1]
    content = (img.reshape(img.shape[0], -1, d).amax(dim=1) > 0).all(dim=0).numpy()
    tumour = ((lab > 0.5).reshape(-1, d).sum(dim=0) > 1).numpy()
    rng = generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)
    lucky = rng.random(d) < bg_fraction
    return content & (tumour | lucky)


def _case_ids(y: Any, n: int, start: int) -> list[str]:
    meta = getattr(y, "meta", None)
    names = meta.get("filename_or_obj") if isinstance(meta, dict) else None
    if isinstance(names, str):
        names = [names]
    if isinstance(names, Sequence) and len(names) == n:
        return [Path(str(x)).name.split(".")[0] for x in names]
    return [f"case_{start + i}" for i in range(n)]


class PatmMetric(CumulativeIterationMetric):
    """PATM's official per-slice metrics over an evaluation (see the module doc).

    Call with binary ``(B, 1, H, W[, D])`` ``y_pred`` and ``y`` (and, for ``slices="official"``, the ``image``
    ``(B, C, H, W, D)`` as keyword); :meth:`aggregate` returns :func:`patm_scores`' dictionary pooled over all slices
    of all cases, as the official ``test()`` averages over its test slices; :meth:`per_case` the same per case.

    Args:
        slices: ``"all"`` (default): every slice; ``"official"``: the slices the official preprocessing keeps
            (:func:`patm_slice_mask`, needs ``image``).
        bg_fraction: share of slices without tumour kept by ``"official"``. Defaults to 0.5.
        seed: seed of that random choice (one generator for the whole evaluation, in case order). Defaults to 0.
    """

    def __init__(self, slices: str = "all", bg_fraction: float = 0.5, seed: int = 0) -> None:
        if slices not in ("all", "official"):
            raise ValueError(f"slices must be 'all' or 'official', got {slices!r}")
        self.slices, self.bg_fraction, self.seed = slices, bg_fraction, seed
        self.case_ids: list[str] = []
        self._rng = np.random.default_rng(seed)
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.case_ids = []
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, y_pred: Any, y: Any = None, **kwargs: Any) -> Any:  # noqa: D102
        n = len(y_pred) if isinstance(y_pred, (list, tuple)) else int(y_pred.shape[0])
        self.case_ids += _case_ids(y, n, len(self.case_ids))
        return super().__call__(y_pred, y, **kwargs)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, image: Any = None) -> torch.Tensor:
        """Per-case sums ``(B, 6)``: slices, then the sums of iou, fp_rate, fn_rate, hd95 and the hd95 slices."""
        if y is None:
            raise ValueError("PatmMetric needs the label y")
        if self.slices == "official" and (image is None or y_pred.ndim != 5):
            raise ValueError("slices='official' needs 3D volumes (B, 1, H, W, D) and their image=(B, C, H, W, D)")
        rows = []
        for b in range(y_pred.shape[0]):
            keep = None if self.slices == "all" else patm_slice_mask(image[b], y[b], self.bg_fraction, self._rng)
            rows.append(torch.as_tensor(_sums(patm_slice_scores(y_pred[b:b + 1], y[b:b + 1]), keep)))
        return torch.stack(rows)

    def aggregate(self) -> dict[str, float]:  # type: ignore[override]
        data = self.get_buffer()
        if data is None or (isinstance(data, torch.Tensor) and data.numel() == 0):
            return _summary(np.zeros(len(_SUMS)))
        return _summary(torch.as_tensor(data).double().sum(dim=0).numpy())

    def per_case(self) -> list[dict[str, Any]]:
        data = self.get_buffer()
        if data is None:
            return []
        rows = torch.as_tensor(data).double().numpy()
        return [{"case": cid, **_summary(r)} for cid, r in zip(self.case_ids, rows)]


class PatmHandler(IgniteMetricHandler):
    """:class:`PatmMetric` as an evaluator metric; its value is PATM's "IoU" (the mean Dice of both classes).

    The other values go to ``engine.state.metrics[f"{name}_{key}"]`` (``fp_rate``, ``fn_rate``, ``hd95``,
    ``slices``, ``hd95_slices``); with ``output_dir``, ``{output_dir}/{filename}.json`` holds the summary, the
    convention and the per-case values (rank 0). ``output_transform`` gives ``(pred, label)`` or, for
    ``slices="official"``, ``(pred, label, image)``.
    """

    def __init__(self, output_dir: str | os.PathLike | None = None, filename: str = "patm_metrics",
                 slices: str = "all", bg_fraction: float = 0.5, seed: int = 0,
                 output_transform: Callable = lambda x: x, save_details: bool = False) -> None:
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.filename = filename
        super().__init__(metric_fn=PatmMetric(slices, bg_fraction, seed), output_transform=output_transform,
                         save_details=save_details)
        # ignite unrolls decollated (list) outputs only as (pred, label) pairs; update() takes the lists whole
        self._skip_unrolling = True

    @reinit__is_reduced
    def update(self, output: Sequence[Any]) -> None:
        if len(output) not in (2, 3):
            raise ValueError(f"output must be (y_pred, y) or (y_pred, y, image), got {len(output)} items")
        y_pred, y = (torch.stack(list(v)) if isinstance(v, (list, tuple)) else v for v in output[:2])
        if len(output) == 3:
            image = output[2]
            self.metric_fn(y_pred, y, image=torch.stack(list(image)) if isinstance(image, (list, tuple)) else image)
        else:
            self.metric_fn(y_pred, y)

    def compute(self) -> Any:
        metric: PatmMetric = self.metric_fn  # type: ignore[assignment]
        summary = metric.aggregate()
        if self._engine is not None and self._name is not None:
            for k, v in summary.items():
                if k != "iou":
                    self._engine.state.metrics[f"{self._name}_{k}"] = v
        if self.output_dir is not None and idist.get_rank() == 0:
            from ..papers import CONVENTIONS

            self.output_dir.mkdir(parents=True, exist_ok=True)
            path = self.output_dir / f"{self.filename}.json"
            payload = {"convention": CONVENTIONS["patm"], "slices": metric.slices, "bg_fraction": metric.bg_fraction,
                       "seed": metric.seed, "summary": summary, "cases": metric.per_case()}
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(payload, indent=2, allow_nan=True))
            os.replace(tmp, path)
            logger.info("%s: wrote %s", self._name, path)
        return summary["iou"]
