"""Run every benchmark (networks, volumetric inference, HD95, data loader), then write the docs page.

    python benchmarks/run_all.py --out bench_output --docs docs/benchmarks.md      # `make bench`
    python benchmarks/run_all.py --only networks inference --threads 2

Each benchmark runs as its own process and writes ``<out>/<name>.json`` and ``<out>/<name>.log``; a
missing script, a failure or a timeout is recorded (``<out>/run_all.json``) and reported on the page
instead of stopping the others. The page is then written by ``benchmarks/report.py`` from the JSON
files alone. Networks and inference run with ``--threads 1`` by default: on a shared machine a
multi-threaded run waits for descheduled threads at every parallel region, which distorts the
comparisons (``--threads 0`` uses torch's default). With CUDA, the networks benchmark also runs on the
GPU (``networks_cuda.json``: bf16 autocast, channels-last, ``torch.compile``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def plan(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """``(name, script, arguments)`` of every benchmark to run."""
    out = Path(args.out)
    threads = ["--threads", str(args.threads)]
    runs = [
        ("networks", "networks.py", [*threads, "--out", str(out / "networks.json")]),
        ("inference", "inference.py", [*threads, "--out", str(out / "inference.json")]),
        ("hd95", "hd95.py", ["--out", str(out / "hd95.json")]),
        ("data", "data.py", ["--out", str(out / "data.json")]),
    ]
    if args.cuda:
        runs.append(("networks_cuda", "networks.py", ["--device", "cuda", "--amp", "bf16", "--channels-last",
                                                       "--compile", "--out", str(out / "networks_cuda.json")]))
        runs.append(("hd95_cuda", "hd95.py", ["--device", "cuda", "--out", str(out / "hd95_cuda.json")]))
    if args.only:
        runs = [r for r in runs if r[0] in args.only or r[0].split("_")[0] in args.only]
    return runs


def run_one(name: str, script: str, extra: list[str], out: Path, timeout: float) -> dict:
    path = HERE / script
    command = [sys.executable, str(path), *extra]
    record = {"name": name, "command": [Path(sys.executable).name, f"benchmarks/{script}", *extra]}
    if not path.is_file():
        return {**record, "status": "skipped", "note": f"benchmarks/{script} does not exist (yet)"}
    log = out / f"{name}.log"
    start = time.perf_counter()
    try:
        with log.open("w") as fh:
            proc = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout,
                                  cwd=HERE.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except subprocess.TimeoutExpired:
        return {**record, "status": "timeout", "seconds": round(time.perf_counter() - start, 1),
                "note": f"stopped after {timeout:.0f} s; see {log}"}
    seconds = round(time.perf_counter() - start, 1)
    if proc.returncode:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:] or ["no output"]
        # a benchmark may exit non-zero after writing its JSON (e.g. a target not met): keep the JSON
        status = "failed" if not (out / f"{name}.json").is_file() else "finished, exit code " + str(proc.returncode)
        return {**record, "status": status, "seconds": seconds, "note": tail[0][:300]}
    return {**record, "status": "ok", "seconds": seconds}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench_output", help="folder for the JSON files and logs")
    p.add_argument("--docs", default="docs/benchmarks.md", help="markdown page to write ('' to skip)")
    p.add_argument("--only", nargs="+", help="run only these benchmarks (networks, inference, hd95, data)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for networks/inference (0: torch's default)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per benchmark before it is stopped")
    p.add_argument("--cuda", action="store_true", default=None, help="also run the CUDA benchmarks (default: if available)")
    args = p.parse_args(argv)
    if args.cuda is None:
        try:
            import torch

            args.cuda = torch.cuda.is_available()
        except ImportError:  # pragma: no cover
            args.cuda = False
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    previous: list[dict] = []
    if args.only and (out / "run_all.json").is_file():  # a partial re-run keeps the other benchmarks' records
        try:
            previous = json.loads((out / "run_all.json").read_text()).get("benchmarks", [])
        except ValueError:
            previous = []
    for name, script, extra in plan(args):
        print(f"[run_all] {name}: benchmarks/{script} {' '.join(extra)}", flush=True)
        # a stale JSON from an earlier run must not pass for this one
        (out / f"{name}.json").unlink(missing_ok=True)
        rec = run_one(name, script, extra, out, args.timeout)
        print(f"[run_all] {name}: {rec['status']}" + (f" ({rec['seconds']} s)" if "seconds" in rec else "")
              + (f" - {rec['note']}" if rec.get("note") else ""), flush=True)
        records.append(rec)
        done = {r["name"] for r in records}
        merged = [r for r in previous if r.get("name") not in done] + records
        (out / "run_all.json").write_text(json.dumps({"benchmarks": merged}, indent=2))
    if args.docs:
        subprocess.run([sys.executable, str(HERE / "report.py"), "--results", str(out), "--docs", args.docs],
                       check=True)
    return 0 if all(r["status"] == "ok" or r["status"].startswith(("skipped", "finished")) for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
