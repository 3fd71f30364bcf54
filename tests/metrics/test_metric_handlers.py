"""Ignite handlers on a tiny MONAI SupervisedEvaluator and on a plain ignite Engine: the spacing
comes from the metadata, the report files are written."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine
from monai.data import DataLoader, Dataset, MetaTensor
from monai.engines import SupervisedEvaluator
from monai.handlers import MeanDice, from_engine

from monai_attn.metrics import (
    HausdorffHandler,
    SegmentationReportHandler,
    hausdorff_distance,
    read_report_csv,
    spacing_from_meta,
)

SPACING = (2.0, 0.5)


def make_items(n: int = 3):
    g = torch.Generator().manual_seed(0)
    affine = torch.diag(torch.tensor([SPACING[0], SPACING[1], 1.0, 1.0], dtype=torch.float64))
    items = []
    for i in range(n):
        lab = torch.zeros(1, 16, 16)
        r, c = (int(v) for v in torch.randint(2, 8, (2,), generator=g))
        lab[0, r : r + 6, c : c + 5] = 1
        img = torch.roll(lab, shifts=(1, i), dims=(1, 2))  # the "prediction" is fed as the image
        if i == n - 1:
            img = torch.zeros_like(img)  # a missed lesion
        meta = {"filename_or_obj": f"case_{chr(97 + i)}.nii.gz"}
        items.append(
            {
                "image": MetaTensor(img, affine=affine, meta=dict(meta)),
                "label": MetaTensor(lab, affine=affine, meta=dict(meta)),
            }
        )
    return items


def run_evaluator(handlers: dict, tmp_path=None, key=None):
    items = make_items()
    loader = DataLoader(Dataset(items), batch_size=2, num_workers=0)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=torch.nn.Identity(),
        key_val_metric=key
        or {"val_dice": MeanDice(include_background=True, output_transform=from_engine(["pred", "label"]))},
        additional_metrics=handlers,
    )
    evaluator.run()
    return evaluator, items


def test_hausdorff_handler_uses_metatensor_spacing():
    ev, items = run_evaluator(
        {
            "hd95": HausdorffHandler(percentile=95, output_transform=from_engine(["pred", "label"])),
            "hd95_vox": HausdorffHandler(
                percentile=95, spacing=1.0, output_transform=from_engine(["pred", "label"])
            ),
        }
    )
    preds = torch.stack([i["image"].as_tensor() for i in items])
    labels = torch.stack([i["label"].as_tensor() for i in items])
    expected = hausdorff_distance(preds, labels, percentile=95, spacing=SPACING)
    assert expected[-1].item() == pytest.approx(math.hypot(16 * SPACING[0], 16 * SPACING[1]))  # missed lesion
    assert ev.state.metrics["hd95"] == pytest.approx(expected.mean().item(), rel=1e-5)
    in_voxels = hausdorff_distance(preds, labels, percentile=95)
    assert ev.state.metrics["hd95_vox"] == pytest.approx(in_voxels.mean().item(), rel=1e-5)
    assert ev.state.metric_details["hd95"].shape == (3, 1)
    assert ev.state.metric_details["hd95_empty"] == {
        "cases": 3,
        "pred_empty": 1,
        "gt_empty": 0,
        "both_empty": 0,
    }


def test_report_handler_as_key_metric_writes_files(tmp_path):
    report = SegmentationReportHandler(
        output_dir=tmp_path / "eval", class_names=["lesion"], output_transform=from_engine(["pred", "label"])
    )
    ev, items = run_evaluator({}, key={"val_report": report})
    rows = read_report_csv(tmp_path / "eval" / "metrics.csv")
    assert [r["case"] for r in rows] == ["case_a.nii.gz", "case_b.nii.gz", "case_c.nii.gz"]
    assert (tmp_path / "eval" / "metrics.json").is_file()
    dice = [r["dice"] for r in rows]
    assert ev.state.metrics["val_report"] == pytest.approx(sum(dice) / 3)
    assert ev.state.metrics["val_report_dice"] == pytest.approx(sum(dice) / 3)
    hd = [r["hd95"] for r in rows]
    assert ev.state.metrics["val_report_hd95"] == pytest.approx(sum(hd) / 3)
    assert rows[-1]["recall"] == 0 and rows[-1]["hd95"] == pytest.approx(math.hypot(32, 8))
    assert ev.state.best_metric == pytest.approx(sum(dice) / 3)


def test_meta_dict_pixdim_on_plain_engine():
    lab = torch.zeros(2, 1, 12, 12)
    lab[:, :, 3:7, 3:8] = 1
    pred = torch.roll(lab, 2, dims=-1)
    pixdim = torch.tensor([[1.0, 0.7, 1.9, 1.0, 0, 0, 0, 0], [1.0, 1.5, 1.5, 1.0, 0, 0, 0, 0]])
    batch = {"pred": pred, "label": lab, "label_meta_dict": {"pixdim": pixdim}}
    engine = Engine(lambda e, b: (b["pred"], b["label"]))
    HausdorffHandler(meta_key="label_meta_dict").attach(engine, "hd")
    engine.run([batch], max_epochs=1)
    expected = hausdorff_distance(pred, lab, spacing=[[0.7, 1.9], [1.5, 1.5]])
    assert engine.state.metrics["hd"] == pytest.approx(expected.mean().item(), rel=1e-5)


def test_spacing_from_meta_forms():
    a = torch.diag(torch.tensor([0.5, 2.0, 3.0, 1.0], dtype=torch.float64))
    item = MetaTensor(torch.zeros(1, 4, 4, 4), affine=a)
    assert spacing_from_meta([item, item]) == [[0.5, 2.0, 3.0]] * 2
    assert spacing_from_meta(MetaTensor(torch.zeros(2, 1, 4, 4), affine=a)) == [[0.5, 2.0]] * 2
    assert spacing_from_meta(torch.zeros(2, 1, 4, 4)) is None
    batch = [{"m": {"pixdim": [1, 0.3, 0.4, 1]}}, {"m": {"pixdim": [1, 0.5, 0.6, 1]}}]
    assert spacing_from_meta(torch.zeros(2, 1, 4, 4), batch, "m") == [[0.3, 0.4], [0.5, 0.6]]
