"""`make demo`: the mission's loop end to end on CPU, through the real bundles, with a visual report.

1. writes a small synthetic BraTS-like cohort and prepares its datalist;
2. trains ``mistakes_brats2018`` (FPA) briefly;
3. runs volumetric inference on the held-out fold's NIfTI cases and evaluates them;
4. trains ``focusnetpp_dsb2018`` (lite) on crops of the left half of the real DSB 2018 image and
   evaluates it on the right half next to an Otsu-threshold baseline;
5. writes ``<out>/report.md`` (tables, training curves, mistake overlays).

    python -m monai_attn.demo --out demo_output
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger("monai_attn.demo")

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"


def bundle_run(bundle: str, configs: list[str], bundle_root: Path, log: Path, **overrides) -> None:
    """Run ``python -m monai.bundle run`` (the real CLI) for one of the repository's bundles."""
    cdir = BUNDLES / bundle / "configs"
    files = [str(cdir / c) for c in configs]
    config_arg = files[0] if len(files) == 1 else "[" + ",".join(repr(f) for f in files) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_arg,
           "--meta_file", str(cdir / "metadata.json"), "--logging_file", str(cdir / "logging.conf"),
           "--bundle_root", str(bundle_root)]
    for key, value in overrides.items():
        cmd += [f"--{key}", json.dumps(value) if isinstance(value, (list, bool)) else str(value)]
    logger.info("$ %s", " ".join(cmd[1:4] + cmd[4:6]) + " ...")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        # stderr carries the progress bar: show it live; stdout (the engine logs) goes to the log file
        proc = subprocess.run(cmd, stdout=f, stderr=sys.stderr if sys.stderr.isatty() else f,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode:
        raise RuntimeError(f"{bundle} {configs} failed (exit {proc.returncode}); see {log}")


def _monai_attn_cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "monai_attn", *args], check=True)


def dsb_half_split(out: Path, crop: int = 128, n_train: int = 24, seed: int = 0) -> Path:
    """Write the real DSB sample as a DSB-layout dataset: random crops of the left half for training and
    validation, the right half (two 256×256 tiles) as the test split; returns the datalist JSON."""
    import tifffile

    from monai_attn.data import write_dsb2018_case
    from monai_attn.data.base import write_json_atomic
    from monai_attn.sample_data import DSB2018_SAMPLE_DIR

    image = tifffile.imread(DSB2018_SAMPLE_DIR / "image.tif").astype(np.float32)
    instances = tifffile.imread(DSB2018_SAMPLE_DIR / "mask.tif")
    image = (image - image.min()) / (image.max() - image.min())
    rng = np.random.default_rng(seed)
    items: dict[str, list] = {"training": [], "validation": [], "test": []}

    def add(split: str, cid: str, rows: slice, cols: slice) -> None:
        write_dsb2018_case(out, cid, image[rows, cols], instances[rows, cols])
        masks = sorted((out / "stage1_train" / cid / "masks").glob("*.png"))
        items[split].append({"id": cid, "image": f"stage1_train/{cid}/images/{cid}.png",
                             "label": [m.relative_to(out).as_posix() for m in masks]})

    for k in range(n_train + 4):
        r, c = rng.integers(0, 512 - crop), rng.integers(0, 256 - crop)
        add("training" if k < n_train else "validation", f"left_{k:02d}", slice(r, r + crop), slice(c, c + crop))
    for k, rows in enumerate((slice(0, 256), slice(256, 512))):
        add("test", f"right_{k}", rows, slice(256, 512))
    datalist = {"name": "dsb2018", "description": "real DSB 2018 sample: left-half crops / right-half test",
                "root": str(out), **items}
    return write_json_atomic(datalist, out / "datalist.json")


def otsu_baseline(datalist: Path, out: Path) -> Path:
    """Evaluate Otsu thresholding on the datalist's test images with the same report as the bundles."""
    import torch
    from PIL import Image

    from monai_attn.baselines import otsu_segment
    from monai_attn.metrics import SegmentationReport

    root = datalist.parent
    report = SegmentationReport()
    for item in json.loads(datalist.read_text())["test"]:
        grey = np.asarray(Image.open(root / item["image"]).convert("L"), dtype=np.float32)
        truth = np.zeros(grey.shape, bool)
        for m in item["label"]:
            truth |= np.asarray(Image.open(root / m)) > 0
        pred = otsu_segment(grey)
        report(torch.from_numpy(pred[None, None]).float(), torch.from_numpy(truth[None, None]).float(),
               case_ids=[item["id"]])
    return report.to_json(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_output")
    parser.add_argument("--brats-cases", type=int, default=10)
    parser.add_argument("--brats-shape", type=int, nargs=3, default=(96, 96, 48))
    parser.add_argument("--brats-epochs", type=int, default=6)
    parser.add_argument("--dsb-epochs", type=int, default=12)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not BUNDLES.is_dir():
        raise SystemExit(f"{BUNDLES}: the demo runs the repository's bundles; run it from a clone")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "demo.log"
    start = time.time()
    timings: dict[str, float] = {}

    # 1-3: BraTS-like volumes, FPA, volumetric inference and evaluation on the held-out fold
    brats = out / "brats"
    t = time.time()
    _monai_attn_cli("synth", "brats2018", "--out", str(brats / "raw"), "--cases", str(args.brats_cases),
                    "--shape", *map(str, args.brats_shape), "--lgg", "0")
    _monai_attn_cli("prepare", "brats2018", "--root", str(brats / "raw"), "--out", str(brats / "datalist.json"))
    roi = [args.brats_shape[0], args.brats_shape[1]]
    common = {"datalist": brats / "datalist.json", "fold": 0, "roi_size": roi, "num_workers": 0}
    logger.info("[1/3] training mistakes_brats2018 (FPA) for %d epochs on CPU", args.brats_epochs)
    bundle_run("mistakes_brats2018", ["train.json"], brats / "run", log, **common, num_epochs=args.brats_epochs,
               learning_rate=1e-3, slices_per_volume=8, val_interval=max(1, args.brats_epochs // 4))
    timings["brats_train_s"] = time.time() - t
    t = time.time()
    bundle_run("mistakes_brats2018", ["inference.json"], brats / "run", log, datalist=brats / "datalist.json",
               split="validation", fold=0, roi_size=roi, output_dir=brats / "predictions")
    bundle_run("mistakes_brats2018", ["train.json", "evaluate.json"], brats / "run", log, **common)
    timings["brats_infer_eval_s"] = time.time() - t

    # 4: FocusNet++-lite on the real DSB image, left half → right half, against Otsu
    dsb = out / "dsb"
    t = time.time()
    datalist = dsb_half_split(dsb / "data")
    logger.info("[2/3] training focusnetpp_dsb2018 (lite) for %d epochs on crops of the real DSB image",
                args.dsb_epochs)
    bundle_run("focusnetpp_dsb2018", ["train.json"], dsb / "run", log, datalist=datalist, num_epochs=args.dsb_epochs,
               image_size=[128, 128], batch_size=4, num_workers=0, learning_rate=1e-3, augment=True)
    bundle_run("focusnetpp_dsb2018", ["train.json", "evaluate.json"], dsb / "run", log, datalist=datalist,
               image_size=[256, 256], num_workers=0, eval_split="test")
    otsu_baseline(datalist, dsb / "otsu_metrics.json")
    timings["dsb_s"] = time.time() - t

    from monai_attn.reporting import build_report

    logger.info("[3/3] writing the report")
    timings["total_s"] = time.time() - start
    report = build_report(out, timings=timings, settings=vars(args))
    logger.info("done in %.0f s: %s", time.time() - start, report)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
