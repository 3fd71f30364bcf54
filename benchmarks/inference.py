"""End-to-end volumetric inference against the bare network over the same slices.

The end-to-end path is the one of the BraTS bundle's ``inference.json``: load the four modalities
(NIfTI) → ``monai_attn.workflows.volume_inference_preprocessing`` (channel first, RAS, per-modality
non-zero z-score, in-plane crop/pad to 160×160) → slice inferer (axial, ``sw_batch_size`` slices per
call) with ``FPAUNet(2, 4, 1)`` → sigmoid + threshold → ``Invertd`` (back to 240×240×155 and the input's
orientation) → write a uint8 NIfTI. It runs on a synthetic 4×240×240×155 BraTS case and is timed
against the network alone on the same 155 preprocessed slices at the same batch size, once with
MONAI's ``SliceInferer`` and once with :class:`monai_attn.inferers.BatchedSliceInferer`. Runs are
interleaved (bare, batched, MONAI, ...) and the best of ``--repeats`` is kept for each; the ratios
are given on wall time and on the process' CPU time. The network calls inside the end-to-end runs
are timed too, which splits a run into network time and everything else (loading, preprocessing,
slicing, inversion, saving); ``ratio_at_equal_network_time`` = (bare + everything else) / bare does
not depend on the network running at the same speed in both runs (on a shared machine it need not).

Peak memory: a separate process runs the same path (``BatchedSliceInferer``, ``FPAUNet(2, 1, 1)``,
``sw_batch_size`` 8, CPU) on a single-channel 512×512×300 volume (int16 NIfTI, CT-like) and reports
its peak resident set (``VmHWM``, per stage), which includes the Python/PyTorch/MONAI baseline
(reported too). The path normalises as the bundles do, with ``monai_attn.transforms.LeanNormalizeIntensityd``;
MONAI's ``NormalizeIntensityd`` is measured on its own for comparison (``--memory-normalize monai``
runs the whole path with it).

    python benchmarks/inference.py --out bench_output/inference.json
    python benchmarks/inference.py --threads 1 --sw-batch-size 8 --out bench_output/inference.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from common import format_table, peak_memory_mib, reset_peak_memory, write_json  # noqa: E402

ROI = (160, 160)
MEMORY_COLUMNS = ["volume", "path", "normalize", "inferer", "sw_batch_size", "peak_rss_mib", "load_preprocess_peak_mib",
                  "inferer_peak_mib", "postprocess_save_peak_mib", "import_rss_mib", "seconds", "error"]


def write_brats_case(folder: Path, shape=(240, 240, 155), seed: int = 0) -> list[str]:
    """Write one synthetic BraTS case (flair, t1, t1ce, t2 NIfTI) and return the four paths."""
    from monai_attn.data.synthetic._common import case_rng, save_nifti
    from monai_attn.data.synthetic.brats2018 import brats_affine, synth_brats_case

    images, _ = synth_brats_case(shape, case_rng(seed, 0), "HGG")
    case = folder / "Brats18_SYN_HGG_001_1"
    case.mkdir(parents=True, exist_ok=True)
    paths = []
    for m, mod in enumerate(("flair", "t1", "t1ce", "t2")):
        path = case / f"Brats18_SYN_HGG_001_1_{mod}.nii.gz"
        save_nifti(images[m], brats_affine(shape), path)
        paths.append(str(path))
    return paths


def write_ct_volume(folder: Path, shape=(512, 512, 300), seed: int = 0) -> str:
    """Write a CT-like single-channel int16 volume (body ellipse with smooth texture) and return its path."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    h, w, d = shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    body = ((yy - h / 2) / (0.42 * h)) ** 2 + ((xx - w / 2) / (0.36 * w)) ** 2 < 1
    vol = np.full(shape, -1000, dtype=np.int16)
    base = rng.normal(40, 15, size=(h // 8 + 1, w // 8 + 1)).astype(np.float32)
    texture = np.kron(base, np.ones((8, 8), np.float32))[:h, :w]
    for z in range(d):
        vol[..., z] = np.where(body, texture + 10 * np.sin(z / 10), -1000).astype(np.int16)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    img = nib.Nifti1Image(vol, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path = folder / "ct_512x512x300.nii.gz"
    nib.save(img, str(path))
    return str(path)


def preprocessing(roi=ROI, lean: bool = True):
    """The bundles' preprocessing (``monai_attn.workflows.volume_inference_preprocessing``, which normalises
    with :class:`monai_attn.transforms.LeanNormalizeIntensityd`); ``lean=False`` swaps in MONAI's
    ``NormalizeIntensityd`` (same result, several times the memory) for comparison."""
    from monai.transforms import NormalizeIntensityd

    from monai_attn.transforms import LeanNormalizeIntensityd
    from monai_attn.workflows import volume_inference_preprocessing

    pre = volume_inference_preprocessing(roi)
    if not lean:
        pre.transforms = tuple(
            NormalizeIntensityd(t.keys, nonzero=t.normalizer.nonzero, channel_wise=t.normalizer.channel_wise)
            if isinstance(t, LeanNormalizeIntensityd) else t for t in pre.transforms
        )
    return pre


def postprocessing(pre, output_dir: str):
    """Sigmoid + threshold, ``Invertd`` to the input's space, uint8 NIfTI (the bundle's post-processing)."""
    from monai.transforms import Compose, Invertd

    try:
        from monai_attn.workflows import SaveSegmentationd, segmentation_postprocessing

        steps = [segmentation_postprocessing(False, label_key=None)]
        save = SaveSegmentationd("pred", output_dir=output_dir, dataset="brats2018")
    except ImportError:  # pragma: no cover
        from monai.transforms import Activationsd, AsDiscreted, SaveImaged

        steps = [Activationsd("pred", sigmoid=True), AsDiscreted("pred", threshold=0.5)]
        save = SaveImaged("pred", output_dir=output_dir, output_dtype=np.uint8, resample=False,
                          separate_folder=False, print_log=False)
    steps += [Invertd("pred", transform=pre, orig_keys="image", nearest_interp=True, to_tensor=True), save]
    return Compose(steps)


def make_inferer(kind: str, sw_batch_size: int, roi=ROI):
    if kind == "monai":
        from monai.inferers import SliceInferer

        return SliceInferer(roi_size=roi, spatial_dim=2, sw_batch_size=sw_batch_size, progress=False)
    from monai_attn.inferers import BatchedSliceInferer

    return BatchedSliceInferer(roi_size=roi, spatial_dim=2, sw_batch_size=sw_batch_size, progress=False)


class TimedNetwork:
    """Calls the network and adds up the wall time spent inside it (to split a run into network and rest)."""

    def __init__(self, net):
        self.net, self.seconds = net, 0.0

    def __call__(self, x, *args, **kwargs):
        start = time.perf_counter()
        out = self.net(x, *args, **kwargs)
        self.seconds += time.perf_counter() - start
        return out


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def end_to_end(image, net, inferer, output_dir: str, roi=ROI, lean: bool = True, peaks: dict | None = None,
               preprocess_only: bool = False) -> dict:
    """Run the whole path once; returns the wall seconds of each stage and the total CPU seconds. With
    ``peaks``, each stage's peak resident memory (MiB) is stored there."""

    def mark(stage: str | None, base=None):
        if peaks is not None and stage is not None:
            peaks[stage] = peak_memory_mib("cpu", base)[0]
        return reset_peak_memory("cpu") if peaks is not None else None

    base = mark(None)
    t0 = _now()
    pre = preprocessing(roi, lean)
    data = pre({"image": image})
    t1 = _now()
    base = mark("load_preprocess_peak_mib", base)
    if preprocess_only:
        return {"load_preprocess_s": t1[0] - t0[0], "total_s": t1[0] - t0[0], "cpu_s": t1[1] - t0[1]}
    timed_net = TimedNetwork(net)
    with torch.inference_mode():
        data["pred"] = inferer(data["image"][None], timed_net)[0]
    t2 = _now()
    base = mark("inferer_peak_mib", base)
    postprocessing(pre, output_dir)(data)
    t3 = _now()
    mark("postprocess_save_peak_mib", base)
    return {"load_preprocess_s": t1[0] - t0[0], "inferer_s": t2[0] - t1[0], "postprocess_save_s": t3[0] - t2[0],
            "total_s": t3[0] - t0[0], "cpu_s": t3[1] - t0[1], "network_s": timed_net.seconds,
            "outside_network_s": t3[0] - t0[0] - timed_net.seconds}


def bare_forward(slices: torch.Tensor, net, batch: int) -> dict:
    """The network alone over ``slices`` (N, C, H, W), ``batch`` slices per call: wall and CPU seconds."""
    t0 = _now()
    with torch.inference_mode():
        for s in range(0, slices.shape[0], batch):
            net(slices[s : s + batch])
    t1 = _now()
    return {"total_s": t1[0] - t0[0], "cpu_s": t1[1] - t0[1], "network_s": t1[0] - t0[0], "outside_network_s": 0.0}


def build_network(in_channels: int):
    from monai_attn.networks import FPAUNet

    torch.manual_seed(0)
    return FPAUNet(2, in_channels, 1).eval()


def run_timing(args) -> list[dict]:
    folder = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="bench_inference_"))
    paths = write_brats_case(folder / "case", tuple(args.case_shape))
    net = build_network(4)
    pre = preprocessing()
    volume = pre({"image": paths})["image"]  # (4, 160, 160, 155)
    slices = torch.movedim(volume.as_tensor(), -1, 0).contiguous()  # (155, 4, 160, 160)
    kinds = ["bare"] + [k for k in ("batched", "monai") if args.inferer in (k, "both")]
    best: dict[str, dict] = {}
    # warm-up: kernel selection for both batch shapes (full and last, partial batch)
    bare_forward(slices[: args.sw_batch_size], net, args.sw_batch_size)
    bare_forward(slices[-(slices.shape[0] % args.sw_batch_size or args.sw_batch_size) :], net, args.sw_batch_size)
    for r in range(args.repeats):
        for kind in kinds:
            if kind == "bare":
                res = bare_forward(slices, net, args.sw_batch_size)
            else:
                res = end_to_end(paths, net, make_inferer(kind, args.sw_batch_size), str(folder / f"out_{kind}_{r}"))
            if kind not in best or res["total_s"] < best[kind]["total_s"]:
                best[kind] = res
            print(f"round {r} {kind}: {res}", file=sys.stderr)
    rows = []
    bare = best["bare"]["total_s"]
    for kind in kinds:
        row = {"path": {"bare": "network forward only", "batched": "end to end, BatchedSliceInferer",
                        "monai": "end to end, monai SliceInferer"}[kind],
               "slices": int(slices.shape[0]), "sw_batch_size": args.sw_batch_size, **best[kind],
               "ratio_vs_bare": best[kind]["total_s"] / bare,
               "cpu_ratio_vs_bare": best[kind]["cpu_s"] / best["bare"]["cpu_s"],
               "ratio_at_equal_network_time": (bare + best[kind]["outside_network_s"]) / bare}  # fmt: skip
        if kind != "bare":
            row["overhead_s"] = best[kind]["total_s"] - bare
        rows.append(row)
    return rows


def peak_rss_mib() -> float:
    """This process' peak resident set in MiB: ``VmHWM`` (``ru_maxrss`` would include the parent's resident set
    at ``fork``, which Linux carries over ``exec``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(args) -> None:
    """Child process: the path on a 512×512×300 volume; prints a JSON line with the peak resident set."""
    if args.threads:
        torch.set_num_threads(args.threads)
    baseline = peak_rss_mib()
    folder = Path(tempfile.mkdtemp(prefix="bench_inference_mem_"))
    path = write_ct_volume(folder, tuple(args.memory_shape))
    net = None if args.preprocess_only else build_network(1)
    peaks: dict = {}
    start = time.perf_counter()
    times = end_to_end(path, net, make_inferer(args.memory_inferer, args.sw_batch_size), str(folder / "out"),
                       lean=args.memory_normalize == "lean", peaks=peaks, preprocess_only=args.preprocess_only)
    print(json.dumps({"volume": "×".join(map(str, args.memory_shape)),
                      "path": "load + preprocess only" if args.preprocess_only else "whole path",
                      "normalize": args.memory_normalize, "inferer": None if args.preprocess_only else args.memory_inferer,
                      "sw_batch_size": args.sw_batch_size, "peak_rss_mib": max(peaks.values()),
                      "import_rss_mib": baseline, **peaks, "seconds": time.perf_counter() - start, **times}))


def run_memory(args) -> list[dict]:
    """The whole path as the bundles run it (lean normalisation), and the same preprocessing with MONAI's
    NormalizeIntensityd alone for comparison, each in its own process."""
    runs = [(args.memory_normalize, False)]
    if args.memory_normalize == "lean":
        runs.append(("monai", True))
    rows = []
    for normalize, only in runs:
        cmd = [sys.executable, __file__, "--memory-child", "--sw-batch-size", str(args.sw_batch_size),
               "--memory-inferer", args.memory_inferer, "--threads", str(args.threads), "--memory-normalize",
               normalize, "--memory-shape", *map(str, args.memory_shape)] + ["--preprocess-only"] * only  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
            rows.append({"path": "load + preprocess only" if only else "whole path", "normalize": normalize,
                         "error": tail[:300]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench_output/inference.json", help="JSON output path ('' for none)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--sw-batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=1, help="interleaved rounds (best is kept)")
    p.add_argument("--inferer", default="both", choices=["both", "batched", "monai"])
    p.add_argument("--data", help="folder for the synthetic case (default: a temporary folder)")
    p.add_argument("--skip-memory", action="store_true", help="do not run the 512×512×300 memory measurement")
    p.add_argument("--case-shape", type=int, nargs=3, default=[240, 240, 155], help="BraTS case size (tests: small)")
    p.add_argument("--memory-shape", type=int, nargs=3, default=[512, 512, 300])
    p.add_argument("--memory-inferer", default="batched", choices=["batched", "monai"])
    p.add_argument("--memory-normalize", default="lean", choices=["lean", "monai"],
                   help="normalisation in the memory run: monai_attn's LeanNormalizeIntensityd or MONAI's "
                        "NormalizeIntensityd (with 'lean', MONAI's is also measured, preprocessing only)")
    p.add_argument("--preprocess-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        memory_child(args)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    start = time.perf_counter()
    rows = run_timing(args)
    print(format_table(rows, ["path", "slices", "sw_batch_size", "total_s", "network_s", "outside_network_s",
                              "load_preprocess_s", "inferer_s", "postprocess_save_s", "ratio_vs_bare",
                              "cpu_ratio_vs_bare", "ratio_at_equal_network_time"]))
    memory = None if args.skip_memory else run_memory(args)
    if memory:
        print()
        print(format_table(memory, MEMORY_COLUMNS))
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "memory_child", "preprocess_only")}
    settings.update(threads_used=torch.get_num_threads(), network="FPAUNet(2, 4, 1)", roi_size=list(ROI),
                    seconds=round(time.perf_counter() - start, 1), load_average_before=load_before,
                    load_average_after=os.getloadavg() if hasattr(os, "getloadavg") else None)
    write_json(args.out, {"benchmark": "inference", "settings": settings, "rows": rows, "memory": memory})
    return 0


if __name__ == "__main__":
    sys.exit(main())
