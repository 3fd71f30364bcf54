"""Network cost benchmark: parameters, FLOPs, forward / train-step throughput, GFLOP/s, peak memory.

Every network runs at the tasks' sizes (ISIC 256², BraTS 160², ISLES 224²) next to MONAI's
BasicUNet and AttentionUnet, measured in the same process. Timings are interleaved: each round
runs every network once (in a shuffled order) and a network's time is its best round, so a change
of machine load during the run affects all networks alike; the table reports each network's
achieved GFLOP/s as a ratio of BasicUNet's at the same size.

FLOPs are those of the network's definition, counted by ``torch.utils.flop_counter`` on the
``meta`` device in train mode (the reference formulation: convolutions and matrix products; a
grouped convolution counts its grouped work, a depth-wise dilated one its 9 taps), so that an
implementation that computes the same function by other means (folded batch norms, shifted
multiply-adds) is credited with the same work. Peak memory is the process' resident high-water
mark during the first forward pass / training step (CPU; reset through ``/proc/self/clear_refs``)
or ``torch.cuda.max_memory_allocated`` (CUDA), given as the increase over the memory in use before
it (weights, libraries): activations, gradients and, for training, the optimizer's state.

On a shared machine use ``--threads 1``: with several threads every parallel region waits for any
thread the OS has descheduled, which penalises networks made of many small operations.

    python benchmarks/networks.py --out bench_output/networks.json
    python benchmarks/networks.py --threads 1 --out bench_output/networks_1thread.json
    python benchmarks/networks.py --device cuda --amp bf16 --channels-last --compile
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from common import format_table, peak_memory_mib, reset_peak_memory, sync, write_json  # noqa: E402

from monai_attn.networks.utils import count_flops  # noqa: E402
from monai_attn.reproduce import PAPER_PARAMS_M as P  # noqa: E402 (the papers' parameter counts, in millions)

SIZES = {"isic256": 256, "brats160": 160, "isles224": 224}
NETWORKS = [
    "BasicUNet", "AttentionUnet", "FocusNetPP", "FocusNetPP-lite",
    "MistakesUNet-unet", "MistakesUNet-aunet", "MistakesUNet-cscunet", "MistakesUNet-cbamunet",
    "MistakesUNet-gcnunet", "MistakesUNet-fpa", "MistakesUNet-rfna",
]  # fmt: skip
BASELINE = "BasicUNet"
COLUMNS = ["network", "size", "params", "gflop_per_image", "fwd_img_s", "gflops_s", "gflops_s_vs_basicunet",
           "train_img_s", "fwd_peak_mib", "train_peak_mib", "compiled", "error"]  # fmt: skip


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
    raise ValueError(f"unknown benchmark network {name!r}; known: {', '.join(NETWORKS)}")


# The papers' networks, as configured for their tasks, and the parameter counts the papers give
# (FocusNet++: Kaul et al. 2021, Tables 2 (ISIC 2018) and 3 (DSB 2018), counted as Keras does, with
# batch-norm statistics; PATM: Xu et al. 2020, Tables 5-6). docs/networks.md discusses every
# difference; tests/test_benchmarks.py checks that these numbers match tests/networks.
PAPER_MODELS = [
    # (name, paper table, task, input channels, size, builder expression, paper params in millions)
    ("FocusNet++ (official code: no SE)", "FN++ Table 2", "ISIC 2018", 3, 256,
     "FocusNetPP(2, 3, 1, squeeze_excitation=False)", P["isic2018"]["focusnetpp"]),
    ("FocusNet++ (with the paper's SE)", "FN++ Table 2", "ISIC 2018", 3, 256, "FocusNetPP(2, 3, 1)", P["isic2018"]["focusnetpp"]),
    ("FocusNet++ lite (no SE)", "FN++ Table 3", "DSB 2018", 1, 256,
     "FocusNetPP.lite(2, 1, 1, squeeze_excitation=False)", P["dsb2018"]["focusnetpp"]),
    ("FocusNet++ lite (with SE)", "FN++ Table 3", "DSB 2018", 1, 256, "FocusNetPP.lite(2, 1, 1)", P["dsb2018"]["focusnetpp"]),
    ("UNet", "PATM Tables 5-6", "BraTS 2018", 4, 160, "MistakesUNet.preset('unet', 2, 4, 1)", P["patm"]["unet"]),
    ("WUnet", "PATM Tables 5-6", "BraTS 2018", 4, 160, "MistakesUNet.preset('wunet', 2, 4, 1)", P["patm"]["wunet"]),
    ("AUnet", "PATM Tables 5-6", "BraTS 2018", 4, 160, "MistakesUNet.preset('aunet', 2, 4, 1)", P["patm"]["aunet"]),
    ("CSCUnet", "PATM Tables 5-6", "BraTS 2018", 4, 160, "MistakesUNet.preset('cscunet', 2, 4, 1)", P["patm"]["cscunet"]),
    ("CBAMUnet", "PATM Tables 5-6", "BraTS 2018", 4, 160, "MistakesUNet.preset('cbamunet', 2, 4, 1)", P["patm"]["cbamunet"]),
    ("GCNUnet", "PATM Tables 5-6", "BraTS 2018", 4, 160, "MistakesUNet.preset('gcnunet', 2, 4, 1)", P["patm"]["gcnunet"]),
    ("FPA", "PATM Tables 5-6", "BraTS 2018", 4, 160, "FPAUNet(2, 4, 1)", P["patm"]["fpa"]),
    ("RFNA", "PATM Tables 5-6", "BraTS 2018", 4, 160, "RFNAUNet(2, 4, 1)", P["patm"]["rfna"]),
]  # fmt: skip


def paper_table() -> list[dict]:
    """Parameters (trainable; and with batch-norm statistics, as Keras counts) and forward FLOPs per image
    at the task's input size for :data:`PAPER_MODELS`, next to the papers' parameter counts."""
    from monai_attn.networks import FocusNetPP, FPAUNet, MistakesUNet, RFNAUNet  # noqa: F401 (used by eval)

    rows = []
    for name, table, task, cin, size, expr, paper_m in PAPER_MODELS:
        net = eval(expr)  # noqa: S307 - fixed expressions above
        params = sum(p.numel() for p in net.parameters() if p.requires_grad)
        stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))
        flops = count_flops(net, torch.zeros(1, cin, size, size))
        rows.append({"model": name, "paper_table": table, "task": task, "input": f"{cin}×{size}×{size}",
                     "code": expr, "params": params, "params_with_bn_stats": params + stats,
                     "paper_params_m": paper_m, "gflop_per_image": flops / 1e9})  # fmt: skip
    return rows


class Case:
    """One network at one size, ready to run forward passes and training steps."""

    def __init__(self, name: str, size: int, args: argparse.Namespace):
        self.name, self.size, self.device = name, size, args.device
        torch.manual_seed(0)
        net, cin = build(name)
        self.params = sum(p.numel() for p in net.parameters() if p.requires_grad)
        x = torch.randn(args.batch, cin, size, size)
        self.flops = count_flops(net, x[:1])
        self.net = net.to(args.device)
        self.x = x.to(args.device)
        self.y = (torch.rand(args.batch, 1, size, size, device=args.device) > 0.5).float()
        if args.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
        self.scaler = torch.amp.GradScaler(args.device, enabled=args.amp == "fp16")
        self.runner: torch.nn.Module = self.net
        self.compiled: bool | None = None
        self.compile_error: str | None = None
        if args.compile:
            try:
                self.runner = torch.compile(self.net)
                self.compiled = True
            except Exception as e:  # noqa: BLE001 - report, do not crash the benchmark
                self.compiled, self.compile_error = False, _short(e)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4)
        self.loss = torch.nn.BCEWithLogitsLoss()

    def autocast(self):
        return torch.autocast(torch.device(self.device).type, dtype=self.dtype, enabled=self.dtype is not None)

    def forward(self) -> None:
        self.net.eval()
        with torch.no_grad(), self.autocast():
            self.runner(self.x)

    def train_step(self) -> None:
        self.net.train()
        self.opt.zero_grad(set_to_none=True)
        with self.autocast():
            out = self.runner(self.x)
        loss = self.loss(out.float(), self.y)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()

    def run_safely(self, fn) -> str | None:
        """Run ``fn``; with ``torch.compile``, fall back to eager (and record why) if compilation fails."""
        try:
            fn()
            return None
        except Exception as e:  # noqa: BLE001
            if self.compiled:
                self.compiled, self.compile_error, self.runner = False, _short(e), self.net
                try:
                    fn()
                    return None
                except Exception as e2:  # noqa: BLE001
                    return _short(e2)
            return _short(e)


def _short(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def interleaved(cases: list[Case], method: str, rounds: int, warmup: int, seed: int) -> dict[str, float]:
    """Best wall time of ``case.<method>()`` per case over ``rounds`` rounds (shuffled order each round)."""
    rng = random.Random(seed)
    best: dict[str, float] = {}
    for r in range(warmup + rounds):
        order = list(cases)
        rng.shuffle(order)
        for case in order:
            fn = getattr(case, method)
            sync(case.device)
            start = time.perf_counter()
            fn()
            sync(case.device)
            if r >= warmup:
                best[case.name] = min(best.get(case.name, float("inf")), time.perf_counter() - start)
    return best


def measure_size(args: argparse.Namespace, size_name: str) -> list[dict]:
    size = SIZES[size_name]
    rows: dict[str, dict] = {}
    cases: list[Case] = []
    for name in args.networks:
        row = rows.setdefault(name, {"network": name, "size": size, "batch": args.batch})
        try:
            case = Case(name, size, args)
        except Exception as e:  # noqa: BLE001
            row["error"] = _short(e)
            continue
        row.update(params=case.params, gflop_per_image=case.flops / 1e9)
        # first (untimed) calls: kernel selection, compilation; their peak memory is recorded (the first
        # training step includes the optimizer's state)
        for method, key in (("forward", "fwd_peak_mib"), ("train_step", "train_peak_mib")):
            if method == "train_step" and size_name not in args.train_sizes:
                continue
            base = reset_peak_memory(args.device)
            error = case.run_safely(getattr(case, method))
            if error:
                row["error"] = error
                break
            row[key] = peak_memory_mib(args.device, base)[1]
        if "error" not in row:
            cases.append(case)
    fwd = interleaved(cases, "forward", args.repeats, 0, seed=size)
    train = (interleaved(cases, "train_step", args.train_repeats, 0, seed=size + 1)
             if size_name in args.train_sizes else {})  # fmt: skip
    for case in cases:
        row = rows[case.name]
        row["fwd_img_s"] = args.batch / fwd[case.name]
        row["gflops_s"] = case.flops * args.batch / fwd[case.name] / 1e9
        if case.name in train:
            row["train_img_s"] = args.batch / train[case.name]
        if case.compiled is not None:
            row["compiled"] = case.compiled
            if case.compile_error:
                row["compile_error"] = case.compile_error
    base = rows.get(BASELINE)
    if base and "gflops_s" in base:
        for row in rows.values():
            if "gflops_s" in row:
                row["gflops_s_vs_basicunet"] = row["gflops_s"] / base["gflops_s"]
    return list(rows.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_output/networks.json", help="JSON output path ('' for none)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed forward rounds (best is kept)")
    parser.add_argument("--train-repeats", type=int, default=2, help="timed training-step rounds")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--train-sizes", nargs="*", default=["brats160"], choices=list(SIZES),
                        help="sizes at which training steps are timed (default: brats160)")
    parser.add_argument("--networks", nargs="+", default=NETWORKS)
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile every network (failures are reported)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.networks if n not in NETWORKS]
    if unknown:
        parser.error(f"unknown networks {unknown}; known: {', '.join(NETWORKS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.device == "cpu" and args.amp == "fp16":
        parser.error("--amp fp16 needs CUDA (use bf16 on CPU)")

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    start = time.perf_counter()
    rows: list[dict] = []
    for size_name in args.sizes:
        block = measure_size(args, size_name)
        for row in block:
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, file=sys.stderr)
        rows += block
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    settings.update(threads_used=torch.get_num_threads(), seconds=round(time.perf_counter() - start, 1),
                    load_average_before=load_before,
                    load_average_after=os.getloadavg() if hasattr(os, "getloadavg") else None)
    print(format_table(rows, COLUMNS))
    papers = paper_table()
    print()
    print(format_table(papers, ["model", "paper_table", "input", "params", "params_with_bn_stats", "paper_params_m",
                                "gflop_per_image"]))
    write_json(args.out, {"benchmark": "networks", "settings": settings, "rows": rows, "paper_table": papers})
    return 0


if __name__ == "__main__":
    sys.exit(main())
