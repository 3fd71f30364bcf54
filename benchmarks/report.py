"""Write ``docs/benchmarks.md`` from the benchmarks' JSON files (no measurement here).

    python benchmarks/report.py --results bench_output --docs docs/benchmarks.md

Reads, from ``--results``: ``networks*.json`` (one table per file, e.g. a CPU and a CUDA run),
``inference*.json``, ``hd95*.json``, ``data*.json`` and ``run_all.json`` (which benchmarks ran, and
why one did not; when it is there, only the files it lists are reported unless ``--all``). Missing
files are reported as not run. Unknown JSON layouts are rendered generically, so a changed
benchmark never breaks the report.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import format_table  # noqa: E402

RATIO_TARGET = 0.70  # forward GFLOP/s of every network vs BasicUNet's in the same run (issue 8)
INFERENCE_TARGET = 1.15  # end-to-end volumetric inference vs the bare network forward
MEMORY_TARGET_MIB = 4096  # peak resident memory for a 512×512×300 volume


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _fmt(v, digits: int = 3) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x, digits) for x in v)
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return "" if v is None else str(v)


def machine_section(docs: list[dict]) -> list[str]:
    machine = next((d["machine"] for d in docs if isinstance(d.get("machine"), dict)), None)
    if machine is None:
        machine = next((d["meta"] for d in docs if isinstance(d.get("meta"), dict)), None)
    if not machine:
        return ["No machine description in the results."]
    keys = ["processor", "cpu_count", "torch_threads", "platform", "python", "torch", "monai", "cuda_device",
            "load_average", "device_name"]  # fmt: skip
    rows = [{"item": k, "value": _fmt(machine[k]) if not isinstance(machine[k], list) else
             ", ".join(map(str, machine[k]))} for k in keys if k in machine]  # fmt: skip
    return [format_table(rows, ["item", "value"])]


def status_section(run_all: dict | None) -> list[str]:
    if not run_all or not run_all.get("benchmarks"):
        return []
    rows = [{"benchmark": b.get("name"), "status": b.get("status"), "seconds": b.get("seconds"),
             "command": "`" + " ".join(b.get("command", [])) + "`" if b.get("command") else "",
             "note": b.get("note")} for b in run_all["benchmarks"]]  # fmt: skip
    return ["## Runs", "", format_table(rows, ["benchmark", "status", "seconds", "command", "note"]), ""]


def networks_section(name: str, d: dict) -> list[str]:
    s = d.get("settings", {})
    out = [f"### `{name}`", ""]
    out.append(
        f"Device {s.get('device', '?')}, {s.get('threads_used', '?')} thread(s), batch {s.get('batch', '?')}, "
        f"AMP {s.get('amp', 'none')}, channels-last {'yes' if s.get('channels_last') else 'no'}, "
        f"torch.compile {'yes' if s.get('compile') else 'no'}; best of {s.get('repeats', '?')} interleaved forward "
        f"rounds and {s.get('train_repeats', '?')} training-step rounds (training at "
        f"{', '.join(s.get('train_sizes', [])) or 'no size'}); load average before/after "
        f"{_fmt(s.get('load_average_before'))} / {_fmt(s.get('load_average_after'))}; {s.get('seconds', '?')} s."
    )
    out.append("")
    rows = d.get("rows", [])
    spec = [("network", "network"), ("size", "size"), ("params", "params"), ("gflop_per_image", "GFLOP/image"),
            ("fwd_img_s", "fwd img/s"), ("gflops_s", "GFLOP/s"), ("gflops_s_vs_basicunet", "GFLOP/s vs BasicUNet"),
            ("train_img_s", "train img/s"), ("fwd_peak_mib", "fwd peak MiB"), ("train_peak_mib", "train peak MiB")]
    if any("compiled" in r for r in rows):
        spec += [("compiled", "compiled"), ("compile_error", "compile error")]
    if any("error" in r for r in rows):
        spec.append(("error", "error"))
    out.append(format_table(rows, [c for c, _ in spec], [h for _, h in spec]))
    worst: dict[str, float] = {}
    for r in rows:
        if isinstance(r.get("gflops_s_vs_basicunet"), (int, float)):
            worst[r["network"]] = min(worst.get(r["network"], float("inf")), r["gflops_s_vs_basicunet"])
    if worst:
        failing = {n: v for n, v in worst.items() if v < RATIO_TARGET}
        out += ["", f"Lowest forward GFLOP/s ratio vs BasicUNet over the sizes (target ≥ {RATIO_TARGET:.2f}): "
                + ", ".join(f"{n} {v:.2f}" for n, v in sorted(worst.items(), key=lambda kv: kv[1])) + "."]
        out.append("All networks meet the target." if not failing else
                   f"Below the target in this run: {', '.join(sorted(failing))}.")
    out.append("")
    return out


def paper_section(d: dict) -> list[str]:
    rows = []
    for r in d.get("paper_table", []):
        ours = r.get("params_with_bn_stats") if r.get("paper_table", "").startswith("FN++") else r.get("params")
        diff = (ours / 1e6 - r["paper_params_m"]) / r["paper_params_m"] * 100 if ours and r.get("paper_params_m") else None
        rows.append({**r, "compared": ours, "diff": f"{diff:+.2f} %" if diff is not None else ""})
    if not rows:
        return []
    return [
        "## Parameters and FLOPs next to the papers",
        "",
        "Parameters are counted exactly; for FocusNet++ the comparison column uses the Keras count of the paper",
        "(trainable parameters plus batch-norm statistics). FLOPs are forward FLOPs per image at the task's input",
        "size, counted by `torch.utils.flop_counter` on the network definition (2 FLOPs per multiply-add;",
        "convolutions and matrix products only). The FocusNet++ paper also lists FLOPs (Tables 2-3); they cannot",
        "be reproduced as compute counts of the published architecture, so only ours are given.",
        "",
        format_table(rows, ["model", "paper_table", "task", "input", "params", "params_with_bn_stats", "paper_params_m",
                            "diff", "gflop_per_image"],
                     ["model", "paper table", "task", "input", "params here", "with BN statistics", "paper (M)",
                      "difference", "GFLOP/image here"]),
        "",
        "See [networks.md](networks.md) for where the differences come from (e.g. RFNA's expansion).",
        "",
    ]


def inference_section(name: str, d: dict) -> list[str]:
    s = d.get("settings", {})
    out = [f"### `{name}`", "",
           f"Network {s.get('network', '?')}, ROI {s.get('roi_size', '?')}, sw_batch_size {s.get('sw_batch_size', '?')}, "
           f"{s.get('threads_used', '?')} thread(s), best of {s.get('repeats', '?')} interleaved run(s); load average "
           f"before/after {_fmt(s.get('load_average_before'))} / {_fmt(s.get('load_average_after'))}.", ""]  # fmt: skip
    rows = d.get("rows", [])
    spec = [("path", "path"), ("slices", "slices"), ("total_s", "total s"), ("network_s", "in the network s"),
            ("outside_network_s", "outside the network s"), ("load_preprocess_s", "load + preprocess s"),
            ("inferer_s", "inferer s"), ("postprocess_save_s", "post + invert + save s"),
            ("ratio_vs_bare", "wall vs bare"), ("cpu_ratio_vs_bare", "CPU time vs bare"),
            ("ratio_at_equal_network_time", "(bare + outside) / bare")]
    spec = [(c, h) for c, h in spec if any(c in r for r in rows)]
    out.append(format_table(rows, [c for c, _ in spec], [h for _, h in spec]))
    for r in rows:
        if str(r.get("path", "")).endswith("SliceInferer") and isinstance(r.get("ratio_vs_bare"), float):
            equal = r.get("ratio_at_equal_network_time")
            ok = (equal if isinstance(equal, float) else r["ratio_vs_bare"]) <= INFERENCE_TARGET
            path = str(r["path"])
            out += ["", f"{path[:1].upper() + path[1:]}: {r['ratio_vs_bare']:.2f}× the bare forward on wall time"
                    + (f", {equal:.2f}× with the network time of the bare run" if isinstance(equal, float) else "")
                    + f" (target ≤ {INFERENCE_TARGET}): {'met' if ok else 'not met'}."]
    mem = d.get("memory")
    mem = [mem] if isinstance(mem, dict) else (mem or [])
    if mem:
        out += ["", "Peak resident memory of the same path on a single-channel volume (own process, `VmHWM`, "
                "including the Python/PyTorch/MONAI baseline; per stage):", ""]
        cols = [("volume", "volume"), ("path", "path"), ("normalize", "normalisation"), ("inferer", "inferer"),
                ("sw_batch_size", "sw_batch_size"), ("peak_rss_mib", "peak MiB"),
                ("load_preprocess_peak_mib", "load + preprocess MiB"), ("inferer_peak_mib", "inferer MiB"),
                ("postprocess_save_peak_mib", "post + invert + save MiB"), ("import_rss_mib", "after imports MiB"),
                ("seconds", "seconds"), ("error", "error")]
        cols = [(c, h) for c, h in cols if any(c in m for m in mem)]
        out.append(format_table(mem, [c for c, _ in cols], [h for _, h in cols]))
        whole = [m for m in mem if m.get("path", "whole path") == "whole path" and isinstance(m.get("peak_rss_mib"),
                                                                                             (int, float))]
        for m in whole:
            ok = m["peak_rss_mib"] < MEMORY_TARGET_MIB
            out += ["", f"Whole path, {m.get('normalize', '?')} normalisation: peak {m['peak_rss_mib'] / 1024:.2f} GiB "
                    f"(target < 4 GiB): {'met' if ok else 'not met'}."]
    out.append("")
    return out


def hd95_section(name: str, d: dict) -> list[str]:
    rows = d.get("results") or d.get("rows") or []
    meta = d.get("meta") or d.get("settings") or {}
    out = [f"### `{name}`", ""]
    if meta:
        out += ["Device " + _fmt(meta.get("device", "?")) + f", {meta.get('torch_threads', '?')} thread(s), best of "
                f"{meta.get('repeats', '?')} call(s).", ""]
    cols = [c for c in ["case", "description", "monai_s", "ours_s", "speedup", "monai_cpu_s", "ours_cpu_s",
                        "max_abs_diff", "compared"] if any(c in r for r in rows)]  # fmt: skip
    out += [format_table(rows, cols) if rows else "No rows.", ""]
    return out


def data_section(name: str, d: dict) -> list[str]:
    out = [f"### `{name}`", ""]
    rows = []
    for key, label in (("loader_cached", "loader, CacheDataset"), ("loader_uncached", "loader, no cache")):
        v = d.get(key)
        if isinstance(v, dict):
            rows.append({"what": label, "where": f"{v.get('workers', '?')} workers",
                         "slices_per_s": v.get("slices_per_s"), "note": f"cache built in {_fmt(v.get('cache_build_s'))} s"
                         if (v.get("cache_build_s") or 0) > 0.01 else ""})  # fmt: skip
    net = d.get("network")
    if isinstance(net, dict):
        rows.append({"what": net.get("network", "network"), "where": net.get("device"),
                     "slices_per_s": net.get("slices_per_s"), "note": f"training, batch {net.get('batch')}"})
    if rows:
        out.append(format_table(rows, ["what", "where", "slices_per_s", "note"], ["what", "where", "slices/s", "note"]))
        if "ratio_loader_to_network" in d:
            out += ["", f"Loader / network: {d['ratio_loader_to_network']:.3g}× (needs ≥ {_fmt(d.get('min_ratio'))}×): "
                    f"{'OK' if d.get('ok') else 'too slow'}."]
    else:
        out.append(generic(d))
    out.append("")
    return out


def generic(d: dict) -> str:
    """Any list of dicts as a table, else the scalar entries."""
    for v in d.values():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            cols = list(dict.fromkeys(k for x in v for k in x))
            return format_table(v, cols)
    rows = [{"key": k, "value": _fmt(v)} for k, v in d.items() if not isinstance(v, (dict, list))]
    return format_table(rows, ["key", "value"]) if rows else "No results."


NOTES = [
    "## What makes the networks and the inference path fast",
    "",
    "- **FocusNet++ inference path** (`ResidualGroupAttentionBlock`, eval mode without autograd): batch norms are "
    "folded into the convolutions, the attention 1×1 convolution is composed with the second grouped 3×3 "
    "convolution and the feature skip's 1×1 with `conv_in`, activations run in place, and attention and feature "
    "groups are separate tensors (no reads of channel slices). The folded weights are cached until a parameter or "
    "statistic changes. Training runs the reference formulation. On the CPU (float32, eager mode) every "
    "convolution of that path is one oneDNN call with its activation, sigmoid or residual sum fused as a post-op "
    "(`mkldnn::_convolution_pointwise`, the kernels `torch.compile` emits), which saves a pass over each output; "
    "on other devices grouped 1×1 convolutions are one dense product with the block-diagonal matrix "
    "(PyTorch's CPU kernels split grouped 1×1 convolutions into per-group copies). Every speed path here is "
    "eager-only (`monai_attn.networks.utils.eager_fast_paths`): TorchScript, tracing, `torch.export`, ONNX and "
    "`torch.compile` get the reference formulation.",
    "- **FocusNet++ decoder** (`ResidualGroupAttentionBlock.forward_upsampled`, inference path): each up-block's "
    "point-wise prefix (the 1×1 convolutions that read its input, with their batch norms and activations) runs "
    "*before* the nearest ×2 upsampling, on 4× fewer pixels; nearest upsampling commutes with point-wise maps, so "
    "the output is the same; in 2D the first 3×3 convolutions also run at the low resolution, as one "
    "convolution that produces the four output phases as channels followed by a pixel shuffle (a 3×3 "
    "convolution of a nearest-upsampled tensor reads each phase through a 3×3 kernel with summed taps). "
    "Together these lifted FocusNet++-lite's forward from 0.66-0.70 of BasicUNet's GFLOP/s at 160² and 256² "
    "to 0.73-0.86 (lowest at 160²; reruns on this shared machine vary by about ±8 %).",
    "- **Channels-last on the CPU**: FocusNet++ runs its blocks in channels-last memory format (oneDNN's grouped "
    "convolutions are about twice as fast in it); `FocusNetPP(channels_last=False)` turns it off.",
    "- **FPA's dilated depth-wise convolution** runs as shifted multiply-adds for CPU inference (oneDNN's dilated "
    "depth-wise kernel is 4-6× slower than its undilated one).",
    "- **Volumetric inference**: `monai_attn.inferers.BatchedSliceInferer(roi_size, spatial_dim, sw_batch_size, "
    "sw_device, device, progress, buffer_dtype)` is a drop-in for MONAI's `SliceInferer` when each slice fits the ROI "
    "(the pipelines crop/pad in-plane to it): batches of slices go straight through the network, without sliding "
    "windows, importance maps or count maps.",
    "- **Memory**: `monai_attn.transforms.LeanNormalizeIntensityd` replaces `NormalizeIntensityd(nonzero=True, "
    "channel_wise=True)`, whose temporaries reach about 8× the volume; settings for large volumes: "
    "`sw_batch_size=8`, `device='cpu'` for the output volume (with a GPU: `sw_device='cuda'`), "
    "`buffer_dtype=torch.float16` to halve the output buffer.",
    "- FLOPs are those of the definition (counted on the meta device in train mode), so these rewrites do not change "
    "them. `torch.compile` works for the networks on CPU and CUDA (`networks.py --compile`).",
    "",
]


def build(results: Path, everything: bool = False) -> str:
    files = {p.name: load(p) for p in sorted(results.glob("*.json"))}
    files = {k: v for k, v in files.items() if isinstance(v, dict)}
    run_all = files.pop("run_all.json", None)
    if run_all and not everything:  # only what this run_all wrote (other JSON in the folder may be stale)
        names = {f"{b.get('name')}.json" for b in run_all.get("benchmarks", [])}
        files = {k: v for k, v in files.items() if k in names}
    groups = {k: [(n, d) for n, d in files.items() if n.startswith(k)] for k in ("networks", "inference", "hd95", "data")}
    lines = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/report.py` from the JSON files of `make bench` "
        "(`python benchmarks/run_all.py --out bench_output --docs docs/benchmarks.md`); regenerate this page from "
        "the JSON alone with `python benchmarks/report.py --results bench_output --docs docs/benchmarks.md`.",
        "Timings on a shared machine are noisy: every comparison below is a ratio of measurements taken in the same",
        "run, interleaved, best of several rounds.",
        "",
        "## Machine",
        "",
        *machine_section(list(files.values())),
        "",
        *status_section(run_all),
    ]
    lines += ["## Networks", ""]
    if groups["networks"]:
        lines += [
            "Forward (eval mode, no autograd) and training-step throughput of every network next to MONAI's",
            "BasicUNet and AttentionUnet, at the tasks' sizes (ISIC 256², BraTS 160², ISLES 224²). GFLOP/s is the",
            "network's FLOPs (its definition, counted on the meta device) over the measured time; the ratio to",
            "BasicUNet at the same size is the efficiency target. Peak memory is the increase of resident memory",
            "during the first forward pass / training step (CPU) or `max_memory_allocated` (CUDA).",
            "",
        ]
        for n, d in groups["networks"]:
            lines += networks_section(n, d)
        lines += paper_section(groups["networks"][0][1])
    else:
        lines += ["Not run.", ""]
    lines += ["## Volumetric inference", ""]
    if groups["inference"]:
        for n, d in groups["inference"]:
            lines += inference_section(n, d)
    else:
        lines += ["Not run.", ""]
    lines += NOTES
    lines += ["## HD95", ""]
    lines += [x for n, d in groups["hd95"] for x in hd95_section(n, d)] or ["Not run.", ""]
    lines += ["## Data loader", ""]
    lines += [x for n, d in groups["data"] for x in data_section(n, d)] or ["Not run.", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="bench_output", help="folder with the benchmarks' JSON files")
    p.add_argument("--docs", default="docs/benchmarks.md", help="markdown file to write")
    p.add_argument("--all", action="store_true",
                   help="report every JSON file in --results (default: those of run_all.json, if there is one)")
    args = p.parse_args(argv)
    results = Path(args.results)
    if not results.is_dir():
        p.error(f"--results {results}: no such folder (run benchmarks/run_all.py first)")
    text = build(results, args.all)
    Path(args.docs).parent.mkdir(parents=True, exist_ok=True)
    Path(args.docs).write_text(text)
    print(f"wrote {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
