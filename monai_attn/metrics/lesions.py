"""Lesion-wise analysis: which ground-truth lesions (connected components) were found or missed,
how well each was segmented, and which predicted lesions are false positives.

A *lesion* is a connected component of a binary mask (``scipy.ndimage.label``; default full
connectivity: 8 in 2D, 26 in 3D, as BraTS 2023). For every ground-truth lesion ``L``:

* the *matched* prediction is the union of the predicted components that intersect ``L`` (or,
  with the BraTS rules, ``L`` dilated);
* ``detected`` when there is at least one such component, ``missed`` otherwise;
* lesion ``dice`` = Dice(matched prediction, ``L``) (0 when missed) and lesion ``hd95`` = the
  HD95 between them (``missed_hd95`` when missed: by default the image diagonal);

predicted components that match no ground-truth lesion are *false-positive lesions*.

``brats="BraTS-GLI"`` (or ``-SSA``, ``-MEN``, ``-PED``, ``-MET``) applies the BraTS 2023
lesion-wise rules of the challenge's published evaluation code
(github.com/rachitsaluja/BraTS-2023-Metrics, ``get_lesion_wise_score``):

1. ground-truth components whose dilations (``dilation`` iterations of the 18-connected 3D
   structuring element; GLI/SSA/PED 3, MEN/MET 1) touch are merged into one lesion;
2. predicted components intersecting a lesion's dilation are its matches (26-connectivity);
3. lesions of volume ≤ ``volume_threshold`` mm³ (50; MET: 2) are listed but left out of the score;
4. HD95 uses DeepMind's surface convention, a miss or a false positive scores Dice 0 and
   HD95 374 mm, and the case scores ``Σ dice / (lesions + false positives)`` and
   ``(Σ hd95 + 374 · false positives) / (lesions + false positives)`` (1 and 0 when there is
   neither a lesion nor a false positive).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..data.base import write_text_atomic
from .surface_distance import SpacingType, _penalty, check_binary, hausdorff_distance

__all__ = [
    "BRATS_2023_RULES",
    "LESION_COLUMNS",
    "lesion_report",
    "lesion_rows",
    "read_lesions_csv",
    "write_lesions_csv",
]

#: (dilation iterations, volume threshold in mm³) per BraTS 2023 challenge, from its code.
BRATS_2023_RULES = {
    "BraTS-GLI": (3, 50.0),
    "BraTS-SSA": (3, 50.0),
    "BraTS-MEN": (1, 50.0),
    "BraTS-PED": (3, 50.0),
    "BraTS-MET": (1, 2.0),
}
#: the fixed HD95 penalty (mm) of a missed or false-positive lesion in BraTS 2023.
BRATS_PENALTY = 374.0
#: default lesion-size bins (mm³, or pixel area units in 2D): [lower, upper) each.
SIZE_BINS = (0.0, 100.0, 1000.0, 10000.0, math.inf)
#: columns of ``lesions.csv``.
LESION_COLUMNS = (
    "case", "class", "kind", "lesion", "voxels", "volume", "size_bin", "detected", "matched_pred",
    "dice", "hd95", "counted",
)  # fmt: skip


def _spatial(x: Any, name: str) -> np.ndarray:
    t = check_binary(x, name)
    while t.ndim > 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim == 3 and t.shape[0] == 1:  # a channel-first 2D mask [1, H, W]
        t = t[0]
    if t.ndim not in (2, 3):
        raise ValueError(f"`{name}` must be one 2D or 3D mask (optionally [1, ...]), got shape {list(t.shape)}.")
    return t.detach().cpu().numpy()


def _bin_label(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g})" if math.isfinite(hi) else f">= {lo:g}"


def lesion_report(
    pred: Any,
    gt: Any,
    spacing: SpacingType = None,
    connectivity: int | None = None,
    size_bins: Sequence[float] = SIZE_BINS,
    percentile: float = 95,
    convention: str | None = None,
    brats: str | None = None,
    missed_hd95: float | None = None,
) -> dict[str, Any]:
    """Lesion-wise detection and segmentation quality of one binary mask pair.

    Args:
        pred: binary prediction, one 2D/3D mask (``[*spatial]`` or ``[1, *spatial]``; bool or 0/1).
        gt: binary ground truth, same shape.
        spacing: voxel size (a number or one per axis); volumes and distances are in its units.
        connectivity: ``scipy.ndimage.generate_binary_structure`` connectivity of the components,
            1 (face) to ``ndim`` (full, default: 8 in 2D, 26 in 3D).
        size_bins: increasing edges of the lesion-volume bins for ``recall_by_size``.
        percentile: of the lesion HD. Defaults to 95.
        convention: of the lesion HD95 (:func:`hausdorff_distance`); default ``"monai"``, or
            ``"surface"`` with ``brats``.
        brats: a key of :data:`BRATS_2023_RULES` to apply that challenge's lesion-wise rules
            (module docstring); ``None`` (default) matches by plain overlap.
        missed_hd95: HD95 of a missed lesion; default the image diagonal (374 with ``brats``).

    Returns:
        ``{"lesions": [...], "false_positives": [...], "summary": {...}}``: one dict per
        ground-truth lesion (``lesion``, ``voxels``, ``volume``, ``size_bin``, ``detected``,
        ``matched_pred`` (number of predicted components), ``dice``, ``hd95``, ``counted``), one
        per false-positive component (``lesion``, ``voxels``, ``volume``, ``size_bin``), and a
        summary with ``gt_lesions``, ``detected``, ``missed``, ``fp_lesions``, ``pred_lesions``,
        ``lesion_recall``, ``lesion_precision``, ``lesion_f1``, ``mean_lesion_dice``,
        ``recall_by_size`` (bin label → ``{"lesions", "detected", "recall"}``) and, with
        ``brats``, ``brats_dice``, ``brats_hd95``, ``brats_tp``, ``brats_fn``, ``brats_fp``.
        Ratios with a zero denominator are NaN.
    """
    p, g = _spatial(pred, "pred"), _spatial(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt should have same shapes, got {list(p.shape)} and {list(g.shape)}.")
    dims = p.ndim
    sp = np.array(np.broadcast_to(np.asarray(1.0 if spacing is None else spacing, dtype=float).reshape(-1), (dims,)))
    voxel_volume = float(np.prod(sp))
    conn = dims if connectivity is None else int(connectivity)
    if not 1 <= conn <= dims:
        raise ValueError(f"connectivity must be in [1, {dims}], got {connectivity}.")
    if brats is not None and brats not in BRATS_2023_RULES:
        raise ValueError(f"brats must be one of {sorted(BRATS_2023_RULES)} or None, got {brats!r}.")
    edges = [float(e) for e in size_bins]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"size_bins must be at least two increasing edges, got {list(size_bins)}.")
    convention = convention or ("surface" if brats else "monai")
    structure = ndimage.generate_binary_structure(dims, conn)
    gt_cc, n_gt = ndimage.label(g, structure=structure)
    pred_cc, n_pred = ndimage.label(p, structure=structure)
    dilation, threshold = BRATS_2023_RULES[brats] if brats else (0, -math.inf)
    dil_struct = ndimage.generate_binary_structure(dims, min(2, dims))
    if brats and n_gt:
        # merge ground-truth components whose dilations touch (BraTS get_gt_seg_combined_by_dilation)
        grown, _ = ndimage.label(ndimage.binary_dilation(g, dil_struct, iterations=dilation), structure=structure)
        gt_cc = np.where(g, grown, 0)
        ids = np.unique(gt_cc[gt_cc > 0])
        remap = np.zeros(int(gt_cc.max()) + 1, dtype=np.int64)
        remap[ids] = np.arange(1, ids.size + 1)
        gt_cc, n_gt = remap[gt_cc], int(ids.size)
    if missed_hd95 is None:
        diag = _penalty(list(p.shape), torch.as_tensor(sp, dtype=torch.float64)[None], "euclidean")
        missed_hd95 = BRATS_PENALTY if brats else float(diag[0])

    def size_bin(volume: float) -> str:
        for lo, hi in zip(edges, edges[1:]):
            if lo <= volume < hi:
                return _bin_label(lo, hi)
        return "outside bins"

    rows, matched = [], set()
    for k in range(1, n_gt + 1):
        lesion = gt_cc == k
        region = ndimage.binary_dilation(lesion, dil_struct, iterations=dilation) if dilation else lesion
        comps = np.unique(pred_cc[region])
        comps = comps[comps > 0]
        matched.update(int(c) for c in comps)
        voxels = int(lesion.sum())
        volume = voxels * voxel_volume
        row: dict[str, Any] = {
            "lesion": k, "voxels": voxels, "volume": volume, "size_bin": size_bin(volume),
            "detected": bool(comps.size), "matched_pred": int(comps.size), "counted": volume > threshold,
        }  # fmt: skip
        if comps.size:
            sel = np.isin(pred_cc, comps)
            row["dice"] = 2.0 * float((sel & lesion).sum()) / float(sel.sum() + voxels)
            # HD95 on the bounding box of the pair (+1 voxel): distances do not depend on the crop
            box = ndimage.find_objects((sel | lesion).astype(np.int32))[0]
            box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
            row["hd95"] = float(
                hausdorff_distance(
                    torch.from_numpy(np.ascontiguousarray(sel[box]))[None, None],
                    torch.from_numpy(np.ascontiguousarray(lesion[box]))[None, None],
                    percentile=percentile, spacing=sp.tolist(), convention=convention,
                )[0, 0]
            )  # fmt: skip
        else:
            row["dice"], row["hd95"] = 0.0, float(missed_hd95)
        rows.append(row)
    fps = []
    for c in range(1, n_pred + 1):
        if c in matched:
            continue
        voxels = int((pred_cc == c).sum())
        fps.append({"lesion": c, "voxels": voxels, "volume": voxels * voxel_volume,
                    "size_bin": size_bin(voxels * voxel_volume)})  # fmt: skip

    def ratio(a: float, b: float) -> float:
        return a / b if b else math.nan

    n_det = sum(r["detected"] for r in rows)
    recall, precision = ratio(n_det, len(rows)), ratio(len(matched), n_pred)
    summary: dict[str, Any] = {
        "gt_lesions": len(rows),
        "detected": n_det,
        "missed": len(rows) - n_det,
        "fp_lesions": len(fps),
        "pred_lesions": int(n_pred),
        "lesion_recall": recall,
        "lesion_precision": precision,
        "lesion_f1": ratio(2 * recall * precision, recall + precision) if rows and n_pred else math.nan,
        "mean_lesion_dice": ratio(sum(r["dice"] for r in rows), len(rows)),
        "recall_by_size": {},
    }
    for lo, hi in zip(edges, edges[1:]):
        label = _bin_label(lo, hi)
        in_bin = [r for r in rows if r["size_bin"] == label]
        hits = sum(r["detected"] for r in in_bin)
        summary["recall_by_size"][label] = {"lesions": len(in_bin), "detected": hits, "recall": ratio(hits, len(in_bin))}
    if brats:
        counted = [r for r in rows if r["counted"]]
        n = len(counted) + len(fps)
        hd = [min(r["hd95"], BRATS_PENALTY) if math.isfinite(r["hd95"]) else BRATS_PENALTY for r in counted]
        summary.update(
            brats_rules=brats,
            brats_tp=sum(r["detected"] for r in counted),
            brats_fn=sum(not r["detected"] for r in counted),
            brats_fp=len(fps),
            brats_dice=sum(r["dice"] for r in counted) / n if n else 1.0,
            brats_hd95=(sum(hd) + BRATS_PENALTY * len(fps)) / n if n else 0.0,
        )
    return {"lesions": rows, "false_positives": fps, "summary": summary}


def lesion_rows(report: dict[str, Any], case: str = "case_0", class_name: str = "class_1") -> list[dict[str, Any]]:
    """Flatten one :func:`lesion_report` into ``lesions.csv`` rows (``kind`` ``gt`` or ``fp``)."""
    out = []
    for r in report["lesions"]:
        out.append({"case": case, "class": class_name, "kind": "gt", **r})
    for r in report["false_positives"]:
        out.append({"case": case, "class": class_name, "kind": "fp", "detected": "", "matched_pred": "",
                    "dice": "", "hd95": "", "counted": "", **r})  # fmt: skip
    return out


def write_lesions_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write :func:`lesion_rows` rows as ``lesions.csv`` (columns :data:`LESION_COLUMNS`),
    atomically. Returns the path."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(LESION_COLUMNS), extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return write_text_atomic(buf.getvalue(), path)


def read_lesions_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read ``lesions.csv`` back (numbers as int/float, ``detected`` as bool for ``gt`` rows)."""
    rows = []
    with Path(path).open(newline="") as f:
        for r in csv.DictReader(f):
            row: dict[str, Any] = dict(r)
            for k in ("lesion", "voxels", "matched_pred"):
                if row.get(k, "") != "":
                    row[k] = int(row[k])
            for k in ("volume", "dice", "hd95"):
                if row.get(k, "") != "":
                    row[k] = float(row[k])
            for k in ("detected", "counted"):
                if row.get(k, "") != "":
                    row[k] = row[k] == "True"
            rows.append(row)
    return rows
