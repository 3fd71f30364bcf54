"""The demo: the left/right split of the real DSB image, and (slow) the whole `make demo` run."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from monai_attn.demo import dsb_half_split


def test_dsb_half_split_keeps_train_and_test_halves_apart(tmp_path):
    path = dsb_half_split(tmp_path, crop=64, n_train=6)
    datalist = json.loads(path.read_text())
    assert [len(datalist[k]) for k in ("training", "validation", "test")] == [6, 4, 2]
    assert all(it["id"].startswith("left_") for it in datalist["training"] + datalist["validation"])
    assert [it["id"] for it in datalist["test"]] == ["right_0", "right_1"]
    for item in datalist["training"] + datalist["test"]:
        assert (tmp_path / item["image"]).is_file() and item["label"]
        assert all((tmp_path / m).is_file() for m in item["label"])


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """`python -m monai_attn.demo` with one epoch each: report with tables, curves and ≥ 4 overlays."""
    out = tmp_path / "demo"
    subprocess.run([sys.executable, "-m", "monai_attn.demo", "--out", str(out), "--brats-epochs", "1",
                    "--dsb-epochs", "1"], check=True, timeout=1800)
    report = (out / "report.md").read_text()
    assert report.count("| model |") == 2 and "Otsu threshold" in report
    assert "![training curves]" in report
    assert report.count(".png)") - report.count("curves.png") >= 4
