"""A training folder is never overwritten or mixed (``prepare_training_dir``), and a resume restores the random
state (``TrainingRNG``) so that it matches an uninterrupted run. The same through the real bundle CLI:
tests/bundles/test_training_runs.py."""
from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import os
import random

import numpy as np
import pytest
import torch

from monai_attn import workflows
from monai_attn.workflows import TrainingDirError, TrainingRNG, prepare_training_dir, release_training_dir
from monai_attn.workflows.checkpoints import TRAINING_LOCK
from monai_attn.workflows.rng import random_states

BUNDLE_ARGV = ["/x/site-packages/monai/bundle/__main__.py", "run", "--config_file", "train.json"]


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "models"
    yield folder
    release_training_dir(folder)


def _finished_run(folder):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.ones(2)}, folder / "model.pt")
    torch.save({"model": {"w": torch.ones(2)}}, folder / "checkpoint_checkpoint_epoch=2.pt")
    return _md5s(folder)


def _md5s(folder):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.pt"))}


def test_a_folder_holding_a_run_is_refused_and_left_as_it_was(models):
    before = _finished_run(models)
    with pytest.raises(TrainingDirError) as e:
        prepare_training_dir(models)
    assert str(e.value) == (f"{models}: holds a trained run (model.pt, checkpoint_checkpoint_epoch=2.pt); nothing "
                            f"was trained — --resume true continues it, --overwrite true moves it to "
                            f"{models}/previous-<time>/ and trains afresh")
    assert _md5s(models) == before
    assert not list(models.glob("previous-*"))


def test_in_a_bundle_run_the_refusal_is_one_line_with_exit_status_1(models, monkeypatch):
    _finished_run(models)
    monkeypatch.setattr("sys.argv", BUNDLE_ARGV)
    with pytest.raises(SystemExit) as e:
        prepare_training_dir(str(models), resume="false", overwrite="false")
    text = str(e.value.code)
    assert "\n" not in text
    assert text.startswith(f"error: {models}: holds a trained run (model.pt, checkpoint_checkpoint_epoch=2.pt); ")
    assert text.endswith("; --resume true continues it, --overwrite true moves it to "
                         f"{models}/previous-<time>/ and trains afresh")


def test_overwrite_moves_the_previous_run_aside(models, caplog):
    before = _finished_run(models)
    (models / "notes.txt").write_text("kept")
    with caplog.at_level(logging.WARNING):
        assert prepare_training_dir(models, overwrite="true") == models
    (previous,) = models.glob("previous-*")
    assert _md5s(previous) == before  # nothing lost
    assert _md5s(models) == {}  # nothing left to mix with the new run; resume finds none of the old checkpoints
    assert workflows.latest_checkpoint(str(models)) is None
    assert (models / "notes.txt").read_text() == "kept"
    assert f"moved the previous run (model.pt, checkpoint_checkpoint_epoch=2.pt) to {previous}" in caplog.text
    release_training_dir(models)
    # a second overwrite in the same second gets its own folder
    _finished_run(models)
    prepare_training_dir(models, overwrite=True)
    assert len(list(models.glob("previous-*"))) == 2


def test_resume_and_overwrite_together_are_refused(models):
    _finished_run(models)
    with pytest.raises(TrainingDirError, match=r"^overwrite: --resume true and --overwrite true given together — "
                                               r"choose one"):
        prepare_training_dir(models, resume=True, overwrite=True)


def test_resume_needs_a_checkpoint_when_a_best_model_is_there(models):
    models.mkdir()
    torch.save({"w": torch.ones(2)}, models / "model.pt")
    with pytest.raises(TrainingDirError, match=r"model.pt: --resume true but there is no checkpoint\*.pt checkpoint "
                                               r"to resume from beside it — --overwrite true moves it"):
        prepare_training_dir(models, resume=True)
    _finished_run(models)
    before = _md5s(models)
    assert prepare_training_dir(models, resume=True) == models  # its own run: continued
    assert _md5s(models) == before


def test_an_empty_or_missing_folder_is_used(models):
    assert prepare_training_dir(models) == models and models.is_dir()


def test_the_temporary_file_of_a_killed_save_is_removed_on_the_next_start(models, caplog):
    _finished_run(models)
    tmp = models / ".tmp-k2j4-checkpoint_checkpoint_epoch=3.pt"
    tmp.write_bytes(b"half a checkpoint")
    with caplog.at_level(logging.WARNING):
        prepare_training_dir(models, resume=True)
    assert not tmp.exists()
    assert f"removing {tmp}: the temporary file of a save that was interrupted" in caplog.text


def test_a_folder_locked_by_another_training_is_refused(models):
    models.mkdir()
    fd = os.open(models / TRAINING_LOCK, os.O_RDWR | os.O_CREAT)  # another training's lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"pid 4242, since 2026-01-01 00:00:00\n")
        with pytest.raises(TrainingDirError, match=r"another training is running into this folder \(pid 4242, "
                                                   r"since 2026-01-01 00:00:00\) — wait for it to end or stop it"):
            prepare_training_dir(models)
    finally:
        os.close(fd)
    prepare_training_dir(models)  # free again
    assert (models / TRAINING_LOCK).read_text().startswith(f"pid {os.getpid()}, since ")


def test_other_ranks_only_check(models):
    before = _finished_run(models)
    with pytest.raises(TrainingDirError, match="holds a trained run"):
        prepare_training_dir(models, main_process=False)
    prepare_training_dir(models, overwrite=True, main_process=False)  # rank 0 moves it
    assert _md5s(models) == before and not list(models.glob("previous-*"))


# ------------------------------------------------------------------------------------ random state
def _augmenting_loader(num_workers: int = 0):
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, RandFlipd, RandGaussianNoised, RandRotated

    transform = Compose([RandFlipd("img", prob=0.5), RandRotated("img", range_x=0.4, prob=0.5),
                         RandGaussianNoised("img", prob=0.5)])
    data = [{"img": torch.arange(36.0).reshape(1, 6, 6) + i} for i in range(6)]
    return DataLoader(Dataset(data, transform=transform), batch_size=2, shuffle=True, num_workers=num_workers)


def _draws(loader):
    batches = torch.cat([b["img"] for b in loader])
    return batches, random.random(), float(np.random.rand()), torch.rand(3)


def test_training_rng_restores_every_generator_through_a_weights_only_checkpoint():
    loader = _augmenting_loader()
    rng = TrainingRNG(loader)
    # Compose's and each random transform's own generators (RandRotated also holds a RandRotate)
    assert len(random_states(loader)) >= 4
    buf = io.BytesIO()
    torch.save({"rng": rng.state_dict()}, buf)
    first = _draws(loader)
    buf.seek(0)
    rng.load_state_dict(torch.load(buf, weights_only=True)["rng"])
    again = _draws(loader)
    assert torch.equal(first[0], again[0]) and first[1:3] == again[1:3] and torch.equal(first[3], again[3])
    # sensitivity: without the restore the next draws differ
    assert not torch.equal(_draws(loader)[0], first[0])


def test_training_rng_warns_when_the_transforms_differ(caplog):
    state = TrainingRNG(_augmenting_loader()).state_dict()
    with caplog.at_level(logging.WARNING):
        TrainingRNG().load_state_dict(state)
    assert "this run has 0: their random state is not restored" in caplog.text


def _train(epochs, ckpt_dir, resume=False, rng=True, num_workers=0):
    """A tiny SupervisedTrainer with shuffling, augmentation and dropout, checkpointed every epoch."""
    from monai.engines import SupervisedTrainer
    from monai.utils import set_determinism

    set_determinism(seed=0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.3), torch.nn.Linear(36, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loader = _augmenting_loader(num_workers)
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=epochs, train_data_loader=loader, network=net,
                                optimizer=opt, loss_function=lambda p, _: p.square().mean(),
                                prepare_batch=lambda b, d, nb, **kw: (b["img"], b["img"]))
    workflows.attach_training_state(trainer, str(ckpt_dir), {"model": net, "optimizer": opt, "trainer": trainer},
                                    resume=resume, rng=rng)
    trainer.run()
    return net.state_dict()


@pytest.mark.parametrize("rng, num_workers", [(True, 0), (False, 0), (True, 1), (False, 1)])
def test_a_resumed_training_matches_an_uninterrupted_one(tmp_path, rng, num_workers):
    """In the main process (``num_workers=0``) the transforms' own generators carry the augmentation from
    epoch to epoch; with workers, each epoch's worker seeds are drawn from torch's generator."""
    straight = _train(4, tmp_path / "straight", rng=rng, num_workers=num_workers)
    _train(2, tmp_path / "resumed", rng=rng, num_workers=num_workers)
    resumed = _train(4, tmp_path / "resumed", resume=True, rng=rng, num_workers=num_workers)
    same = all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert same is rng  # with the random state restored: identical; without it: not (the test can tell)


def test_the_amp_loss_scale_is_checkpointed_and_restored(tmp_path):
    from ignite.engine import Engine

    def trainer(scale):
        engine = Engine(lambda e, b: None)
        engine.scaler = torch.amp.GradScaler("cpu", init_scale=scale)  # as MONAI's trainers with amp=True
        return engine

    first = trainer(1024.0)
    workflows.attach_training_state(first, str(tmp_path), {"model": torch.nn.Linear(1, 1)})
    first.run([0], max_epochs=1)
    (saved,) = tmp_path.glob("checkpoint*.pt")
    assert torch.load(saved, weights_only=True)["scaler"]["scale"] == 1024.0
    second = trainer(65536.0)
    workflows.attach_training_state(second, str(tmp_path), {"model": torch.nn.Linear(1, 1)}, resume=True, save=False)
    second.run([0], max_epochs=1)  # resumed at epoch 1 of 1: restores, runs nothing
    assert second.scaler.get_scale() == 1024.0
