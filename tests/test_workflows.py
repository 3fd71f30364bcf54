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
    for it in items:  # the files must exist (their content is not read here)
        (tmp_path / it["image"]).write_bytes(b"")
        (tmp_path / it["label"]).write_bytes(b"")
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
    # an incomplete case is kept with the missing file's expected name: loading it fails with "file not
    # found" for that case only, and batch inference goes on with the others
    items = workflows.inference_items("brats2018", str(tmp_path / "in"))
    assert items[0]["image"][3] == str(case / "case1_t2.nii.gz")
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


# ------------------------------------------------------------------------------ keep going, safe checkpoints
def _evaluator(items, transform, seen, num_workers=0):
    from monai.data import Dataset
    from monai.engines import SupervisedEvaluator

    loader = workflows.KeepGoingDataLoader(Dataset(items, transform), batch_size=2, num_workers=num_workers)
    return SupervisedEvaluator(device="cpu", val_data_loader=loader, network=torch.nn.Identity(),
                               postprocessing=lambda d: (seen.append(d["id"]), d)[1])


def _flaky(d):
    from monai_attn.errors import BadInputError

    if d["id"] == "b":
        raise BadInputError(d["image"], "cannot read the image data (truncated)")
    if d["id"] == "d":
        raise RuntimeError("applying transform") from KeyError("boom")
    return {"image": torch.ones(1, 4, 4), "id": d["id"]}


@pytest.mark.parametrize("num_workers", [0, 2])
def test_keep_going_loader_skips_bad_cases_and_lists_them(num_workers, caplog):
    items = [{"id": c, "image": f"/in/{c}.nii.gz"} for c in "abcde"]
    seen: list = []
    evaluator = _evaluator(items, _flaky, seen, num_workers)
    with caplog.at_level("ERROR", logger="monai_attn"), pytest.raises(SystemExit) as info:
        workflows.run_keep_going(evaluator)
    assert seen == ["a", "c", "e"]  # every good case processed, in order
    listed = [r.getMessage() for r in caplog.records if "case(s) failed" in r.getMessage()]
    assert len(listed) == 1 and listed[0].splitlines() == [  # the list, printed once
        "2 case(s) failed and were skipped:",
        "  b: /in/b.nii.gz: cannot read the image data (truncated)",
        "  d: /in/d.nii.gz: KeyError: 'boom'",
    ]
    # the exit message is one error line, not the list again
    assert str(info.value) == ("error: 2 case(s) failed and were skipped (listed above); fix or remove those files, "
                               "the other cases were processed")


def test_keep_going_run_without_failures_returns():
    seen: list = []
    workflows.run_keep_going(_evaluator([{"id": "a", "image": "a.png"}], _flaky, seen))
    assert seen == ["a"]


def test_atomic_saver_keeps_the_previous_checkpoint_until_the_next_is_complete(tmp_path):
    saver = workflows.AtomicDiskSaver(tmp_path)
    saver({"w": torch.ones(1)}, "ckpt_epoch=1.pt")
    saver.remove("ckpt_epoch=1.pt")  # ignite removes the old file before saving the new one ...
    assert (tmp_path / "ckpt_epoch=1.pt").is_file()  # ... here it stays until the new one is in place
    with pytest.raises((pickle.PicklingError, AttributeError)):
        saver({"w": lambda: None}, "ckpt_epoch=2.pt")  # cannot be pickled: the write fails half-way
    assert (tmp_path / "ckpt_epoch=1.pt").is_file() and sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt_epoch=1.pt"]  # no partial file left
    saver({"w": torch.zeros(1)}, "ckpt_epoch=2.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt_epoch=2.pt"]


def test_resume_falls_back_to_an_older_checkpoint_when_the_newest_is_corrupt(tmp_path):
    from ignite.engine import Engine

    net = torch.nn.Linear(1, 1)
    torch.save({"model": net.state_dict()}, tmp_path / "checkpoint_checkpoint_epoch=1.pt")
    (tmp_path / "checkpoint_checkpoint_epoch=2.pt").write_bytes(b"PK\x03\x04 truncated")
    path = workflows.attach_training_state(Engine(lambda e, b: None), str(tmp_path), {"model": net},
                                           resume="true", save=False)
    assert path.endswith("epoch=1.pt")
    assert workflows.attach_training_state(Engine(lambda e, b: None), str(tmp_path), {"model": net},
                                           resume="False", save=False) is None


def test_as_bool_reads_command_line_strings():
    assert [workflows.as_bool(v) for v in ("true", "True", "1", "yes", True)] == [True] * 5
    assert [workflows.as_bool(v) for v in ("false", "False", "0", "no", "", False, 0)] == [False] * 7
    with pytest.raises(ValueError, match="resume: expected true or false, got 'maybe'"):
        workflows.as_bool("maybe", "resume")
