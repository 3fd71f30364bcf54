"""Does the BraTS slice pipeline keep the network fed?

Measures, on the same machine:

* **loader**: 2D slices per second delivered by ``brats2018_train_transforms`` (160×160, 4
  channels, ``fg_ratio`` 0.5) through a ``CacheDataset`` and a ``DataLoader`` with workers, on a
  synthetic BraTS cohort at the real size (240×240×155, few cases); also the one-off cache
  build time, and, for contrast, the rate without a cache (every volume re-read and re-normalised);
* **network**: training steps per second of ``FPAUNet(2, 4, 1)`` at batch 4 on 160×160 (forward,
  Dice+BCE loss, backward, Adam step), on CUDA when available, else CPU;

and checks that the loader delivers at least ``--min-ratio`` (3) times the slices the network
consumes. Prints a table and writes JSON (``--out``).

    python benchmarks/data.py --out bench_output/data.json
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from common import format_table, write_json  # noqa: E402

from monai_attn.data import BraTS2018, load_datalist, make_dataset, synthesize  # noqa: E402
from monai_attn.transforms import brats2018_train_transforms  # noqa: E402


def build_network():
    try:
        from monai_attn.networks.nets.mistakes_unet import FPAUNet

        return FPAUNet(2, 4, 1), "FPAUNet(2, 4, 1)"
    except ImportError:  # pragma: no cover - fallback while the network is being written
        from monai.networks.nets import BasicUNet

        return BasicUNet(2, 4, 1, features=(32, 32, 64, 128, 256, 32)), "BasicUNet(2, 4, 1) [FPAUNet not importable]"


def bench_network(device: str, batch: int, roi: int, steps: int, warmup: int) -> dict:
    from monai.losses import DiceCELoss

    net, name = build_network()
    net = net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    loss_fn = DiceCELoss(sigmoid=True)
    x = torch.randn(batch, 4, roi, roi, device=device)
    y = (torch.rand(batch, 1, roi, roi, device=device) > 0.9).float()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"network": name, "device": device, "batch": batch, "steps": steps, "seconds": dt,
            "steps_per_s": steps / dt, "slices_per_s": steps * batch / dt,
            "params": sum(p.numel() for p in net.parameters())}


def bench_loader(items, cache: str, workers: int, items_per_batch: int, num_samples: int, batches: int,
                 warmup: int, roi: int) -> dict:
    from monai.data import DataLoader
    from torch.utils.data import RandomSampler

    tf = brats2018_train_transforms(roi_size=(roi, roi), num_samples=num_samples, fg_ratio=0.5)
    t0 = time.perf_counter()
    ds = make_dataset(items, tf, cache=cache, num_workers=min(len(items), max(1, workers)))
    cache_s = time.perf_counter() - t0
    sampler = RandomSampler(ds, replacement=True, num_samples=(batches + warmup) * items_per_batch)
    loader = DataLoader(ds, batch_size=items_per_batch, sampler=sampler, num_workers=workers,
                        persistent_workers=False)
    n, shape = 0, None
    t_start = time.perf_counter()  # with warmup=0 the timing includes the workers' start
    for i, batch in enumerate(loader):
        if i == warmup:
            t_start = time.perf_counter()
        if i >= warmup:
            n += batch["image"].shape[0]
            shape = tuple(batch["image"].shape)
    dt = time.perf_counter() - t_start
    return {"cache": cache, "workers": workers, "cache_build_s": cache_s, "slices": n, "seconds": dt,
            "slices_per_s": n / dt, "batch_shape": shape}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="folder for the synthetic cohort (kept; default: a temporary folder)")
    p.add_argument("--cases", type=int, default=4)
    p.add_argument("--shape", type=int, nargs=3, default=(240, 240, 155))
    p.add_argument("--roi", type=int, default=160)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--num-samples", type=int, default=8, help="slices drawn per volume fetch")
    p.add_argument("--items-per-batch", type=int, default=2, help="volumes per loader batch")
    p.add_argument("--batches", type=int, default=100)
    p.add_argument("--uncached-batches", type=int, default=4)
    p.add_argument("--net-batch", type=int, default=4)
    p.add_argument("--net-steps", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--min-ratio", type=float, default=3.0)
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)

    tmp = None
    if args.data:
        data_dir = Path(args.data)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_brats_")
        data_dir = Path(tmp.name)
    root = data_dir / "MICCAI_BraTS_2018_Data_Training"
    t0 = time.perf_counter()
    if not (root / "HGG").is_dir() or len(list((root / "HGG").iterdir())) < args.cases:
        synthesize("brats2018", data_dir, cases=args.cases, seed=0, shape=args.shape, lgg_cases=0)
    synth_s = time.perf_counter() - t0
    BraTS2018(root).prepare(data_dir / "datalist.json", folds=min(5, args.cases))
    items = load_datalist(data_dir / "datalist.json")[: args.cases]

    net = bench_network(args.device, args.net_batch, args.roi, args.net_steps, warmup=3)
    cached = bench_loader(items, "memory", args.workers, args.items_per_batch, args.num_samples, args.batches,
                          warmup=2, roi=args.roi)
    uncached = bench_loader(items, "none", args.workers, args.items_per_batch, args.num_samples,
                            args.uncached_batches, warmup=0, roi=args.roi)
    ratio = cached["slices_per_s"] / net["slices_per_s"]
    per_worker = cached["slices_per_s"] / max(1, args.workers)
    result = {
        "cohort": {"cases": len(items), "shape": list(args.shape), "synth_s": synth_s},
        "network": net,
        "loader_cached": cached,
        "loader_uncached": uncached,
        "loader_slices_per_s_per_worker": per_worker,
        "workers_needed_for_min_ratio": math.ceil(args.min_ratio * net["slices_per_s"] / per_worker),
        "ratio_loader_to_network": ratio,
        "min_ratio": args.min_ratio,
        "ok": ratio >= args.min_ratio,
    }
    rows = [
        {"what": "loader, CacheDataset", "where": f"{cached['workers']} workers",
         "slices/s": cached["slices_per_s"], "note": f"cache built once in {cached['cache_build_s']:.1f} s"},
        {"what": "loader, no cache", "where": f"{uncached['workers']} workers",
         "slices/s": uncached["slices_per_s"], "note": "re-reads and re-normalises every volume"},
        {"what": net["network"], "where": net["device"], "slices/s": net["slices_per_s"],
         "note": f"{net['steps_per_s']:.3g} train steps/s at batch {net['batch']}, {args.roi}x{args.roi}"},
    ]
    print(f"BraTS slice pipeline vs network ({len(items)} synthetic cases of {tuple(args.shape)})\n")
    print(format_table(rows, ["what", "where", "slices/s", "note"]))
    print(f"\nloader / network = {ratio:.3g}x (needs >= {args.min_ratio:g}x): {'OK' if result['ok'] else 'TOO SLOW'}; "
          f"{per_worker:.0f} slices/s per worker, {result['workers_needed_for_min_ratio']} worker(s) needed")
    write_json(args.out, result)
    if tmp is not None:
        tmp.cleanup()
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
