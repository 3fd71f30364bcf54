"""SegmentationReport: values from hand-computed confusion counts, 0/0 conventions, summary,
CSV/JSON round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_attn.metrics import (
    REPORT_METRICS,
    SegmentationReport,
    hausdorff_distance,
    read_report_csv,
    read_report_json,
)


def known_case():
    """4 x 5 image: gt 6 pixels, pred 5 pixels, 3 shared -> TP 3, FP 2, FN 3, TN 12."""
    gt = torch.zeros(1, 1, 4, 5)
    pred = torch.zeros(1, 1, 4, 5)
    gt[0, 0, 1, 0:3] = 1
    gt[0, 0, 2, 0:3] = 1
    pred[0, 0, 1, 1:3] = 1
    pred[0, 0, 2, 2] = 1
    pred[0, 0, 3, 3:5] = 1
    return pred, gt


def empty_cases():
    """Four one-class cases: both non-empty, prediction empty, ground truth empty, both empty."""
    lesion = torch.zeros(1, 1, 8, 8)
    lesion[0, 0, 2:5, 2:5] = 1
    other = torch.zeros(1, 1, 8, 8)
    other[0, 0, 3:6, 3:6] = 1
    empty = torch.zeros(1, 1, 8, 8)
    pred = torch.cat([other, empty, lesion, empty])
    gt = torch.cat([lesion, lesion, empty, empty])
    return pred, gt


def test_values_from_hand_computed_counts():
    pred, gt = known_case()
    rep = SegmentationReport(include_background=True, spacing=(0.5, 2.0))
    rep(pred, gt)
    (row,) = rep.rows()
    assert (row["tp"], row["fp"], row["tn"], row["fn"]) == (3, 2, 12, 3)
    tp, fp, tn, fn = 3, 2, 12, 3
    assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert row["iou"] == pytest.approx(tp / (tp + fp + fn))
    assert row["precision"] == pytest.approx(tp / (tp + fp))
    assert row["recall"] == pytest.approx(tp / (tp + fn))
    assert row["fpr"] == pytest.approx(fp / (fp + tn))
    assert row["fnr"] == pytest.approx(fn / (fn + tp))
    hd95 = hausdorff_distance(pred, gt, include_background=True, percentile=95, spacing=(0.5, 2.0)).item()
    assert row["hd95"] == pytest.approx(hd95)
    assert row["case"] == "case_0" and row["class"] == "class_0"
    assert rep.aggregate().item() == pytest.approx(6 / 11)


def test_zero_division_conventions():
    pred, gt = empty_cases()
    rep = SegmentationReport(include_background=True)
    rep(pred, gt)
    rows = rep.rows()
    diag = math.hypot(8, 8)
    # both non-empty: ordinary values
    assert 0 < rows[0]["dice"] < 1 and rows[0]["hd95"] < diag
    # prediction empty (missed lesion): worst values, HD95 = image diagonal
    r = rows[1]
    assert (r["dice"], r["iou"], r["precision"], r["recall"], r["fpr"], r["fnr"]) == (0, 0, 0, 0, 0, 1)
    assert r["hd95"] == pytest.approx(diag)
    # ground truth empty (false detection)
    r = rows[2]
    assert (r["dice"], r["iou"], r["precision"], r["recall"], r["fnr"]) == (0, 0, 0, 0, 1)
    assert r["fpr"] == pytest.approx(9 / 64)
    assert r["hd95"] == pytest.approx(diag)
    # both empty: best values, HD95 = 0
    r = rows[3]
    assert (r["dice"], r["iou"], r["precision"], r["recall"], r["fpr"], r["fnr"], r["hd95"]) == (
        1,
        1,
        1,
        1,
        0,
        0,
        0,
    )
    s = rep.summary()["class_0"]
    assert (s["cases"], s["pred_empty"], s["gt_empty"], s["both_empty"]) == (4, 1, 1, 1)
    # a ground truth covering the whole image: no negatives, FP rate 0
    full = torch.ones(1, 1, 6, 6)
    part = torch.zeros(1, 1, 6, 6)
    part[0, 0, :3] = 1
    rep2 = SegmentationReport(include_background=True)
    rep2(part, full)
    assert rep2.rows()[0]["fpr"] == 0.0 and rep2.rows()[0]["recall"] == pytest.approx(0.5)


def test_nan_policy_leaves_undefined_values_out():
    pred, gt = empty_cases()
    rep = SegmentationReport(include_background=True, empty="nan")
    rep(pred, gt)
    rows = rep.rows()
    assert math.isnan(rows[1]["precision"]) and math.isnan(rows[1]["hd95"]) and rows[1]["recall"] == 0
    assert math.isnan(rows[2]["recall"]) and math.isnan(rows[2]["fnr"]) and rows[2]["precision"] == 0
    assert math.isnan(rows[3]["dice"]) and rows[3]["hd95"] == 0  # both empty: HD 0 in every policy
    s = rep.summary()["class_0"]
    assert s["dice"]["n"] == 3 and s["hd95"]["n"] == 2
    assert s["hd95"]["mean"] == pytest.approx(rows[0]["hd95"] / 2)


def test_summary_mean_std_and_multiclass_names():
    g = torch.Generator().manual_seed(0)
    lab_p = torch.randint(0, 3, (5, 1, 10, 10), generator=g)
    lab_t = torch.randint(0, 3, (5, 1, 10, 10), generator=g)
    to_oh = lambda x: torch.nn.functional.one_hot(x[:, 0], 3).permute(0, 3, 1, 2).float()  # noqa: E731
    rep = SegmentationReport()
    rep(to_oh(lab_p), to_oh(lab_t))
    assert rep.classes() == ["class_1", "class_2"]
    values = rep.values().numpy()
    s = rep.summary()
    for k, m in enumerate(REPORT_METRICS):
        assert s["class_2"][m]["mean"] == pytest.approx(values[:, 1, k].mean())
        assert s["class_2"][m]["std"] == pytest.approx(values[:, 1, k].std())
        assert s["all"][m]["mean"] == pytest.approx(values[..., k].mean())
    assert s["all"]["cases"] == 10
    named = SegmentationReport(class_names=["edema", "tumour"], key_metric="hd95")
    named(to_oh(lab_p), to_oh(lab_t))
    assert named.classes() == ["edema", "tumour"]
    assert named.aggregate().item() == pytest.approx(values[..., 6].mean())


def test_case_ids_from_metadata_and_arguments():
    pred, gt = empty_cases()
    meta_gt = MetaTensor(gt, meta={"filename_or_obj": [f"img{i}.nii.gz" for i in range(4)]})
    rep = SegmentationReport(include_background=True)
    rep(pred, meta_gt)
    rep(pred[:2], gt[:2], case_ids=["x", "y"])
    rep([pred[0], pred[1]], [gt[0], gt[1]])  # list input, no ids: numbered
    assert [r["case"] for r in rep.rows()] == ["img0.nii.gz", "img1.nii.gz", "img2.nii.gz", "img3.nii.gz", "x", "y",
                                              "case_6", "case_7"]  # fmt: skip
    with pytest.raises(ValueError, match="case_ids"):
        rep(pred, gt, case_ids=["only-one"])


def test_csv_and_json_round_trip(tmp_path):
    pred, gt = empty_cases()
    k_pred, k_gt = known_case()
    rep = SegmentationReport(include_background=True, empty="nan", spacing=(0.8, 1.2))
    rep(pred, gt, case_ids=["a", "b", "c", "d"])
    rep(
        torch.nn.functional.pad(k_pred, (0, 3, 0, 4)),
        torch.nn.functional.pad(k_gt, (0, 3, 0, 4)),
        case_ids=["e"],
    )
    csv_path = rep.to_csv(tmp_path / "out" / "metrics.csv")
    json_path = rep.to_json(tmp_path / "out" / "metrics.json")
    rows = rep.rows()

    def same(a, b):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float) and math.isnan(a[key]):
                assert math.isnan(b[key]), key
            else:
                assert a[key] == b[key], key

    back = read_report_csv(csv_path)
    assert len(back) == len(rows)
    for a, b in zip(rows, back):
        same(a, b)
    json.loads(json_path.read_text())  # strict JSON (NaN written as null)
    doc = read_report_json(json_path)
    for a, b in zip(rows, doc["rows"]):
        same(a, b)
    assert doc["settings"]["empty"] == "nan" and doc["settings"]["classes"] == ["class_0"]
    assert doc["summary"]["class_0"]["hd95"]["n"] == rep.summary()["class_0"]["hd95"]["n"]
    rebuilt = SegmentationReport.from_rows(back, include_background=True, empty="nan")
    np.testing.assert_equal(rebuilt.values().numpy(), rep.values().numpy())
    for m in REPORT_METRICS:
        a, b = rebuilt.summary()["all"][m], rep.summary()["all"][m]
        assert a["n"] == b["n"] and (a["mean"] == pytest.approx(b["mean"], nan_ok=True))


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        SegmentationReport(empty="skip")
    with pytest.raises(ValueError, match="key_metric"):
        SegmentationReport(key_metric="accuracy")
    with pytest.raises(ValueError, match="call it on some data"):
        SegmentationReport().rows()
    rep = SegmentationReport(class_names=["a", "b"])
    rep(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="class_names"):
        rep.rows()
