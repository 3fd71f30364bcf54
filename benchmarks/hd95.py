"""HD95: ``monai_attn.metrics.hausdorff_distance`` against MONAI, medpy and DeepMind's surface-distance.

Every library runs on the same masks in the same process, each against our function in the
same convention (MONAI's ``compute_hausdorff_distance`` vs ``convention="monai"``, medpy's
``hd95`` vs ``"pooled"``, DeepMind's ``compute_robust_hausdorff`` vs ``"surface"``). The table
gives the best-of-``--repeats`` wall time and process CPU time of each, their ratios, and the
largest absolute difference over the cases where the reference is finite (both masks
non-empty; medpy and DeepMind are called on those pairs only, one by one, as users call them).
On a shared machine the CPU time is the steadier number. Masks are realistic blobs: an
ellipsoid with a boundary roughened by smooth noise (ground truth), the same field plus
independent smooth noise (prediction), and where noted a small false-positive blob.

Cases (all at HD95, symmetric, ``include_background=True``):

* ``brats_slices``  155 × 240 × 240 — the axial slices of a 240 × 240 × 155 volume, one HD95 per slice
* ``brats_volume``  1 × 240 × 240 × 155, spacing 1 mm, with a stray false-positive blob
* ``isic``          8 × 256 × 256 dermoscopy-like lesions
* ``mr_small``      1 × 256 × 256 × 25 at (0.78, 0.78, 6.5) mm: a ~4,000-voxel lesion and a stray blob
* ``ct``            1 × 512 × 512 × 48 at (0.57, 0.57, 5) mm, an organ-sized label
* ``ct_300``        1 × 512 × 512 × 300 at (0.8, 0.8, 2.5) mm (not run by default)

Usage::

    python benchmarks/hd95.py --threads 1 --out bench_output/hd95.json
    python benchmarks/hd95.py --device cuda --out bench_output/hd95_cuda.json

On ``--device cuda`` our function and MONAI run on the GPU (MONAI uses cuCIM's erosion when
cuCIM is installed, recorded as ``cucim`` in the JSON); medpy and DeepMind stay on the CPU
(they are numpy libraries; ``--skip-cpu-libs`` leaves them out). A reference slower than
``--slow`` seconds is measured once; ``--skip-monai-ct`` skips MONAI on the CT cases.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import monai  # noqa: E402
import numpy as np  # noqa: E402
from monai.metrics import compute_hausdorff_distance  # noqa: E402
from monai.utils import optional_import  # noqa: E402

from monai_attn.metrics import hausdorff_distance  # noqa: E402


# ------------------------------------------------------------------------------------------------
# realistic masks
# ------------------------------------------------------------------------------------------------
def smooth_noise(shape, cell: int, gen: torch.Generator) -> torch.Tensor:
    """Unit-variance noise, smooth at the scale of ``cell`` voxels (coarse noise, upsampled)."""
    coarse = torch.randn((1, 1, *[max(2, s // cell) for s in shape]), generator=gen)
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    up = F.interpolate(coarse, size=tuple(shape), mode=mode, align_corners=True)[0, 0]
    return up / up.std()


def ellipsoid_field(shape, center, radii) -> torch.Tensor:
    """``1 - sum(((x_k - c_k) / r_k)^2)``, positive inside the ellipsoid (built by broadcasting)."""
    f = torch.ones(shape)
    for k, (n, c, r) in enumerate(zip(shape, center, radii)):
        term = ((torch.arange(n, dtype=torch.float32) - c) / r) ** 2
        f -= term.reshape([n if j == k else 1 for j in range(len(shape))])
    return f


def blob_pair(shape, center, radii, gen, rough=0.25, err=0.12, cell=12):
    """(prediction, ground truth) bool masks: a roughened ellipsoid and an imperfect copy."""
    f = ellipsoid_field(shape, center, radii)
    f += rough * smooth_noise(shape, cell, gen)
    gt = f > 0
    f += err * smooth_noise(shape, max(4, cell // 2), gen)
    return f > 0, gt


def make_case(name: str, seed: int = 0):
    """Return ``(y_pred, y, spacing, description)`` as bool tensors ``[B, 1, *spatial]``."""
    gen = torch.Generator().manual_seed(seed)
    if name in ("brats_slices", "brats_volume"):
        shape = (240, 240, 155)
        pred, gt = blob_pair(shape, (120, 110, 70), (35, 30, 28), gen)
        fp = ellipsoid_field(shape, (170, 160, 95), (5, 4, 4)) > 0  # a small false positive
        pred = pred | fp
        if name == "brats_volume":
            return pred[None, None], gt[None, None], (1.0, 1.0, 1.0), "1×240×240×155, 1 mm"
        # axial slices of a RAS volume: the last axis
        ps = pred.permute(2, 0, 1)[:, None].contiguous()
        gs = gt.permute(2, 0, 1)[:, None].contiguous()
        return ps, gs, (1.0, 1.0), "155 slices 240×240 (per-slice HD95)"
    if name == "isic":
        preds, gts = [], []
        for _ in range(8):
            c = [float(torch.randint(96, 160, (1,), generator=gen)) for _ in range(2)]
            r = [float(torch.randint(40, 100, (1,), generator=gen)) for _ in range(2)]
            p, g = blob_pair((256, 256), c, r, gen, rough=0.3, err=0.15, cell=24)
            preds.append(p)
            gts.append(g)
        return torch.stack(preds)[:, None], torch.stack(gts)[:, None], (1.0, 1.0), "8×256×256 lesions"
    if name == "mr_small":
        # a small lesion (~4,000 voxels) in an anisotropic MR, plus a stray false-positive blob
        shape = (256, 256, 25)
        pred, gt = blob_pair(shape, (120, 136, 12), (20, 20, 2.6), gen, rough=0.2, err=0.1, cell=8)
        pred = pred | (ellipsoid_field(shape, (190, 70, 15), (4, 4, 1.2)) > 0)
        return pred[None, None], gt[None, None], (0.78, 0.78, 6.5), "1×256×256×25, (0.78, 0.78, 6.5) mm"
    if name == "ct":
        shape = (512, 512, 48)
        pred, gt = blob_pair(shape, (230, 250, 24), (150, 110, 14), gen, rough=0.2, err=0.08, cell=24)
        return pred[None, None], gt[None, None], (0.57, 0.57, 5.0), "1×512×512×48, (0.57, 0.57, 5) mm"
    if name == "ct_300":
        shape = (512, 512, 300)
        pred, gt = blob_pair(shape, (230, 250, 150), (150, 110, 55), gen, rough=0.2, err=0.08, cell=24)
        return pred[None, None], gt[None, None], (0.8, 0.8, 2.5), "1×512×512×300, (0.8, 0.8, 2.5) mm"
    raise ValueError(f"unknown case {name!r}")


# ------------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int, slow: float):
    """Best-of-``repeats`` wall time and process CPU time (after one warm-up call; a call slower
    than ``slow`` seconds is measured once). CPU time is the steadier number on a shared machine."""

    def once():
        _sync(device)
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        _sync(device)
        return time.perf_counter() - w0, time.process_time() - c0, out

    wall, cpu, out = once()
    if wall > slow:
        return wall, cpu, out, 1
    runs = [once() for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[-1][2], repeats


def timed_pair(fa, fb, dev_a, dev_b, repeats: int, slow: float):
    """:func:`timed` for two functions, their calls interleaved (a, b, a, b, ...) so that a burst
    of load on a shared machine hits both alike; a side slower than ``slow`` is measured once."""

    def once(fn, device):
        _sync(device)
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        _sync(device)
        return time.perf_counter() - w0, time.process_time() - c0, out

    first = [once(fa, dev_a), once(fb, dev_b)]
    runs: list = [[], []]
    for _ in range(repeats):
        for k, (fn, dev) in enumerate(((fa, dev_a), (fb, dev_b))):
            if first[k][0] <= slow:
                runs[k].append(once(fn, dev))
    out = []
    for k in range(2):
        if not runs[k]:
            out.append((first[k][0], first[k][1], first[k][2], 1))
        else:
            rs = runs[k]
            out.append((min(r[0] for r in rs), min(r[1] for r in rs), rs[-1][2], len(rs)))
    return out


def _reference_libs():
    """medpy's ``hd95`` and DeepMind's ``compute_robust_hausdorff`` (``None`` when not installed)."""
    medpy, has_medpy = optional_import("medpy.metric.binary")
    deepmind, has_deepmind = optional_import("surface_distance")
    libs = {}
    if has_medpy:
        libs["medpy"] = ("pooled", lambda p, g, sp: medpy.hd95(p, g, sp))
    if has_deepmind:
        libs["deepmind"] = (
            "surface",
            lambda p, g, sp: deepmind.compute_robust_hausdorff(
                deepmind.compute_surface_distances(g, p, sp), 95
            ),
        )
    return libs


def run_case(
    name: str, device: torch.device, repeats: int, slow: float, skip_monai: bool, cpu_libs: bool = True
) -> dict:
    pred, gt, spacing, desc = make_case(name)
    pred, gt = pred.to(device), gt.to(device)
    kwargs = dict(include_background=True, percentile=95, spacing=list(spacing))
    row: dict = {"case": name, "description": desc, "shape": list(pred.shape), "spacing": list(spacing)}
    pf, gf = pred.float(), gt.float()  # MONAI's own conversion; kept outside the timing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty-slice warnings
        if skip_monai:
            ours_t, ours_cpu, ours, n_ours = timed(lambda: hausdorff_distance(pred, gt, **kwargs), device, repeats, slow)
        else:
            (ours_t, ours_cpu, ours, n_ours), (monai_t, monai_cpu, ref, n_ref) = timed_pair(
                lambda: hausdorff_distance(pred, gt, **kwargs),
                lambda: compute_hausdorff_distance(pf, gf, **kwargs),
                device, device, repeats, slow,
            )  # fmt: skip
    row.update(ours_s=ours_t, ours_cpu_s=ours_cpu, ours_runs=n_ours)
    if skip_monai:
        row.update(monai_s=None, monai_cpu_s=None, speedup=None, max_abs_diff=None, compared=0)
    else:
        finite = torch.isfinite(ref)
        diff = (ref[finite].double() - ours[finite].double()).abs()
        row.update(
            monai_s=monai_t,
            monai_cpu_s=monai_cpu,
            monai_runs=n_ref,
            speedup=monai_t / ours_t,
            max_abs_diff=float(diff.max()) if diff.numel() else 0.0,
            compared=int(finite.sum()),
        )
    _, codes = hausdorff_distance(pred, gt, return_empty=True, **kwargs)
    row.update(
        pred_empty=int((codes == 1).sum()),
        gt_empty=int((codes == 2).sum()),
        both_empty=int((codes == 3).sum()),
    )
    finite_ours = ours[(codes == 0)]
    row["mean_hd95"] = float(finite_ours.mean()) if finite_ours.numel() else math.nan
    # medpy and DeepMind: numpy on the CPU, on the pairs where both masks are non-empty
    if cpu_libs:
        both = (codes == 0).reshape(-1).cpu()
        p_np = pred.reshape(-1, *pred.shape[2:]).cpu().numpy()[both.numpy()]
        g_np = gt.reshape(-1, *gt.shape[2:]).cpu().numpy()[both.numpy()]
        for lib, (conv, fn) in _reference_libs().items():
            (conv_t, conv_cpu, conv_val, _), (lib_t, lib_cpu, lib_val, n_lib) = timed_pair(
                lambda conv=conv: hausdorff_distance(pred, gt, convention=conv, **kwargs),
                lambda fn=fn: [fn(p, g, spacing) for p, g in zip(p_np, g_np)],
                device, torch.device("cpu"), repeats, slow,
            )  # fmt: skip
            ref = torch.as_tensor(np.asarray(lib_val, dtype=np.float64))
            mine = conv_val.reshape(-1)[both.to(conv_val.device)].double().cpu()
            row.update({
                f"ours_{conv}_s": conv_t, f"ours_{conv}_cpu_s": conv_cpu, f"{lib}_s": lib_t, f"{lib}_cpu_s": lib_cpu,
                f"{lib}_runs": n_lib, f"{lib}_speedup": lib_t / conv_t,
                f"{lib}_max_abs_diff": float((ref - mine).abs().max()) if ref.numel() else 0.0,
                f"{lib}_mean_hd95": float(ref.mean()) if ref.numel() else math.nan,
            })  # fmt: skip
    return row


def print_table(rows: list, device: str, threads: int) -> None:
    print(f"\nHD95 on {device} (torch threads: {threads}; times in s, best of the repeats)")
    head = (
        f"{'case':<13} {'input':<38} {'MONAI':>8} {'ours':>7} {'x':>6} {'|diff|':>7}"
        f" {'medpy':>8} {'pooled':>7} {'x':>6} {'|diff|':>7} {'DeepMind':>8} {'surface':>7} {'x':>6} {'|diff|':>7}"
    )
    print(head)
    print("-" * len(head))

    def cell(r, lib, ours_key, speed_key, diff_key):
        if r.get(f"{lib}_s") is None:
            return f"{'-':>8} {'-':>7} {'-':>6} {'-':>7}"
        mark = "*" if r.get(f"{lib}_runs") == 1 else ""
        return f"{r[f'{lib}_s']:>7.3f}{mark:1} {r[ours_key]:>7.3f} {r[speed_key]:>5.1f}x {r[diff_key]:>7.0e}"

    for r in rows:
        print(
            f"{r['case']:<13} {r['description']:<38} "
            + cell(r, "monai", "ours_s", "speedup", "max_abs_diff")
            + " "
            + cell(r, "medpy", "ours_pooled_s", "medpy_speedup", "medpy_max_abs_diff")
            + " "
            + cell(r, "deepmind", "ours_surface_s", "deepmind_speedup", "deepmind_max_abs_diff")
        )
    print(
        "(* one call: slower than --slow, not repeated; |diff|: largest difference where the reference is finite)"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    ap.add_argument("--cases", nargs="+", default=["brats_slices", "brats_volume", "isic", "mr_small", "ct"])
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per implementation (best is kept)")
    ap.add_argument("--slow", type=float, default=3.0, help="seconds above which a call is not repeated")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--skip-monai-ct", action="store_true", help="do not time MONAI on the CT cases")
    ap.add_argument(
        "--skip-cpu-libs", action="store_true", help="do not time medpy and DeepMind (numpy, CPU)"
    )
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.cases:
        skip = args.skip_monai_ct and name.startswith("ct")
        rows.append(run_case(name, device, args.repeats, args.slow, skip, not args.skip_cpu_libs))
        print(f"  {name}: done", file=sys.stderr)
    print_table(rows, str(device), torch.get_num_threads())
    if args.out:
        meta = {
            "benchmark": "hd95",
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "monai": monai.__version__,
            "python": platform.python_version(),
            "repeats": args.repeats,
            "cucim": optional_import("cucim")[1],
            "libraries": sorted(_reference_libs()),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
