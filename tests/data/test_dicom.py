"""DICOM series input: a folder holding one series stands where a volume file would (issue 18).

References are independent of the code under test: the NIfTI file read by nibabel and by SimpleITK's
own file reader; the series is written with SimpleITK from that NIfTI."""
from __future__ import annotations

import json
import locale
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from monai_attn.cli import main
from monai_attn.data import ISLES2018, BraTS2018
from monai_attn.data.checks import check_volume_group, read_volume
from monai_attn.data.dicom import dicom_series_files, is_dicom_series, read_dicom_series, write_dicom_series
from monai_attn.errors import BadInputError
from monai_attn.transforms import LoadVolumed
from monai_attn.workflows import case_name_formatter, inference_items

#: anisotropic, axes permuted (slices along the first axis), not RAS; right-handed in LPS as DICOM needs
AFFINE = np.array([[0.0, -0.9, 0.0, 40.0], [0.0, 0.0, -0.8, 30.0], [5.0, 0.0, 0.0, -20.0], [0.0, 0.0, 0.0, 1.0]])


def _volume(path: Path, shape=(6, 20, 14), seed=0, dtype=np.int16) -> np.ndarray:
    arr = np.random.default_rng(seed).integers(1, 1000, size=shape).astype(dtype)
    nib.save(nib.Nifti1Image(arr, AFFINE), path)
    return arr


def _to_dicom(nifti: Path, folder: Path, cast=None) -> None:
    image = sitk.ReadImage(str(nifti))
    write_dicom_series(image if cast is None else sitk.Cast(image, cast), folder)


def test_series_round_trip_keeps_voxels_and_geometry(tmp_path):
    arr = _volume(tmp_path / "v.nii.gz")
    encoding = locale.getpreferredencoding(False)
    write_dicom_series(tmp_path / "v.nii.gz", tmp_path / "series")
    assert locale.getpreferredencoding(False) == encoding  # GDCM's writer sets the C locale; it is put back
    assert len(dicom_series_files(tmp_path / "series")) == arr.shape[2] and is_dicom_series(tmp_path / "series")
    ref = sitk.ReadImage(str(tmp_path / "v.nii.gz"))
    got = read_dicom_series(tmp_path / "series")
    np.testing.assert_allclose(got.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(got.GetSpacing(), ref.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(got.GetDirection(), ref.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(ref))
    data, geom = read_volume(tmp_path / "series")
    np.testing.assert_array_equal(data, arr)  # (x, y, z) like nibabel's
    assert geom.shape == arr.shape


def test_load_volumed_reads_a_series_as_the_nifti(tmp_path):
    """MONAI's ITKReader on the folder and nibabel on the file give the same array and (RAS) affine."""
    arrays = [_volume(tmp_path / f"m{i}.nii.gz", seed=i) for i in range(2)]
    for i in range(2):
        _to_dicom(tmp_path / f"m{i}.nii.gz", tmp_path / f"m{i}")
    from monai.transforms import Compose, EnsureChannelFirstd, Orientationd

    def load(paths):
        t = Compose([LoadVolumed("image", modalities=2), EnsureChannelFirstd("image"),
                     Orientationd("image", axcodes="RAS", labels=None)])
        return t({"image": [str(p) for p in paths]})["image"]

    nifti = load([tmp_path / "m0.nii.gz", tmp_path / "m1.nii.gz"])
    series = load([tmp_path / "m0", tmp_path / "m1"])
    assert series.shape == nifti.shape == (2, 20, 14, 6)  # RAS: the first (5 mm, S) axis ends up last
    np.testing.assert_array_equal(series.numpy(), nifti.numpy())
    np.testing.assert_allclose(series.affine.numpy(), nifti.affine.numpy(), atol=1e-4)
    assert float(nifti[0].sum()) == float(arrays[0].sum())


def test_folder_without_a_series_or_with_two_is_refused_by_name(tmp_path):
    empty = tmp_path / "case_flair"
    empty.mkdir()
    (empty / "notes.txt").write_text("no dicom here")
    with pytest.raises(BadInputError, match="case_flair: cannot read the DICOM series .*no DICOM series"):
        LoadVolumed("image")({"image": str(empty)})
    _volume(tmp_path / "a.nii.gz")
    _volume(tmp_path / "b.nii.gz", seed=1)
    write_dicom_series(tmp_path / "a.nii.gz", tmp_path / "two")
    write_dicom_series(tmp_path / "b.nii.gz", tmp_path / "other")
    for f in (tmp_path / "other").iterdir():
        shutil.move(str(f), tmp_path / "two" / f"b_{f.name}")
    with pytest.raises(ValueError, match="holds 2 DICOM series"):
        dicom_series_files(tmp_path / "two")


def test_check_volume_group_compares_nifti_and_series_in_one_world(tmp_path):
    _volume(tmp_path / "a.nii.gz")
    _volume(tmp_path / "b.nii.gz", seed=1)
    _to_dicom(tmp_path / "b.nii.gz", tmp_path / "b")
    assert check_volume_group({"flair": tmp_path / "a.nii.gz", "t1": tmp_path / "b"}, None) == []
    moved = tmp_path / "moved.nii.gz"  # same grid shifted by 3 mm: a real mismatch is still found
    shifted = AFFINE.copy()
    shifted[0, 3] += 3.0
    nib.save(nib.Nifti1Image(np.ones((6, 20, 14), np.int16), shifted), moved)
    _to_dicom(moved, tmp_path / "moved")
    found = check_volume_group({"flair": tmp_path / "a.nii.gz", "t1": tmp_path / "moved"}, None)
    assert len(found) == 1 and "origin" in found[0][1]


def _brats_case_to_dicom(case: Path) -> None:
    """Replace every file of a (synthetic) BraTS case with a ``<case>_<role>/`` DICOM series folder."""
    for f in sorted(case.glob("*.nii.gz")):
        _to_dicom(f, case / f.name[: -len(".nii.gz")])
        f.unlink()


def test_brats_verify_and_prepare_accept_series_folders(tmp_path, capsys):
    raw = tmp_path / "raw"
    assert main(["synth", "brats2018", "--out", str(raw), "--cases", "5", "--shape", "24", "24", "8"]) == 0
    hgg = raw / "MICCAI_BraTS_2018_Data_Training" / "HGG"
    dicom_case = sorted(hgg.iterdir())[0]
    _brats_case_to_dicom(dicom_case)
    report, cases = BraTS2018(raw).verify()
    assert report.ok, report.format()
    files = next(c for c in cases if c.id == dicom_case.name).files
    assert files["flair"] == dicom_case / f"{dicom_case.name}_flair" and files["label"].is_dir()
    out = tmp_path / "datalist.json"
    assert main(["prepare", "brats2018", "--root", str(raw), "--out", str(out), "--absolute-paths"]) == 0
    item = next(it for it in json.loads(out.read_text())["training"] if it["id"] == dicom_case.name)
    assert all(Path(p).is_dir() for p in item["image"]) and Path(item["label"]).is_dir()
    capsys.readouterr()
    # a series folder holding no series is a missing modality, as a missing file is
    shutil.rmtree(dicom_case / f"{dicom_case.name}_t2")
    (dicom_case / f"{dicom_case.name}_t2").mkdir()
    report, _ = BraTS2018(raw).verify()
    assert not report.ok and "missing t2 file" in report.format()


def test_isles_map_folder_holding_a_series(tmp_path):
    raw = tmp_path / "raw"
    assert main(["synth", "isles2018", "--out", str(raw), "--cases", "5", "--shape", "24", "24", "3"]) == 0
    case = raw / "TRAINING" / "case_1"
    cbf_dir = next(case.glob("SMIR.Brain.XX.O.CT_CBF.*"))
    nifti = next(cbf_dir.glob("*.nii"))
    image = sitk.ReadImage(str(nifti))
    nifti.unlink()
    write_dicom_series(sitk.Cast(image * 100, sitk.sitkInt16), cbf_dir)  # DICOM stores integers
    report, cases = ISLES2018(raw).verify()
    assert report.ok, report.format()
    assert next(c for c in cases if c.id == "case_1").files["CBF"] == cbf_dir
    items = inference_items("isles2018", str(raw / "TRAINING"))
    item = next(it for it in items if it["id"] == "case_1")
    assert item["image"][0] == str(cbf_dir)
    assert case_name_formatter("isles2018")({"filename_or_obj": str(cbf_dir)}, None)["subject"] == "case_1"
    assert case_name_formatter("isles2018")({"filename_or_obj": str(next(case.glob("*CT_MTT*/*.nii")))},
                                            None)["subject"] == "case_1"


def test_brats_inference_items_find_series_folders(tmp_path):
    case = tmp_path / "in" / "case_a"
    case.mkdir(parents=True)
    for i, mod in enumerate(("flair", "t1", "t1ce", "t2")):
        _volume(tmp_path / f"{mod}.nii.gz", seed=i)
        _to_dicom(tmp_path / f"{mod}.nii.gz", case / f"case_a_{mod}")
    (case / "case_a_t2" / "notes.txt").write_text("ignored")
    for root in (case.parent, case):  # a folder of cases, or one case folder
        items = inference_items("brats2018", str(root))
        assert items == [{"id": "case_a", "image": [str(case / f"case_a_{m}") for m in ("flair", "t1", "t1ce", "t2")]}]
    assert case_name_formatter("brats2018")({"filename_or_obj": str(case / "case_a_flair")}, None)["subject"] == "case_a"
