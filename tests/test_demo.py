"""The demo: the left/right split of the real DSB image, its overrides, and (slow) the whole `make demo` run."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_attn.demo import BRATS_OVERRIDES, DSB_OVERRIDES, dsb_half_split, main

CONFIGS = Path(__file__).resolve().parents[1] / "bundles"


def test_dsb_half_split_keeps_train_and_test_halves_apart(tmp_path):
    path = dsb_half_split(tmp_path, crop=64, n_train=6, n_val=4)
    datalist = json.loads(path.read_text())
    assert [len(datalist[k]) for k in ("training", "validation", "test")] == [6, 4, 2]
    assert all(it["id"].startswith("left_") for it in datalist["training"] + datalist["validation"])
    assert [it["id"] for it in datalist["test"]] == ["right_0", "right_1"]
    for item in datalist["training"] + datalist["validation"]:
        assert Image.open(tmp_path / item["image"]).size == (64, 64)
    for item in datalist["training"] + datalist["test"]:
        assert (tmp_path / item["image"]).is_file() and item["label"]
        assert all((tmp_path / m).is_file() for m in item["label"])
    assert all(Image.open(tmp_path / it["image"]).size == (256, 256) for it in datalist["test"])


def test_dsb_half_split_crops_come_from_the_left_half(tmp_path):
    """Every training crop is a piece of the image's left half (columns < 256), none of the right."""
    import tifffile

    from monai_attn.sample_data import DSB2018_SAMPLE_DIR

    image = tifffile.imread(DSB2018_SAMPLE_DIR / "image.tif").astype(np.float64)
    grey = np.round((image - image.min()) / (image.max() - image.min()) * 255)
    datalist = json.loads(dsb_half_split(tmp_path, crop=64, n_train=3, n_val=1).read_text())
    for item in datalist["training"]:
        crop = np.asarray(Image.open(tmp_path / item["image"]).convert("L"), dtype=np.float64)
        hits = [(r, c) for r in range(0, 512 - 63) for c in range(0, 512 - 63, 1)
                if grey[r, c] == crop[0, 0] and np.array_equal(grey[r:r + 64, c:c + 64], crop)]
        assert hits and all(c + 64 <= 256 for _, c in hits)


def test_demo_overrides_name_existing_config_keys():
    """The overrides the demo passes to `monai.bundle run` are keys the bundles' configs accept."""
    from monai.bundle import ConfigParser

    from monai_attn.overrides import run_arguments, unknown_overrides

    for bundle, overrides in (("focusnetpp_dsb2018", DSB_OVERRIDES), ("mistakes_brats2018", BRATS_OVERRIDES)):
        config = ConfigParser.load_config_files([str(CONFIGS / bundle / "configs" / "train.json")])
        assert not unknown_overrides(config, list(overrides), run_arguments())


def test_demo_refuses_to_replace_what_it_did_not_write(tmp_path):
    (tmp_path / "dsb").mkdir()
    with pytest.raises(SystemExit, match="no earlier demo"):
        main(["--out", str(tmp_path), "--parts", "dsb"])
    assert (tmp_path / "dsb").is_dir()


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """`python -m monai_attn.demo` with one epoch each: report with tables, curves, ≥ 4 overlays, the DSB verdict."""
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "monai_attn.demo", "--out", str(out), "--brats-epochs", "1",
                           "--dsb-epochs", "1"], check=True, timeout=1800, capture_output=True, text=True)
    assert f"report: {out / 'report.md'}" in proc.stdout
    report = (out / "report.md").read_text()
    assert report.count("| model |") == 2 and "Otsu threshold" in report
    assert "![training curves]" in report
    assert report.count(".png)") - report.count("curves.png") >= 4
    assert "trained FocusNet++-lite Dice **" in report and "Otsu baseline Dice **" in report
    assert (out / "brats" / "predictions").is_dir() and any((out / "brats" / "predictions").glob("*_seg.nii.gz"))
    assert Image.open(out / "report.png").format == "PNG"
