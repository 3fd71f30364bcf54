"""Through the real ``python -m monai.bundle run``: a foreseeable mistake ends with one line,
``error: <file or key>: <problem>; <what to do>``, exit status 1 and no traceback (``MONAI_ATTN_DEBUG=1``
shows it); a bad label that reaches training (a datalist that skipped ``verify``) is named, exit status 1."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

BRATS = "mistakes_brats2018"


def _last_line(proc) -> str:
    return (proc.stdout + proc.stderr).strip().splitlines()[-1]


def test_a_wrong_override_type_stops_the_run_in_one_line(tmp_path, cli):
    proc = cli.bundle_run(BRATS, ["train.json"], tmp_path, {"dataset_dir": tmp_path / "nowhere", "num_epochs": 2.5},
                          check=False, env={"OMP_NUM_THREADS": "1"})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    assert _last_line(proc) == "error: --num_epochs: expected an integer, got 2.5; nothing was run, fix the value"
    assert "Traceback" not in log and not (tmp_path / "models").exists()


@pytest.mark.parametrize("debug", [False, True])
def test_a_missing_checkpoint_is_one_line_unless_debugging(tmp_path, cli, debug):
    (tmp_path / "in").mkdir()
    proc = cli.bundle_run(BRATS, ["inference.json"], tmp_path, {"dataset_dir": tmp_path / "in"}, check=False,
                          env={"OMP_NUM_THREADS": "1", "MONAI_ATTN_DEBUG": "1" if debug else "0"})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    if debug:
        assert "Traceback" in log
    else:
        assert "Traceback" not in log
        assert _last_line(proc) == (f"error: {tmp_path / 'models' / 'model.pt'}: checkpoint not found; train first, "
                                    f"or set --ckpt_path to a model.pt")


@pytest.mark.slow
def test_a_bad_label_reaching_training_is_named_with_exit_status_1(tmp_path, cli, synth_cohort):
    """A datalist written before a label was corrupted (so ``verify`` never saw it): training stops with the file
    named and exit status 1, not a crash of a loader worker (exit 134, SIGABRT, before)."""
    cohort = synth_cohort("brats2018", 5, 48, 48, 16)
    cli.run(["prepare", "brats2018", "--root", str(cohort), "--out", str(tmp_path / "d.json"), "--absolute-paths"],
            module="monai_attn")
    data = json.loads((tmp_path / "d.json").read_text())
    item = next(it for it in data["training"] if it["fold"] != 0)  # in fold 0's training part
    bad = tmp_path / "bad_seg.nii.gz"
    label = nib.load(item["label"])
    arr = np.asarray(label.dataobj).astype(np.uint8)
    arr[:2, :2, :2] = 3
    nib.save(nib.Nifti1Image(arr, label.affine), bad)
    item["label"] = str(bad)
    (tmp_path / "d.json").write_text(json.dumps(data))
    proc = cli.bundle_run(BRATS, ["train.json"], tmp_path / "run", {
        "datalist": tmp_path / "d.json", "num_epochs": 1, "roi_size": "[48,48]", "batch_size": 4, "num_workers": 2},
        check=False, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    assert _last_line(proc).startswith(f"error: {bad}: unexpected label values {{3}} (expected {{0, 1, 2, 4}}); "
                                       "relabel it")
    assert "Traceback" not in log
