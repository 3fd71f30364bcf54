"""Lesion-wise analysis on hand-built cases: counts, per-lesion Dice/HD95, false positives,
recall by size, the BraTS 2023 rules, and lesions.csv written by the evaluator handler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.handlers import from_engine

from monai_attn.metrics import (
    SegmentationReportHandler,
    hausdorff_distance,
    lesion_report,
    read_lesions_csv,
    write_lesions_csv,
)
from monai_attn.metrics.lesions import BRATS_PENALTY, lesion_rows


def hand_built():
    """Ground truth: a big lesion (8x8=64 px), a small one (2x2=4 px); prediction: the big one
    shifted by one pixel, the small one missed, and a false-positive blob (3x3=9 px)."""
    gt = np.zeros((40, 40), bool)
    gt[5:13, 5:13] = True
    gt[30:32, 30:32] = True
    pred = np.zeros_like(gt)
    pred[6:14, 5:13] = True
    pred[20:23, 2:5] = True
    return pred, gt


def test_counts_dice_and_false_positives_by_hand():
    pred, gt = hand_built()
    rep = lesion_report(pred, gt, size_bins=(0, 10, 100))
    s = rep["summary"]
    assert (s["gt_lesions"], s["detected"], s["missed"], s["fp_lesions"], s["pred_lesions"]) == (
        2,
        1,
        1,
        1,
        2,
    )
    assert s["lesion_recall"] == 0.5 and s["lesion_precision"] == 0.5 and s["lesion_f1"] == 0.5
    big, small = sorted(rep["lesions"], key=lambda r: -r["voxels"])
    assert big["voxels"] == 64 and big["detected"] and big["matched_pred"] == 1
    assert big["dice"] == pytest.approx(2 * 56 / 128)  # 7 of 8 rows overlap
    expected_hd = hausdorff_distance(torch.from_numpy(pred[None, None] & (np.arange(40) < 18)[:, None]),
                                     torch.from_numpy(gt[None, None] & (np.arange(40) < 18)[:, None]), percentile=95)  # fmt: skip
    assert big["hd95"] == pytest.approx(expected_hd.item())
    assert small["voxels"] == 4 and not small["detected"] and small["dice"] == 0.0
    assert small["hd95"] == pytest.approx(math.hypot(40, 40))  # the image diagonal
    assert [f["voxels"] for f in rep["false_positives"]] == [9]
    assert s["recall_by_size"] == {
        "[0, 10)": {"lesions": 1, "detected": 0, "recall": 0.0},
        "[10, 100)": {"lesions": 1, "detected": 1, "recall": 1.0},
    }
    assert s["mean_lesion_dice"] == pytest.approx(big["dice"] / 2)


def test_spacing_connectivity_and_3d():
    gt = np.zeros((10, 10, 6), bool)
    gt[1:3, 1:3, 1:3] = True
    gt[3, 3, 3] = True  # touches the first lesion only at a corner
    assert lesion_report(gt, gt)["summary"]["gt_lesions"] == 1  # 26-connectivity (default)
    face = lesion_report(gt, gt, connectivity=1, spacing=(1.0, 1.0, 2.5))
    assert face["summary"]["gt_lesions"] == 2
    assert sorted(r["volume"] for r in face["lesions"]) == [2.5, 8 * 2.5]
    assert all(r["dice"] == 1.0 and r["hd95"] == 0.0 for r in face["lesions"])


def test_a_prediction_spanning_two_lesions_counts_for_both():
    gt = np.zeros((20, 20), bool)
    gt[2:5, 2:5] = gt[2:5, 8:11] = True
    pred = np.zeros_like(gt)
    pred[3:4, 2:11] = True  # one component bridging both
    rep = lesion_report(pred, gt)
    assert rep["summary"]["detected"] == 2 and rep["summary"]["fp_lesions"] == 0
    assert all(r["dice"] == pytest.approx(2 * 3 / (9 + 9)) for r in rep["lesions"])


def test_brats_rules_merge_by_dilation_threshold_and_penalty():
    gt = np.zeros((30, 30, 10), bool)
    gt[2:8, 2:8, 2:8] = True  # 216 voxels
    gt[2:8, 10:12, 2:8] = True  # 2 voxels apart: merged with the first by the 3-voxel dilation
    gt[20:23, 20:23, 4:6] = True  # 18 voxels: below the 50 mm³ threshold
    pred = np.zeros_like(gt)
    pred[2:8, 2:8, 2:8] = True
    pred[2:8, 13:15, 2:8] = True  # not touching the ground truth, but inside its dilation: a match
    pred[26:29, 2:5, 2:5] = True  # a false positive
    plain = lesion_report(pred, gt)
    assert plain["summary"]["gt_lesions"] == 3 and plain["summary"]["fp_lesions"] == 2
    rep = lesion_report(pred, gt, brats="BraTS-GLI")
    s = rep["summary"]
    assert s["gt_lesions"] == 2 and s["fp_lesions"] == 1
    merged, small = sorted(rep["lesions"], key=lambda r: -r["voxels"])
    assert merged["voxels"] == 216 + 72 and merged["matched_pred"] == 2 and merged["counted"]
    assert not small["counted"] and not small["detected"] and small["hd95"] == BRATS_PENALTY
    assert (s["brats_tp"], s["brats_fn"], s["brats_fp"]) == (1, 0, 1)
    assert s["brats_dice"] == pytest.approx(merged["dice"] / 2)
    assert s["brats_hd95"] == pytest.approx((merged["hd95"] + BRATS_PENALTY) / 2)
    empty = lesion_report(np.zeros_like(gt), np.zeros_like(gt), brats="BraTS-MET")["summary"]
    assert empty["brats_dice"] == 1.0 and empty["brats_hd95"] == 0.0 and math.isnan(empty["lesion_recall"])


def test_errors_name_the_problem():
    pred, gt = hand_built()
    with pytest.raises(ValueError, match="binary mask"):
        lesion_report(pred * 255, gt)
    with pytest.raises(ValueError, match="brats"):
        lesion_report(pred, gt, brats="BraTS-2099")
    with pytest.raises(ValueError, match="connectivity"):
        lesion_report(pred, gt, connectivity=3)
    with pytest.raises(ValueError, match="size_bins"):
        lesion_report(pred, gt, size_bins=(10, 5))


def test_csv_round_trip(tmp_path):
    pred, gt = hand_built()
    rows = lesion_rows(lesion_report(pred, gt), case="p001", class_name="tumour")
    path = write_lesions_csv(rows, tmp_path / "lesions.csv")
    back = read_lesions_csv(path)
    assert [r["kind"] for r in back] == ["gt", "gt", "fp"]
    assert back[1]["detected"] is False and back[0]["voxels"] == 64 and back[2]["voxels"] == 9
    assert back[0]["dice"] == pytest.approx(rows[0]["dice"]) and back[0]["case"] == "p001"


def test_report_handler_writes_lesions_csv_beside_metrics(tmp_path):
    from tests.metrics.test_metric_handlers import SPACING, run_evaluator

    handler = SegmentationReportHandler(
        output_dir=tmp_path,
        class_names=["lesion"],
        lesions=True,
        output_transform=from_engine(["pred", "label"]),
    )
    ev, items = run_evaluator({"report": handler})
    assert (tmp_path / "metrics.csv").is_file()
    rows = read_lesions_csv(tmp_path / "lesions.csv")
    gt_rows = [r for r in rows if r["kind"] == "gt"]
    assert [r["case"] for r in gt_rows] == ["case_a.nii.gz", "case_b.nii.gz", "case_c.nii.gz"]
    assert [r["detected"] for r in gt_rows] == [True, True, False]  # the last prediction is empty
    assert gt_rows[0]["volume"] == pytest.approx(30 * SPACING[0] * SPACING[1])
    assert ev.state.metrics["report_lesion_recall"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="lesions"):
        SegmentationReportHandler(lesions="yes")
