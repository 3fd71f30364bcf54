"""The ``monai-attn`` command line: synth → verify → prepare for every dataset."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from monai.data import load_decathlon_datalist

from monai_attn.cli import SUBCOMMANDS, build_parser, main

SHAPES = {"isic2018": ["24", "32"], "dsb2018": ["24", "32"], "brats2018": ["24", "24", "12"],
          "isles2018": ["24", "24", "3"]}
ROOTS = {"isic2018": "", "dsb2018": "stage1_train", "brats2018": "MICCAI_BraTS_2018_Data_Training",
         "isles2018": "TRAINING"}


@pytest.mark.parametrize("dataset", sorted(SHAPES))
def test_synth_verify_prepare(dataset, tmp_path, capsys):
    raw = tmp_path / "raw"
    assert main(["synth", dataset, "--out", str(raw), "--cases", "5", "--seed", "3", "--shape", *SHAPES[dataset]]) == 0
    assert (raw / ROOTS[dataset]).is_dir()
    report = tmp_path / "report.json"
    assert main(["-q", "verify", dataset, "--root", str(raw), "--json", str(report)]) == 0
    assert "OK" in capsys.readouterr().out
    assert json.loads(report.read_text())["ok"] is True
    out = tmp_path / "lists" / "datalist.json"
    assert main(["prepare", dataset, "--root", str(raw), "--out", str(out), "--seed", "1", "--absolute-paths"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    data = json.loads(out.read_text())
    n = sum(len(data.get(k, [])) for k in ("training", "validation", "test"))
    assert n == 5 and n == data["numTraining"] + data["numValidation"] + data["numTest"]
    for key in [k for k in ("training", "validation", "test") if k in data]:
        items = load_decathlon_datalist(out, True, key, base_dir="/nonexistent")  # absolute paths
        for it in items:
            paths = it["image"] if isinstance(it["image"], list) else [it["image"]]
            paths += it["label"] if isinstance(it["label"], list) else [it["label"]]
            assert all(Path(p).is_file() for p in paths)
    assert [p.name for p in out.parent.iterdir()] == ["datalist.json"]


def test_brats_lgg_flag(tmp_path, capsys):
    main(["synth", "brats2018", "--out", str(tmp_path), "--cases", "2", "--lgg", "1", "--shape", "16", "16", "8"])
    out = tmp_path / "d.json"
    assert main(["prepare", "brats2018", "--root", str(tmp_path), "--out", str(out), "--lgg", "--folds", "3"]) == 0
    assert len(json.loads(out.read_text())["training"]) == 3


def test_usage_errors(tmp_path, capsys):
    assert main(["prepare", "nope", "--root", ".", "--out", "x"]) == 2
    assert main(["verify", "isic2018", "--root", str(tmp_path / "missing")]) == 2
    assert main(["synth", "isic2018", "--out", str(tmp_path), "--cases", "0"]) == 2
    assert main(["synth", "isic2018", "--out", str(tmp_path), "--cases", "1", "--lgg", "2"]) == 2
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert "prepare" in capsys.readouterr().out
    # subcommands are pluggable: each SUBCOMMANDS entry adds one parser
    names = set(build_parser()._subparsers._group_actions[0].choices)
    assert {"prepare", "verify", "synth"} <= names and len(SUBCOMMANDS) == len(names)


def test_python_dash_m(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    r = subprocess.run([sys.executable, "-m", "monai_attn", "synth", "isic2018", "--out", str(tmp_path),
                        "--cases", "1", "--shape", "16", "16"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "wrote 1 synthetic isic2018 cases" in r.stdout
