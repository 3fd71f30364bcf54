"""A BraTS case given as DICOM series (one ``<case>_<modality>/`` folder per modality) is segmented exactly
as the same case given as NIfTI, and the output has the series' geometry (issue 18)."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
import torch

from monai_attn.data.dicom import write_dicom_series

BUNDLE = "mistakes_brats2018"
MODALITIES = ("flair", "t1", "t1ce", "t2")
#: anisotropic, axes permuted and flipped (slices along the first axis): a wrong axis order or flip shows
AFFINE = np.array([[0.0, -0.9, 0.0, 40.0], [0.0, 0.0, -0.8, 30.0], [5.0, 0.0, 0.0, -20.0], [0.0, 0.0, 0.0, 1.0]])
SHAPE = (10, 48, 40)


def _nifti_case(folder: Path) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    brain = np.zeros(SHAPE, bool)
    brain[1:-1, 4:-4, 4:-4] = True
    for mod in MODALITIES:
        vol = np.where(brain, rng.integers(200, 900, size=SHAPE), 0).astype(np.int16)
        vol[4:7, 20:30, 10:22] += 1500  # a bright "lesion", off-centre
        nib.save(nib.Nifti1Image(vol, AFFINE), folder / f"{folder.name}_{mod}.nii.gz")


def test_dicom_series_case_matches_the_nifti_case(tmp_path, cli):
    nifti = tmp_path / "in" / "case_nii"
    _nifti_case(nifti)
    series = tmp_path / "in" / "case_dcm"
    for mod in MODALITIES:
        write_dicom_series(sitk.ReadImage(str(nifti / f"case_nii_{mod}.nii.gz")), series / f"case_dcm_{mod}")
    network = "monai_attn.networks.MistakesUNet.preset('fpa', spatial_dims=2, in_channels=4, out_channels=1, width=4)"
    from monai_attn.networks import MistakesUNet

    torch.manual_seed(0)
    net = MistakesUNet.preset("fpa", 2, 4, 1, width=4)
    torch.save({"model": net.state_dict()}, tmp_path / "fpa.pt")
    out = tmp_path / "pred"
    cli.bundle_run(BUNDLE, ["inference.json"], tmp_path, {
        "dataset_dir": series.parent, "output_dir": out, "ckpt_path": tmp_path / "fpa.pt",
        "network_def": f"${network}", "roi_size": "[48,48]", "sw_batch_size": 16, "num_workers": 0,
    })
    from_nifti = nib.load(out / "case_nii_seg.nii.gz")
    from_series = nib.load(out / "case_dcm_seg.nii.gz")
    assert from_nifti.shape == from_series.shape == SHAPE
    np.testing.assert_allclose(from_nifti.affine, AFFINE, atol=1e-5)
    np.testing.assert_allclose(from_series.affine, AFFINE, atol=1e-4)  # the series' geometry (DICOM text precision)
    seg = np.asarray(from_series.dataobj)
    np.testing.assert_array_equal(seg, np.asarray(from_nifti.dataobj))
    assert 0 < seg.sum() < seg.size  # a segmentation that depends on the voxels, not a constant
