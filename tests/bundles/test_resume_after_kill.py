"""Training resumes after a SIGKILL: rerun the same command with ``--resume True`` and it continues from
the last checkpoint (epoch, optimiser, scheduler, best-model bookkeeping) to the same final epoch count."""
from __future__ import annotations

import re
import signal
import time

import pytest
import torch

BUNDLE = "mistakes_brats2018"
EPOCHS = 4
STEPS = 4  # every slice of the 4 training volumes of fold 0 (4 x 8), 8 slices per step
# one thread: a busy shared CPU makes multi-threaded small convolutions many times slower
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
# a narrow FPA network and 32x32 slices keep every epoch well under a second of compute
TINY = {
    "roi_size": "[32,32]", "num_workers": 0, "sw_batch_size": 8, "num_epochs": EPOCHS, "fold": 0,
    "slice_selection": "all", "batch_size": 8,
    "network_def": "$monai_attn.networks.MistakesUNet.preset(@network_name, spatial_dims=2, "
                   "in_channels=@in_channels, out_channels=1, width=8)",
}


def _wait_for_checkpoint(proc, models, timeout: float = 300.0):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        found = list(models.glob("checkpoint*epoch=*.pt"))
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"training ended (exit {proc.returncode}) before its first checkpoint")
        time.sleep(0.02)
    pytest.fail("no checkpoint within the timeout")


def _epoch(path) -> int:
    return int(re.search(r"epoch=(\d+)\.pt$", path.name).group(1))


def test_sigkill_then_resume_continues_to_the_same_final_epoch(synth_cohort, tmp_path, cli):
    cohort = synth_cohort("brats2018", 5, 32, 32, 8)
    overrides = {**TINY, "dataset_dir": cohort}
    models = tmp_path / "models"

    proc = cli.bundle_popen(BUNDLE, ["train.json"], tmp_path, overrides, tmp_path / "first.log", env=ONE_THREAD)
    try:
        _wait_for_checkpoint(proc, models)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(60)
    assert proc.returncode == -signal.SIGKILL
    (saved,) = models.glob("checkpoint*epoch=*.pt")  # atomic saving: one complete checkpoint, no temporary file
    killed_at = _epoch(saved)
    assert 1 <= killed_at < EPOCHS, "the first run finished before it could be killed"
    state = torch.load(saved, weights_only=True)
    # ignite keeps the iteration (epoch = iteration / epoch_length)
    assert state["trainer"]["iteration"] == killed_at * STEPS and state["trainer"]["epoch_length"] == STEPS
    assert state["lr_scheduler"]["last_epoch"] == killed_at
    assert {float(s["step"]) for s in state["optimizer"]["state"].values()} == {float(killed_at * STEPS)}

    # the same command, with the documented resume option
    proc2 = cli.bundle_run(BUNDLE, ["train.json"], tmp_path, {**overrides, "resume": True}, env=ONE_THREAD)
    log = proc2.stdout + proc2.stderr
    assert f"resuming from {saved}" in log and f"Restored all variables from {saved}" in log
    epochs_run = sorted({int(e) for e in re.findall(rf"Epoch: (\d+)/{EPOCHS}, Iter", log)})
    assert epochs_run == list(range(killed_at + 1, EPOCHS + 1))  # no epoch done twice

    # n_saved=1: the pre-resume checkpoint was replaced, not left behind; nothing half-written
    (final,) = models.glob("checkpoint*epoch=*.pt")
    assert _epoch(final) == EPOCHS
    assert not [p.name for p in models.iterdir() if p.name.startswith(".tmp")]
    end = torch.load(final, weights_only=True)
    assert end["trainer"]["iteration"] == EPOCHS * STEPS and end["trainer"]["max_epochs"] == EPOCHS
    assert end["lr_scheduler"]["last_epoch"] == EPOCHS
    # AdamW's step counters went on from the saved ones: every step of every epoch, counted once
    steps = {float(s["step"]) for s in end["optimizer"]["state"].values()}
    assert steps == {float(EPOCHS * STEPS)}
    assert (models / "model.pt").is_file()
