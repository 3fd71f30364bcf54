"""A trained run is never overwritten or mixed, and a resumed run matches an uninterrupted one, through the
real ``python -m monai.bundle run`` (focusnetpp_dsb2018 on a tiny synthetic cohort, with shuffling and random
augmentation so that the random state matters). Unit tests: tests/test_training_dir.py."""
from __future__ import annotations

import hashlib
import shutil

import pytest
import torch

BUNDLE = "focusnetpp_dsb2018"
# 6 training images in batches of 3, 32x32: a few seconds per epoch; augmentation on
TINY = {"image_size": "[32,32]", "num_workers": 0, "batch_size": 3, "augment": True}
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _md5s(folder):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.pt"))}


@pytest.fixture(scope="module")
def half(synth_cohort, tmp_path_factory, cli):
    """A finished 2-epoch run (the first half of a 4-epoch one) and its cohort."""
    cohort = synth_cohort("dsb2018", 8, 48, 64)
    root = tmp_path_factory.mktemp("half")
    cli.bundle_run(BUNDLE, ["train.json"], root, {**TINY, "dataset_dir": cohort, "num_epochs": 2}, env=ONE_THREAD)
    assert sorted(_md5s(root / "models")) == ["checkpoint_checkpoint_epoch=2.pt", "model.pt"]
    return cohort, root


def test_training_into_a_finished_run_is_refused_in_one_line(half, tmp_path, cli):
    cohort, done = half
    root = tmp_path / "root"
    shutil.copytree(done, root)
    before = _md5s(root / "models")
    proc = cli.bundle_run(BUNDLE, ["train.json"], root, {**TINY, "dataset_dir": cohort, "num_epochs": 2},
                          check=False, env=ONE_THREAD)
    assert proc.returncode == 1
    models = root / "models"
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {models}: holds a trained run (model.pt, checkpoint_checkpoint_epoch=2.pt); nothing was trained; "
        f"--resume true continues it, --overwrite true moves it to {models}/previous-<time>/ and trains afresh")
    assert "Traceback" not in proc.stdout + proc.stderr
    assert _md5s(models) == before  # model.pt and the checkpoint untouched
    assert not list(models.glob("previous-*"))


def test_overwrite_moves_the_finished_run_aside_and_trains_afresh(half, tmp_path, cli):
    cohort, done = half
    root = tmp_path / "root"
    shutil.copytree(done, root)
    before = _md5s(root / "models")
    proc = cli.bundle_run(BUNDLE, ["train.json"], root, {**TINY, "dataset_dir": cohort, "num_epochs": 1,
                                                         "overwrite": True}, env=ONE_THREAD)
    models = root / "models"
    (previous,) = models.glob("previous-*")
    assert f"moved the previous run (model.pt, checkpoint_checkpoint_epoch=2.pt) to {previous}" in proc.stdout + proc.stderr
    assert _md5s(previous) == before  # nothing lost
    # only the new run's files: its epoch-1 checkpoint, nothing of the old epoch 2 beside it
    assert sorted(_md5s(models)) == ["checkpoint_checkpoint_epoch=1.pt", "model.pt"]
    assert torch.load(models / "checkpoint_checkpoint_epoch=1.pt", weights_only=True)["trainer"]["iteration"] == 2  # 1 epoch of 2 steps


def test_a_resumed_run_matches_an_uninterrupted_one(half, tmp_path, cli):
    cohort, done = half
    resumed = tmp_path / "resumed"
    shutil.copytree(done, resumed)
    tmp = resumed / "models" / ".tmp-abc123-checkpoint_checkpoint_epoch=3.pt"  # a save killed half-way
    tmp.write_bytes(b"half a checkpoint")
    proc = cli.bundle_run(BUNDLE, ["train.json"], resumed, {**TINY, "dataset_dir": cohort, "num_epochs": 4,
                                                            "resume": True}, env=ONE_THREAD)
    assert f"removing {tmp}: the temporary file of a save that was interrupted" in proc.stdout + proc.stderr
    assert not tmp.exists()
    straight = tmp_path / "straight"
    cli.bundle_run(BUNDLE, ["train.json"], straight, {**TINY, "dataset_dir": cohort, "num_epochs": 4},
                   env=ONE_THREAD)
    a = torch.load(straight / "models" / "checkpoint_checkpoint_epoch=4.pt", weights_only=True)
    b = torch.load(resumed / "models" / "checkpoint_checkpoint_epoch=4.pt", weights_only=True)
    # the same shuffling, augmentation and weights: bit-identical on the same machine and thread count
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for (k, sa), sb in zip(a["optimizer"]["state"].items(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]), k
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
