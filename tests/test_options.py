"""Options can be discovered (issue 18): ``monai-attn options`` lists every top-level key of a bundle config with
its default and meaning, ``--help`` on a bundle command line prints the same, and a misspelt key's error points
to it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from monai_attn.cli import main
from monai_attn.options import CONFIG_SETS, OPTION_HELP, OPTION_HELP_BY_CONFIG, config_files, list_options
from monai_attn.overrides import check_overrides

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p for p in (ROOT / "bundles").iterdir() if (p / "configs").is_dir())
MAIN = "/env/lib/python3/site-packages/monai/bundle/__main__.py"


def _top_level_keys(bundle: Path, config: str) -> list[str]:
    merged = ConfigParser.load_config_files([str(f) for f in config_files(bundle, config)])
    return [k for k in merged if "#" not in k and k != "_meta_"]


@pytest.mark.parametrize("config", sorted(CONFIG_SETS))
@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_every_key_of_every_config_has_a_default_and_a_meaning(bundle, config):
    rows = list_options(bundle, config)
    assert [k for k, _, _ in rows] == _top_level_keys(bundle, config)
    unknown = [k for k, _, meaning in rows if meaning == "?"]
    assert not unknown, f"add a one-line meaning for {unknown} to monai_attn.options.OPTION_HELP"
    raw = ConfigParser.load_config_files([str(f) for f in config_files(bundle, config)])
    for key, default, _ in rows:
        value = raw[key]
        if isinstance(value, (int, float, bool)) or value is None or (isinstance(value, str) and len(value) < 50):
            expression = isinstance(value, str) and value.startswith(("$", "@", "%"))
            assert default == (value if expression else json.dumps(value)), key


def test_no_meaning_outlives_its_key():
    keys = {k for b in BUNDLES for c in CONFIG_SETS for k in _top_level_keys(b, c)}
    stale = sorted(set(OPTION_HELP) - keys)
    assert not stale, f"remove {stale} from monai_attn.options.OPTION_HELP (no config has them)"
    for config, meanings in OPTION_HELP_BY_CONFIG.items():
        assert config in CONFIG_SETS and set(meanings) <= keys


def test_options_command_prints_the_table(capsys):
    assert main(["options", str(ROOT / "bundles" / "mistakes_brats2018"), "inference"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert set(lines) == set(_top_level_keys(ROOT / "bundles" / "mistakes_brats2018", "inference"))
    assert lines["dataset_dir"].split()[1] == '""' and "folder of cases to segment" in lines["dataset_dir"]
    assert lines["roi_size"].split()[1:3] == ["[160,", "160]"]
    assert main(["options", "focusnetpp_isic2018"]) == 0  # a bundle's name; train, evaluate and inference
    out = capsys.readouterr().out
    assert "train.json (" in out and "what evaluate.json adds" in out and "inference.json (" in out
    assert main(["options", str(ROOT / "bundles" / "mistakes_brats2018"), "no_such"]) == 2


def test_help_on_a_bundle_command_line_lists_the_options(capsys):
    config = ROOT / "bundles" / "mistakes_isles2018" / "configs" / "inference.json"
    with pytest.raises(SystemExit) as info:
        check_overrides([MAIN, "run", "--config_file", str(config), "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("inference.json: every option") and "dataset_dir" in out and "tta" in out


def test_misspelt_key_points_to_the_options_command():
    configs = [str(ROOT / "bundles" / "mistakes_brats2018" / "configs" / f) for f in ("train.json", "evaluate.json")]
    with pytest.raises(SystemExit) as info:
        check_overrides([MAIN, "run", "--config_file", repr(configs), "--flod", "1"])
    assert f"monai-attn options {ROOT / 'bundles' / 'mistakes_brats2018'} evaluate" in str(info.value)
