"""Bad files are named, never silently scored, and never stop the other cases (issue 15, item 5): a case
folder or modality that is a symbolic link loop, a broken link, or a folder fails that case alone with
the true cause; two inputs whose predictions would share a name are refused by name."""
from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

from monai_attn.errors import BadInputError, MissingInputError, find_bad_input
from monai_attn.transforms.io import path_problem
from monai_attn.workflows import inference_items, volume_inference_preprocessing

MODS = ("flair", "t1", "t1ce", "t2")


def _case(root, name, shape=(12, 10, 6)):
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(name))
    for m in MODS:
        nib.save(nib.Nifti1Image(rng.random(shape).astype(np.float32) + 0.1, np.eye(4)),
                 folder / f"{name}_{m}.nii.gz")
    return folder


def _failures(items):
    load = volume_inference_preprocessing([16, 16], in_channels=4)
    out = {}
    for it in items:
        try:
            load(it)
            out[it["id"]] = None
        except Exception as e:  # noqa: BLE001
            out[it["id"]] = find_bad_input(e)
    return out


def test_links_loops_and_folders_fail_their_case_alone_with_the_true_cause(tmp_path):
    root = tmp_path / "in"
    _case(root, "good")
    loop = _case(root, "loop")
    (loop / "loop_flair.nii.gz").unlink()
    os.symlink("loop_flair.nii.gz", loop / "loop_flair.nii.gz")  # a link to itself
    broken = _case(root, "broken")
    (broken / "broken_t2.nii.gz").unlink()
    os.symlink(tmp_path / "gone.nii.gz", broken / "broken_t2.nii.gz")
    folder = _case(root, "folder")
    (folder / "folder_t1.nii.gz").unlink()
    (folder / "folder_t1.nii.gz").mkdir()
    os.symlink("case_loop", root / "case_loop")  # a case folder that is a link loop
    found = _failures(inference_items("brats2018", str(root)))
    assert set(found) == {"good", "loop", "broken", "folder", "case_loop"}  # listed, none dropped silently
    assert found["good"] is None
    assert found["loop"].path == str(loop / "loop_flair.nii.gz") and "symbolic link loop" in found["loop"].problem
    assert found["broken"].path == str(broken / "broken_t2.nii.gz")
    assert found["broken"].problem == f"a broken symbolic link (to {tmp_path / 'gone.nii.gz'})"
    assert found["folder"].path == str(folder / "folder_t1.nii.gz") and "folder" in found["folder"].problem
    assert "symbolic link loop" in found["case_loop"].problem


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file whatever its permissions")
def test_an_unreadable_case_folder_fails_alone_with_permission_denied(tmp_path):
    root = tmp_path / "in"
    _case(root, "good")
    locked = _case(root, "locked")
    locked.chmod(0)
    try:
        found = _failures(inference_items("brats2018", str(root)))
    finally:
        locked.chmod(0o755)
    assert found["good"] is None
    assert "permission denied" in found["locked"].problem


def test_path_problem_names_the_cause(tmp_path):
    assert isinstance(path_problem(tmp_path / "nope.png"), MissingInputError)
    assert "is a folder" in path_problem(tmp_path).problem
    (tmp_path / "ok.png").write_bytes(b"x")
    assert path_problem(tmp_path / "ok.png") is None


@pytest.mark.parametrize("names", [("img.tif", "img.bmp"), ("a/img.png", "b/img.png")])
def test_inputs_whose_outputs_would_share_a_name_are_refused_by_name(tmp_path, names):
    from PIL import Image

    for n in names:
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / n)
    first, second = sorted(str(tmp_path / n) for n in names)  # the folder is read in sorted order
    with pytest.raises(BadInputError) as info:
        inference_items("isic2018", str(tmp_path))
    assert info.value.path == second
    assert info.value.problem.startswith(f"its prediction would have the name of {first}'s ('img'")


def test_two_case_folders_of_one_name_in_a_datalist_are_refused(tmp_path):
    import json

    a, b = _case(tmp_path / "x", "case"), _case(tmp_path / "y", "case")
    datalist = tmp_path / "d.json"
    datalist.write_text(json.dumps({"test": [{"image": [str(a / f"case_{m}.nii.gz") for m in MODS]},
                                             {"image": [str(b / f"case_{m}.nii.gz") for m in MODS]}]}))
    with pytest.raises(BadInputError, match="its prediction would have the name of"):
        inference_items("brats2018", datalist=str(datalist))


def _scoring_evaluator(items, out_dir):
    import torch
    from monai.data import Dataset
    from monai.engines import SupervisedEvaluator
    from monai.handlers import MeanDice, from_engine

    from monai_attn.metrics import SegmentationReportHandler
    from monai_attn.workflows import KeepGoingDataLoader

    def load(d):
        if d["id"].startswith("bad"):
            raise BadInputError(d["image"], "cannot read the image data (truncated)")
        return {"image": torch.ones(1, 4, 4), "label": torch.ones(1, 4, 4), "id": d["id"]}

    loader = KeepGoingDataLoader(Dataset(items, load), batch_size=1)
    metric = from_engine(["pred", "label"])
    return SupervisedEvaluator(
        device="cpu", val_data_loader=loader, network=torch.nn.Identity(),
        key_val_metric={"mean_dice": MeanDice(include_background=True, output_transform=metric)},
        additional_metrics={"report": SegmentationReportHandler(include_background=True, output_dir=str(out_dir),
                                                                output_transform=metric)})


@pytest.mark.parametrize("ids", [("bad_a", "bad_b"), ("good", "bad_b")])
def test_an_evaluation_lists_its_failures_in_the_metrics_json_even_when_every_case_fails(tmp_path, caplog, ids):
    import json

    from monai_attn.workflows import run_keep_going

    items = [{"id": i, "image": f"/in/{i}.png"} for i in ids]
    with caplog.at_level("ERROR"), pytest.raises(SystemExit, match="case\\(s\\) failed and were skipped"):
        run_keep_going(_scoring_evaluator(items, tmp_path))
    doc = json.loads((tmp_path / "metrics.json").read_text())
    bad = [i for i in ids if i.startswith("bad")]
    assert doc["failures"] == [{"case": i, "file": f"/in/{i}.png", "problem": "cannot read the image data (truncated)"}
                               for i in bad]
    assert len(doc["rows"]) == len(ids) - len(bad)
    assert not any(r.exc_info for r in caplog.records), "no traceback when every case fails"


def test_the_one_file_whose_shape_differs_is_named_even_when_it_comes_first(tmp_path):
    """ISLES: when the first map (CBF) is the odd one, the loader and verify name it, not the four good files."""
    from monai_attn.data.checks import check_volume_group
    from monai_attn.transforms import LoadVolumed

    maps = ("CBF", "MTT", "CBV", "Tmax")
    paths = {}
    for i, m in enumerate(maps):
        shape = (12, 10, 7) if m == "CBF" else (12, 10, 6)
        paths[m] = tmp_path / f"case_{m}.nii"
        nib.save(nib.Nifti1Image(np.random.default_rng(i).random(shape).astype(np.float32) + 0.1, np.eye(4)),
                 paths[m])
    paths["label"] = tmp_path / "case_OT.nii"
    nib.save(nib.Nifti1Image(np.zeros((12, 10, 6), np.uint8), np.eye(4)), paths["label"])
    with pytest.raises(BadInputError) as info:
        LoadVolumed(["image", "label"], modalities=4)({"image": [str(paths[m]) for m in maps],
                                                      "label": str(paths["label"])})
    assert info.value.path == str(paths["CBF"])
    assert info.value.problem.startswith("shape (12, 10, 7) differs from case_MTT.nii's (12, 10, 6)")
    found = check_volume_group({"CBF": paths["CBF"], "MTT": paths["MTT"], "CBV": paths["CBV"],
                                "Tmax": paths["Tmax"], "label": paths["label"]}, label_role="label")
    assert [(p, m) for p, m in found] == [(paths["CBF"], "shape (12, 10, 7) differs from MTT (case_MTT.nii)'s "
                                                         "(12, 10, 6)")]


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
@pytest.mark.parametrize("where", ["load_network_weights", "resume"])
def test_the_pickle_refusal_names_the_global_and_never_advises_weights_only_false(tmp_path, monkeypatch, how, where):
    import pickle

    import torch
    from ignite.engine import Engine

    from monai_attn.workflows import attach_training_state, load_network_weights

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "checkpoint_checkpoint_epoch=2.pt"
    if how == "torch.save":
        torch.save({"model": _Payload()}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump({"model": _Payload()}, f)
    with pytest.raises(BadInputError) as info:
        if where == "resume":
            attach_training_state(Engine(lambda e, b: None), str(tmp_path), {"model": torch.nn.Linear(1, 1)},
                                  resume=True)
        else:
            load_network_weights(torch.nn.Linear(1, 1), str(path))
    text = str(info.value)
    assert info.value.path == str(path)
    assert f"other than weights ({os.system.__module__}.system)" in text  # posix.system: the refused global
    assert "weights_only=False" not in text and "weights_only` set to `False`" not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__  # torch's advice is not chained
    assert not (tmp_path / "PWNED").exists()


def _evaluated_run(run_dir, overlay_name="case_0"):
    import torch

    from monai_attn.metrics import SegmentationReport
    from monai_attn.visualize import save_overlay

    report = SegmentationReport()
    truth = torch.zeros(1, 1, 16, 16)
    truth[..., 4:10, 4:10] = 1
    report(truth, truth, case_ids=["case_0"])
    (run_dir / "eval").mkdir(parents=True)
    report.to_json(run_dir / "eval" / "metrics.json")
    mask = np.zeros((16, 16), bool)
    mask[4:10, 4:10] = True
    save_overlay(run_dir / "eval" / "overlays" / f"{overlay_name}.png", np.random.default_rng(0).random((16, 16)),
                 mask, mask, title=overlay_name)
    return run_dir


def test_report_links_with_spaces_render(tmp_path):
    """CommonMark takes a link destination with spaces only inside <...> (GitHub shows a bare one as text)."""
    import re

    from monai_attn.reporting import write_run_report

    run = _evaluated_run(tmp_path / "my run", overlay_name="case 0")
    text = write_run_report(run).read_text()
    targets = re.findall(r"!\[[^\]]*\]\(([^)]*)\)", text)
    assert "<eval/overlays/case 0.png>" in targets
    for t in targets:  # every destination is valid CommonMark: <...> or without spaces
        assert re.fullmatch(r"<[^<>\n]*>|\S+", t), t


def test_report_names_a_corrupt_metrics_json(tmp_path, capsys):
    from monai_attn.cli import main

    run = _evaluated_run(tmp_path / "run")
    (run / "eval" / "metrics.json").write_text('{"rows": [')  # an interrupted copy
    assert main(["report", str(run)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"error: {run / 'eval' / 'metrics.json'}: not a readable metrics JSON (JSONDecodeError")
    assert last.endswith("; run evaluate.json again to write it")


def test_verify_fails_on_an_empty_hgg_folder(tmp_path, capsys):
    from monai_attn.cli import main

    (tmp_path / "MICCAI_BraTS_2018_Data_Training" / "HGG").mkdir(parents=True)
    assert main(["verify", "brats2018", "--root", str(tmp_path)]) == 1  # was "OK"
    out = capsys.readouterr().out
    assert "no brats2018 cases found" in out and "FAILED: 1 errors" in out


def test_a_fold_the_datalist_lacks_is_named(tmp_path):
    import json

    from monai_attn.workflows import datalist_items

    items = []
    for i in range(4):
        case = _case(tmp_path, f"c{i}")
        items.append({"id": f"c{i}", "fold": i % 2, "image": [str(case / f"c{i}_{m}.nii.gz") for m in MODS],
                      "label": str(case / f"c{i}_flair.nii.gz")})
    datalist = tmp_path / "d.json"
    datalist.write_text(json.dumps({"training": items}))
    with pytest.raises(BadInputError) as info:
        datalist_items(str(datalist), "training", fold=7)
    assert info.value.path == "--fold"
    assert info.value.problem == f"fold 7 not in the datalist's folds [0, 1] ({datalist})"


def test_an_unreadable_datalist_is_named(tmp_path):
    from monai_attn.workflows import datalist_items

    datalist = tmp_path / "d.json"
    datalist.write_text('{"training": [')
    with pytest.raises(BadInputError) as info:
        datalist_items(str(datalist), "training")
    assert info.value.path == str(datalist) and info.value.problem.startswith("not a readable JSON datalist")


def test_threads_sharing_one_volume_loader_get_every_modality(tmp_path, monkeypatch):
    """MONAI's NibabelReader keeps the names of its last read on the instance: two threads sharing a loader
    (VolumeSliceDataset / CacheDataset with num_workers) got a case's flair alone instead of its 4 modalities,
    and training refused the case ("all 768 voxels are zero": a slice of the flair checked as a modality)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import nibabel

    from monai_attn.transforms import LoadVolumed

    items = []
    for i in range(6):
        folder = _case(tmp_path, f"c{i}")
        label = folder / "seg.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros((12, 10, 6), np.uint8), np.eye(4)), label)
        items.append({"image": [str(folder / f"c{i}_{m}.nii.gz") for m in MODS], "label": str(label)})
    real_load = nibabel.load

    def slow_load(*args, **kwargs):  # widen the window in which another thread's read can interleave
        time.sleep(0.01)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(nibabel, "load", slow_load)
    load = LoadVolumed(["image", "label"], modalities=4)
    start = threading.Barrier(3)

    def run(it):
        if any(it is first for first in items[:3]):  # the first three reads start together
            start.wait()
        out = load(dict(it))
        return tuple(out["image"].shape), tuple(out["label"].shape)

    with ThreadPoolExecutor(3) as pool:
        shapes = list(pool.map(run, items * 2))
    assert set(shapes) == {((4, 12, 10, 6), (12, 10, 6))}


def test_a_datalist_that_is_a_folder_is_named_as_such(tmp_path):
    from monai_attn.workflows import prepare_datalist

    with pytest.raises(BadInputError) as info:
        prepare_datalist("brats2018", datalist=str(tmp_path))
    assert info.value.path == str(tmp_path) and info.value.problem == "is a folder, not a datalist JSON"
    with pytest.raises(MissingInputError, match="datalist not found"):
        prepare_datalist("brats2018", datalist=str(tmp_path / "nope.json"))
