"""ISIC 2018 adapter and 2D pipeline on a synthetic tree in the real layout, with traps."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from monai.data import load_decathlon_datalist
from PIL import Image

from monai_attn.cli import main
from monai_attn.data import ISIC2018, synthesize
from monai_attn.data.isic2018 import ISIC_IMAGE_DIR, ISIC_MASK_DIR
from monai_attn.transforms import isic2018_transforms


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return synthesize("isic2018", tmp_path_factory.mktemp("isic"), cases=10, seed=0, shape=(48, 64))


def test_layout_and_content(cohort):
    imgs = sorted(p.name for p in (cohort / ISIC_IMAGE_DIR).glob("*.jpg"))
    assert imgs[:2] == ["ISIC_0000000.jpg", "ISIC_0000001.jpg"] and len(imgs) == 10
    assert (cohort / ISIC_MASK_DIR / "ISIC_0000000_segmentation.png").is_file()
    img = Image.open(cohort / ISIC_IMAGE_DIR / "ISIC_0000003.jpg")
    mask = np.asarray(Image.open(cohort / ISIC_MASK_DIR / "ISIC_0000003_segmentation.png"))
    assert img.mode == "RGB" and img.size == (64, 48)
    assert set(np.unique(mask).tolist()) == {0, 255}
    rgb = np.asarray(img).astype(float).mean(-1)
    assert rgb[mask > 0].mean() < rgb[mask == 0].mean()  # pigmented lesion darker than skin


def test_prepare_and_pipeline(cohort, tmp_path):
    out = tmp_path / "isic.json"
    data, report, _ = ISIC2018(cohort).prepare(out, seed=0)
    assert report.ok and not report.warnings  # LICENSE.txt is a known extra
    assert [len(data[k]) for k in ("training", "validation", "test")] == [7, 1, 2]
    items = load_decathlon_datalist(out, True, "test", base_dir=cohort)
    t = isic2018_transforms(train=False, image_size=(32, 32))
    d = t(items[0])
    assert d["image"].shape == (3, 32, 32) and d["label"].shape == (1, 32, 32)
    assert d["image"].dtype == torch.float32 and 0.0 <= d["image"].min() and d["image"].max() <= 1.0
    assert set(torch.unique(d["label"]).tolist()) <= {0.0, 1.0} and d["label"].sum() > 0
    # the resized mask is the 0.5-binarised anti-aliased resize of the original mask
    raw = np.asarray(Image.open(items[0]["label"])) / 255.0
    assert abs(float(d["label"].mean()) - raw.mean()) < 0.05


def test_traps(cohort, tmp_path, capsys):
    root = tmp_path / "isic"
    shutil.copytree(cohort, root)
    im, gt = root / ISIC_IMAGE_DIR, root / ISIC_MASK_DIR
    (im / "ISIC_0000000_superpixels.png").write_bytes(b"x")  # extra file (from Task 2)
    (gt / "ISIC_0000001_segmentation.png").unlink()  # missing mask
    m = np.asarray(Image.open(gt / "ISIC_0000002_segmentation.png")).copy()
    m[0, 0] = 128
    Image.fromarray(m).save(gt / "ISIC_0000002_segmentation.png")  # unexpected value
    jpg = im / "ISIC_0000003.jpg"
    jpg.write_bytes(jpg.read_bytes()[:300])  # truncated JPEG
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(gt / "ISIC_0000004_segmentation.png")  # size mismatch
    (im / "ISIC_0000005.jpg").unlink()  # mask without image

    assert main(["verify", "isic2018", "--root", str(root)]) == 1
    lines = capsys.readouterr().out.splitlines()

    def has(fname, words):
        return any(fname in ln and words in ln for ln in lines)

    assert has("ISIC_0000000_superpixels.png", "unexpected file")
    assert has("ISIC_0000001_segmentation.png", "missing mask for image ISIC_0000001.jpg")
    assert has("ISIC_0000002_segmentation.png", "unexpected mask values {128}")
    assert has("ISIC_0000003.jpg", "cannot read image")
    assert has("ISIC_0000004_segmentation.png", "differs from the image")
    assert has("ISIC_0000005.jpg", "missing image")
    out = tmp_path / "d.json"
    assert main(["prepare", "isic2018", "--root", str(root / ISIC_IMAGE_DIR), "--out", str(out), "--skip-bad"]) == 0
    assert "skipped 5 bad cases: ISIC_0000001, ISIC_0000002, ISIC_0000003, ISIC_0000004, ISIC_0000005" in \
        capsys.readouterr().out
    assert main(["prepare", "isic2018", "--root", str(root), "--out", str(out), "--folds", "3"]) == 2
