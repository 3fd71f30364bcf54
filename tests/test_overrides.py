"""Override checking: the command line of ``monai.bundle run`` is read as fire reads it, and unknown keys
stop the run with a message naming the config files, the key and the closest existing key."""
from __future__ import annotations

import json

import pytest

from monai_attn.overrides import check_overrides, parse_cli_overrides, unknown_overrides

MAIN = "/env/lib/python3/site-packages/monai/bundle/__main__.py"


def test_parse_cli_overrides_like_fire():
    argv = ["--config_file", "['a.json','b.json']", "--num-epochs=3", "--resume", "--fold", "1", "--lr", "-1e-3",
            "--name", "fpa"]
    assert parse_cli_overrides(argv) == {"config_file": ["a.json", "b.json"], "num_epochs": 3, "resume": True,
                                         "fold": 1, "lr": -1e-3, "name": "fpa"}


def test_check_overrides_reads_the_bundle_command_line(tmp_path):
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"fold": 0, "net": {"_target_": "torch.nn.Conv2d", "in_channels": 1,
                                                     "out_channels": 1, "kernel_size": 1}}))
    ok = [MAIN, "run", "--config_file", str(config), "--fold", "2", "--net#bias", "False", "--meta_file", "m.json"]
    assert check_overrides(ok) == []
    with pytest.raises(SystemExit) as info:
        check_overrides([MAIN, "run", "--config_file", str(config), "--flod", "2", "--net#kernal_size", "3"])
    text = str(info.value)
    assert text.startswith("train.json: unknown override(s) on the command line, nothing was run")
    assert "--flod: no such key in the config; did you mean --fold?" in text
    assert "--net#kernal_size: no such key under 'net'; did you mean --net#kernel_size?" in text
    assert text.splitlines()[-1].startswith("error: --flod, --net#kernal_size: no such key in train.json; fix the "
                                            "spelling (nested keys are written --parent#key; a new key goes in a "
                                            "config file")
    # not a bundle run (e.g. a config parsed from Python, or pytest's own command line): nothing checked
    assert check_overrides(["pytest", "--flod", "2"]) == []


def test_unknown_overrides_accepts_new_arguments_of_components_that_take_them():
    config = {"loss": {"_target_": "monai.losses.DiceLoss"}, "plain": {"a": 1}}
    assert unknown_overrides(config, ["loss#sigmoid", "loss#_disabled_"]) == []
    assert unknown_overrides(config, ["loss#sigmod"]) == [
        "--loss#sigmod: no such key under 'loss'; did you mean --loss#sigmoid?"]
    assert unknown_overrides(config, ["plain#b"])[0].startswith("--plain#b: no such key under 'plain'")


BRATS_TRAIN = "bundles/mistakes_brats2018/configs/train.json"


@pytest.mark.parametrize("override, key, words", [
    ({"num_epochs": "abc"}, "num_epochs", "expected an integer, got 'abc'"),
    ({"num_epochs": 2.5}, "num_epochs", "expected an integer, got 2.5"),  # was silently 3 epochs
    ({"num_epochs": 0}, "num_epochs", "must be at least 1, got 0"),
    ({"learning_rate": "abc"}, "learning_rate", "expected a number, got 'abc'"),
    ({"roi_size": 48}, "roi_size", "expected a list of 2 integers like [160, 160], got 48"),
    ({"roi_size": [48, 48, 16]}, "roi_size", "expected a list of 2 integers"),
    ({"resume": "maybe"}, "resume", "expected true or false, got 'maybe'"),
    ({"in_channels": 3}, "in_channels", "brats2018 images have 4 channels (flair, t1, t1ce, t2), not 3"),
    ({"roi_size": [48, 48], "network_name": "rfna"}, "roi_size", "at least one spatial size of the input must be larger"),
])
def test_override_types_are_checked_against_the_config(override, key, words):
    from monai.bundle import ConfigParser

    from monai_attn.overrides import override_type_problems

    config = ConfigParser.load_config_files([BRATS_TRAIN])
    problems = override_type_problems(config, override)
    assert len(problems) == 1 and problems[0][0] == key and words in problems[0][1], problems


def test_good_overrides_pass_the_type_check():
    from monai.bundle import ConfigParser

    from monai_attn.overrides import override_type_problems

    config = ConfigParser.load_config_files([BRATS_TRAIN])
    good = {"num_epochs": 3, "learning_rate": 1e-3, "roi_size": [50, 50], "resume": "true", "fold": 2,
            "in_channels": 4, "device": "cpu", "network_name": "unet", "num_epochs#x": "$1"}
    assert override_type_problems(config, good) == []
    assert override_type_problems(config, {"learning_rate": 1}) == []  # an int is a number


def test_list_overrides_keep_their_length_only_for_shapes():
    """A list of epochs may be longer or shorter than the default (the demo's ``--lr_milestones [5]``), a
    shape may not; both keep their element kind."""
    from monai.bundle import ConfigParser

    from monai_attn.overrides import override_type_problems

    config = ConfigParser.load_config_files(["bundles/focusnetpp_dsb2018/configs/train.json"])
    assert len(config["lr_milestones"]) != 1
    assert override_type_problems(config, {"lr_milestones": [5]}) == []
    assert override_type_problems(config, {"lr_milestones": []}) == []
    (key, problem), = override_type_problems(config, {"lr_milestones": ["a"]})
    assert key == "lr_milestones" and problem.startswith("expected a list of integers like [")
    (key, problem), = override_type_problems(config, {"lr_milestones": 5})
    assert key == "lr_milestones" and "got 5" in problem


def test_device_cuda_is_refused_without_cuda(monkeypatch):
    import torch

    from monai_attn.overrides import override_type_problems

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert override_type_problems({"device": "$torch.device('cpu')"}, {"device": "cuda"}) == [
        ("device", "CUDA is not available on this machine (no GPU, or a CPU-only torch); use --device cpu")]
    assert override_type_problems({"device": "cpu"}, {"device": "gpu"})[0][1].startswith("not a device: 'gpu'")


def test_check_overrides_ends_with_one_error_line_per_bad_value(tmp_path):
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"num_epochs": 80, "learning_rate": 1e-4}))
    with pytest.raises(SystemExit) as info:
        check_overrides([MAIN, "run", "--config_file", str(config), "--num_epochs", "2.5", "--learning_rate", "x"])
    assert str(info.value).splitlines() == [
        "error: --num_epochs: expected an integer, got 2.5; nothing was run, fix the value",
        "error: --learning_rate: expected a number, got 'x'; nothing was run, fix the value"]
