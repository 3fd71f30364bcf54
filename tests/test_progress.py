"""Progress you can see (issue 18): a case bar with a known total over the keep-going loader, a slice bar per
volume, a bar in evaluation, and silence under ``CI=true`` or without a terminal."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.inferers import SimpleInferer

from monai_attn.inferers import BatchedSliceInferer
from monai_attn.workflows import CaseProgressBar, KeepGoingDataLoader, show_progress

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _load(item):
    if item["id"] == "bad":
        raise ValueError("cannot read")
    return {"image": torch.ones(1, 4, 4) * item["v"]}


def _evaluator(loader) -> SupervisedEvaluator:
    return SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=loader, network=torch.nn.Identity(),
                               inferer=SimpleInferer())


@pytest.mark.parametrize(("ci", "stream", "expected"), [("", _Tty(), True), ("true", _Tty(), False),
                                                        ("1", _Tty(), False), ("", io.StringIO(), False)])
def test_show_progress_follows_ci_and_the_terminal(monkeypatch, ci, stream, expected):
    monkeypatch.setenv("CI", ci)
    assert show_progress(stream) is expected


def test_keep_going_loader_counts_cases_good_and_failed():
    items = [{"id": "a", "v": 1}, {"id": "bad", "v": 0}, {"id": "c", "v": 3}, {"id": "d", "v": 4}, {"id": "e", "v": 5}]
    loader = KeepGoingDataLoader(Dataset(items, transform=_load), batch_size=2)
    assert loader.num_cases == 5
    seen = [loader.cases_seen for _ in loader]
    assert seen == [2, 4, 5] and len(loader.failures) == 1
    assert KeepGoingDataLoader(Dataset(items, transform=_load), batch_size=2, drop_last=True).num_cases == 4


def test_case_bar_knows_the_total_and_counts_the_failed_case():
    items = [{"id": "a", "v": 1}, {"id": "bad", "v": 0}, {"id": "c", "v": 3}]
    loader = KeepGoingDataLoader(Dataset(items, transform=_load), batch_size=1)
    out = _Tty()
    evaluator = _evaluator(loader)
    CaseProgressBar(persist=True, enabled=True, file=out).attach(evaluator)
    evaluator.run()
    text = out.getvalue()
    assert "/?]" not in text  # ignite's own bar over this loader reads "[k/?]"
    counts = re.findall(r"Cases \[(\d+)/(\d+)\]", text)
    assert counts and {total for _, total in counts} == {"3"} and counts[-1][0] == "3"
    assert "failed=1" in text


def test_case_bar_is_silent_under_ci(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    loader = KeepGoingDataLoader(Dataset([{"id": "a", "v": 1}], transform=_load), batch_size=1)
    evaluator = _evaluator(loader)
    bar = CaseProgressBar(persist=True)
    bar.attach(evaluator)
    evaluator.run()
    assert not bar.enabled and "Cases" not in capsys.readouterr().err


def test_case_bar_is_ignites_bar_on_a_loader_with_a_length():
    loader = DataLoader(Dataset([{"image": torch.ones(1, 4, 4)}] * 4), batch_size=2)
    out = _Tty()
    evaluator = _evaluator(loader)
    CaseProgressBar(persist=True, enabled=True, file=out).attach(evaluator)
    evaluator.run()
    assert "Iteration" in out.getvalue() and "[2/2]" in out.getvalue()


def test_slice_bar_counts_the_slices_of_each_volume(capsys):
    net = torch.nn.Conv2d(2, 1, 1)
    x = torch.randn(1, 2, 8, 8, 7)
    with torch.no_grad():
        quiet = BatchedSliceInferer(roi_size=(8, 8), spatial_dim=2, sw_batch_size=3)(x, net)
        assert "slices" not in capsys.readouterr().err
        shown = BatchedSliceInferer(roi_size=(8, 8), spatial_dim=2, sw_batch_size=3, progress=True)(x, net)
    err = capsys.readouterr().err
    assert "slices" in err and "0/7" in err  # the total is the volume's slices; the bar goes when done
    torch.testing.assert_close(shown, quiet)


@pytest.mark.parametrize("bundle", sorted(p.name for p in BUNDLES.iterdir() if (p / "configs").is_dir()))
def test_bundles_wire_the_bars(bundle):
    configs = BUNDLES / bundle / "configs"
    inference = json.loads((configs / "inference.json").read_text())
    assert inference["progress"] == "$monai_attn.workflows.show_progress()"
    bars = [h for h in inference["handlers"] if "ProgressBar" in h["_target_"]]
    assert [b["_target_"] for b in bars] == ["monai_attn.workflows.CaseProgressBar"] and bars[0]["enabled"] == "@progress"
    if inference["inferer"]["_target_"].endswith("BatchedSliceInferer"):
        assert inference["inferer"]["progress"] == "@progress"
    parser = ConfigParser(inference)
    parser.update({"progress": True})
    parser.get_parsed_content("imports")
    assert parser.get_parsed_content("handlers")[-1].enabled is True
    evaluate = json.loads((configs / "evaluate.json").read_text())
    assert any(h["_target_"] == "monai_attn.workflows.CaseProgressBar" for h in evaluate["validate#handlers"])
    train = json.loads((configs / "train.json").read_text())
    targets = [h["_target_"] for h in train["train"]["handlers"]]
    assert "monai_attn.workflows.CaseProgressBar" in targets and "ignite.handlers.ProgressBar" not in targets
