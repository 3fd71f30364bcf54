"""metrics.csv names cases by the datalist's id and classes by the bundle's name for them; the JSON records the
unit of HD95 and the reports label the column with it (issue 18: DSB cases were named by a nucleus mask's path,
the class ``class_0``, and 2D HD95 was labelled mm)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.engines import SupervisedEvaluator
from monai.handlers import from_engine

from monai_attn.metrics import SegmentationReportHandler, read_report_csv
from monai_attn.reporting import hd95_label, metrics_table, run_section

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def _items():
    items = []
    for i, cid in enumerate(("img_0a1b", "img_9f2c")):
        lab = torch.zeros(1, 16, 16)
        lab[0, 3:9, 4 + i : 10 + i] = 1
        meta = {"filename_or_obj": f"/data/stage1_train/{cid}/masks/mask_{i}.png"}  # what a DSB label carries
        items.append({"id": cid, "image": MetaTensor(torch.roll(lab, 1, 1), meta=dict(meta)),
                      "label": MetaTensor(lab, meta=dict(meta))})
    return items


def _evaluate(tmp_path, **kwargs) -> SupervisedEvaluator:
    report = SegmentationReportHandler(output_dir=tmp_path, output_transform=from_engine(["pred", "label"]), **kwargs)
    evaluator = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=DataLoader(Dataset(_items()),
                                    batch_size=2), network=torch.nn.Identity(), key_val_metric={"report": report})
    evaluator.run()
    return evaluator


def test_cases_are_named_by_the_datalist_id_and_the_class_by_its_name(tmp_path):
    _evaluate(tmp_path, class_names=["nuclei"], units="pixels")
    rows = read_report_csv(tmp_path / "metrics.csv")
    assert [(r["case"], r["class"]) for r in rows] == [("img_0a1b", "nuclei"), ("img_9f2c", "nuclei")]
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["settings"]["hd95_units"] == "pixels" and set(doc["summary"]) == {"nuclei", "all"}


def test_without_ids_the_file_names_are_kept(tmp_path):
    _evaluate(tmp_path, id_key=None)
    rows = read_report_csv(tmp_path / "metrics.csv")
    assert [r["case"] for r in rows] == ["/data/stage1_train/img_0a1b/masks/mask_0.png",
                                         "/data/stage1_train/img_9f2c/masks/mask_1.png"]
    assert rows[0]["class"] == "class_0"
    assert json.loads((tmp_path / "metrics.json").read_text())["settings"]["hd95_units"].startswith("physical")


@pytest.mark.parametrize(("units", "label"), [("pixels", "HD95 (pixels)"), ("mm", "HD95 (mm)"), (None, "HD95"),
                                              ("physical units of the spacing (mm for NIfTI)", "HD95")])
def test_hd95_header_follows_the_recorded_unit(units, label):
    assert hd95_label(units) == label
    summary = {"dice": {"mean": 0.9, "std": 0.0, "n": 2}, "hd95": {"mean": 1.5, "std": 0.5, "n": 2}}
    header = metrics_table({"model": summary}, metrics=("dice", "hd95"), units=units).splitlines()[0]
    assert header == f"| | cases | Dice | {label} |"


def test_run_report_labels_2d_hd95_in_pixels(tmp_path):
    _evaluate(tmp_path / "eval", class_names=["nuclei"], units="pixels")
    section = run_section(tmp_path, "dsb", tmp_path)
    assert "HD95 (pixels)" in section and "(mm)" not in section


@pytest.mark.parametrize(("bundle", "cls", "units"), [("focusnetpp_dsb2018", "nucleus", "pixels"),
                                                       ("focusnetpp_isic2018", "lesion", "pixels"),
                                                       ("mistakes_brats2018", "enhancing_tumour", "mm"),
                                                       ("mistakes_isles2018", "lesion", "mm")])
def test_evaluate_configs_name_the_class_and_the_unit(bundle, cls, units):
    report = json.loads((BUNDLES / bundle / "configs" / "evaluate.json").read_text())["validate#additional_metrics"]
    assert report["report"]["class_names"] == [cls] and report["report"]["units"] == units
