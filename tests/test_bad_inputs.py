"""The catalogue of bad inputs (docs/troubleshooting.md): each gives a clear error that names the file
and the problem, never a reader's internal traceback. One test per row of the catalogue."""
from __future__ import annotations

import gzip
import json
import os
import struct

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from monai_attn import workflows
from monai_attn.data.checks import check_volume_group
from monai_attn.errors import BadInputError, MissingInputError, find_bad_input
from monai_attn.overrides import unknown_overrides
from monai_attn.transforms import LoadImage2Dd, LoadVolumed, isic2018_transforms

SHAPE = (12, 10, 6)
MODS = ("flair", "t1", "t1ce", "t2")


def _nifti(path, shape=SHAPE, affine=None, value=None, dtype=np.float32):
    rng = np.random.default_rng(0)
    arr = rng.uniform(1, 2, shape).astype(dtype) if value is None else np.full(shape, value, dtype)
    nib.save(nib.Nifti1Image(arr, np.eye(4) if affine is None else affine), str(path))
    return path


def _case(folder, **special):
    """A BraTS-like case: four modality files (``special[mod]`` replaces one by a custom writer)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for m in MODS:
        p = folder / f"case_{m}.nii.gz"
        special.get(m, _nifti)(p)
        paths.append(str(p))
    return paths


def _raises(call, path, *words, kind=BadInputError):
    """Run ``call``; check it raises ``kind`` (also when wrapped by MONAI's ``Compose``, as the user sees
    it at the end of the traceback) whose message starts with ``path`` and holds ``words``."""
    with pytest.raises(Exception) as info:
        call()
    error = find_bad_input(info.value) if kind is BadInputError or issubclass(kind, BadInputError) else info.value
    assert isinstance(error, kind), repr(info.value)
    msg = str(error)
    assert msg.startswith(f"{path}: "), msg
    for w in words:
        assert w in msg, msg
    return msg


def _load(paths, **kw):
    return LoadVolumed("image", modalities=kw.pop("modalities", 4), **kw)({"image": paths})


# ------------------------------------------------------------------------------------ files


def test_missing_file(tmp_path):
    paths = _case(tmp_path / "c")
    os.remove(paths[3])
    _raises(lambda: _load(paths), paths[3], "file not found", kind=MissingInputError)
    _raises(lambda: LoadImage2Dd("image")({"image": str(tmp_path / "gone.png")}), tmp_path / "gone.png",
            "file not found", kind=MissingInputError)


def test_truncated_nifti(tmp_path):
    paths = _case(tmp_path / "c")
    data = open(paths[0], "rb").read()
    with open(paths[0], "wb") as f:
        f.write(data[: len(data) // 2])  # the header survives, the data is cut
    _raises(lambda: _load(paths), paths[0], "cannot read the image data", "truncated", "EOFError")
    with open(paths[0], "wb") as f:
        f.write(data[:40])  # even the header is cut
    _raises(lambda: _load(paths), paths[0], "cannot read the image header")
    # the dataset check (monai-attn verify) reports the same file
    found = check_volume_group({m: p for m, p in zip(MODS, paths)}, label_role=None)
    assert any(str(p) == paths[0] and "cannot read flair" in m for p, m in found)


def test_not_an_image(tmp_path):
    paths = _case(tmp_path / "c")
    with open(paths[1], "w") as f:
        f.write("patient notes, not an image\n")
    _raises(lambda: _load(paths), paths[1], "cannot read the image header", "not an image in a supported format")
    fake = tmp_path / "photo.png"
    fake.write_text("not a PNG")
    _raises(lambda: LoadImage2Dd("image")({"image": str(fake)}), fake, "cannot read the image header",
            "not an image in a supported format")


def test_wrong_number_of_modalities(tmp_path):
    paths = _case(tmp_path / "c")
    _raises(lambda: _load(paths[:3]), ", ".join(paths[:3]), "3 modality file(s)", "the bundle expects 4")
    pre = workflows.volume_inference_preprocessing((16, 16), in_channels=4)
    _raises(lambda: pre({"image": paths[:2]}), ", ".join(paths[:2]), "2 modality file(s)")


def test_modalities_on_different_grids(tmp_path):
    paths = _case(tmp_path / "a", t2=lambda p: _nifti(p, shape=(12, 10, 7)))
    _raises(lambda: _load(paths), paths[3], "shape (12, 10, 7) differs from case_flair.nii.gz's (12, 10, 6)",
            "one voxel grid")
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    paths = _case(tmp_path / "b", t1=lambda p: _nifti(p, affine=shifted))
    _raises(lambda: _load(paths), paths[1], "origin (5, 0, 0) differs from case_flair.nii.gz's (0, 0, 0)")
    # a label on another grid than its images
    label = _nifti(tmp_path / "b" / "seg.nii.gz", shape=(12, 10, 5), value=0)
    paths = _case(tmp_path / "c")
    _raises(lambda: LoadVolumed(["image", "label"], modalities=4)({"image": paths, "label": str(label)}), label,
            "shape (12, 10, 5) differs")


def test_2d_image_given_to_a_volume_bundle(tmp_path):
    flat = _nifti(tmp_path / "slice.nii.gz", shape=(12, 10))
    _raises(lambda: _load([str(flat)], modalities=1), flat, "a 2D image (shape (12, 10)) given to a volumetric (3D) "
            "bundle")
    png = tmp_path / "photo.png"
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(png)
    _raises(lambda: _load([str(png)], modalities=1), png, "a 2D image", "volumetric")


def test_3d_volume_given_to_a_2d_bundle(tmp_path):
    vol = _nifti(tmp_path / "brain.nii.gz")
    _raises(lambda: LoadImage2Dd("image")({"image": str(vol)}), vol, "a 3D volume file given to a 2D bundle")
    stack = tmp_path / "stack.tif"
    frames = [Image.fromarray(np.full((8, 9), v, np.uint8)) for v in (0, 1, 2, 3)]
    frames[0].save(stack, save_all=True, append_images=frames[1:])
    _raises(lambda: workflows.image_inference_preprocessing((16, 16))({"image": str(stack)}), stack,
            "a 3D / multi-page image (4 frames of 9x8) given to a 2D bundle")


def test_4d_nifti_with_a_time_axis(tmp_path):
    paths = _case(tmp_path / "c", t1ce=lambda p: _nifti(p, shape=(*SHAPE, 5)))
    _raises(lambda: _load(paths), paths[2], "a 4-D volume with a time axis of 5", "one 3D volume per file")
    found = check_volume_group({m: p for m, p in zip(MODS, paths)}, label_role=None)
    assert any(str(p) == paths[2] and "time axis" in m for p, m in found)
    one = _case(tmp_path / "d", t1ce=lambda p: _nifti(p, shape=(*SHAPE, 1)))
    _raises(lambda: _load(one), one[2], "a 4-D volume with a time axis of 1", "squeeze")


@pytest.mark.parametrize("bad, words", [(np.nan, "contains 1 NaN and 0 inf voxels"),
                                        (np.inf, "contains 0 NaN and 1 inf voxels")])
def test_nan_and_inf_voxels(tmp_path, bad, words):
    def writer(p):
        arr = np.ones(SHAPE, np.float32)
        arr[3, 4, 2] = bad
        nib.save(nib.Nifti1Image(arr, np.eye(4)), str(p))

    paths = _case(tmp_path / "c", t2=writer)
    _raises(lambda: _load(paths), paths[3], words)


def test_all_zero_volume(tmp_path):
    paths = _case(tmp_path / "c", flair=lambda p: _nifti(p, value=0))
    _raises(lambda: _load(paths), paths[0], f"all {np.prod(SHAPE)} voxels are zero")
    found = check_volume_group({m: p for m, p in zip(MODS, paths)}, label_role=None)
    assert any(str(p) == paths[0] and "voxels are zero" in m for p, m in found)
    # an empty label (no lesion) is fine
    label = _nifti(tmp_path / "seg.nii.gz", value=0)
    out = LoadVolumed(["image", "label"], modalities=4, label_values=(0, 1, 2, 4))({"image": _case(tmp_path / "d"),
                                                                                   "label": str(label)})
    assert float(out["label"].sum()) == 0


def test_label_with_unexpected_values(tmp_path):
    def writer(p):
        arr = np.zeros(SHAPE, np.uint8)
        arr[2:4, 2:4, 2] = 4
        arr[5, 5, 3] = 3
        nib.save(nib.Nifti1Image(arr, np.eye(4)), str(p))

    label = tmp_path / "c" / "case_seg.nii.gz"
    paths = _case(tmp_path / "c")
    writer(label)
    load = LoadVolumed(["image", "label"], modalities=4, label_values=(0, 1, 2, 4))
    _raises(lambda: load({"image": paths, "label": str(label)}), label, "unexpected label values {3} (expected "
            "{0, 1, 2, 4})")


def test_non_binary_isic_mask(tmp_path):
    image, mask = tmp_path / "ISIC_0000001.jpg", tmp_path / "ISIC_0000001_segmentation.png"
    Image.fromarray(np.full((20, 24, 3), 120, np.uint8)).save(image)
    m = np.zeros((20, 24), np.uint8)
    m[5:10, 5:10] = 1  # a 0/1 mask: would silently read as empty after scaling 0..255 to 0..1
    Image.fromarray(m).save(mask)
    t = isic2018_transforms(train=False, image_size=(16, 16))
    msg = _raises(lambda: t({"image": str(image), "label": str(mask)}), mask, "unexpected mask values {1} "
                  "(expected {0, 255})")
    assert "save it as 0/255" in msg


def test_datalist_with_missing_keys_or_paths(tmp_path):
    present = _nifti(tmp_path / "a.nii.gz")
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [
        {"id": "a", "image": present.name, "label": present.name},
        {"id": "b", "image": "b.nii.gz"},  # no label
        {"id": "c", "label": present.name},  # no image
    ]}))
    _raises(lambda: workflows.datalist_items(str(datalist), "training"), datalist, "2 problem(s) in the 'training' list",
            "training[1] (b): missing key(s) ['label']", "training[2] (c): missing key(s) ['image']")
    datalist.write_text(json.dumps({"training": [{"id": "a", "image": "gone.nii.gz", "label": present.name}]}))
    _raises(lambda: workflows.datalist_items(str(datalist), "training"), datalist,
            f"training[0] (a): image file not found: {tmp_path / 'gone.nii.gz'}", kind=MissingInputError)
    _raises(lambda: workflows.datalist_items(str(datalist), "validation"), datalist, "no 'validation' list")
    datalist.write_text("{not json")
    _raises(lambda: workflows.datalist_items(str(datalist), "training"), datalist, "not a readable JSON datalist")


def test_empty_input_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for dataset in ("brats2018", "isles2018", "isic2018", "dsb2018"):
        _raises(lambda d=dataset: workflows.inference_items(d, str(empty)), empty, f"no {dataset} cases found",
                kind=ValueError)
    _raises(lambda: workflows.inference_items("brats2018", str(tmp_path / "nope")), tmp_path / "nope",
            "input folder does not exist", kind=FileNotFoundError)


def test_output_folder_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    _raises(lambda: workflows.check_output_dir(str(blocker / "out")), blocker / "out",
            "cannot create the output folder", kind=ValueError)
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        _raises(lambda: workflows.check_output_dir(str(locked)), locked, "not writable", kind=ValueError)


def test_output_folder_holding_the_inputs_is_refused(tmp_path):
    case = tmp_path / "in" / "case1"
    items = [{"id": "case1", "image": _case(case)}]
    for bad in (case, tmp_path / "in"):
        _raises(lambda b=bad: workflows.check_output_dir(str(b), items), bad.resolve(), "output folder contains the input",
                kind=ValueError)
    # and an output never replaces an input file, even when named like one
    from monai.data import MetaTensor

    out = tmp_path / "out"
    out.mkdir()
    src = _nifti(out / "case_seg.nii.gz")
    pred = MetaTensor(torch.ones(1, *SHAPE), affine=torch.eye(4), meta={"filename_or_obj": str(src)})
    saver = workflows.SaveSegmentationd(output_dir=str(out), dataset="isic2018", postfix="")
    before = src.read_bytes()
    _raises(lambda: saver({"pred": pred}), src, "refusing to overwrite the input file", kind=ValueError)
    assert src.read_bytes() == before


def test_checkpoint_of_another_network(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"model": torch.nn.Conv2d(3, 8, 3).state_dict()}, path)
    _raises(lambda: workflows.load_network_weights(torch.nn.Conv2d(4, 8, 3), str(path)), path,
            "checkpoint does not fit Conv2d", "weight: checkpoint (8, 3, 3, 3) vs network (8, 4, 3, 3)", kind=ValueError)
    torch.save({"model": torch.nn.Sequential(torch.nn.Linear(2, 2)).state_dict()}, path)
    _raises(lambda: workflows.load_network_weights(torch.nn.Linear(2, 2), str(path)), path,
            "2 missing key(s): ['bias', 'weight']", "2 unexpected key(s): ['0.bias', '0.weight']", kind=ValueError)


def test_misspelt_override_key():
    from monai.bundle import ConfigParser

    from monai_attn.overrides import run_arguments

    configs = [f"bundles/mistakes_brats2018/configs/{c}" for c in ("train.json", "evaluate.json")]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = ConfigParser.load_config_files([os.path.join(root, c) for c in configs])
    assert unknown_overrides(config, ["fold", "num_epochs", "validate#dataloader#batch_size", "config_file",
                                      "train#dataset#progress"], run_arguments()) == []
    found = unknown_overrides(config, ["flod", "train#dataset#cach_dtype", "totally_new"], run_arguments())
    assert found[0] == "--flod: no such key in the config; did you mean --fold?"
    assert found[1] == "--train#dataset#cach_dtype: no such key under 'train#dataset'; did you mean " \
                       "--train#dataset#cache_dtype?"
    assert found[2].startswith("--totally_new: no such key in the config")


@pytest.mark.parametrize("field", ["pixdim_zero", "pixdim_negative", "degenerate_affine"])
def test_absurd_spacing(tmp_path, field):
    good = tmp_path / "good.nii"
    img = nib.Nifti1Image(np.ones(SHAPE, np.float32), np.eye(4))
    img.set_qform(np.eye(4), code=1)
    img.set_sform(np.eye(4), code=1)
    nib.save(img, str(good))
    raw = bytearray(good.read_bytes())
    if field == "pixdim_zero":
        raw[80 + 4 : 80 + 8] = struct.pack("<f", 0.0)  # pixdim[2]
        words = "pixdim (1.0, 0.0, 1.0) in the header"
    elif field == "pixdim_negative":
        raw[80:84] = struct.pack("<f", -1.5)  # pixdim[1]
        words = "pixdim (-1.5, 1.0, 1.0) in the header"
    else:
        raw[296:312] = struct.pack("<4f", 0, 0, 0, 0)  # srow_y: a zero axis in the affine
        words = "the affine/direction is degenerate"
    bad = tmp_path / "case_t1.nii.gz"
    bad.write_bytes(gzip.compress(bytes(raw)))
    paths = _case(tmp_path / "c")
    paths[1] = str(bad)
    _raises(lambda: _load(paths), bad, "absurd voxel spacing", words)
    found = check_volume_group({m: p for m, p in zip(MODS, paths)}, label_role=None)
    assert any(str(p) == str(bad) and "absurd voxel spacing" in m for p, m in found)


def test_pickle_payload_in_a_resume_checkpoint_is_refused_without_running(tmp_path, monkeypatch):
    """Resuming (``attach_training_state``) refuses a checkpoint with a pickled payload, without running it."""
    import pickle

    from ignite.engine import Engine

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    with open(tmp_path / "checkpoint_checkpoint_epoch=3.pt", "wb") as f:
        pickle.dump({"model": Payload()}, f)
    net = torch.nn.Linear(1, 1)
    _raises(lambda: workflows.attach_training_state(Engine(lambda e, b: None), str(tmp_path), {"model": net},
                                                    resume=True),
            tmp_path / "checkpoint_checkpoint_epoch=3.pt", "refused", "weights_only=True")
    assert not (tmp_path / "PWNED").exists()
