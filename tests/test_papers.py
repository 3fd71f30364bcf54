"""The papers' tables (monai_attn.papers) and how reproduce shows them beside ours."""
from __future__ import annotations

import pytest
import torch

from monai_attn import papers
from monai_attn import reproduce as rp
from monai_attn.baselines import FOCUSNETPP_BASELINES, focusnetpp_baseline


def test_tables_hold_the_printed_values():
    t5 = papers.TABLES["patm_table5"]
    assert t5.rows["fpa"]["patm_iou"] == papers.PaperValue(70.10, 2.06)
    assert t5.rows["fpa"]["patm_hd95"].format() == "10.86 ± 1.66" and t5.rows["fpa"]["patm_fn_rate"].mean == 49.39
    assert t5.rows["aunet"]["patm_fp_rate"].format() == "< 0.01"
    assert papers.TABLES["patm_table4"].rows["rfna"]["patm_hd95"] == papers.PaperValue(18.10, 4.75)
    assert papers.TABLES["patm_table3"].rows["rfna"]["patm_iou"].mean == 55.62  # the text's reading, see the note
    assert papers.TABLES["focusnetpp_table1"].rows["focusnetpp"]["dice"].mean == 0.9014
    assert papers.TABLES["focusnetpp_table3"].rows["focusnetpp"]["params_m"].mean == 1.84
    assert papers.TABLES["patm_table2"].rows["brats2018"]["batch"].mean == 50
    assert len(papers.TABLES) == 8 and all(t.rows for t in papers.TABLES.values())
    md = papers.format_table(t5)
    assert "| FPA | 70.10 ± 2.06 | 10.86 ± 1.66 | < 0.01 | 49.39 ± 4.56 | 4.20 |" in md


def test_views_in_our_units():
    assert papers.PAPER_METRICS["brats2018"]["fpa"]["patm_iou"] == pytest.approx((0.7010, 0.0206))
    assert papers.PAPER_METRICS["brats2018"]["wunet"]["patm_hd95"] == (15.40, 0.87)  # pixels: unscaled
    assert "patm_fp_rate" not in papers.PAPER_METRICS["brats2018"]["fpa"]  # printed only as a bound
    assert papers.PAPER_METRICS["isles2018"]["fpa"]["patm_iou"] == pytest.approx((0.5461, 0.0054))
    assert papers.PAPER_METRICS["isic2018"]["attention_unet"]["iou"] == (0.7813, None)
    assert papers.PAPER_PARAMS_M["patm"]["rfna"] == 5.63 and papers.PAPER_PARAMS_M["isic2018"]["focusnetpp"] == 7.80
    assert rp.PAPER_PARAMS_M is papers.PAPER_PARAMS_M and rp.PAPER_METRICS is papers.PAPER_METRICS
    assert [t.number for t in papers.table("brats2018")] == [5, 6]


def test_reproduce_puts_patm_convention_beside_the_paper(tmp_path):
    plan = rp.Plan(rp.TASKS["brats2018"], tmp_path, tmp_path, ["fpa"], [0, 1], [0])
    c0, c1 = plan.cells()
    mine = {"iou": 0.5, "hd95": 9.0, "fpr": 0.001, "fnr": 0.3}
    results = [rp.CellResult(c0, "done", {**mine, "patm_iou": 0.70, "patm_hd95": 11.0, "patm_fp_rate": 0.0001,
                                          "patm_fn_rate": 0.50}),
               rp.CellResult(c1, "done", {**mine, "patm_iou": 0.72, "patm_hd95": 12.0, "patm_fp_rate": 0.0002,
                                          "patm_fn_rate": 0.52})]
    rows = rp.aggregate_rows(plan, results, {}, real=True)
    md, csv_path = rp.write_tables(plan, rows, results, real=True, data_note="test")
    text = md.read_text()
    assert "paper: PATM IoU" in text and "0.7010 ± 0.0206" in text and "10.86 ± 1.66" in text
    assert "| FPA | 0.500 ± 0.000 |" in text and "0.7100 ± 0.0141" in text
    assert "paper: IoU |" not in text  # the standard per-case IoU has no paper column: not comparable
    assert "Table 5, Table 6" in text and "Dice" in text
    assert "paper_patm_iou_mean" in csv_path.read_text()


def test_cell_metrics_reads_patm_json(tmp_path):
    import json

    from monai_attn.metrics import REPORT_METRICS

    report = tmp_path / "metrics.json"
    report.write_text(json.dumps({"summary": {"all": {**{m: {"mean": 0.8} for m in REPORT_METRICS}, "cases": 2}}}))
    (tmp_path / "patm_metrics.json").write_text(json.dumps({"summary": {"iou": 0.7, "hd95": 3.0, "fp_rate": 0.01,
                                                                        "fn_rate": 0.4, "slices": 9}}))
    metrics, cases = rp._cell_metrics(report)
    assert metrics["dice"] == 0.8 and metrics["patm_iou"] == 0.7 and metrics["patm_fn_rate"] == 0.4 and cases == 2


@pytest.mark.parametrize("dataset", ["isic2018", "dsb2018"])
def test_focusnetpp_baselines_sized_to_the_paper(dataset):
    task = rp.TASKS[dataset]
    names = [n for n, (_, _, widths) in FOCUSNETPP_BASELINES.items() if dataset in widths]
    assert rp.resolve_networks(task, ",".join(["focusnetpp", *names])) == ["focusnetpp", *names]
    for name in names:
        row = task.paper_row(name)
        target = papers.PAPER_PARAMS_M[dataset].get(row) or papers.PAPER_PARAMS_M[dataset]["unetpp"]  # Wide U-Net
        with torch.device("meta"):
            net = focusnetpp_baseline(name, dataset)
        params = sum(p.numel() for p in net.parameters()) / 1e6
        assert params == pytest.approx(target, rel=0.04), name
        assert "focusnetpp_baseline" in rp.network_overrides(task, name)["network_def"]
    out = focusnetpp_baseline("monai_unetpp", "isic2018")(torch.zeros(1, 3, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="not implemented"):
        rp.resolve_networks(task, "focusnetpp,bcdunet")
    with pytest.raises(ValueError, match="no row"):
        rp.resolve_networks(rp.TASKS["dsb2018"], "monai_unetpp")


def test_docs_show_every_table():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "reproducing.md").read_text()
    for t in papers.TABLES.values():
        assert papers.format_table(t) in text, t.name
    assert "IoU 70.10 ± 2.06 %, HD 10.86 ± 1.66 and FN\n49.39 ± 4.56 %" in text
