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
    # not a bundle run (e.g. a config parsed from Python, or pytest's own command line): nothing checked
    assert check_overrides(["pytest", "--flod", "2"]) == []


def test_unknown_overrides_accepts_new_arguments_of_components_that_take_them():
    config = {"loss": {"_target_": "monai.losses.DiceLoss"}, "plain": {"a": 1}}
    assert unknown_overrides(config, ["loss#sigmoid", "loss#_disabled_"]) == []
    assert unknown_overrides(config, ["loss#sigmod"]) == [
        "--loss#sigmod: no such key under 'loss'; did you mean --loss#sigmoid?"]
    assert unknown_overrides(config, ["plain#b"])[0].startswith("--plain#b: no such key under 'plain'")
