"""``monai-attn reproduce``: the papers' tables from real ``python -m monai.bundle run`` subprocesses.

One tiny synthetic BraTS-like cohort goes through three runs of the real runner (cells are real bundle
trainings and evaluations, 1 epoch at 64×64 on the CPU):

A. ``--networks unet``      2 seeds × 2 folds: 4 cells run;
B. ``--networks unet,fpa``  the same grid: only the 4 FPA cells run, the UNet cells are skipped;
C. after simulating a run killed between training and evaluation (one cell's ``done.json`` removed) and
   corrupting another cell's checkpoint: only those two cells run; the first completes, the second
   fails and is reported, the exit code is non-zero.

The unit tests below need no subprocess.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import sys
from pathlib import Path

import pytest

from monai_attn import reproduce as rp
from monai_attn.cli import main

TINY = ["--device", "cpu", "--epochs", "1", "--seeds", "2", "--folds", "0,1", "--jobs", "4",
        "--override", "roi_size=[64,64]", "--override", "num_workers=0", "--override", "batch_size=16",
        "--override", "sw_batch_size=16"]
CELLS = [f"{n}/seed{s}/fold{f}" for n in ("unet", "fpa") for s in (0, 1) for f in (0, 1)]
MEAN_STD = re.compile(r"^\d+\.\d+ ± \d+\.\d+$")


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def _table_rows(md: str) -> list[list[str]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs A, B and C (see the module docstring); returns what each left behind."""
    base = tmp_path_factory.mktemp("reproduce")
    cohort, out = base / "cohort", base / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # several cells at a time on a 2-core machine
        mp.setenv("PYTHONWARNINGS", "ignore")
        assert _cli("synth", "brats2018", "--out", str(cohort), "--cases", "5", "--shape", "64", "64", "16")[0] == 0
        args = ["reproduce", "brats2018", "--root", str(cohort), "--out", str(out), *TINY]
        snap: dict = {"out": out}
        snap["A"] = _cli(*args, "--networks", "unet")
        snap["A_events"] = len(_events(out))
        snap["A_mtimes"] = {c: (out / "runs" / c / "done.json").stat().st_mtime_ns for c in CELLS[:4]}
        snap["B"] = _cli(*args, "--networks", "unet,fpa")
        snap["B_events"] = _events(out)[snap["A_events"]:]
        snap["B_mtimes"] = {c: (out / "runs" / c / "done.json").stat().st_mtime_ns for c in CELLS}
        snap["B_md"] = (out / "table.md").read_text()
        snap["B_csv"] = list(csv.DictReader((out / "table.csv").open()))
        # C: unet/seed0/fold1 "killed" after training (its evaluation never finished) ...
        (out / "runs/unet/seed0/fold1/done.json").unlink()
        # ... and fpa/seed1/fold0 with a corrupt checkpoint: its evaluation must fail
        broken = out / "runs/fpa/seed1/fold0"
        (broken / "done.json").unlink()
        for ckpt in (broken / "models").glob("checkpoint*.pt"):
            ckpt.write_bytes(b"not a checkpoint")
        snap["C"] = _cli(*args, "--networks", "unet,fpa")
        snap["C_events"] = _events(out)[snap["A_events"] + len(snap["B_events"]):]
        snap["C_mtimes"] = {c: (out / "runs" / c / "done.json").stat().st_mtime_ns
                            for c in CELLS if (out / "runs" / c / "done.json").exists()}
    return snap


def test_full_grid_table_has_every_number(runs):
    code, stdout = runs["B"]
    assert code == rp.EXIT_OK, stdout
    rows = _table_rows(runs["B_md"])
    assert rows[0][:11] == ["network", "IoU", "HD95 (mm)", "FP rate", "FN rate", "PATM IoU", "PATM HD95 (px)",
                            "PATM FP rate", "PATM FN rate", "params (M)", "GFLOP/image (4×160×160)"]
    assert [r[0] for r in rows[1:]] == ["UNet", "FPA"]
    for row in rows[1:]:
        assert all(MEAN_STD.match(v) for v in row[1:5]), row  # 4 cells each: mean ± std
        assert row[rows[0].index("cells")] == "4/4"
    assert [r[rows[0].index("params (M)")] for r in rows[1:]] == ["3.13", "4.20"]  # the papers' 3.13 M and 4.2 M
    assert "synthetic or partial cohort" in runs["B_md"] and "paper: params" not in runs["B_md"]
    by_net = {r["network"]: r for r in runs["B_csv"]}
    assert set(by_net) == {"unet", "fpa"}
    for r in by_net.values():
        assert r["cells_done"] == "4" and r["cells_failed"] == "0"
        for m in ("iou", "hd95", "fpr", "fnr"):
            assert math.isfinite(float(r[f"{m}_mean"])) and float(r[f"{m}_std"]) >= 0 and r[f"{m}_n"] == "4"
        assert 0 <= float(r["iou_mean"]) <= 1 and float(r["hd95_mean"]) > 0
        # PATM's per-slice rules, from each cell's eval/patm_metrics.json
        assert 0 < float(r["patm_iou_mean"]) <= 1 and 0 <= float(r["patm_fn_rate_mean"]) <= 1
        assert r["patm_iou_n"] == "4"
    assert int(by_net["unet"]["params"]) == 3_129_248 and int(by_net["fpa"]["params"]) == 4_200_608
    assert float(by_net["unet"]["gflop_per_image"]) == pytest.approx(9.26, abs=0.01)
    done = json.loads((runs["out"] / "runs/fpa/seed1/fold1/done.json").read_text())
    assert done["cases"] == 1 and done["eval_split"] == "validation" and set(done["metrics"]) >= {"iou", "hd95"}


def test_rerun_runs_only_the_missing_cells(runs):
    assert runs["A"][0] == rp.EXIT_OK, runs["A"][1]
    ran = {(e["cell"], e["stage"]) for e in runs["B_events"] if e["status"] == "done"}
    assert ran == {(c, s) for c in CELLS[4:] for s in ("train", "evaluate")}  # only FPA
    assert {e["cell"] for e in runs["B_events"] if e["status"] == "skipped"} == set(CELLS[:4])
    assert all(runs["B_mtimes"][c] == runs["A_mtimes"][c] for c in CELLS[:4])  # UNet cells untouched
    assert runs["B"][1].count("finished before, skipped") == 4


def test_killed_cell_resumes_and_failed_cell_is_reported(runs):
    code, stdout = runs["C"]
    out = runs["out"]
    assert code == rp.EXIT_FAILED
    stages = {(e["cell"], e["stage"], e["status"]) for e in runs["C_events"] if e["status"] != "skipped"}
    # the interrupted cell is only evaluated (its training finished before); the broken one fails
    assert stages == {("unet/seed0/fold1", "evaluate", "done"), ("fpa/seed1/fold0", "evaluate", "failed")}
    assert sum(e["status"] == "skipped" for e in runs["C_events"]) == 6
    assert runs["C_mtimes"]["unet/seed0/fold1"] > runs["B_mtimes"]["unet/seed0/fold1"]
    assert all(runs["C_mtimes"][c] == runs["B_mtimes"][c] for c in CELLS if c not in
               ("unet/seed0/fold1", "fpa/seed1/fold0"))
    failures = json.loads((out / "failures.json").read_text())
    assert [f["cell"] for f in failures] == ["fpa/seed1/fold0"]
    # the bundle's one-line error names the broken checkpoint
    assert re.search(r"evaluate exited 1: error: .*checkpoint_checkpoint_epoch=1\.pt: ", failures[0]["error"])
    assert "FAILED cells (1 of 8)" in stdout and "fpa/seed1/fold0" in stdout
    md = (out / "table.md").read_text()
    rows = {r[0]: r for r in _table_rows(md)}
    assert rows["FPA"][rows["network"].index("cells")] == "3/4, 1 failed"
    assert rows["UNet"][rows["network"].index("cells")] == "4/4"
    assert MEAN_STD.match(rows["FPA"][1])  # still the mean of the 3 finished cells
    assert "## Failed cells (1)" in md and "fpa/seed1/fold0" in md


# ------------------------------------------------------------------------------------ unit tests
def test_mean_std_is_the_sample_deviation_over_cells():
    mean, std, n = rp.mean_std([0.5, 0.7, None, math.nan, 0.6])
    assert (mean, n) == (pytest.approx(0.6), 3) and std == pytest.approx(0.1)  # n − 1 in the denominator
    assert rp.format_mean_std(mean, std, n) == "0.600 ± 0.100"
    assert rp.format_mean_std(*rp.mean_std([12.345]), digits=2) == "12.35"  # one cell: no deviation
    assert rp.format_mean_std(*rp.mean_std([])) == "n/a"
    mean, std, n = rp.mean_std([1.0, math.inf])
    assert math.isinf(mean) and math.isnan(std) and n == 2
    assert rp.format_mean_std(mean, std, n) == "inf"


def test_aggregate_rows_counts_failed_cells(tmp_path):
    task = rp.TASKS["brats2018"]
    plan = rp.Plan(task, tmp_path, tmp_path, ["unet"], [0, 1, 2], [0])
    cells = plan.cells()
    results = [rp.CellResult(cells[0], "done", {"iou": 0.5, "hd95": 10.0, "fpr": 0.01, "fnr": 0.2}),
               rp.CellResult(cells[1], "skipped", {"iou": 0.7, "hd95": 14.0, "fpr": 0.03, "fnr": 0.4}),
               rp.CellResult(cells[2], "failed", error="train exited 1")]
    (row,) = rp.aggregate_rows(plan, results, {"unet": {"params": 3_129_248, "flops": 9.26e9}}, real=True)
    assert (row["cells_done"], row["cells_failed"], row["cells_total"]) == (2, 1, 3)
    assert row["iou_mean"] == pytest.approx(0.6) and row["iou_std"] == pytest.approx(math.sqrt(0.02))
    assert row["paper_params_m"] == 3.13 and row["gflop_per_image"] == pytest.approx(9.26)
    md, _ = rp.write_tables(plan, [row], results, real=True, data_note="test")
    text = md.read_text()
    assert "| UNet | 0.600 ± 0.141 | 12.00 ± 2.83 |" in text and "2/3, 1 failed" in text
    assert "paper: params (M)" in text and "| 3.13 |" in text


def test_torchrun_command_for_several_gpus(tmp_path):
    task = rp.TASKS["isic2018"]
    plan = rp.Plan(task, tmp_path, tmp_path / "out", ["unet"], [1], [-1], epochs=5, device="cuda:0", gpus=4,
                   overrides={"batch_size": "16"}, python="/py")
    cmd = rp.train_command(plan, rp.Cell("unet", 1))
    assert cmd[:8] == ["/py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m",
                       "monai.bundle", "run"]
    configs = json.loads(cmd[cmd.index("--config_file") + 1])
    assert [Path(c).name for c in configs] == ["train.json", "multi_gpu_train.json"]
    assert Path(configs[0]).parent == rp.BUNDLES_DIR / "focusnetpp_isic2018" / "configs"
    opts = dict(zip(cmd[8::2], cmd[9::2]))
    assert opts["--bundle_root"] == str((tmp_path / "out/runs/unet/seed1").resolve())
    assert opts["--seed"] == "1" and opts["--fold"] == "-1" and opts["--num_epochs"] == "5"
    assert opts["--batch_size"] == "16" and "MistakesUNet.preset('unet'" in opts["--network_def"]
    assert "--device" not in opts  # multi_gpu_train.json sets each rank's device
    # evaluation runs in one process, on --device, on the paper's test split
    ev = rp.evaluate_command(plan, rp.Cell("unet", 1))
    assert ev[:4] == ["/py", "-m", "monai.bundle", "run"]
    ev_opts = dict(zip(ev[4::2], ev[5::2]))
    assert ev_opts["--eval_split"] == "test" and ev_opts["--device"] == '$torch.device("cuda:0")'
    assert [Path(c).name for c in json.loads(ev_opts["--config_file"])] == ["train.json", "evaluate.json"]
    # one GPU: plain `python -m monai.bundle run`; resume passes a Python literal (fire would read "true" as text)
    plan.gpus = 1
    one = rp.train_command(plan, rp.Cell("unet", 1), resume=True)
    assert one[:4] == ["/py", "-m", "monai.bundle", "run"] and one[one.index("--resume") + 1] == "True"


def test_patm_cells_select_the_network_fold_and_last_checkpoint(tmp_path):
    plan = rp.Plan(rp.TASKS["brats2018"], tmp_path, tmp_path, ["rfna"], [2], [3], checkpoint="last", device="cpu")
    opts = dict(zip(*[iter(rp.evaluate_command(plan, rp.Cell("rfna", 2, 3))[4:])] * 2))
    assert opts["--network_name"] == "rfna" and opts["--fold"] == "3" and opts["--eval_split"] == "validation"
    assert opts["--ckpt_path"].endswith("runs/rfna/seed2/fold3/models/checkpoint_checkpoint_epoch=<num_epochs>.pt")
    assert opts["--amp"] == "False" and opts["--device"] == '$torch.device("cpu")'


def test_argument_checks():
    brats, isles = rp.TASKS["brats2018"], rp.TASKS["isles2018"]
    assert rp.parse_overrides(["roi_size=[96,96]", "train#dataloader#num_workers=0"]) == {
        "roi_size": "[96,96]", "train#dataloader#num_workers": "0"}
    for bad in (["roi_size"], ["fold=1"], ["seed=3"]):
        with pytest.raises(ValueError):
            rp.parse_overrides(bad)
    assert rp.parse_folds(brats, None, 5) == [0, 1, 2, 3, 4] and rp.parse_folds(brats, "3,1", 5) == [1, 3]
    assert rp.parse_folds(isles, None, None) == [-1]
    for task, text in ((brats, "5"), (brats, "x"), (isles, "0")):
        with pytest.raises(ValueError):
            rp.parse_folds(task, text, 5)
    assert rp.resolve_networks(brats, None) == list(brats.default_networks)
    assert rp.resolve_networks(rp.TASKS["dsb2018"], "FocusNetPP,unet") == ["focusnetpp", "unet"]
    with pytest.raises(ValueError, match="unknown network"):
        rp.resolve_networks(brats, "unet,fpaa")
    with pytest.raises(ValueError, match="unknown network"):
        rp.resolve_networks(brats, "focusnetpp")


def test_cell_stage(tmp_path):
    assert rp.cell_stage(tmp_path) == "train"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "checkpoint_checkpoint_epoch=3.pt").write_bytes(b"")
    assert rp.cell_stage(tmp_path) == "resume"
    (tmp_path / "trained.json").write_text("{}")
    assert rp.cell_stage(tmp_path) == "evaluate"
    (tmp_path / "done.json").write_text("{}")
    assert rp.cell_stage(tmp_path) == "done"


def test_error_summary_names_the_cause_not_monais_wrapper(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("Traceback (most recent call last):\n  File 'x'\n"
                   "ValueError: ReverseFalseNegativeAttention: feature map of spatial size [8, 8] is too small\n\n"
                   "The above exception was the direct cause of the following exception:\n\n"
                   "RuntimeError: Failed to evaluate ConfigExpression: '$@train#trainer.run()'\n")
    assert rp._error_summary(log).startswith("ValueError: ReverseFalseNegativeAttention: feature map")
    log.write_text("step 1\nKilled\n")
    assert rp._error_summary(log) == "Killed"
    log.write_text("Traceback (most recent call last):\nValueError: x\nerror: /m.pt: not a checkpoint; retrain\n")
    assert rp._error_summary(log) == "error: /m.pt: not a checkpoint; retrain"


def test_detect_synthetic(tmp_path):
    brats = rp.TASKS["brats2018"]
    real_ids = {"training": [{"id": f"Brats18_TCIA01_{i}_1"} for i in range(210)]}
    assert rp.detect_synthetic(brats, real_ids, tmp_path)[0] is False
    syn = {"training": [{"id": f"Brats18_SYN_HGG_{i:03d}_1"} for i in range(210)]}
    assert rp.detect_synthetic(brats, syn, tmp_path) == (True, "case names Brats18_SYN_* (written by monai-attn synth)")
    assert rp.detect_synthetic(brats, {"training": real_ids["training"][:20]}, tmp_path)[0] is True  # a subset
    (tmp_path / rp.SYNTHETIC_MARKER).touch()
    assert rp.detect_synthetic(brats, real_ids, tmp_path)[0] is True


def test_dry_run_prints_the_commands_and_writes_nothing(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    code, stdout = _cli("reproduce", "isles2018", "--root", str(root), "--out", str(tmp_path / "out"),
                        "--networks", "unet,rfna", "--seeds", "2", "--epochs", "3", "--dry-run")
    assert code == 0 and not (tmp_path / "out").exists()
    commands = [ln for ln in stdout.splitlines() if ln.startswith(sys.executable)]
    assert len(commands) == 8  # 2 networks × 2 seeds × (train, evaluate)
    assert sum("--num_epochs 3" in c for c in commands) == 4
    assert all("--eval_split test" in c for c in commands if "evaluate.json" in c)
    assert _cli("reproduce", "isles2018", "--root", str(root), "--networks", "nope", "--dry-run")[0] == 2
