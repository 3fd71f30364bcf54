"""PATM's training protocol in the bundles: a step is ``batch_size`` 2D slices drawn from many volumes, an epoch is
one pass over the training slices (paper Table 2; official NNTrain.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


@pytest.mark.parametrize(("bundle", "batch", "epochs", "lr"), [("mistakes_brats2018", 50, 80, 1e-4),
                                                                ("mistakes_isles2018", 80, 60, 1e-3)])
def test_defaults_follow_table2(bundle, batch, epochs, lr):
    cfg = json.loads((BUNDLES / bundle / "configs" / "train.json").read_text())
    assert (cfg["batch_size"], cfg["num_epochs"], cfg["learning_rate"]) == (batch, epochs, lr)
    assert cfg["augmentation"] == "hflip" and cfg["slice_selection"] == "patm" and cfg["lr_warmup_epochs"] == 0
    assert cfg["train"]["dataloader"]["batch_size"] == "@batch_size"
    assert cfg["optimizer"]["_target_"] == "torch.optim.AdamW" and cfg["loss"]["_target_"] == "DiceLoss"


def test_brats_step_consumes_batch_size_slices_from_several_volumes(synth_cohort, tmp_path):
    from ignite.engine import Events

    cohort = synth_cohort("brats2018", 8, 40, 40, 48)
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / "mistakes_brats2018" / "configs" / "train.json"))
    parser.update({"bundle_root": str(tmp_path), "dataset_dir": str(cohort), "roi_size": [40, 40], "num_workers": 0,
                   "device": "$torch.device('cpu')", "amp": False})
    parser.get_parsed_content("imports")
    dataset = parser.get_parsed_content("train#dataset")
    assert len(dataset) > 2 * 50  # the selection (tumour slices + half of the rest) of the training volumes
    parser.get_parsed_content("initialize")
    trainer = parser.get_parsed_content("train#trainer")
    steps = []

    @trainer.on(Events.ITERATION_COMPLETED)
    def record(engine):
        batch = engine.state.batch  # decollated by the MONAI workflow: one dict per slice
        steps.append((len(batch), tuple(batch[0]["image"].shape), {item["id"] for item in batch}))
        if len(steps) == 2:
            engine.terminate()

    trainer.run()
    assert trainer.state.epoch_length == len(dataset) // 50  # one epoch: one pass over the slices
    assert [s[:2] for s in steps] == [(50, (4, 40, 40))] * 2
    assert all(len(ids) >= 3 for _, _, ids in steps)  # slices of several volumes in one step
