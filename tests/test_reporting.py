"""Reports: `monai-attn report RUN_DIR` (markdown), the demo's report with its DSB verdict, and the PNG
picture of a report (the README's docs/images/report.png)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_attn.metrics import SegmentationReport
from monai_attn.reporting import (
    build_report,
    dsb_verdict,
    render_screenshot,
    report_sections,
    write_run_report,
)
from monai_attn.visualize import save_overlay

ROOT = Path(__file__).resolve().parents[1]


def _metrics(path: Path, shift: int) -> Path:
    """A metrics.json like evaluate.json's: two 32×32 cases, prediction = truth shifted by ``shift`` pixels."""
    report = SegmentationReport(units="mm")  # as a volume bundle's evaluate.json records it
    for k in range(2):
        truth = torch.zeros(1, 1, 32, 32)
        truth[..., 8:20, 8 + k:20 + k] = 1
        pred = torch.roll(truth, shifts=shift, dims=-1)
        report(pred, truth, case_ids=[f"case_{k}"])
    path.parent.mkdir(parents=True, exist_ok=True)
    return report.to_json(path)


def _run(run_dir: Path, shift: int = 1, overlays: int = 2) -> Path:
    """A bundle run folder: eval/metrics.json, TensorBoard scalars and overlay PNGs."""
    from torch.utils.tensorboard import SummaryWriter

    _metrics(run_dir / "eval" / "metrics.json", shift)
    writer = SummaryWriter(str(run_dir / "eval"))
    for step in range(1, 5):
        writer.add_scalar("train_loss", 1.0 / step, step)
        writer.add_scalar("val_mean_dice", 0.2 * step, step)
    writer.close()
    rng = np.random.default_rng(0)
    for k in range(overlays):
        truth = np.zeros((32, 32), bool)
        truth[8:20, 8:20] = True
        save_overlay(run_dir / "eval" / "overlays" / f"case_{k}.png", rng.random((32, 32)), truth,
                     np.roll(truth, 2, axis=1), title=f"case_{k}")
    return run_dir


def test_run_report_has_table_curves_and_overlays(tmp_path):
    run = _run(tmp_path / "run")
    path = write_run_report(run, screenshot=tmp_path / "shot.png")
    text = path.read_text()
    assert path == run / "report.md"
    assert "| model | 2 |" in text and "HD95 (mm)" in text
    assert "![training curves](curves.png)" in text and (run / "curves.png").is_file()
    assert "![case_0](eval/overlays/case_0.png)" in text and "![case_1](eval/overlays/case_1.png)" in text
    assert Image.open(tmp_path / "shot.png").size[0] > 500


def test_report_command_line_writes_report_and_screenshot(tmp_path, capsys):
    from monai_attn.cli import main

    run = _run(tmp_path / "run")
    assert main(["report", str(run), "--screenshot", str(tmp_path / "shot.png")]) == 0
    assert f"report: {run / 'report.md'}" in capsys.readouterr().out
    assert (run / "report.md").is_file() and Image.open(tmp_path / "shot.png").size[0] > 500


def test_run_report_needs_an_evaluated_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        write_run_report(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no eval/"):
        write_run_report(tmp_path)


def _demo(out: Path, model_shift: int, otsu_shift: int) -> Path:
    _run(out / "brats" / "run")
    _run(out / "dsb" / "run", shift=model_shift)
    _metrics(out / "dsb" / "otsu_metrics.json", otsu_shift)
    return out


@pytest.mark.parametrize("model_shift, otsu_shift, wins", [(1, 3, True), (3, 1, False)])
def test_demo_report_states_both_dice_and_who_wins(tmp_path, model_shift, otsu_shift, wins):
    out = _demo(tmp_path / "demo", model_shift, otsu_shift)
    overrides = {"focusnetpp_dsb2018": {"learning_rate": 0.004, "loss#loss#alpha": 0.5, "image_size": [64, 64]}}
    path = build_report(out, timings={"total_s": 12.3}, settings={"dsb_epochs": 8}, overrides=overrides,
                        notes={"focusnetpp_dsb2018": "Why the demo departs from the defaults."})
    text = path.read_text()
    assert text.count("| model |") == 2 and "| Otsu threshold (same test half) |" in text
    assert "`--learning_rate 0.004`" in text and "`--loss#loss#alpha 0.5`" in text and "`--image_size [64, 64]`" in text
    assert "Why the demo departs from the defaults." in text and "| time: total_s | 12 s |" in text
    assert text.count("![training curves]") == 2 and text.count("overlays/case_") == 4
    assert "trained FocusNet++-lite Dice **" in text and "Otsu baseline Dice **" in text
    assert ("beats the Otsu baseline" in text) == wins and ("does **not** beat" in text) == (not wins)


def test_dsb_verdict_numbers():
    assert "Dice **0.930**, Otsu baseline Dice **0.875**. The trained network beats" in dsb_verdict(0.93, 0.875)
    assert "does **not** beat" in dsb_verdict(0.5, 0.875)


def test_report_sections_of_a_run_and_of_a_demo(tmp_path):
    run = _run(tmp_path / "run")
    assert [s[0] for s in report_sections(run)] == [run]
    out = _demo(tmp_path / "demo", 1, 3)
    sections = report_sections(out)
    assert [s[0] for s in sections] == [out / "brats" / "run", out / "dsb" / "run"]
    assert sections[0][2] == {} and list(sections[1][2]) == ["Otsu threshold (same test half)"]
    assert report_sections(tmp_path / "nothing") == []


def test_screenshot_of_a_demo_is_a_small_png(tmp_path):
    out = _demo(tmp_path / "demo", 1, 3)
    path = render_screenshot(out, tmp_path / "images" / "report.png")
    image = Image.open(path)
    assert image.format == "PNG" and image.size[0] >= 800 and image.size[1] > image.size[0] / 2
    assert path.stat().st_size < 500_000
    # the overlays' colours survive (drawn with nearest-neighbour interpolation): some pure red and green
    rgb = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert (rgb == (255, 0, 0)).all(-1).any() and (rgb == (0, 200, 0)).all(-1).any()
    with pytest.raises(FileNotFoundError):
        render_screenshot(tmp_path / "empty", tmp_path / "x.png")


def test_readme_screenshot_is_committed_small_and_referenced():
    path = ROOT / "docs" / "images" / "report.png"
    assert path.is_file() and path.stat().st_size < 500_000
    assert Image.open(path).format == "PNG"
    assert "](docs/images/report.png)" in (ROOT / "README.md").read_text()


def _attention(run_dir: Path, cases: int = 2) -> None:
    """Attention panels as evaluate.json's overlay saver writes them."""
    from monai_attn.visualize import save_attention_panel

    rng = np.random.default_rng(1)
    truth = np.zeros((32, 32), bool)
    truth[8:20, 8:20] = True
    for k in range(cases):
        save_attention_panel(run_dir / "eval" / "attention" / f"case_{k}_attention_encoder3_fpa.png",
                             rng.random((32, 32)), truth, np.roll(truth, 2, axis=1), rng.random((32, 32)),
                             title=f"case_{k}")


def test_run_report_shows_attention_panels_and_tta_entropy(tmp_path):
    import json

    from monai_attn.workflows.attention import uncertainty_summary

    run = _run(tmp_path / "run")
    assert "Attention" not in write_run_report(run).read_text()  # nothing to show: no section
    _attention(run)
    cases = {"a": {"entropy_inside": 0.5, "entropy_outside": 0.0, "voxels_inside": 10, "voxels_outside": 90},
             "b": {"entropy_inside": 0.2, "entropy_outside": 0.1, "voxels_inside": 30, "voxels_outside": 70}}
    (run / "predictions").mkdir()
    (run / "predictions" / "uncertainty.json").write_text(json.dumps(uncertainty_summary(cases)))
    text = write_run_report(run).read_text()
    assert "PATM's Figure 4" in text
    assert "![case_0_attention_encoder3_fpa](eval/attention/case_0_attention_encoder3_fpa.png)" in text
    # voxel-weighted means by hand: inside (0.5·10 + 0.2·30) / 40, outside (0·90 + 0.1·70) / 160
    assert "**0.275** bits inside the predicted mask, **0.044** bits outside" in text and "2 case(s)" in text


def test_demo_report_and_screenshot_show_the_fpa_attention_panel(tmp_path):
    out = _demo(tmp_path / "demo", 1, 3)
    without = Image.open(render_screenshot(out, tmp_path / "without.png"))
    _attention(out / "brats" / "run")  # the demo's FPA run (BraTS-like volumes)
    text = build_report(out, timings={}, settings={}).read_text()
    brats, dsb = text.split("## " + "Real DSB 2018")[0], text.split("## " + "Real DSB 2018")[1]
    assert "brats/run/eval/attention/case_0_attention_encoder3_fpa.png" in brats and "attention/" not in dsb
    shot = Image.open(render_screenshot(out, tmp_path / "with.png"))
    assert shot.size[1] > without.size[1]  # one more row: the attention panels
    # the heat map's colours are in the picture (inferno's bright end is yellow-white)
    rgb = np.asarray(shot.convert("RGB")).reshape(-1, 3).astype(int)
    assert ((rgb[:, 0] > 200) & (rgb[:, 1] > 150) & (rgb[:, 2] < 120)).any()


def test_run_report_lists_missed_lesions_by_size(tmp_path):
    import numpy as np

    from monai_attn.metrics import lesion_report, write_lesions_csv
    from monai_attn.metrics.lesions import lesion_rows

    run = _run(tmp_path / "run")
    assert "Lesions" not in write_run_report(run).read_text()  # no lesions.csv: no line
    gt = np.zeros((40, 40), bool)
    gt[2:12, 2:12] = gt[30:32, 30:32] = gt[20:22, 5:7] = True  # 100 px and two of 4 px
    pred = np.zeros_like(gt)
    pred[2:12, 2:12] = pred[20:22, 5:7] = pred[35:38, 35:38] = True  # one small one missed, one FP
    rows = lesion_rows(lesion_report(pred, gt, size_bins=(0, 10, 1000)), case="a")
    write_lesions_csv(rows, run / "eval" / "lesions.csv")
    text = write_run_report(run).read_text()
    assert "2 of 3 found, 1 missed, 1 false-positive lesions" in text
    assert "| [0, 10) | 1 | 2 |" in text and "| [10, 1000) | 0 | 1 |" in text
