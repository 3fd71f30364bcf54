"""Every bundle is a standard MONAI workflow: ``ConfigWorkflow(...).initialize()`` then ``check_properties()``
finds every required property (MONAI's ``TrainProperties`` / ``InferProperties`` / ``MetaProperties``) and
every optional one under its expected id, for the train, evaluate and inference configs (issue 18).

Tools built on these properties (MONAI Label, MONAI Deploy, federated learning) set ``dataset_dir`` and read
``dataset`` (a torch Dataset), ``evaluator``, ``trainer``, ``network_def`` ... through them.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Engine
from monai.bundle import ConfigParser, ConfigWorkflow

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"

#: bundle -> (synthetic cohort as the other bundle tests make it, the raw download under it, the inference
#: input folder under it, tiny-size overrides)
COHORTS = {
    "mistakes_brats2018": (("brats2018", 5, 64, 64, 16), "MICCAI_BraTS_2018_Data_Training",
                           "MICCAI_BraTS_2018_Data_Training/HGG", {"roi_size": [64, 64], "fold": 0}),
    "mistakes_isles2018": (("isles2018", 10, 64, 64), "TRAINING", "TRAINING", {"roi_size": [64, 64]}),
    "focusnetpp_isic2018": (("isic2018", 10, 48, 70), ".", "ISIC2018_Task1-2_Training_Input", {"image_size": [32, 32]}),
    "focusnetpp_dsb2018": (("dsb2018", 8, 48, 64), "stage1_train", "stage1_train", {"image_size": [32, 32]}),
}
WORKFLOWS = {"train": ["train.json"], "eval": ["train.json", "evaluate.json"], "inference": ["inference.json"]}


def _workflow(bundle: str, workflow_type: str, root: Path, **override) -> ConfigWorkflow:
    configs = BUNDLES / bundle / "configs"
    files = [str(configs / f) for f in WORKFLOWS[workflow_type]]
    return ConfigWorkflow(config_file=files, meta_file=str(configs / "metadata.json"),
                          logging_file=str(configs / "logging.conf"), workflow_type=workflow_type,
                          bundle_root=str(root), num_workers=0, device="$torch.device('cpu')", **override)


@pytest.mark.parametrize("workflow_type", sorted(WORKFLOWS))
@pytest.mark.parametrize("bundle", sorted(COHORTS))
def test_check_properties_is_empty(bundle, workflow_type, synth_cohort, tmp_path):
    cohort_args, raw, inputs, tiny = COHORTS[bundle]
    cohort = synth_cohort(*cohort_args)
    data_dir = cohort / (inputs if workflow_type == "inference" else raw)
    if workflow_type != "train":  # evaluation and inference load weights in initialize
        parser = ConfigParser()
        parser.read_config([str(BUNDLES / bundle / "configs" / f) for f in WORKFLOWS[workflow_type]])
        (tmp_path / "models").mkdir()
        torch.save(parser.get_parsed_content("network_def").state_dict(), tmp_path / "models" / "model.pt")

    workflow = _workflow(bundle, workflow_type, tmp_path, **tiny)
    workflow.dataset_dir = str(data_dir)  # as a tool would: through the property
    workflow.initialize()
    assert workflow.check_properties() == []
    assert workflow.dataset_dir == str(data_dir)
    assert isinstance(workflow.network_def, torch.nn.Module)
    assert workflow.version and workflow.monai_version  # MetaProperties from metadata.json
    if workflow_type == "train":
        assert isinstance(workflow.trainer, Engine) and workflow.max_epochs >= 1
        assert len(workflow.train_dataset) > 0 and isinstance(workflow.train_dataset, torch.utils.data.Dataset)
    else:
        assert isinstance(workflow.evaluator, Engine)
        assert isinstance(workflow.dataset, torch.utils.data.Dataset) and len(workflow.dataset) > 0
        assert workflow.evaluator.data_loader.dataset.dataset is workflow.dataset  # KeepGoing wraps it


@pytest.mark.parametrize("bundle", sorted(COHORTS))
def test_input_dir_is_an_alias_of_dataset_dir(bundle, synth_cohort):
    cohort_args, _, inputs, _ = COHORTS[bundle]
    cohort = synth_cohort(*cohort_args)
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / bundle / "configs" / "inference.json"))
    parser.get_parsed_content("imports")
    by_alias = ConfigParser(parser.get())
    by_alias.update({"input_dir": str(cohort / inputs)})
    by_name = ConfigParser(parser.get())
    by_name.update({"dataset_dir": str(cohort / inputs)})
    items = by_name.get_parsed_content("items")
    assert items and by_alias.get_parsed_content("items") == items
    assert {it["id"] for it in by_name.get_parsed_content("dataset").data} == {it["id"] for it in items}
