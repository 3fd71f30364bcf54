"""mistakes_brats2018 bundle: train → evaluate → infer through the real CLI, plus export and geometry checks."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_attn.metrics import read_lesions_csv

BUNDLE = "mistakes_brats2018"
CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / BUNDLE / "configs"
TINY = {"roi_size": "[64,64]", "num_workers": 0, "sw_batch_size": 8}


@pytest.fixture(scope="module")
def trained(synth_cohort, tmp_path_factory, cli):
    cohort = synth_cohort("brats2018", 5, 64, 64, 16)
    root = tmp_path_factory.mktemp("brats_bundle")
    cli.bundle_run(BUNDLE, ["train.json"], root, {**TINY, "dataset_dir": cohort, "num_epochs": 1, "fold": 0})
    return cohort, root


def test_train_writes_checkpoints_and_datalist(trained):
    _, root = trained
    assert (root / "models" / "model.pt").is_file()
    assert list((root / "models").glob("checkpoint*epoch=1.pt"))
    datalist = json.loads((root / "eval" / "datalist_brats2018.json").read_text())
    assert datalist["numFolds"] == 5 and len(datalist["training"]) == 5  # LGG case ignored
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    assert any(k.endswith("weight") for k in state)


def test_evaluate_writes_report_and_overlays(trained, cli):
    cohort, root = trained
    cli.bundle_run(BUNDLE, ["train.json", "evaluate.json"], root, {**TINY, "dataset_dir": cohort, "fold": 0})
    summary = json.loads((root / "eval" / "metrics.json").read_text())
    text = json.dumps(summary)
    for metric in ("dice", "iou", "precision", "recall", "fpr", "fnr", "hd95"):
        assert metric in text
    rows = (root / "eval" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 2  # header + the one held-out case of fold 0
    assert rows[0].startswith("case,") and "hd95" in rows[0]
    lesions = read_lesions_csv(root / "eval" / "lesions.csv")  # beside metrics.csv
    assert {r["case"] for r in lesions} == {rows[1].split(",")[0]} and any(r["kind"] == "gt" for r in lesions)
    assert len(list((root / "eval" / "overlays").glob("*.png"))) == 1
    # the attention panel (image | mistakes | deepest encoder attention) of the same case
    assert len(list((root / "eval" / "attention").glob("*_attention_encoder3_fpa.png"))) == 1
    patm = json.loads((root / "eval" / "patm_metrics.json").read_text())  # PATM's official per-slice rules
    assert patm["slices"] == "official" and 0 < patm["summary"]["slices"] <= 16 and "Dice" in patm["convention"]
    assert 0.0 <= patm["summary"]["iou"] <= 1.0 and len(patm["cases"]) == 1


def test_inference_keeps_input_geometry(trained, tmp_path, cli):
    cohort, root = trained
    case = next((cohort / "MICCAI_BraTS_2018_Data_Training" / "HGG").iterdir())
    inputs = tmp_path / "in" / case.name
    shutil.copytree(case, inputs)
    (inputs / f"{case.name}_seg.nii.gz").unlink()
    out = tmp_path / "pred"
    cli.bundle_run(BUNDLE, ["inference.json"], root, {**TINY, "input_dir": inputs.parent, "output_dir": out})
    pred = nib.load(out / f"{case.name}_seg.nii.gz")
    ref = nib.load(inputs / f"{case.name}_flair.nii.gz")
    assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine)
    assert pred.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1}


def test_verify_net_in_out_and_ckpt_export(trained, tmp_path, cli):
    _, root = trained
    cli.run(["verify_net_in_out", "--net_id", "network_def", "--meta_file", str(CONFIGS / "metadata.json"),
             "--config_file", str(CONFIGS / "inference.json")])
    ts = tmp_path / "model.ts"
    cli.run(["ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", str(root / "models" / "model.pt"),
             "--meta_file", str(CONFIGS / "metadata.json"), "--config_file", str(CONFIGS / "inference.json")])
    scripted = torch.jit.load(str(ts))
    assert scripted(torch.zeros(1, 4, 64, 64)).shape == (1, 1, 64, 64)


def _oracle_checkpoint(path: Path) -> None:
    """A 1×1 conv whose logit is ``flair_z - 2``: segments the (bright) FLAIR lesion exactly."""
    conv = torch.nn.Conv2d(4, 1, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0
        conv.bias.fill_(-2.0)
    torch.save({"model": conv.state_dict()}, path)


def _write_case(folder: Path, shape, affine, lesion: np.ndarray) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    brain = np.zeros(shape, bool)
    brain[2:-2, 2:-2, 1:-1] = True
    for mod in ("flair", "t1", "t1ce", "t2"):
        vol = np.where(brain, 1.0 + 0.05 * rng.standard_normal(shape), 0.0).astype(np.float32)
        if mod == "flair":
            vol[lesion] = 20.0
        nib.save(nib.Nifti1Image(vol, affine), folder / f"{folder.name}_{mod}.nii.gz")


@pytest.mark.parametrize(
    "shape, affine",
    [
        # BraTS-sized RAS volume at 1 mm
        ((240, 240, 155), np.diag([1.0, 1.0, 1.0, 1.0])),
        # anisotropic, not RAS: axes permuted and flipped (LPS-like, slices along the first axis)
        ((12, 90, 70), np.array([[0.0, -0.9, 0.0, 40.0], [0.0, 0.0, -0.8, 30.0], [5.0, 0.0, 0.0, -20.0],
                                 [0.0, 0.0, 0.0, 1.0]])),
    ],
    ids=["brats_240x240x155", "anisotropic_non_ras"],
)
def test_known_lesion_found_at_the_right_voxels(tmp_path, shape, affine, cli):
    lesion = np.zeros(shape, bool)
    centre = [s // 2 for s in shape]
    box = tuple(slice(c - max(1, s // 10), c + max(1, s // 10) + 1) for c, s in zip(centre, shape))
    box = (slice(box[0].start + 1, box[0].stop + 1),) + box[1:]  # off-centre, to catch flips
    lesion[box] = True
    case = tmp_path / "in" / "case_a"
    _write_case(case, shape, affine, lesion)
    ckpt = tmp_path / "oracle.pt"
    _oracle_checkpoint(ckpt)
    out = tmp_path / "pred"
    cli.bundle_run(BUNDLE, ["inference.json"], tmp_path, {
        "input_dir": case.parent, "output_dir": out, "ckpt_path": ckpt, "sw_batch_size": 32,
        "network_def": "$torch.nn.Conv2d(4, 1, 1)",
    })
    pred = nib.load(out / "case_a_seg.nii.gz")
    assert pred.shape == shape and np.allclose(pred.affine, affine)
    np.testing.assert_array_equal(np.asarray(pred.dataobj).astype(bool), lesion)


def test_inference_writes_attention_and_entropy_in_the_inputs_geometry(tmp_path, cli):
    """``--save_attention true --tta flips`` on an anisotropic, axis-permuted volume: the attention map of the
    deepest encoder block and the entropy map have the input's shape and affine; the prediction is still written."""
    shape = (12, 90, 70)
    affine = np.array([[0.0, -0.9, 0.0, 40.0], [0.0, 0.0, -0.8, 30.0], [5.0, 0.0, 0.0, -20.0], [0.0, 0.0, 0.0, 1.0]])
    lesion = np.zeros(shape, bool)
    lesion[5:8, 40:50, 30:40] = True
    case = tmp_path / "in" / "case_a"
    _write_case(case, shape, affine, lesion)
    network = "monai_attn.networks.MistakesUNet.preset('fpa', spatial_dims=2, in_channels=4, out_channels=1, width=4)"
    from monai_attn.networks import MistakesUNet

    torch.manual_seed(0)
    torch.save({"model": MistakesUNet.preset("fpa", 2, 4, 1, width=4).state_dict()}, tmp_path / "fpa.pt")
    out = tmp_path / "pred"
    cli.bundle_run(BUNDLE, ["inference.json"], tmp_path, {
        "input_dir": case.parent, "output_dir": out, "ckpt_path": tmp_path / "fpa.pt", "network_def": f"${network}",
        "roi_size": "[96,96]", "sw_batch_size": 12, "save_attention": "true", "tta": "flips",
    })
    pred = nib.load(out / "case_a_seg.nii.gz")
    assert pred.shape == shape and np.allclose(pred.affine, affine)
    for stem in ("case_a_attention_encoder3_fpa", "case_a_entropy"):
        img = nib.load(out / f"{stem}.nii.gz")
        assert img.shape == shape and np.allclose(img.affine, affine), stem
        values = np.asarray(img.dataobj)
        assert np.isfinite(values).all() and 0 <= values.min() and values.max() <= 1, stem
    assert np.asarray(nib.load(out / "case_a_attention_encoder3_fpa.nii.gz").dataobj).std() > 0
    uncertainty = json.loads((out / "uncertainty.json").read_text())
    assert set(uncertainty["cases"]) == {"case_a"} and uncertainty["summary"]["voxels_outside"] > 0
