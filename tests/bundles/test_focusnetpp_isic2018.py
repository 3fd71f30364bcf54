"""focusnetpp_isic2018 bundle: train → infer through the real CLI on a synthetic ISIC cohort, plus a
known-lesion geometry round trip and export."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_attn.data import load_datalist
from monai_attn.metrics import read_lesions_csv

BUNDLE = "focusnetpp_isic2018"
CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / BUNDLE / "configs"
TINY = {"image_size": "[64,64]", "num_workers": 0}


@pytest.fixture(scope="module")
def trained(synth_cohort, tmp_path_factory, cli):
    cohort = synth_cohort("isic2018", 10, 48, 70)  # 10 images: 7 training / 1 validation / 2 test
    root = tmp_path_factory.mktemp("isic_bundle")
    cli.bundle_run(BUNDLE, ["train.json"], root, {**TINY, "dataset_dir": cohort, "num_epochs": 1, "batch_size": 4})
    return cohort, root


def test_train_writes_checkpoints_and_datalist(trained):
    _, root = trained
    datalist = json.loads((root / "eval" / "datalist_isic2018.json").read_text())
    assert [len(datalist[k]) for k in ("training", "validation", "test")] == [7, 1, 2]
    best = torch.load(root / "models" / "model.pt", weights_only=True)
    assert "stem.weight" in best and best["stem.weight"].shape[1] == 3  # FocusNetPP, RGB input
    (last,) = (root / "models").glob("checkpoint*epoch=1.pt")
    state = torch.load(last, weights_only=True)
    assert {"model", "optimizer", "lr_scheduler", "trainer", "best_model_tracker"} <= set(state)
    # best model chosen by validation loss (lower is better: stored with a negative sign)
    (priority, _), = state["best_model_tracker"]["_saved"]
    assert priority < 0
    assert state["lr_scheduler"]["milestones"] == {16: 1, 26: 1, 41: 1}
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)



def test_evaluate_writes_report_and_overlays(trained, cli):
    _, root = trained
    cli.bundle_run(BUNDLE, ["train.json", "evaluate.json"], root, {
        **TINY, "datalist": root / "eval" / "datalist_isic2018.json",
    })  # the test split, with models/model.pt
    summary = json.loads((root / "eval" / "metrics.json").read_text())
    for metric in ("dice", "iou", "precision", "recall", "fpr", "fnr", "hd95"):
        assert metric in summary["summary"]["lesion"]
    rows = (root / "eval" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 and rows[0].startswith("case,class,dice") and "hd95" in rows[0]
    lesions = read_lesions_csv(root / "eval" / "lesions.csv")  # beside metrics.csv
    assert len({r["case"] for r in lesions if r["kind"] == "gt"}) == 2
    assert len(list((root / "eval" / "overlays").glob("*.png"))) == 2

def test_inference_writes_masks_at_the_original_resolution(trained, tmp_path, cli):
    _, root = trained
    inputs = tmp_path / "in"
    inputs.mkdir()
    for item in load_datalist(root / "eval" / "datalist_isic2018.json", "test"):
        shutil.copy(item["image"], inputs)
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    out = tmp_path / "pred"
    cli.bundle_run(BUNDLE, ["inference.json"], root, {**TINY, "input_dir": inputs, "output_dir": out})
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before  # inputs untouched
    for name in before:
        pred = Image.open(out / f"{Path(name).stem}_segmentation.png")
        assert pred.mode == "L" and pred.size == Image.open(inputs / name).size
        assert set(np.unique(np.asarray(pred)).tolist()) <= {0, 255}


def test_known_lesion_found_at_the_right_pixels(tmp_path, cli):
    """A 1×1 conv thresholding brightness segments a bright off-centre rectangle in a non-square
    image exactly (up to the resampling band at its border) after resize → predict → Invertd."""
    h, w = 45, 70
    rows, cols = slice(6, 24), slice(38, 62)
    image = np.zeros((h, w, 3), np.uint8)
    image[rows, cols] = 255
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(image).save(inputs / "ISIC_9999999.png")
    conv = torch.nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(20.0 / 3)
        conv.bias.fill_(-10.0)  # logit = 20 * (mean intensity - 0.5)
    ckpt = tmp_path / "oracle.pt"
    torch.save({"model": conv.state_dict()}, ckpt)
    out = tmp_path / "pred"
    cli.bundle_run(BUNDLE, ["inference.json"], tmp_path, {
        **TINY, "input_dir": inputs, "output_dir": out, "ckpt_path": ckpt, "network_def": "$torch.nn.Conv2d(3, 1, 1)",
    })
    mask = np.asarray(Image.open(out / "ISIC_9999999_segmentation.png"))
    assert mask.shape == (h, w)
    band = 2
    inner = mask[rows.start + band:rows.stop - band, cols.start + band:cols.stop - band]
    assert (inner == 255).all()
    outer = np.ones((h, w), bool)
    outer[rows.start - band:rows.stop + band, cols.start - band:cols.stop + band] = False
    assert (mask[outer] == 0).all()


def test_verify_net_in_out_and_ckpt_export(trained, tmp_path, cli):
    _, root = trained
    cli.run(["verify_net_in_out", "--net_id", "network_def", "--meta_file", str(CONFIGS / "metadata.json"),
             "--config_file", str(CONFIGS / "inference.json")])
    ts = tmp_path / "model.ts"
    cli.run(["ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", str(root / "models" / "model.pt"),
             "--meta_file", str(CONFIGS / "metadata.json"), "--config_file", str(CONFIGS / "inference.json")])
    scripted = torch.jit.load(str(ts))
    assert scripted(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
