"""Batch inference and evaluation go on past bad cases: every good case is written, every failure is
listed at the end with its file and problem, and the run exits non-zero (through the real CLI)."""
from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from monai_attn.data import synthesize

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
TINY = {"roi_size": "[32,32]", "num_workers": 0, "sw_batch_size": 8}


@pytest.fixture(scope="module")
def brats(tmp_path_factory):
    """Five BraTS-layout cases (HGG) of 32x32x8 voxels."""
    root = synthesize("brats2018", tmp_path_factory.mktemp("brats_kg"), cases=5, seed=0, shape=(32, 32, 8),
                      lgg_cases=0)
    return sorted((root / "HGG").iterdir())


def _oracle(path, in_channels: int) -> None:
    """A 1x1 convolution checkpoint: bundles run with ``--network_def $torch.nn.Conv2d(C, 1, 1)``."""
    torch.save({"model": torch.nn.Conv2d(in_channels, 1, 1).state_dict()}, path)


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:300])


def test_inference_goes_on_past_bad_cases_and_exits_non_zero(brats, tmp_path, cli):
    inputs = tmp_path / "in"
    for case in brats:
        shutil.copytree(case, inputs / case.name, ignore=shutil.ignore_patterns("*_seg.nii.gz"))
    bad_flair = inputs / brats[1].name / f"{brats[1].name}_flair.nii.gz"
    _truncate(bad_flair)  # corrupt
    missing_t2 = inputs / brats[3].name / f"{brats[3].name}_t2.nii.gz"
    missing_t2.unlink()  # incomplete case
    _oracle(tmp_path / "oracle.pt", 4)
    out = tmp_path / "pred"
    proc = cli.bundle_run("mistakes_brats2018", ["inference.json"], tmp_path, {
        **TINY, "input_dir": inputs, "output_dir": out, "ckpt_path": tmp_path / "oracle.pt",
        "network_def": "$torch.nn.Conv2d(4, 1, 1)"}, check=False, env=ONE_THREAD)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    summary = _summary(log)
    assert f"{brats[1].name}: {bad_flair}: cannot read the image data" in summary and "truncated" in summary
    assert f"{brats[3].name}: {missing_t2}: file not found" in summary
    good = [c.name for i, c in enumerate(brats) if i not in (1, 3)]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{c}_seg.nii.gz" for c in good)  # no temporary files


def test_evaluation_goes_on_past_bad_cases_and_exits_non_zero(brats, tmp_path, cli):
    cases = tmp_path / "cases"
    shutil.copytree(brats[0].parent, cases)
    items = [{"id": c.name, "image": [str(cases / c.name / f"{c.name}_{m}.nii.gz") for m in ("flair", "t1", "t1ce", "t2")],
              "label": str(cases / c.name / f"{c.name}_seg.nii.gz")} for c in brats[:3]]
    _truncate(cases / brats[1].name / f"{brats[1].name}_t1ce.nii.gz")
    bad_label = cases / brats[2].name / f"{brats[2].name}_seg.nii.gz"
    img = nib.load(bad_label)
    arr = np.asanyarray(img.dataobj).copy()
    arr[0, 0, 0] = 3  # not a BraTS label
    nib.save(nib.Nifti1Image(arr, img.affine), bad_label)
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [], "validation": items}))
    _oracle(tmp_path / "oracle.pt", 4)
    proc = cli.bundle_run("mistakes_brats2018", ["train.json", "evaluate.json"], tmp_path, {
        **TINY, "datalist": datalist, "fold": -1, "ckpt_path": tmp_path / "oracle.pt",
        "network_def": "$torch.nn.Conv2d(4, 1, 1)"}, check=False, env=ONE_THREAD)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    summary = _summary(log)
    assert f"{brats[1].name}_t1ce.nii.gz: cannot read the image data" in summary
    assert f"{bad_label}: unexpected label values {{3}} (expected {{0, 1, 2, 4}})" in summary
    rows = (tmp_path / "eval" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 2 and brats[0].name in rows[1]  # header + the good case
    failures = json.loads((tmp_path / "eval" / "metrics.json").read_text())["failures"]
    assert [f["case"] for f in failures] == [brats[1].name, brats[2].name]  # listed in the metrics JSON too


def _summary(log: str) -> str:
    """The failure list at the end of a keep-going run's output: printed once, then one error line last."""
    assert log.count("2 case(s) failed and were skipped:") == 1, log[-3000:]
    assert log.strip().splitlines()[-1] == ("error: 2 case(s) failed and were skipped (listed above); fix or remove "
                                            "those files, the other cases were processed")
    return log[log.rindex("2 case(s) failed and were skipped:"):]


def test_2d_inference_goes_on_past_bad_images(tmp_path, cli):
    root = synthesize("isic2018", tmp_path / "isic", cases=3, seed=0, shape=(40, 48))
    inputs = tmp_path / "in"
    shutil.copytree(root / "ISIC2018_Task1-2_Training_Input", inputs)
    images = sorted(inputs.glob("*.jpg"))
    _truncate(images[0])
    stack = inputs / "stack.tif"  # a multi-page TIFF: a 3D stack given to a 2D bundle
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (0, 100, 200)]
    frames[0].save(stack, save_all=True, append_images=frames[1:])
    _oracle(tmp_path / "oracle.pt", 3)
    out = tmp_path / "pred"
    proc = cli.bundle_run("focusnetpp_isic2018", ["inference.json"], tmp_path, {
        "image_size": "[32,32]", "num_workers": 0, "input_dir": inputs, "output_dir": out,
        "ckpt_path": tmp_path / "oracle.pt", "network_def": "$torch.nn.Conv2d(3, 1, 1)"}, check=False, env=ONE_THREAD)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    summary = _summary(log)
    assert f"{images[0]}: cannot read the image" in summary and "truncated" in summary
    assert f"{stack}: a 3D / multi-page image (3 frames of 8x8) given to a 2D bundle" in summary
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}_segmentation.png" for p in images[1:])
