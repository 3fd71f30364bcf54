"""DSB 2018 adapter and 2D pipeline: the real shipped sample written in the DSB layout, a synthetic
cohort, and traps."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile
import torch
from monai.data import load_decathlon_datalist
from PIL import Image

from monai_attn.cli import main
from monai_attn.data import DSB2018, synthesize, write_dsb2018_sample
from monai_attn.sample_data import DSB2018_SAMPLE_DIR, load_dsb2018_sample
from monai_attn.transforms import LoadUnionMask, dsb2018_transforms


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("dsb_real")
    write_dsb2018_sample(root, case_id="sample")
    return root


def test_real_sample_in_dsb_layout(real_tree, tmp_path):
    case = real_tree / "stage1_train" / "sample"
    masks = sorted((case / "masks").glob("*.png"))
    n_instances = len(np.unique(tifffile.imread(DSB2018_SAMPLE_DIR / "mask.tif"))) - 1
    assert len(masks) == n_instances == 125
    img = Image.open(case / "images" / "sample.png")
    assert img.mode == "RGBA" and img.size == (512, 512)

    out = tmp_path / "dsb.json"
    data, report, _ = DSB2018(real_tree / "stage1_train").prepare(out)
    assert report.ok and not report.warnings, report.format()
    assert len(data["training"]) + len(data["validation"]) == 1
    item = load_decathlon_datalist(out, True, "validation", base_dir=real_tree)[0]
    assert len(item["label"]) == 125

    _, binary = load_dsb2018_sample()
    full = dsb2018_transforms(train=False, image_size=(512, 512))(item)
    # PIL-based loading is (W, H): the union of the 125 masks is exactly the binary target
    assert np.array_equal(full["label"][0].numpy().T.astype(np.uint8), binary)
    assert full["image"].shape == (3, 512, 512)
    small = dsb2018_transforms(train=False)(item)
    assert small["image"].shape == (3, 256, 256) and small["label"].shape == (1, 256, 256)
    assert abs(float(small["label"].mean()) - 0.199) < 0.02
    assert 0.0 <= float(small["image"].min()) and float(small["image"].max()) <= 1.0
    # brighter inside nuclei than outside
    assert small["image"][0][small["label"][0] > 0].mean() > 2 * small["image"][0][small["label"][0] == 0].mean()


def test_synthetic_cohort(tmp_path):
    stage = synthesize("dsb2018", tmp_path, cases=3, seed=0, shape=(64, 80))
    cases = sorted(stage.iterdir())
    assert len(cases) == 3 and all(len(c.name) == 64 for c in cases)
    masks = list((cases[0] / "masks").glob("*.png"))
    assert len(masks) >= 2
    stack = np.stack([np.asarray(Image.open(m)) for m in masks])
    assert set(np.unique(stack).tolist()) == {0, 255}
    assert (stack > 0).sum(0).max() == 1  # nuclei do not overlap
    data, report, _ = DSB2018(tmp_path).prepare(tmp_path / "d.json")
    assert report.ok and [len(data.get(k, [])) for k in ("training", "validation", "test")] == [2, 1, 0]
    d = dsb2018_transforms(train=True, image_size=(32, 32), augment=True)(
        load_decathlon_datalist(tmp_path / "d.json", True, "training", base_dir=tmp_path)[0])
    assert d["image"].shape == (3, 32, 32) and set(torch.unique(d["label"]).tolist()) <= {0.0, 1.0}


def test_traps(real_tree, tmp_path, capsys):
    root = tmp_path / "dsb"
    shutil.copytree(real_tree, root)
    synthesize("dsb2018", root, cases=3, seed=5, shape=(40, 40))
    stage = root / "stage1_train"
    c_real, *c_syn = sorted(stage.iterdir(), key=lambda p: p.name != "sample")
    masks = sorted((c_real / "masks").glob("*.png"))
    m = np.asarray(Image.open(masks[0])).copy()
    m[m > 0] = 77
    Image.fromarray(m).save(masks[0])  # not binary
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(c_syn[0] / "masks" / "small.png")  # size mismatch
    shutil.rmtree(c_syn[1] / "masks")  # no masks
    img = c_syn[2] / "images" / f"{c_syn[2].name}.png"
    img.write_bytes(img.read_bytes()[:100])  # truncated PNG
    (stage / "README.md").write_text("known extra")
    (c_syn[2] / "notes.txt").write_text("x")  # extra file

    assert main(["verify", "dsb2018", "--root", str(root)]) == 1
    lines = capsys.readouterr().out.splitlines()

    def has(fname, words):
        return any(fname in ln and words in ln for ln in lines)

    assert has(masks[0].name, "not binary: values [77]")
    assert has("small.png", "differs from the image")
    assert has(f"{c_syn[1].name}/masks", "no nucleus masks")
    assert has(img.name, "cannot read image")
    assert has("notes.txt", "unexpected file")
    assert not any("README.md" in ln for ln in lines)


def test_union_mask_errors(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(a)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(b)
    with pytest.raises(ValueError, match="b.png: mask shape"):
        LoadUnionMask()([str(a), str(b)])
    with pytest.raises(ValueError, match="empty list"):
        LoadUnionMask()([])
    assert LoadUnionMask()(str(a)).shape == (1, 5, 4)
