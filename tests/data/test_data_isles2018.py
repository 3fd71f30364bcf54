"""ISLES 2018 adapter on a synthetic tree in the real layout, with traps."""
from __future__ import annotations

import json
import re
import shutil

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_attn.cli import main
from monai_attn.data import ISLES2018, synthesize


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return synthesize("isles2018", tmp_path_factory.mktemp("isles"), cases=7, seed=2, shape=(32, 32))


def _folder(case_dir, mod):
    return next(p for p in case_dir.iterdir() if re.match(rf"SMIR\.Brain\.XX\.O\.{mod}\.\d+$", p.name))


def test_synthetic_layout_and_content(cohort):
    case = cohort / "case_1"
    mods = sorted(p.name.split(".")[4] for p in case.iterdir())
    assert mods == ["CT", "CT_4DPWI", "CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax", "OT"]
    numbers = [p.name.split(".")[5] for p in case.iterdir()]
    assert len(set(numbers)) == len(numbers)  # every folder has its own id, as in the real data
    for p in case.iterdir():
        assert (p / f"{p.name}.nii").is_file()  # uncompressed .nii
    ot = nib.load(str(next(_folder(case, "OT").glob("*.nii"))))
    zooms = ot.header.get_zooms()
    assert zooms[2] >= 4.0 and zooms[0] < 1.1  # thick slices, anisotropic
    slices = [nib.load(str(next(_folder(c, "OT").glob("*.nii")))).shape[2] for c in cohort.iterdir()]
    assert all(2 <= s <= 22 for s in slices)
    lesion = np.asanyarray(ot.dataobj)
    assert set(np.unique(lesion).tolist()) == {0, 1}
    tmax = np.asanyarray(nib.load(str(next(_folder(case, "CT_Tmax").glob("*.nii")))).dataobj)
    cbf = np.asanyarray(nib.load(str(next(_folder(case, "CT_CBF").glob("*.nii")))).dataobj)
    brain = cbf > 0
    assert tmax[lesion > 0].mean() > 3 * tmax[brain & (lesion == 0)].mean()
    assert cbf[lesion > 0].mean() < 0.5 * cbf[brain & (lesion == 0)].mean()


def test_prepare_clean_cohort(cohort, tmp_path):
    out = tmp_path / "isles.json"
    adapter = ISLES2018(cohort)  # TRAINING itself works: the root is its parent
    assert adapter.root == cohort.parent
    data, report, _ = adapter.prepare(out, seed=0)
    assert report.ok, report.format()
    assert (len(data["training"]), len(data["validation"]), len(data["test"])) == (4, 0, 3)  # floor(4.9), floor(.7)
    items = load_decathlon_datalist(out, True, "training", base_dir=adapter.root)
    it = items[0]
    assert [re.search(r"O\.(CT_\w+)\.", p)[1] for p in it["image"]] == ["CT_CBF", "CT_MTT", "CT_CBV", "CT_Tmax"]
    assert ".O.OT." in it["label"] and it["id"].startswith("case_")
    raw = json.loads(out.read_text())
    assert raw["modality"] == {"0": "CBF", "1": "MTT", "2": "CBV", "3": "Tmax"}


def test_verify_lists_every_trap_by_file_name(cohort, tmp_path, capsys):
    root = tmp_path / "TRAINING"
    shutil.copytree(cohort, root)
    # extra file
    (root / "case_1" / "notes.txt").write_text("x")
    # missing modality (whole CBV folder)
    shutil.rmtree(_folder(root / "case_2", "CT_CBV"))
    # unexpected label value
    ot = next(_folder(root / "case_3", "OT").glob("*.nii"))
    img = nib.load(str(ot), mmap=False)
    arr = np.asanyarray(img.dataobj).copy()
    arr[0, 0, 0] = 2
    nib.save(nib.Nifti1Image(arr, img.affine), str(ot))
    # truncated .nii
    mtt = next(_folder(root / "case_4", "CT_MTT").glob("*.nii"))
    mtt.write_bytes(mtt.read_bytes()[:1000])
    # mismatched geometry: Tmax with another in-plane spacing
    tmax = next(_folder(root / "case_5", "CT_Tmax").glob("*.nii"))
    img = nib.load(str(tmax), mmap=False)
    aff = img.affine.copy()
    aff[0, 0] *= 1.5
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj).copy(), aff), str(tmax))
    # infinite values
    cbf = next(_folder(root / "case_6", "CT_CBF").glob("*.nii"))
    img = nib.load(str(cbf), mmap=False)
    arr = np.asanyarray(img.dataobj).copy()
    arr[2, 2, 0] = np.inf
    nib.save(nib.Nifti1Image(arr, img.affine), str(cbf))

    assert main(["verify", "isles2018", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()

    def has(fname, words):
        return any(fname in ln and words in ln for ln in lines)

    assert has("case_1/notes.txt", "unexpected")
    assert has("case_2/SMIR.Brain.XX.O.CT_CBV", "missing CT_CBV")
    assert has(ot.name, "unexpected label values {2}")
    assert has(mtt.name, "cannot read MTT")
    assert has(tmax.name, "spacing")
    assert has(cbf.name, "1 inf")
    assert "5 errors in 5 cases" in out or "errors in 5 cases" in out
    out_json = tmp_path / "x.json"
    assert main(["prepare", "isles2018", "--root", str(tmp_path), "--out", str(out_json)]) == 1
    assert not out_json.exists()
