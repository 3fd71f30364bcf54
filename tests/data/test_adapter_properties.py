"""Property-based tests (hypothesis): random file trees never crash the dataset adapters. On any tree an
adapter either prepares a datalist or reports what is wrong (an integrity report, or a clear
FileNotFoundError/ValueError naming the folder) — never an unrelated exception."""
from __future__ import annotations

import gzip
import io
import json
import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from monai_attn.data import BRATS_MODALITIES, ISLES_MAPS, get_adapter

BRATS_CASES = [f"MICCAI_BraTS_2018_Data_Training/{g}/Brats18_X_{i}_1" for g, i in (("HGG", 1), ("HGG", 2), ("LGG", 3))]
ISLES_CASES = ["TRAINING/case_1", "TRAINING/case_2"]
PATHS = {
    "brats2018": [f"{c}/{Path(c).name}_{m}.nii.gz" for c in BRATS_CASES for m in (*BRATS_MODALITIES, "seg")]
    + ["MICCAI_BraTS_2018_Data_Training/survival_data.csv", "MICCAI_BraTS_2018_Data_Training/HGG/notes.txt"],
    "isles2018": [f"{c}/SMIR.Brain.XX.O.{m}.{100 + k}/SMIR.Brain.XX.O.{m}.{100 + k}.nii" for c in ISLES_CASES
                  for k, m in enumerate((*(f"CT_{x}" for x in ISLES_MAPS), "OT", "CT"))],
    "isic2018": [f"ISIC2018_Task1-2_Training_Input/ISIC_000000{i}.jpg" for i in range(3)]
    + [f"ISIC2018_Task1_Training_GroundTruth/ISIC_000000{i}_segmentation.png" for i in range(3)]
    + ["ISIC2018_Task1-2_Training_Input/ATTRIBUTION.txt"],
    "dsb2018": [f"stage1_train/{c}/images/{c}.png" for c in ("aa11", "bb22")]
    + [f"stage1_train/{c}/masks/{m}.png" for c in ("aa11", "bb22") for m in ("m1", "m2")]
    + ["stage1_train_labels.csv", "stage1_train/aa11/images/extra.png"],
}
JUNK = ["readme", "x/y/z.nii.gz", ".DS_Store", "data.json", "img.png", "vol.nii"]
CONTENTS = ["valid", "valid", "valid", "empty", "text", "random", "truncated", "odd"]


def _valid_bytes(name: str, kind: str, rng: np.random.Generator) -> bytes:
    """Real content for a file name: a tiny volume or image, ``odd`` ones with another shape/values."""
    if name.endswith((".nii.gz", ".nii")):
        shape = (6, 5, 4) if kind != "odd" else [(6, 5), (6, 5, 4, 2), (7, 5, 4)][int(rng.integers(3))]
        seg = "_seg" in name or ".OT." in name
        arr = (rng.integers(0, 3, shape) if seg else rng.uniform(0, 3, shape)).astype(np.float32)
        if kind == "odd" and rng.random() < 0.5:
            arr.flat[0] = np.nan
        img = nib.Nifti1Image(arr, np.eye(4))
        raw = img.header.binaryblock + b"\0" * 4 + arr.tobytes()  # a single-file NIfTI
        return gzip.compress(raw) if name.endswith(".gz") else raw
    if name.endswith((".png", ".jpg")):
        mask = "_segmentation" in name or "/masks/" in name
        size = (5, 6) if kind != "odd" else (7, 3)
        arr = (rng.integers(0, 2, size) * (255 if kind != "odd" else 1)).astype(np.uint8) if mask else \
            rng.integers(0, 255, (*size, 3)).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG" if name.endswith(".png") else "JPEG")
        return buf.getvalue()
    return b"id,age\n1,60\n"


@st.composite
def file_trees(draw, dataset: str):
    names = draw(st.lists(st.sampled_from(PATHS[dataset] + JUNK), min_size=0, max_size=10, unique=True))
    seed = draw(st.integers(0, 2**16))
    return [(n, draw(st.sampled_from(CONTENTS))) for n in names], seed


def _write(root: Path, tree, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name, kind in tree:
        path = root / name
        if any(p.is_file() for p in path.parents if p != root and root in p.parents) or path.is_dir():
            continue  # a file where the tree needs a folder: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "empty":
            data = b""
        elif kind == "text":
            data = b"this is not an image\n"
        elif kind == "random":
            data = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        elif kind == "truncated":
            data = _valid_bytes(name, "valid", rng)[:40]
        else:
            data = _valid_bytes(name, kind, rng)
        path.write_bytes(data)


@pytest.mark.parametrize("dataset", sorted(PATHS))
@settings(max_examples=20, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_trees_are_prepared_or_reported(dataset, data):
    tree, seed = data.draw(file_trees(dataset), label="tree")
    skip_bad = data.draw(st.booleans(), label="skip_bad")
    tmp = Path(tempfile.mkdtemp(prefix=f"tree_{dataset}_"))
    try:
        root = tmp / "raw"
        root.mkdir()
        _write(root, tree, seed)
        try:
            adapter = get_adapter(dataset, root)
        except FileNotFoundError as e:  # not this dataset's layout: says which folder and what is expected
            assert str(root) in str(e) and "expected" in str(e)
            event("not this layout")
            return
        out = tmp / "datalist.json"
        try:
            datalist, report, skipped = adapter.prepare(out, seed=0, folds=2 if dataset == "brats2018" else None,
                                                        skip_bad=skip_bad)
        except ValueError as e:  # e.g. no usable case, or fewer cases than folds: a sentence, not a traceback
            assert str(e) and ("case" in str(e) or "fold" in str(e)), str(e)
            event("ValueError")
            return
        text = report.format()  # every problem renders with its file name
        assert all(p.path and p.message for p in report.problems) and text
        event("reported" if datalist is None else "prepared")
        if datalist is None:
            assert not report.ok and not out.exists()  # nothing written when the check fails
        else:
            assert (report.ok or skip_bad) and json.loads(out.read_text())["name"] == dataset
            listed = {it["id"] for part in ("training", "validation", "test") for it in datalist.get(part, [])}
            assert listed and not listed & set(skipped)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
