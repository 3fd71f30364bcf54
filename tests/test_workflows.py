"""Bundle support functions: datalists, inference inputs, output folder checks, safe checkpoint loading."""
from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from monai_attn import workflows


class _Payload:
    """Unpickling this runs code: it must never happen when a checkpoint is loaded."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_payload_in_checkpoint_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Payload()}, f)
    net = torch.nn.Conv2d(1, 1, 1)
    with pytest.raises(ValueError, match="model.pt: not a loadable weights-only checkpoint"):
        workflows.load_network_weights(net, str(path))
    assert not (tmp_path / "PWNED").exists()


def test_checkpoint_of_another_network_names_keys_and_shapes(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"model": torch.nn.Conv2d(4, 8, 3).state_dict()}, path)
    with pytest.raises(ValueError, match=r"shape mismatch.*weight: checkpoint \(8, 4, 3, 3\) vs network \(1, 4, 1, 1\)"):
        workflows.load_network_weights(torch.nn.Conv2d(4, 1, 1), str(path))
    torch.save({"model": torch.nn.Linear(2, 2).state_dict(), "extra": 1}, path)
    with pytest.raises(ValueError, match="does not fit Conv2d"):
        workflows.load_network_weights(torch.nn.Conv2d(2, 2, 1, bias=False), str(path))


def test_checkpoint_round_trip_and_ddp_prefix(tmp_path):
    src, dst = torch.nn.Conv2d(2, 3, 1), torch.nn.Conv2d(2, 3, 1)
    torch.save({"model": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "m.pt")
    workflows.load_network_weights(dst, str(tmp_path / "m.pt"))
    assert torch.equal(src.weight, dst.weight)
    with pytest.raises(FileNotFoundError, match="missing.pt: checkpoint not found"):
        workflows.load_network_weights(dst, str(tmp_path / "missing.pt"))


def test_prepare_datalist_needs_an_input(tmp_path):
    with pytest.raises(ValueError, match="set either 'dataset_dir'"):
        workflows.prepare_datalist("brats2018", "", "", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="nope.json: datalist not found"):
        workflows.prepare_datalist("brats2018", "", str(tmp_path / "nope.json"), str(tmp_path))


def test_datalist_items_fold_and_empty_split(tmp_path):
    items = [{"id": f"c{i}", "image": f"c{i}.nii.gz", "label": f"c{i}_seg.nii.gz", "fold": i % 2} for i in range(4)]
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"training": items, "validation": []}))
    train = workflows.datalist_items(str(path), "training", fold=1)
    held = workflows.datalist_items(str(path), "validation", fold=1)
    assert [it["id"] for it in train] == ["c0", "c2"] and [it["id"] for it in held] == ["c1", "c3"]
    with pytest.raises(ValueError, match="'validation' split is empty"):
        workflows.datalist_items(str(path), "validation")


def test_inference_items_brats_layout_and_missing_modality(tmp_path):
    case = tmp_path / "in" / "case1"
    case.mkdir(parents=True)
    for m in ("flair", "t1", "t1ce", "t2"):
        (case / f"case1_{m}.nii.gz").write_bytes(b"")
    items = workflows.inference_items("brats2018", str(tmp_path / "in"))
    assert items[0]["id"] == "case1" and [p.rsplit("_", 1)[1] for p in items[0]["image"]] == [
        "flair.nii.gz", "t1.nii.gz", "t1ce.nii.gz", "t2.nii.gz"]
    (case / "case1_t2.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"case1: missing modality file\(s\) \['t2'\]"):
        workflows.inference_items("brats2018", str(tmp_path / "in"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty: no brats2018 cases found"):
        workflows.inference_items("brats2018", str(empty))


def test_output_folder_may_not_hold_inputs(tmp_path):
    case = tmp_path / "in" / "case1"
    case.mkdir(parents=True)
    items = [{"id": "case1", "image": [str(case / "case1_flair.nii.gz")]}]
    for bad in (case, tmp_path / "in"):
        with pytest.raises(ValueError, match="output folder contains the input"):
            workflows.check_output_dir(str(bad), items)
    assert workflows.check_output_dir(str(tmp_path / "out"), items) == str((tmp_path / "out").resolve())


def test_output_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # works even as root, unlike a read-only folder
    with pytest.raises(ValueError, match="a_file/sub: cannot create the output folder"):
        workflows.check_output_dir(str(blocker / "sub"))


def test_latest_checkpoint_picks_highest_epoch(tmp_path):
    for n in (2, 10, 9):
        (tmp_path / f"checkpoint_checkpoint_epoch={n}.pt").write_bytes(b"x")
    assert workflows.latest_checkpoint(str(tmp_path)).endswith("epoch=10.pt")
    assert workflows.latest_checkpoint(str(tmp_path / "none")) is None
