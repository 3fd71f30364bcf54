"""Shared helpers for the benchmark scripts: machine description, timing, peak memory, tables, JSON output."""
from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch


def machine() -> dict:
    """Describe the machine a benchmark ran on (stored with every JSON result)."""
    info = {
        "platform": platform.platform(),
        "processor": _cpu_model() or platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    try:
        import monai

        info["monai"] = monai.__version__
    except ImportError:  # pragma: no cover
        pass
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def best_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1, device: str = "cpu") -> float:
    """Best-of-``repeats`` wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def timed(fn: Callable[[], object], device: str = "cpu") -> float:
    """Wall time of one call of ``fn()`` in seconds (device synchronised)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def release_free_memory() -> None:
    """Collect garbage and return the C heap's free memory to the OS (glibc ``malloc_trim``), so that the
    resident set counts only memory in use."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_memory(device: str = "cpu") -> int | None:
    """Start a peak-memory window; returns the current resident set (CPU, KiB) or allocated bytes (CUDA).

    On Linux the process' resident high-water mark is reset by writing ``5`` to ``/proc/self/clear_refs``
    (after :func:`release_free_memory`); elsewhere the window starts at process start (``ru_maxrss``).
    """
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    release_free_memory()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_kib("VmRSS")


def peak_memory_mib(device: str = "cpu", baseline: int | None = None) -> tuple[float, float | None]:
    """``(peak, peak - baseline)`` in MiB since :func:`reset_peak_memory`: resident memory of the whole
    process on CPU, ``torch.cuda.max_memory_allocated`` on CUDA."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return peak / 2**20, (peak - baseline) / 2**20 if baseline is not None else None
    hwm = _status_kib("VmHWM")
    if hwm is None:
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return hwm / 1024, (hwm - baseline) / 1024 if baseline is not None else None


def format_table(rows: Sequence[dict], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A GitHub-markdown table of ``rows`` restricted to ``columns`` (floats to 3 significant digits)."""

    def fmt(v):
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            if v != v:  # NaN
                return "n/a"
            return f"{v:.3g}" if abs(v) < 1e3 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers or columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_json(path: str | Path | None, payload: dict) -> None:
    """Write ``payload`` (plus the machine description) to ``path`` atomically."""
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), **payload}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
