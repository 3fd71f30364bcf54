"""Volume pipelines (BraTS, ISLES) on synthetic cohorts; readers; label maps; RGB."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DataLoader
from monai.transforms import EnsureChannelFirstd, Orientationd

from monai_attn.data import ISLES2018, BraTS2018, load_datalist, make_dataset, synthesize
from monai_attn.transforms import (
    EnsureRGB,
    LoadVolumed,
    SelectLabels,
    brats2018_eval_transforms,
    brats2018_train_transforms,
    isles2018_eval_transforms,
    isles2018_train_transforms,
)


@pytest.fixture(scope="module")
def brats_list(tmp_path_factory):
    out = tmp_path_factory.mktemp("brats_pipe")
    root = synthesize("brats2018", out, cases=3, seed=4, shape=(40, 40, 20), lgg_cases=0)
    BraTS2018(root).prepare(out / "d.json", folds=3)
    return load_datalist(out / "d.json")


def test_brats_eval_pipeline_normalises_crops_and_maps_et(brats_list):
    item = brats_list[0]
    full = brats2018_eval_transforms(roi_size=(40, 40))(dict(item))  # no crop
    d = brats2018_eval_transforms(roi_size=(32, 32))(dict(item))
    img, lab = d["image"], d["label"]
    assert img.shape == (4, 32, 32, 20) and lab.shape == (1, 32, 32, 20)
    assert torch.equal(img.as_tensor(), full["image"].as_tensor()[:, 4:36, 4:36])  # centre crop
    seg = np.asanyarray(nib.load(item["label"]).dataobj)
    assert float(full["label"].sum()) == float((seg == 4).sum()) > 0  # ET = label 4
    assert set(torch.unique(lab).tolist()) == {0.0, 1.0}
    flair = np.asanyarray(nib.load(item["image"][0]).dataobj)
    assert (full["image"][0] == 0).sum() == (flair == 0).sum()
    for c in range(4):  # per-case per-modality z-score over the non-zero voxels; background stays 0
        x = full["image"][c][full["image"][c] != 0]
        assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2
    # RAS: the BraTS affine diag(-1, -1, 1) is flipped to positive x and y
    assert torch.all(torch.diag(img.affine)[:3] > 0)


def test_brats_train_pipeline_through_cache_and_workers(brats_list):
    tf = brats2018_train_transforms(roi_size=(32, 32), num_samples=4, fg_ratio=1.0, cache_dtype="float16")
    ds = make_dataset(brats_list, tf, cache="memory")
    assert ds._cache[0]["image"].dtype == torch.float16 and ds._cache[0]["label"].dtype == torch.uint8
    batch = next(iter(DataLoader(ds, batch_size=3, num_workers=1)))
    assert batch["image"].shape == (12, 4, 32, 32) and batch["label"].shape == (12, 1, 32, 32)
    assert batch["image"].dtype == torch.float32
    assert torch.all(batch["label"].sum(dim=(1, 2, 3)) > 0)  # fg_ratio=1: every slice has tumour
    assert batch["slice_index"].shape == (12,)
    augmented = brats2018_train_transforms(roi_size=(32, 32), num_samples=2, augment=True)
    out = augmented(dict(brats_list[1]))
    assert len(out) == 2 and out[0]["image"].shape == (4, 32, 32)


def test_isles_pipelines(tmp_path):
    root = synthesize("isles2018", tmp_path, cases=2, seed=1, shape=(32, 32, 5))
    ISLES2018(root).prepare(tmp_path / "i.json")
    items = load_datalist(tmp_path / "i.json", "training") + load_datalist(tmp_path / "i.json", "test")
    d = isles2018_eval_transforms(roi_size=(24, 24))(dict(items[0]))
    assert d["image"].shape == (4, 24, 24, 5) and set(torch.unique(d["label"]).tolist()) <= {0.0, 1.0}
    padded = isles2018_eval_transforms(roi_size=(48, 48))(dict(items[0]))  # smaller volumes are padded
    assert padded["image"].shape == (4, 48, 48, 5)
    out = isles2018_train_transforms(roi_size=(24, 24), num_samples=3)(dict(items[0]))
    assert len(out) == 3 and out[0]["image"].shape == (4, 24, 24)


def test_load_volumed_nifti_and_itk_formats_agree(tmp_path):
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 100, (6, 7, 5)).astype(np.int16)  # (x, y, z)
    nii = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.diag([-1.0, -1.0, 1.0, 1.0])), str(nii))  # LPS identity in RAS terms
    paths = {"nii": nii}
    for ext in ("mha", "nrrd"):
        img = sitk.GetImageFromArray(arr.transpose(2, 1, 0))
        paths[ext] = tmp_path / f"v.{ext}"
        sitk.WriteImage(img, str(paths[ext]))
    loader = LoadVolumed("image")
    out = {}
    for k, p in paths.items():
        d = Orientationd("image", axcodes="RAS", labels=None)(EnsureChannelFirstd("image")(loader({"image": str(p)})))
        out[k] = d["image"]
    assert "sform_code" in out["nii"].meta and "sform_code" not in out["mha"].meta  # nibabel vs ITK
    assert torch.equal(out["nii"].as_tensor(), out["mha"].as_tensor())
    assert torch.equal(out["nii"].as_tensor(), out["nrrd"].as_tensor())
    with pytest.raises(ValueError, match="chooses its readers"):
        LoadVolumed("image", reader="ITKReader")


def test_select_labels_and_rgb():
    seg = torch.tensor([[0, 1, 2, 4, 4]])
    assert SelectLabels("ET")(seg).tolist() == [[0, 0, 0, 1, 1]]
    assert SelectLabels("TC")(seg).tolist() == [[0, 1, 0, 1, 1]]
    assert SelectLabels("WT")(seg).tolist() == [[0, 1, 1, 1, 1]]
    assert SelectLabels((1,), dtype=torch.uint8)(seg).dtype == torch.uint8
    with pytest.raises(ValueError, match="unknown region"):
        SelectLabels("XX")
    assert EnsureRGB()(torch.zeros(4, 5, 6)).shape == (3, 5, 6)
    grey = EnsureRGB()(torch.arange(6.0).reshape(1, 2, 3))
    assert grey.shape == (3, 2, 3) and torch.equal(grey[0], grey[2])
    with pytest.raises(ValueError, match="channels"):
        EnsureRGB()(torch.zeros(5, 2, 2))
