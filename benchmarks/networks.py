"""Network cost benchmark: parameters, FLOPs, forward / train-step throughput, GFLOP/s, peak memory.

Every network runs at the tasks' sizes next to MONAI's BasicUNet and AttentionUnet measured in the
same run, and the table reports each network's achieved GFLOP/s as a ratio of BasicUNet's at the
same size. Each (network, size) runs in a fresh subprocess so that peak resident memory is its own.

    python benchmarks/networks.py --out bench_output/networks.json
    python benchmarks/networks.py --device cuda --amp bf16 --channels-last --compile
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, format_table, write_json  # noqa: E402

SIZES = {"isic256": 256, "brats160": 160, "isles224": 224}


def build(name: str) -> tuple[torch.nn.Module, int]:
    """Return ``(network, in_channels)`` for a benchmark name."""
    from monai.networks.nets import AttentionUnet, BasicUNet

    from monai_attn.networks import FocusNetPP, MistakesUNet

    if name == "BasicUNet":
        return BasicUNet(2, 4, 1, features=(32, 32, 64, 128, 256, 32)), 4
    if name == "AttentionUnet":
        return AttentionUnet(2, 4, 1, channels=(32, 64, 128, 256, 512), strides=(2, 2, 2, 2)), 4
    if name == "FocusNetPP":
        return FocusNetPP(2, 3, 1), 3
    if name == "FocusNetPP-lite":
        return FocusNetPP.lite(2, 1, 1), 1
    if name.startswith("MistakesUNet-"):
        return MistakesUNet.preset(name.split("-", 1)[1], 2, 4, 1), 4
    raise ValueError(f"unknown benchmark network {name!r}")


NETWORKS = [
    "BasicUNet", "AttentionUnet", "FocusNetPP", "FocusNetPP-lite",
    "MistakesUNet-unet", "MistakesUNet-aunet", "MistakesUNet-cscunet", "MistakesUNet-cbamunet",
    "MistakesUNet-gcnunet", "MistakesUNet-fpa", "MistakesUNet-rfna",
]  # fmt: skip


def measure(name: str, size: int, batch: int, device: str, amp: str, channels_last: bool, compile_: bool,
            repeats: int) -> dict:
    """Measure one network at one size (runs inside the subprocess)."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    net, cin = build(name)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    net = net.to(device)
    x = torch.randn(batch, cin, size, size, device=device)
    y = (torch.rand(batch, 1, size, size, device=device) > 0.5).float()
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            net.eval()(x[:1])
    flops = counter.get_total_flops()
    runner = torch.compile(net) if compile_ else net
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    def autocast():
        return torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype is not None)

    def forward():
        with torch.no_grad(), autocast():
            runner(x)

    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def train_step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(runner(x).float(), y)
        loss.backward()
        opt.step()

    net.eval()
    t_fwd = best_time(forward, repeats=repeats, device=device)
    net.train()
    t_train = best_time(train_step, repeats=repeats, device=device)
    if torch.device(device).type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return {
        "network": name, "size": size, "batch": batch, "params": params, "gflop_per_image": flops / 1e9,
        "fwd_img_s": batch / t_fwd, "train_img_s": batch / t_train, "gflops_s": flops * batch / t_fwd / 1e9,
        "peak_mem_mib": peak,
    }  # fmt: skip


def run_isolated(args: argparse.Namespace, name: str, size: int) -> dict:
    cmd = [sys.executable, __file__, "--one", name, "--size", str(size), "--batch", str(args.batch), "--device",
           args.device, "--amp", args.amp, "--repeats", str(args.repeats), "--threads", str(args.threads)]
    cmd += ["--channels-last"] * args.channels_last + ["--compile"] * args.compile
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        return {"network": name, "size": size, "error": out.stderr.strip().splitlines()[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_output/networks.json", help="JSON output path")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--networks", nargs="+", default=NETWORKS)
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(args.one, args.size, args.batch, args.device, args.amp, args.channels_last,
                                 args.compile, args.repeats)))
        return 0

    rows = []
    for size_name in args.sizes:
        size = SIZES[size_name]
        block = [run_isolated(args, name, size) for name in args.networks]
        base = next((r for r in block if r["network"] == "BasicUNet" and "error" not in r), None)
        for r in block:
            if base and "error" not in r:
                r["gflops_s_vs_basicunet"] = r["gflops_s"] / base["gflops_s"]
            print(json.dumps(r), file=sys.stderr)
        rows += block
    columns = ["network", "size", "params", "gflop_per_image", "fwd_img_s", "train_img_s", "gflops_s",
               "gflops_s_vs_basicunet", "peak_mem_mib", "error"]
    print(format_table(rows, columns))
    write_json(args.out, {"benchmark": "networks", "settings": {k: v for k, v in vars(args).items()
                                                                 if k not in ("one", "size")}, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
