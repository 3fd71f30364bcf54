"""focusnetpp_dsb2018 bundle: train → resume → infer through the real CLI on a synthetic DSB cohort
(plus the real grey sample), two-process DDP training on CPU (gloo), and export."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_attn.data import write_dsb2018_sample

BUNDLE = "focusnetpp_dsb2018"
CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / BUNDLE / "configs"
TINY = {"image_size": "[64,64]", "num_workers": 0}


@pytest.fixture(scope="module")
def trained(synth_cohort, tmp_path_factory, cli):
    cohort = synth_cohort("dsb2018", 8, 48, 64)  # 8 images: 6 training / 2 validation
    root = tmp_path_factory.mktemp("dsb_bundle")
    cli.bundle_run(BUNDLE, ["train.json"], root, {**TINY, "dataset_dir": cohort, "num_epochs": 1, "batch_size": 3})
    return cohort, root


def test_train_writes_checkpoints_and_datalist(trained):
    _, root = trained
    datalist = json.loads((root / "eval" / "datalist_dsb2018.json").read_text())
    assert [len(datalist[k]) for k in ("training", "validation")] == [6, 2]
    best = torch.load(root / "models" / "model.pt", weights_only=True)
    assert best["stem.weight"].shape[:2] == (16, 3)  # FocusNetPP.lite widths, RGB input
    (last,) = (root / "models").glob("checkpoint*epoch=1.pt")
    assert {"model", "optimizer", "lr_scheduler", "trainer", "best_model_tracker"} <= set(
        torch.load(last, weights_only=True))


def test_resume_continues_and_keeps_the_best_model(trained, tmp_path, cli):
    cohort, root = trained
    resumed = tmp_path / "resumed"
    shutil.copytree(root, resumed)
    last = next((resumed / "models").glob("checkpoint*epoch=1.pt"))
    state = torch.load(last, weights_only=True)
    # pretend epoch 1 reached a validation loss of 0: no later epoch can beat it
    state["best_model_tracker"]["_saved"] = [(0.0, "model_key_metric=0.pt")]
    torch.save(state, last)
    best_before = (resumed / "models" / "model.pt").read_bytes()
    proc = cli.bundle_run(BUNDLE, ["train.json"], resumed, {
        **TINY, "datalist": resumed / "eval" / "datalist_dsb2018.json", "num_epochs": 2, "batch_size": 3,
        "resume": True,
    })
    assert "resuming from" in proc.stdout + proc.stderr
    (epoch2,) = (resumed / "models").glob("checkpoint*epoch=2.pt")
    state2 = torch.load(epoch2, weights_only=True)
    assert state2["trainer"]["iteration"] == 4 and state2["lr_scheduler"]["last_epoch"] == 2  # 2 epochs × 2 steps
    assert (resumed / "models" / "model.pt").read_bytes() == best_before


def test_multi_gpu_config_trains_with_two_cpu_processes(trained, tmp_path, cli):
    _, root = trained
    files = ",".join(repr(str(CONFIGS / c)) for c in ("train.json", "multi_gpu_train.json"))
    args = ["--standalone", "--nproc_per_node=2", "-m", "monai.bundle", "run", "--config_file", f"[{files}]",
            "--meta_file", str(CONFIGS / "metadata.json"), "--logging_file", str(CONFIGS / "logging.conf"),
            "--bundle_root", str(tmp_path), "--datalist", str(root / "eval" / "datalist_dsb2018.json"),
            "--num_epochs", "1", "--batch_size", "2"]
    for key, value in TINY.items():
        args += [f"--{key}", str(value)]
    cli.run(args, module="torch.distributed.run")
    best = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert "stem.weight" in best  # saved unwrapped from DistributedDataParallel
    (last,) = (tmp_path / "models").glob("checkpoint*epoch=1.pt")
    assert {"model", "optimizer", "lr_scheduler", "trainer"} <= set(torch.load(last, weights_only=True))



def test_evaluate_writes_report_and_overlays(trained, cli):
    _, root = trained
    cli.bundle_run(BUNDLE, ["train.json", "evaluate.json"], root, {
        **TINY, "datalist": root / "eval" / "datalist_dsb2018.json",
    })  # the validation split, with models/model.pt
    summary = json.loads((root / "eval" / "metrics.json").read_text())
    for metric in ("dice", "iou", "precision", "recall", "fpr", "fnr", "hd95"):
        assert metric in summary["summary"]["nucleus"]
    rows = (root / "eval" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 and rows[0].startswith("case,class,dice") and "hd95" in rows[0]
    assert len(list((root / "eval" / "overlays").glob("*.png"))) == 2

def test_inference_on_the_raw_layout_grey_and_rgba(trained, tmp_path, cli):
    cohort, root = trained
    inputs = tmp_path / "in"
    for case in sorted((cohort / "stage1_train").iterdir())[:2]:  # RGBA PNGs, masks/ folders alongside
        shutil.copytree(case, inputs / "stage1_train" / case.name)
    sample = write_dsb2018_sample(inputs)  # the real 512×512 sample (grey content, stored RGBA)
    grey = np.asarray(Image.open(next((sample / "images").glob("*.png"))).convert("L"))[:37, :53]
    Image.fromarray(grey).save(inputs / "grey_crop.png")  # a true one-channel PNG, odd size
    images = [p for p in inputs.rglob("*.png") if "masks" not in p.parts]
    out = tmp_path / "pred"
    cli.bundle_run(BUNDLE, ["inference.json"], root, {**TINY, "input_dir": inputs, "output_dir": out})
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}_seg.png" for p in images)
    for image in images:
        pred = Image.open(out / f"{image.stem}_seg.png")
        assert pred.mode == "L" and pred.size == Image.open(image).size
        assert set(np.unique(np.asarray(pred)).tolist()) <= {0, 255}


def test_verify_net_in_out_and_ckpt_export(trained, tmp_path, cli):
    _, root = trained
    cli.run(["verify_net_in_out", "--net_id", "network_def", "--meta_file", str(CONFIGS / "metadata.json"),
             "--config_file", str(CONFIGS / "inference.json")])
    ts = tmp_path / "model.ts"
    cli.run(["ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", str(root / "models" / "model.pt"),
             "--meta_file", str(CONFIGS / "metadata.json"), "--config_file", str(CONFIGS / "inference.json")])
    scripted = torch.jit.load(str(ts))
    assert scripted(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
