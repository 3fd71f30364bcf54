"""BraTS 2018 adapter on a synthetic tree in the real layout, with traps."""
from __future__ import annotations

import gzip
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_attn.cli import main
from monai_attn.data import BRATS_MODALITIES, BraTS2018, get_adapter, load_datalist, select_fold, synthesize

SHAPE = (40, 40, 20)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("brats")
    root = synthesize("brats2018", out, cases=7, seed=1, shape=SHAPE, lgg_cases=2)
    return root


def _copy(cohort, tmp_path):
    dst = tmp_path / "MICCAI_BraTS_2018_Data_Training"
    shutil.copytree(cohort, dst)
    return dst


def test_synthetic_cohort_layout_and_content(cohort):
    cases = sorted(p.name for p in (cohort / "HGG").iterdir())
    assert len(cases) == 7 and len(list((cohort / "LGG").iterdir())) == 2
    c = cohort / "HGG" / cases[0]
    assert sorted(p.name for p in c.iterdir()) == sorted(f"{c.name}_{m}.nii.gz" for m in (*BRATS_MODALITIES, "seg"))
    seg = nib.load(str(c / f"{c.name}_seg.nii.gz"))
    assert seg.shape == SHAPE
    assert np.allclose(np.abs(np.diag(seg.affine)[:3]), 1.0)  # 1 mm
    values = set(np.unique(np.asanyarray(seg.dataobj)).tolist())
    assert values == {0, 1, 2, 4}
    imgs = {m: np.asanyarray(nib.load(str(c / f"{c.name}_{m}.nii.gz")).dataobj).astype(float) for m in BRATS_MODALITIES}
    lab = np.asanyarray(seg.dataobj)
    brain = imgs["t1"] > 0
    # distinct contrasts: T1ce bright in the enhancing rim, FLAIR bright in oedema, background 0
    assert imgs["t1ce"][lab == 4].mean() > 1.5 * imgs["t1ce"][brain & (lab == 0)].mean()
    assert imgs["flair"][lab == 2].mean() > 1.3 * imgs["flair"][brain & (lab == 0)].mean()
    assert all((imgs[m][~brain] == 0).all() for m in BRATS_MODALITIES)
    # LGG: no enhancing tumour
    lgg = next((cohort / "LGG").iterdir())
    assert 4 not in np.unique(np.asanyarray(nib.load(str(lgg / f"{lgg.name}_seg.nii.gz")).dataobj))


def test_synthesis_is_seeded(tmp_path):
    a = synthesize("brats2018", tmp_path / "a", cases=1, seed=3, shape=(24, 24, 12), lgg_cases=0)
    b = synthesize("brats2018", tmp_path / "b", cases=1, seed=3, shape=(24, 24, 12), lgg_cases=0)
    fa = next((a / "HGG").iterdir()) / f"{next((a / 'HGG').iterdir()).name}_t1ce.nii.gz"
    fb = b / fa.relative_to(a)
    assert np.array_equal(nib.load(str(fa)).get_fdata(), nib.load(str(fb)).get_fdata())


def test_prepare_clean_cohort(cohort, tmp_path):
    out = tmp_path / "brats.json"
    adapter = BraTS2018(cohort.parent)  # the parent of MICCAI_BraTS_2018_Data_Training works too
    assert adapter.root == cohort
    data, report, skipped = adapter.prepare(out, seed=0, folds=3)
    assert report.ok and not skipped and report.n_cases == 7
    assert any("LGG: 2 case(s) ignored" in n for n in report.notes)
    assert not report.warnings  # survival_data.csv is a known extra
    raw = json.loads(out.read_text())
    assert raw["numFolds"] == 3 and raw["validation"] == [] and "test" not in raw and raw["numTest"] == 0
    assert load_datalist(out, "validation") == []
    with pytest.raises(ValueError, match="no 'test' list"):
        load_datalist(out, "test")
    items = load_decathlon_datalist(out, True, "training", base_dir=cohort)
    assert len(items) == 7 and all("LGG" not in it["image"][0] for it in items)
    it = items[0]
    assert [p.rsplit("_", 1)[1] for p in it["image"]] == ["flair.nii.gz", "t1.nii.gz", "t1ce.nii.gz", "t2.nii.gz"]
    assert it["label"].endswith("_seg.nii.gz") and isinstance(it["fold"], int)
    assert sorted({i["fold"] for i in items}) == [0, 1, 2]
    # load_datalist resolves against the recorded root; select_fold splits case-wise
    tr, va = select_fold(load_datalist(out), 1)
    assert len(tr) + len(va) == 7 and {i["id"] for i in tr}.isdisjoint({i["id"] for i in va})
    with pytest.raises(ValueError, match="fold 9"):
        select_fold(items, 9)


def _truncate_gz(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_verify_lists_every_trap_by_file_name(cohort, tmp_path, capsys):
    root = _copy(cohort, tmp_path)
    cases = sorted(p for p in (root / "HGG").iterdir())
    # 1. extra files
    (root / "HGG" / "notes.txt").write_text("x")
    (cases[0] / "backup_flair.nii.gz").write_bytes(b"")
    # 2. missing modality
    (cases[1] / f"{cases[1].name}_t1ce.nii.gz").unlink()
    # 3. label with an unexpected value
    seg_path = cases[2] / f"{cases[2].name}_seg.nii.gz"
    seg = nib.load(str(seg_path))
    arr = np.asanyarray(seg.dataobj).copy()
    arr[0, 0, 0] = 3
    nib.save(nib.Nifti1Image(arr, seg.affine), str(seg_path))
    # 4. corrupt (truncated) .nii.gz
    _truncate_gz(cases[3] / f"{cases[3].name}_flair.nii.gz")
    # 5. mismatched modality geometry (origin shifted by 5 mm, other spacing)
    t2 = cases[4] / f"{cases[4].name}_t2.nii.gz"
    img = nib.load(str(t2))
    aff = img.affine.copy()
    aff[0, 3] += 5.0
    aff[2, 2] = 2.0
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), aff), str(t2))
    # 6. NaN in an image
    t1 = cases[5] / f"{cases[5].name}_t1.nii.gz"
    img = nib.load(str(t1))
    arr = np.asanyarray(img.dataobj).astype(np.float32)
    arr[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(arr, img.affine), str(t1))
    # 7. a broken LGG case is ignored
    _truncate_gz(next((root / "LGG").iterdir()).glob("*_seg.nii.gz").__next__())

    report, _ = get_adapter("brats2018", root).verify()
    parallel, _ = get_adapter("brats2018", root).verify(workers=2)
    assert sorted(map(str, parallel.problems)) == sorted(map(str, report.problems))
    text = report.format()
    msgs = [str(p) for p in report.problems]
    assert not report.ok
    assert report.bad_cases == sorted(c.name for c in cases[1:6])

    def has(fname, words):
        return any(fname in m and words in m for m in msgs)

    assert has("HGG/notes.txt", "unexpected") and has("backup_flair.nii.gz", "unexpected")
    assert has(f"{cases[1].name}_t1ce.nii.gz", "missing t1ce")
    assert has(f"{cases[2].name}_seg.nii.gz", "unexpected label values {3}")
    assert has(f"{cases[3].name}_flair.nii.gz", "cannot read flair")
    assert has(f"{cases[4].name}_t2.nii.gz", "origin") and has(f"{cases[4].name}_t2.nii.gz", "spacing")
    assert has(f"{cases[5].name}_t1.nii.gz", "1 NaN")
    assert "LGG" not in "".join(m for m in msgs if "notes" not in m)
    assert cases[0].name not in report.bad_cases  # extra files are warnings only

    # CLI: verify exits non-zero and prints every problem; prepare writes nothing ...
    assert main(["verify", "brats2018", "--root", str(root)]) == 1
    printed = capsys.readouterr().out
    for c in cases[1:6]:
        assert c.name in printed
    out = tmp_path / "d.json"
    assert main(["prepare", "brats2018", "--root", str(root), "--out", str(out)]) == 1
    assert not out.exists() and "nothing written" in capsys.readouterr().out
    # ... unless told to skip the bad cases, which it lists
    assert main(["prepare", "brats2018", "--root", str(root), "--out", str(out), "--skip-bad", "--folds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "skipped 5 bad cases" in printed
    data = json.loads(out.read_text())
    assert [i["id"] for i in data["training"]] == [cases[0].name, cases[6].name]
    assert data["skipped"] == sorted(c.name for c in cases[1:6])
    assert text.count("\n") >= 8


def test_wrong_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no BraTS 2018 layout"):
        BraTS2018(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BraTS2018(tmp_path / "nope")
    assert main(["verify", "brats2018", "--root", str(tmp_path)]) == 2


def test_gzip_helper_really_corrupts(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(b"0" * 100000))
    _truncate_gz(p)
    with pytest.raises((EOFError, OSError)):
        gzip.decompress(p.read_bytes())
