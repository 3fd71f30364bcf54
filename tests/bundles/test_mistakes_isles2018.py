"""mistakes_isles2018 bundle: train → infer through the real CLI on a synthetic ISLES-like cohort."""
from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

BUNDLE = "mistakes_isles2018"
CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / BUNDLE / "configs"
TINY = {"roi_size": "[64,64]", "num_workers": 0, "sw_batch_size": 8}


@pytest.fixture(scope="module")
def trained(synth_cohort, tmp_path_factory, cli):
    cohort = synth_cohort("isles2018", 10, 64, 64)
    root = tmp_path_factory.mktemp("isles_bundle")
    cli.bundle_run(BUNDLE, ["train.json"], root, {**TINY, "dataset_dir": cohort, "num_epochs": 1})
    return cohort, root


def test_train_and_infer_on_raw_layout(trained, tmp_path, cli):
    cohort, root = trained
    assert (root / "models" / "model.pt").is_file()
    assert list((root / "models").glob("checkpoint*epoch=1.pt"))
    case = sorted((cohort / "TRAINING").iterdir())[0]
    inputs = tmp_path / "in" / case.name
    shutil.copytree(case, inputs)
    for lesion in inputs.glob("SMIR.Brain.XX.O.OT.*"):
        shutil.rmtree(lesion)
    out = tmp_path / "pred"
    cli.bundle_run(BUNDLE, ["inference.json"], root, {**TINY, "input_dir": inputs.parent, "output_dir": out})
    pred = nib.load(out / f"{case.name}_seg.nii.gz")
    ref = nib.load(next(inputs.glob("SMIR.Brain.XX.O.CT_CBF.*/*.nii")))
    assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine)
    assert ref.header.get_zooms()[2] > 2 * ref.header.get_zooms()[0]  # thick slices survive the round trip
    assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1}


def test_verify_net_in_out(cli):
    cli.run(["verify_net_in_out", "--net_id", "network_def", "--meta_file", str(CONFIGS / "metadata.json"),
             "--config_file", str(CONFIGS / "inference.json")])
