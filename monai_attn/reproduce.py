"""Reproduce the papers' tables: ``monai-attn reproduce DATASET --root RAW ...``.

For one dataset, the runner

1. checks the raw download and writes the datalist once (the dataset's adapter, as ``monai-attn
   prepare``; the split is the paper's, seeded by ``--split-seed``), into ``OUT/datalist_<dataset>.json``;
2. runs every **cell** (network × seed × fold) as two real ``python -m monai.bundle run`` subprocesses
   of the dataset's bundle: ``train.json`` (or, with ``--gpus N > 1``, ``train.json`` +
   ``multi_gpu_train.json`` under ``python -m torch.distributed.run``, i.e. ``torchrun``), then
   ``train.json`` + ``evaluate.json`` on the paper's evaluation split, with ``OUT/runs/<cell>/`` as
   the bundle root;
3. reads each cell's ``eval/metrics.json`` and writes ``OUT/table.md`` and ``OUT/table.csv``: one row
   per network, mean ± standard deviation over its cells, in the paper's layout, with parameters and
   forward FLOPs, and the paper's own numbers beside ours when the run used the real dataset.

A cell is finished when ``done.json`` (written atomically after its evaluation) exists; a rerun skips
finished cells, evaluates cells that were trained but not evaluated (``trained.json``), resumes a
killed training from its newest checkpoint (``--resume True``) and retries failed cells. A failed
cell does not stop the others: it is reported in the table, in ``OUT/failures.json`` and at the end,
and the exit code is :data:`EXIT_FAILED`. ``OUT/events.jsonl`` logs every stage that ran.

The runner owns its children: each bundle command runs in its own process group and (Linux) dies with
the runner even if the runner is SIGKILLed; SIGTERM or SIGINT to the runner stops the running commands
(their whole process groups: DataLoader workers, torchrun ranks), writes the tables and exits with
:data:`EXIT_INTERRUPTED`; the stopped cell resumes on the next run. A cell is locked (``flock`` on
``runs/<cell>/.reproduce.lock``) while a runner works on it: a second runner skips it with a message.

See docs/reproducing.md.
"""
from __future__ import annotations

import contextlib
import csv
import ctypes
import fcntl
import io
import json
import logging
import math
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic
from .baselines import FOCUSNETPP_BASELINES
from .data import get_adapter, write_json_atomic
from .data.synthetic import SYNTHETIC_MARKER
from .errors import EXIT_DATA, EXIT_OK, EXIT_USAGE
from .metrics import REPORT_METRICS, read_report_json
from .networks import MISTAKES_PRESETS
from .papers import CONVENTIONS, NOT_IMPLEMENTED, PAPER_METRICS, PAPER_PARAMS_M, TABLES
from .workflows import latest_checkpoint

__all__ = [
    "Task",
    "TASKS",
    "Cell",
    "CellResult",
    "Plan",
    "PAPER_PARAMS_M",
    "PAPER_METRICS",
    "EXIT_OK",
    "EXIT_DATA",
    "EXIT_USAGE",
    "EXIT_FAILED",
    "BUNDLES_DIR",
    "mean_std",
    "format_mean_std",
    "parse_overrides",
    "parse_folds",
    "resolve_networks",
    "network_overrides",
    "bundle_command",
    "train_command",
    "evaluate_command",
    "cell_grid",
    "cell_stage",
    "network_cost",
    "detect_synthetic",
    "aggregate_rows",
    "write_tables",
    "run_cells",
    "reproduce",
    "run_from_args",
]

logger = logging.getLogger(__name__)

EXIT_FAILED, EXIT_INTERRUPTED = 3, 130  # besides the command line's EXIT_OK, EXIT_DATA, EXIT_USAGE (0, 1, 2)

#: the repository's bundles (``bundles/`` next to the package)
BUNDLES_DIR = Path(__file__).resolve().parents[1] / "bundles"

#: keys the runner sets itself on the bundle command line (``--override`` may not set them)
RESERVED_KEYS = frozenset({"bundle_root", "dataset_dir", "datalist", "fold", "seed", "network_name", "network_def",
                           "num_epochs", "resume", "overwrite", "eval_split", "ckpt_path", "device", "config_file",
                           "meta_file", "logging_file"})

#: PATM datasets: the standard per-case metrics (eval/metrics.json), then the same quantities under the official
#: PATM code's per-slice rules (eval/patm_metrics.json, monai_attn.metrics.patm_scores), which the paper's tables use
_PATM_METRICS = (("iou", "IoU", 3), ("hd95", "HD95 ({unit})", 2), ("fpr", "FP rate", 4), ("fnr", "FN rate", 3),
                 ("patm_iou", "PATM IoU", 4), ("patm_hd95", "PATM HD95 (px)", 2), ("patm_fp_rate", "PATM FP rate", 5),
                 ("patm_fn_rate", "PATM FN rate", 4))
_FOCUSNET_METRICS = (("precision", "precision", 3), ("recall", "recall", 3), ("dice", "Dice", 3),
                     ("iou", "Jaccard", 3))
_PATM_LABELS = {"unet": "UNet", "wunet": "WUnet", "aunet": "AUnet", "cscunet": "CSCUnet", "cbamunet": "CBAMUnet",
                "gcnunet": "GCNUnet", "d6unet": "D6Unet", "d9unet": "D9Unet", "fpa": "FPA", "rfna": "RFNA"}

#: The papers' numbers live in :mod:`monai_attn.papers` (every table, with notes); ``PAPER_PARAMS_M`` and
#: ``PAPER_METRICS`` are re-exported here for the runner and benchmarks/networks.py.
_PAPER_ROW = {name: row for name, (row, _, _) in FOCUSNETPP_BASELINES.items()}


@dataclass(frozen=True)
class Task:
    """One dataset of one paper, as the runner uses its bundle."""

    dataset: str
    paper: str  #: "patm" or "focusnetpp"
    title: str
    bundle: str
    eval_split: str  #: the paper's evaluation split (with folds: the held-out fold)
    folds: bool  #: cross-validation (a ``fold`` per cell) or one fixed split
    size_key: str  #: config key of the network's input size (FLOPs are counted at its default)
    hd95_unit: str
    default_networks: tuple[str, ...]
    real_cases: int  #: cases of the full real dataset the paper used
    default_checkpoint: str  #: "best" (model selected on a validation split) or "last" (see docs)
    split: str

    @property
    def bundle_dir(self) -> Path:
        return BUNDLES_DIR / self.bundle

    @property
    def metrics(self) -> tuple[tuple[str, str, int], ...]:
        spec = _PATM_METRICS if self.paper == "patm" else _FOCUSNET_METRICS
        return tuple((k, label.format(unit=self.hd95_unit), d) for k, label, d in spec)

    @property
    def paper_name(self) -> str:
        return ("Xu et al., Learning to Pay Attention to Mistakes, BMVC 2020" if self.paper == "patm"
                else "Kaul et al., FocusNet++, ISBI 2021")

    def label(self, network: str) -> str:
        if self.paper == "patm":
            return _PATM_LABELS.get(network, network)
        if network == "focusnetpp":
            return "FocusNet++ (lite)" if self.dataset == "dsb2018" else "FocusNet++"
        if network in FOCUSNETPP_BASELINES:
            row, family, _ = FOCUSNETPP_BASELINES[network]
            return f"{TABLES['focusnetpp_table1'].label(row)} (MONAI {family})"
        return f"{_PATM_LABELS.get(network, network)} (PATM backbone)"

    def paper_row(self, network: str) -> str:
        """The row of the paper's tables that ``network`` stands for."""
        return _PAPER_ROW.get(network, network) if self.paper == "focusnetpp" else network


_PATM_TABLE = ("unet", "wunet", "aunet", "cscunet", "cbamunet", "gcnunet", "fpa", "rfna")

#: dataset name -> :class:`Task`
TASKS: dict[str, Task] = {
    "brats2018": Task("brats2018", "patm", "PATM, BraTS 2018 HGG, enhancing tumour", "mistakes_brats2018",
                      "validation", True, "roi_size", "mm", _PATM_TABLE, 210, "last",
                      "5 case-wise folds of the HGG cases; each cell is evaluated on its held-out fold"),
    "isles2018": Task("isles2018", "patm", "PATM, ISLES 2018, ischaemic core", "mistakes_isles2018",
                      "test", False, "roi_size", "mm", _PATM_TABLE, 94, "best",
                      "0.7 / 0.1 / 0.2 case split; model selected on validation, evaluated on test"),
    "isic2018": Task("isic2018", "focusnetpp", "FocusNet++, ISIC 2018 Task 1, skin lesion", "focusnetpp_isic2018",
                     "test", False, "image_size", "px", ("focusnetpp",), 2594, "best",
                     "1815 / 259 / 520 image split; model selected on validation, evaluated on test"),
    "dsb2018": Task("dsb2018", "focusnetpp", "FocusNet++ (lite), DSB 2018 stage 1, nuclei", "focusnetpp_dsb2018",
                    "validation", False, "image_size", "px", ("focusnetpp",), 670, "best",
                    "540 / 130 image split (no test part); evaluated on the 130"),
}


@dataclass(frozen=True)
class Cell:
    """One training + evaluation: a network, a seed and (cross-validation) a fold; ``fold`` -1: none."""

    network: str
    seed: int
    fold: int = -1

    @property
    def key(self) -> str:
        return f"{self.network}/seed{self.seed}" + (f"/fold{self.fold}" if self.fold >= 0 else "")


@dataclass
class CellResult:
    cell: Cell
    status: str  #: "done" (ran now), "skipped" (finished before), "failed", "missing" (not run)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    error: str = ""
    log: str = ""


@dataclass
class Plan:
    """Everything a run needs; built by :func:`reproduce`."""

    task: Task
    root: Path
    out: Path
    networks: list[str]
    seeds: list[int]
    folds: list[int]
    epochs: int | None = None
    device: str | None = None
    gpus: int = 1
    overrides: dict[str, str] = field(default_factory=dict)
    checkpoint: str = "best"
    split_seed: int = 0
    timeout: float | None = None
    python: str = sys.executable

    @property
    def datalist(self) -> Path:
        return self.out / f"datalist_{self.task.dataset}.json"

    def cell_dir(self, cell: Cell) -> Path:
        return self.out / "runs" / cell.key

    def cells(self) -> list[Cell]:
        return cell_grid(self.networks, self.seeds, self.folds)

    def settings(self) -> dict:
        """What makes two runs' cells comparable (stored in ``OUT/run.json``)."""
        return {"dataset": self.task.dataset, "root": str(self.root), "epochs": self.epochs,
                "overrides": dict(sorted(self.overrides.items())), "checkpoint": self.checkpoint,
                "split_seed": self.split_seed}


# ------------------------------------------------------------------------------------ aggregation
def mean_std(values: Iterable[float | None]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (n − 1) and count of ``values``, leaving out None and NaN.

    One value gives a NaN standard deviation; none gives ``(nan, nan, 0)``; an infinite value makes the
    mean infinite (and the deviation NaN) rather than being dropped.
    """
    x = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not x:
        return math.nan, math.nan, 0
    if any(math.isinf(v) for v in x):
        return math.fsum(x) / len(x), math.nan, len(x)
    mean = math.fsum(x) / len(x)
    return mean, (statistics.stdev(x) if len(x) > 1 else math.nan), len(x)


def format_mean_std(mean: float, std: float, n: int, digits: int = 3) -> str:
    """``"0.812 ± 0.031"``; just the mean for one value; ``"n/a"`` for none."""
    if n == 0 or math.isnan(mean):
        return "n/a"
    if math.isinf(mean):
        return "inf"
    if n == 1 or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


# ------------------------------------------------------------------------------------ arguments
def parse_overrides(items: Sequence[str] | None) -> dict[str, str]:
    """``["roi_size=[64,64]", "num_workers=0"]`` -> ``{"roi_size": "[64,64]", "num_workers": "0"}``.

    Values are passed to ``monai.bundle run`` unchanged (it parses them as Python literals). Keys that the
    runner sets itself (:data:`RESERVED_KEYS`) are refused.
    """
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not re.fullmatch(r"[A-Za-z_][\w#]*", key):
            raise ValueError(f"--override {item!r}: expected KEY=VALUE, e.g. roi_size=[96,96]")
        if key in RESERVED_KEYS:
            raise ValueError(f"--override {key}: set by the runner; use the matching option instead "
                             "(--networks, --seeds, --folds, --epochs, --device, --checkpoint)")
        out[key] = value
    return out


def parse_folds(task: Task, text: str | None, n_folds: int | None) -> list[int]:
    """Folds to run: ``"all"``/None = every fold of the datalist, or ``"0,2"``; ``[-1]`` without folds."""
    if not task.folds:
        if text not in (None, "", "all"):
            raise ValueError(f"{task.dataset} has one fixed split (no folds); leave out --folds")
        return [-1]
    n = n_folds or 5
    if text in (None, "", "all"):
        return list(range(n))
    try:
        folds = sorted({int(f) for f in text.split(",") if f.strip()})
    except ValueError as e:
        raise ValueError(f"--folds {text!r}: expected 'all' or comma-separated fold numbers") from e
    bad = [f for f in folds if not 0 <= f < n]
    if bad or not folds:
        raise ValueError(f"--folds {text!r}: folds must be in 0..{n - 1}")
    return folds


def resolve_networks(task: Task, text: str | Sequence[str] | None) -> list[str]:
    """Network names for ``task`` (default: the paper's table), checked before anything runs.

    PATM datasets: names of :data:`monai_attn.networks.MISTAKES_PRESETS`. FocusNet++ datasets:
    ``focusnetpp`` (the bundle's network), the paper's comparison rows MONAI has, sized to the paper's parameter
    counts (:data:`monai_attn.baselines.FOCUSNETPP_BASELINES`: ``monai_unet``, ``monai_wide_unet``,
    ``monai_attention_unet``, ``monai_unetpp``), or a ``MISTAKES_PRESETS`` name as a baseline.
    """
    names = text.split(",") if isinstance(text, str) else list(text or task.default_networks)
    names = [n.strip().lower() for n in names if n.strip()]
    valid = list(MISTAKES_PRESETS) if task.paper == "patm" else ["focusnetpp", *FOCUSNETPP_BASELINES, *MISTAKES_PRESETS]
    bad = [n for n in names if n not in valid]
    if bad:
        missing = [NOT_IMPLEMENTED[n] for n in bad if n in NOT_IMPLEMENTED]
        hint = f" ({', '.join(missing)}: not implemented in this package)" if missing else ""
        raise ValueError(f"unknown network(s) {bad} for {task.dataset}{hint}; valid: {', '.join(valid)}")
    unsized = [n for n in names if n in FOCUSNETPP_BASELINES and task.dataset not in FOCUSNETPP_BASELINES[n][2]]
    if unsized:
        raise ValueError(f"{task.dataset}: FocusNet++ has no row (no parameter count) for {unsized}")
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"--networks must name distinct networks, got {names}")
    return names


def cell_grid(networks: Sequence[str], seeds: Sequence[int], folds: Sequence[int]) -> list[Cell]:
    """Every (network, seed, fold), network-major (a network's cells run one after the other)."""
    return [Cell(n, s, f) for n in networks for s in seeds for f in folds]


# ------------------------------------------------------------------------------------ commands
def network_overrides(task: Task, network: str) -> dict[str, str]:
    """Bundle overrides that select ``network``."""
    if task.paper == "patm":
        return {"network_name": network}
    if network == "focusnetpp":
        return {}
    if network in FOCUSNETPP_BASELINES:
        return {"network_def": f"$monai_attn.baselines.focusnetpp_baseline({network!r}, {task.dataset!r}, "
                               "in_channels=@in_channels, out_channels=1)"}
    return {"network_def": f"$monai_attn.networks.MistakesUNet.preset({network!r}, spatial_dims=2, "
                           "in_channels=@in_channels, out_channels=1)"}


def _arg(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"  # fire parses Python literals: "false" would be a (truthy) string
    return str(value)


def bundle_command(bundle_dir: Path, configs: Sequence[str], bundle_root: Path, overrides: dict[str, Any],
                   nproc_per_node: int = 1, python: str = sys.executable) -> list[str]:
    """The ``python -m monai.bundle run`` command line (``configs`` merged left to right).

    With ``nproc_per_node > 1`` it is launched by ``python -m torch.distributed.run --standalone
    --nproc_per_node=N -m monai.bundle run ...`` (``torchrun`` with the same interpreter).
    """
    conf = Path(bundle_dir) / "configs"
    files = [str(conf / c) for c in configs]
    config_arg = files[0] if len(files) == 1 else "[" + ",".join(json.dumps(f) for f in files) + "]"
    if nproc_per_node > 1:
        launcher = [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
                    "-m", "monai.bundle"]
    else:
        launcher = [python, "-m", "monai.bundle"]
    cmd = launcher + ["run", "--config_file", config_arg, "--meta_file", str(conf / "metadata.json"),
                      "--logging_file", str(conf / "logging.conf"), "--bundle_root", str(bundle_root)]
    for key, value in overrides.items():
        cmd += [f"--{key}", _arg(value)]
    return cmd


def _device_overrides(device: str | None) -> dict[str, Any]:
    if not device:
        return {}  # the bundle's default: cuda:0 when available, else cpu
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise ValueError(f"--device {device!r}: expected cpu, cuda, cuda:N or mps")
    out: dict[str, Any] = {"device": f"$torch.device({json.dumps(device)})"}
    if not device.startswith("cuda"):
        out["amp"] = False  # the bundles turn AMP on whenever CUDA exists
    return out


def _cell_overrides(plan: Plan, cell: Cell) -> dict[str, Any]:
    out: dict[str, Any] = {"datalist": str(plan.datalist.resolve()), "seed": cell.seed, "fold": cell.fold}
    out.update(network_overrides(plan.task, cell.network))
    return out


def train_command(plan: Plan, cell: Cell, resume: bool = False) -> list[str]:
    """The cell's training command (``train.json``; with ``plan.gpus > 1`` through torchrun and
    ``multi_gpu_train.json``, which sets the device of each rank itself)."""
    overrides = _cell_overrides(plan, cell)
    if plan.epochs is not None:
        overrides["num_epochs"] = plan.epochs
    if resume:
        overrides["resume"] = True
    overrides.update(plan.overrides)
    configs = ["train.json"]
    if plan.gpus > 1:
        configs.append("multi_gpu_train.json")
    else:
        overrides.update(_device_overrides(plan.device))
    return bundle_command(plan.task.bundle_dir, configs, plan.cell_dir(cell).resolve(), overrides,
                          nproc_per_node=plan.gpus, python=plan.python)


def evaluation_checkpoint(plan: Plan, cell: Cell) -> Path | None:
    """The checkpoint to evaluate: None (the bundle's ``models/model.pt``, best on validation) or, with
    ``checkpoint="last"``, the newest ``models/checkpoint*.pt`` (the end of training)."""
    if plan.checkpoint != "last":
        return None
    found = latest_checkpoint(str(plan.cell_dir(cell).resolve() / "models"))
    if found:
        return Path(found)
    epochs = plan.epochs if plan.epochs is not None else "<num_epochs>"
    return plan.cell_dir(cell).resolve() / "models" / f"checkpoint_checkpoint_epoch={epochs}.pt"


def evaluate_command(plan: Plan, cell: Cell) -> list[str]:
    """The cell's evaluation command (``train.json`` + ``evaluate.json`` on the paper's split)."""
    overrides = {**_cell_overrides(plan, cell), "eval_split": plan.task.eval_split}
    ckpt = evaluation_checkpoint(plan, cell)
    if ckpt is not None:
        overrides["ckpt_path"] = str(ckpt)
    overrides.update(plan.overrides)
    overrides.update(_device_overrides(plan.device))
    return bundle_command(plan.task.bundle_dir, ["train.json", "evaluate.json"], plan.cell_dir(cell).resolve(),
                          overrides, python=plan.python)


# ------------------------------------------------------------------------------------ cells
def cell_stage(cell_dir: Path) -> str:
    """What a cell needs next: ``"done"``, ``"evaluate"`` (trained), ``"resume"`` (a killed training left a
    checkpoint) or ``"train"``."""
    cell_dir = Path(cell_dir)
    if (cell_dir / "done.json").is_file():
        return "done"
    if (cell_dir / "trained.json").is_file():
        return "evaluate"
    if latest_checkpoint(str(cell_dir / "models")):
        return "resume"
    return "train"


_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)(?::|$)")
# MONAI's config parser wraps the real error in these; the cause is the exception before them
_WRAPPERS = re.compile(r"^RuntimeError: Failed to (?:evaluate|instantiate)|^RuntimeError: Component to instantiate")


def _error_summary(log: Path, limit: int = 300) -> str:
    """Why a bundle command failed: its one-line ``error: <file or key>: <problem>; <what to do>`` (the bundles end
    with it for every foreseeable mistake), else the last exception in its log that is not a MONAI config
    wrapper (``Failed to evaluate ConfigExpression``), else the last exception or the last line."""
    try:
        lines = [ln.rstrip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    one_line = [ln for ln in lines if ln.startswith("error: ")]
    errors = [ln for ln in lines if _ERROR_LINE.match(ln)]
    causes = [ln for ln in errors if not _WRAPPERS.match(ln)]
    found = (one_line or causes or errors or lines or [""])[-1]
    return found.strip()[:limit]


# ------------------------------------------------------------------------------------ child processes
#: a training or evaluation that the runner started, until it ended (stopped on SIGTERM/SIGINT to the runner)
_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()
#: set when the runner was told to stop: running children get SIGTERM, no new cell starts
_STOP = threading.Event()
#: seconds a stopped child's process group has between SIGTERM and SIGKILL
STOP_GRACE_SECONDS = 10.0
#: the lock file in a cell's folder, held (``flock``) by the runner working on that cell
CELL_LOCK = ".reproduce.lock"


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return prctl


_PRCTL = _load_prctl()  # loaded before any fork: the child only calls it
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Callable[[], None]:
    """``preexec_fn`` of a child: on Linux, SIGTERM when the runner (``parent``) dies, even by SIGKILL."""

    def setup() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
            if os.getppid() != parent:  # the runner died before prctl took effect
                os.kill(os.getpid(), signal.SIGTERM)

    return setup


def _start_child(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (session), dying with the runner; registered in ``_CHILDREN``
    so that a signal to the runner reaches it and all of its processes (DataLoader workers, torchrun ranks)."""
    with _CHILDREN_LOCK:
        if _STOP.is_set():
            raise KeyboardInterrupt("stopping")
        proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent(os.getpid()), **kwargs)
        _CHILDREN.add(proc)
    return proc


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop_child(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> int:
    """Stop ``proc``'s process group: SIGTERM, then SIGKILL after ``grace`` seconds; returns its exit code."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)  # what is left of the group (e.g. workers that ignored SIGTERM)
    return proc.wait()


def _wait_child(proc: subprocess.Popen, timeout: float | None) -> int:
    """Wait for ``proc``; raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds. Once the runner is
    told to stop, the child gets ``STOP_GRACE_SECONDS`` to end after its SIGTERM, then SIGKILL."""
    start, stopped_at = time.monotonic(), None
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            if timeout is not None and now - start > timeout:
                raise subprocess.TimeoutExpired(proc.args, timeout) from None
            if _STOP.is_set():
                stopped_at = stopped_at or now
                if now - stopped_at > STOP_GRACE_SECONDS:
                    return _stop_child(proc, grace=0)


def _signal_children(sig: int) -> int:
    """Send ``sig`` to the process group of every running child; returns how many."""
    with _CHILDREN_LOCK:
        children = [p for p in _CHILDREN if p.poll() is None]
    for proc in children:
        _signal_group(proc, sig)
    return len(children)


@contextlib.contextmanager
def _stop_children_on_signals():
    """While the cells run: SIGTERM or SIGINT to the runner stops every training/evaluation it started (their
    whole process groups) and raises ``KeyboardInterrupt`` in the runner (which then writes its tables)."""
    _STOP.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        if _STOP.is_set():
            return  # already stopping
        _STOP.set()
        n = _signal_children(signal.SIGTERM)
        logger.warning("%s: stopping %d running command(s)", signal.Signals(signum).name, n)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _lock_cell(cell_dir: Path) -> int | str:
    """Lock ``cell_dir`` for this runner (``flock`` on its ``.reproduce.lock``): the open file descriptor
    (close it to release), or, when another runner holds the lock, a message naming it."""
    path = cell_dir / CELL_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        return f"another runner is working on this cell ({holder}; lock {path}); rerun when it has finished"
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
    return fd


class _Runner:
    """Runs cells (possibly several at a time), logging each stage to ``OUT/events.jsonl``."""

    def __init__(self, plan: Plan, echo: Callable[[str], None]):
        self.plan = plan
        self._echo = echo
        self.lock = threading.Lock()

    def echo(self, text: str) -> None:
        with self.lock:
            self._echo(text)

    def event(self, cell: Cell, stage: str, status: str, **extra: Any) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "cell": cell.key, "stage": stage, "status": status,
                  **extra}
        with self.lock, (self.plan.out / "events.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")

    def command(self, cmd: list[str], log: Path) -> tuple[int, float]:
        """Run ``cmd`` with its output appended to ``log``; returns (exit code, seconds)."""
        start = time.perf_counter()
        with log.open("a") as f:
            f.write(f"\n$ {shlex.join(cmd)}\n")
            f.flush()
            proc = _start_child(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=log.parent,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
            try:
                code = _wait_child(proc, self.plan.timeout)
            except subprocess.TimeoutExpired:
                _stop_child(proc)
                f.write(f"\nTimeoutError: killed after {self.plan.timeout} s (--timeout)\n")
                code = 124
            finally:
                if proc.poll() is None:  # interrupted here (SIGINT/SIGTERM to the runner): stop its group too
                    _stop_child(proc)
                with _CHILDREN_LOCK:
                    _CHILDREN.discard(proc)
        return code, time.perf_counter() - start

    def fail(self, cell: Cell, stage: str, code: int, log: Path, seconds: dict) -> CellResult:
        if _STOP.is_set():  # stopped by a signal to the runner: not a failure, the next run continues it
            self.event(cell, stage, "interrupted", returncode=code)
            return CellResult(cell, "missing", seconds=seconds, error="interrupted")
        error = _error_summary(log) or f"exit code {code}"
        write_json_atomic({"cell": cell.key, "stage": stage, "returncode": code, "error": error, "log": str(log),
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, log.parent / "failed.json")
        self.event(cell, stage, "failed", returncode=code)
        return CellResult(cell, "failed", seconds=seconds, error=f"{stage} exited {code}: {error}", log=str(log))

    def run(self, cell: Cell, index: int, total: int) -> CellResult:
        plan, d = self.plan, self.plan.cell_dir(cell)
        tag = f"[{index}/{total}] {cell.key}"
        stage = cell_stage(d)
        if stage == "done":
            self.echo(f"{tag}: finished before, skipped")
            self.event(cell, "all", "skipped")
            return _result_from_disk(plan, cell)
        if _STOP.is_set():
            return CellResult(cell, "missing", error="interrupted")
        d.mkdir(parents=True, exist_ok=True)
        lock = _lock_cell(d)
        if isinstance(lock, str):  # a second runner never works on the same cell at once
            self.echo(f"{tag}: skipped: {lock}")
            self.event(cell, "all", "busy")
            return CellResult(cell, "missing", error=f"busy: {lock}")
        try:
            return self._run_locked(cell, tag, d)
        except KeyboardInterrupt:  # SIGINT/SIGTERM to the runner: its command was stopped
            self.event(cell, "all", "interrupted")
            raise
        finally:
            os.close(lock)

    def _run_locked(self, cell: Cell, tag: str, d: Path) -> CellResult:
        plan = self.plan
        stage = cell_stage(d)  # again: another runner may have worked on it until we got the lock
        if stage == "done":
            self.echo(f"{tag}: finished before, skipped")
            self.event(cell, "all", "skipped")
            return _result_from_disk(plan, cell)
        (d / "failed.json").unlink(missing_ok=True)
        seconds: dict[str, float] = {}
        if stage in ("train", "resume"):
            self.echo(f"{tag}: training{' (resuming from its last checkpoint)' if stage == 'resume' else ''} ...")
            log = d / "train.log"
            cmd = train_command(plan, cell, resume=stage == "resume")
            if stage == "train" and (d / "models").is_dir() and any((d / "models").glob("*.pt")):
                # a first epoch killed before its checkpoint left a model.pt: the cell is this runner's own and
                # not trained, so the bundle may move it aside (models/previous-<time>/) instead of refusing
                cmd += ["--overwrite", "True"]
            code, seconds["train"] = self.command(cmd, log)
            if code != 0:
                self.echo(f"{tag}: training FAILED after {seconds['train']:.1f} s (log: {log})")
                return self.fail(cell, "train", code, log, seconds)
            write_json_atomic({"cell": cell.key, "seconds": seconds["train"], "resumed": stage == "resume",
                               "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, d / "trained.json")
            self.event(cell, "train", "done", seconds=round(seconds["train"], 2))
        else:
            seconds["train"] = float(json.loads((d / "trained.json").read_text()).get("seconds", math.nan))
        self.echo(f"{tag}: evaluating on {plan.task.eval_split}{' fold' if cell.fold >= 0 else ''} ...")
        for stale in ("metrics.json", "metrics.csv"):
            (d / "eval" / stale).unlink(missing_ok=True)
        log = d / "evaluate.log"
        code, seconds["evaluate"] = self.command(evaluate_command(plan, cell), log)
        report = d / "eval" / "metrics.json"
        if code == 0 and not report.is_file():
            with log.open("a") as f:
                f.write(f"\nFileNotFoundError: evaluation wrote no {report}\n")
            code = 1
        if code != 0:
            self.echo(f"{tag}: evaluation FAILED after {seconds['evaluate']:.1f} s (log: {log})")
            return self.fail(cell, "evaluate", code, log, seconds)
        metrics, cases = _cell_metrics(report)
        write_json_atomic({"cell": cell.key, "network": cell.network, "seed": cell.seed, "fold": cell.fold,
                           "eval_split": plan.task.eval_split, "cases": cases, "metrics": metrics,
                           "seconds": seconds, "settings": plan.settings(),
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, d / "done.json")
        self.event(cell, "evaluate", "done", seconds=round(seconds["evaluate"], 2))
        shown = ", ".join(f"{label} {metrics.get(k, math.nan):.{dg}f}" for k, label, dg in plan.task.metrics)
        self.echo(f"{tag}: done in {seconds['train'] + seconds['evaluate']:.1f} s ({cases} cases: {shown})")
        return CellResult(cell, "done", metrics, seconds)


def _cell_metrics(report: Path) -> tuple[dict[str, float], int]:
    """A cell's means over its evaluation cases, from ``eval/metrics.json``, and PATM's per-slice values from
    ``eval/patm_metrics.json`` when the bundle wrote it (keys ``patm_iou``, ``patm_hd95``, ...)."""
    summary = read_report_json(report)["summary"]
    entry = summary.get("all") or summary.get("class_0") or next(iter(summary.values()))
    metrics = {m: float(entry[m]["mean"]) for m in REPORT_METRICS if m in entry}
    patm = report.with_name("patm_metrics.json")
    if patm.is_file():
        values = json.loads(patm.read_text())["summary"]
        metrics.update({f"patm_{k}": float(values[k]) for k in ("iou", "hd95", "fp_rate", "fn_rate") if k in values})
    return metrics, int(entry.get("cases", 0))


def run_cells(plan: Plan, cells: Sequence[Cell], jobs: int = 1,
              echo: Callable[[str], None] = print) -> list[CellResult]:
    """Run ``cells`` (``jobs`` at a time); every cell ends done, skipped or failed."""
    runner = _Runner(plan, echo)
    total = len(cells)
    if jobs <= 1:
        return [runner.run(c, i + 1, total) for i, c in enumerate(cells)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(runner.run, c, i + 1, total) for i, c in enumerate(cells)]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


# ------------------------------------------------------------------------------------ network cost
def network_cost(task: Task, network: str, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """Parameters and forward FLOPs per image of the network exactly as the bundle builds it.

    ``network_def`` is instantiated from the bundle's ``train.json`` (with the network's and the user's
    overrides) on the meta device; FLOPs are counted at the bundle's default input size (the paper's task
    size, e.g. 4×160×160 for BraTS), whatever ``roi_size`` the run used.
    """
    import torch
    from monai.bundle import ConfigParser

    from .networks.utils import count_flops
    from .overrides import literal_value

    updates: dict[str, Any] = {key: literal_value(value) for key, value in (overrides or {}).items()}
    updates.update(network_overrides(task, network))

    def parser() -> ConfigParser:
        p = ConfigParser()
        p.read_config(str(task.bundle_dir / "configs" / "train.json"))
        p.update(updates)
        p.get_parsed_content("imports")
        return p

    config = parser()
    defaults = ConfigParser()
    defaults.read_config(str(task.bundle_dir / "configs" / "train.json"))
    size = [int(s) for s in defaults.get_parsed_content(task.size_key)]  # the task's size, not the run's
    in_channels = int(config.get_parsed_content("in_channels"))
    try:
        with torch.device("meta"):
            net = config.get_parsed_content("network_def", instantiate=True)
    except Exception:  # noqa: BLE001 - a module that cannot be built on meta: build it on the CPU
        net = parser().get_parsed_content("network_def", instantiate=True)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    flops = count_flops(net, torch.zeros(1, in_channels, *size, device="meta"))
    return {"params": int(params), "flops": int(flops), "input": f"{in_channels}×" + "×".join(map(str, size))}


# ------------------------------------------------------------------------------------ real or synthetic


def detect_synthetic(task: Task, datalist: dict, root: Path) -> tuple[bool, str]:
    """Whether the run can be compared with the paper: ``(synthetic_or_subset, reason)``.

    A cohort counts as synthetic when a ``.monai_attn_synthetic`` marker lies in its root or the folder
    above, when its case names are those ``monai-attn synth`` writes (BraTS ``Brats18_SYN_*``; ISIC's
    licence note), or when it does not have the real dataset's number of cases (a subset is not the
    paper's data either). Override with ``--synthetic`` / ``--real``.
    """
    root = Path(root)
    for folder in (root, root.parent):
        if (folder / SYNTHETIC_MARKER).exists():
            return True, f"marker {folder / SYNTHETIC_MARKER}"
    ids = [it.get("id", "") for part in ("training", "validation", "test") for it in datalist.get(part, [])]
    if task.dataset == "brats2018" and any("_SYN_" in i for i in ids):
        return True, "case names Brats18_SYN_* (written by monai-attn synth)"
    if task.dataset == "isic2018":
        for lic in root.glob("*/LICENSE.txt"):
            if "Synthetic data generated by monai_attn" in lic.read_text(errors="replace"):
                return True, f"{lic} says the data is synthetic"
    if len(ids) != task.real_cases:
        return True, f"{len(ids)} cases, not the real dataset's {task.real_cases}"
    return False, f"{len(ids)} cases, the real dataset's size"


# ------------------------------------------------------------------------------------ tables
def aggregate_rows(plan: Plan, results: Sequence[CellResult], costs: dict[str, dict] | None = None,
                   real: bool = False) -> list[dict[str, Any]]:
    """One row per network: cells done/failed, mean/std/n per metric over its finished cells, cost, paper."""
    task = plan.task
    rows = []
    for network in plan.networks:
        mine = [r for r in results if r.cell.network == network]
        ok = [r for r in mine if r.status in ("done", "skipped")]
        row: dict[str, Any] = {"network": network, "label": task.label(network), "cells_total": len(mine),
                               "cells_done": len(ok), "cells_failed": sum(r.status == "failed" for r in mine)}
        for key, _, _ in task.metrics:
            row[f"{key}_mean"], row[f"{key}_std"], row[f"{key}_n"] = mean_std(r.metrics.get(key) for r in ok)
        row["train_seconds_mean"] = mean_std(r.seconds.get("train") for r in ok)[0]
        row["evaluate_seconds_mean"] = mean_std(r.seconds.get("evaluate") for r in ok)[0]
        cost = (costs or {}).get(network) or {}
        row["params"] = cost.get("params")
        row["gflop_per_image"] = cost["flops"] / 1e9 if cost.get("flops") is not None else None
        row["input"] = cost.get("input")
        if real:
            paper = PAPER_PARAMS_M.get(task.paper if task.paper == "patm" else task.dataset, {})
            row["paper_params_m"] = paper.get(task.paper_row(network))
            for key, _, _ in task.metrics:
                value = PAPER_METRICS.get(task.dataset, {}).get(task.paper_row(network), {}).get(key)
                row[f"paper_{key}_mean"], row[f"paper_{key}_std"] = value if value else (None, None)
        rows.append(row)
    return rows


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _paper_value(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _cells_text(row: dict) -> str:
    text = f"{row['cells_done']}/{row['cells_total']}"
    if row["cells_failed"]:
        text += f", {row['cells_failed']} failed"
    return text


def write_tables(plan: Plan, rows: Sequence[dict], results: Sequence[CellResult], real: bool,
                 data_note: str) -> tuple[Path, Path]:
    """Write ``OUT/table.md`` and ``OUT/table.csv`` (atomically) in the paper's layout."""
    task = plan.task
    metric_cols = [(k, label, d) for k, label, d in task.metrics if any(r.get(f"paper_{k}_mean") for r in rows)]
    size = next((r["input"] for r in rows if r.get("input")), "task input")
    header = ["network", *[label for _, label, _ in task.metrics], "params (M)", f"GFLOP/image ({size})"]
    if real:
        header += ["paper: params (M)", *[f"paper: {label}" for _, label, _ in metric_cols]]
    header += ["cells", "s/cell (train + eval)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        if r["cells_done"] == 0:
            status = "failed" if r["cells_failed"] else "not run"
            values = [status] * len(task.metrics)
        else:
            values = [format_mean_std(r[f"{k}_mean"], r[f"{k}_std"], r[f"{k}_n"], d) for k, _, d in task.metrics]
        params = _fmt(r["params"] / 1e6 if r.get("params") is not None else None, 2)
        cells = [r["label"], *values, params, _fmt(r.get("gflop_per_image"), 2)]
        if real:
            cells.append(_fmt(r.get("paper_params_m"), 2))
            cells += [_paper_value(r[f"paper_{k}_mean"], r[f"paper_{k}_std"], d) for k, _, d in metric_cols]
        secs = r["train_seconds_mean"] + r["evaluate_seconds_mean"]
        cells += [_cells_text(r), _fmt(secs, 0)]
        lines.append("| " + " | ".join(cells) + " |")
    n_cells = len(plan.networks) * len(plan.seeds) * len(plan.folds)
    folds = f" × {len(plan.folds)} folds ({', '.join(map(str, plan.folds))})" if task.folds else ""
    epochs = plan.epochs if plan.epochs is not None else "the bundle's default"
    overrides = ", ".join(f"`{k}={v}`" for k, v in plan.overrides.items()) or "none"
    parts = [
        f"# Reproduction: {task.title}",
        "",
        f"- paper: {task.paper_name}; bundle `{task.bundle}`",
        f"- data: `{plan.root}` — **{'real dataset' if real else 'synthetic or partial cohort'}** ({data_note})",
        f"- split: {task.split} (split seed {plan.split_seed})",
        f"- cells: {len(plan.networks)} networks × {len(plan.seeds)} seeds ({', '.join(map(str, plan.seeds))})"
        f"{folds} = {n_cells}; epochs: {epochs}; checkpoint evaluated: {plan.checkpoint}; "
        f"device: {plan.device or 'bundle default'}{f', {plan.gpus} GPUs (torchrun)' if plan.gpus > 1 else ''}",
        f"- bundle overrides: {overrides}",
        "- values: mean ± sample standard deviation (n − 1) over the cells (seeds × folds) of each cell's mean "
        "over its evaluation cases; params and FLOPs of the network as the bundle builds it, FLOPs per image "
        "at the task's input size (forward, convolutions and matrix products, 2 per multiply-add)",
        "",
        *lines,
        "",
    ]
    tables = [t for t in TABLES.values() if t.dataset == task.dataset]
    if task.paper == "patm":
        parts.append("Conventions: IoU, HD95, FP and FN rate are the standard per-case metrics (mean over cases); "
                     f"the PATM columns follow the official PATM code ({CONVENTIONS['patm']}). Only the PATM "
                     "columns are comparable with the paper's numbers.")
    if real:
        parts.append(f"Paper columns: {task.paper_name}, "
                     + ", ".join(f"Table {t.number}" for t in tables)
                     + " (monai_attn.papers; fractions, i.e. the paper's percentages / 100; a paper value shown as "
                     "'—' is not printed, e.g. PATM's FP rates are given only as '< 1e-2 %').")
        if task.paper == "focusnetpp":
            missing = ", ".join(NOT_IMPLEMENTED.values())
            parts.append(f"The paper's {missing} rows are not implemented in this package. Its metrics convention: "
                         f"{CONVENTIONS['focusnetpp']}.")
    else:
        parts.append("The papers' numbers are not shown: this cohort is not the paper's dataset, so they are not "
                     "comparable (pass `--real` to show them anyway).")
    failed = [r for r in results if r.status == "failed"]
    missing = [r for r in results if r.status == "missing"]
    if failed:
        parts += ["", f"## Failed cells ({len(failed)})", ""]
        parts += [f"- `{r.cell.key}`: {r.error}" + (f" (log: `{os.path.relpath(r.log, plan.out)}`)" if r.log else "")
                  for r in failed]
    if missing:
        parts += ["", f"## Cells not run yet ({len(missing)})", "", ", ".join(f"`{r.cell.key}`" for r in missing)]
    md = plan.out / "table.md"
    write_text_atomic("\n".join(parts) + "\n", md)

    csv_path = plan.out / "table.csv"
    fields = ["network", "label", "cells_total", "cells_done", "cells_failed"]
    for k, _, _ in task.metrics:
        fields += [f"{k}_mean", f"{k}_std", f"{k}_n"]
    fields += ["params", "gflop_per_image", "input", "train_seconds_mean", "evaluate_seconds_mean"]
    if real:
        fields += ["paper_params_m"] + [f"paper_{k}_{s}" for k, _, _ in task.metrics for s in ("mean", "std")]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None or (isinstance(r.get(k), float) and math.isnan(r[k]))
                             else r[k]) for k in fields})
    write_text_atomic(buf.getvalue(), csv_path)
    return md, csv_path


# ------------------------------------------------------------------------------------ the run
def _check_settings(plan: Plan) -> None:
    """Refuse to mix cells of runs with different settings in one output folder."""
    path = plan.out / "run.json"
    if path.is_file():
        before = json.loads(path.read_text()).get("settings", {})
        now = plan.settings()
        diff = {k: (before.get(k), now[k]) for k in now if before.get(k) != now[k]}
        if diff:
            text = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"{plan.out} holds cells of a run with other settings ({text}); use another --out, "
                             "or delete the folder to start over")


def _prepare(plan: Plan, workers: int, skip_bad: bool, echo: Callable[[str], None]) -> dict | None:
    """The datalist (written once, reused by reruns); None when the integrity check failed."""
    if plan.datalist.is_file():
        echo(f"datalist: {plan.datalist} (reused)")
        return json.loads(plan.datalist.read_text())
    echo(f"checking {plan.task.dataset} under {plan.root} and writing {plan.datalist} ...")
    data, report, skipped = get_adapter(plan.task.dataset, plan.root).prepare(
        plan.datalist, seed=plan.split_seed, skip_bad=skip_bad, workers=workers)
    if data is None:
        echo(report.format())
        echo("FAILED: the data did not pass the integrity check (fix it, or pass --skip-bad)")
        return None
    if skipped:
        echo(f"skipped {len(skipped)} bad cases: {', '.join(skipped)}")
    return data


def reproduce(dataset: str, root: str | os.PathLike, networks: str | Sequence[str] | None = None, seeds: int = 3,
              folds: str | None = None, epochs: int | None = None, out: str | os.PathLike | None = None,
              device: str | None = None, gpus: int = 1, jobs: int = 1, overrides: Sequence[str] | None = None,
              checkpoint: str | None = None, split_seed: int = 0, synthetic: bool | None = None,
              skip_bad: bool = False, workers: int = 0, timeout: float | None = None, dry_run: bool = False,
              echo: Callable[[str], None] = print) -> int:
    """Run (or continue) a reproduction and write its tables; returns the exit code (see the module doc).

    ``synthetic``: None detects it (:func:`detect_synthetic`), True/False forces it.
    """
    if dataset not in TASKS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(TASKS)}")
    task = TASKS[dataset]
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if gpus < 1 or jobs < 1:
        raise ValueError("--gpus and --jobs must be >= 1")
    if gpus > 1 and jobs > 1:
        raise ValueError("--gpus N > 1 runs one cell at a time on all GPUs; leave out --jobs")
    if checkpoint not in (None, "best", "last"):
        raise ValueError(f"--checkpoint must be 'best' or 'last', got {checkpoint!r}")
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise FileNotFoundError(f"{root_path}: dataset root does not exist")
    out_path = Path(out or f"reproduce_{dataset}").expanduser().resolve()
    _device_overrides(device)  # validate early
    plan = Plan(task, root_path, out_path, resolve_networks(task, networks), list(range(seeds)), [-1], epochs,
                device, gpus, parse_overrides(overrides), checkpoint or task.default_checkpoint, split_seed, timeout)
    n_folds = None
    if task.folds and plan.datalist.is_file():
        n_folds = json.loads(plan.datalist.read_text()).get("numFolds")
    plan.folds = parse_folds(task, folds, n_folds)

    if dry_run:
        return _dry_run(plan, echo)
    _check_settings(plan)
    plan.out.mkdir(parents=True, exist_ok=True)
    data = _prepare(plan, workers, skip_bad, echo)
    if data is None:
        return EXIT_DATA
    if task.folds:
        plan.folds = parse_folds(task, folds, data.get("numFolds"))
    write_json_atomic({"settings": plan.settings(), "command": shlex.join(sys.argv),
                       "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, plan.out / "run.json")
    is_synthetic, reason = detect_synthetic(task, data, plan.root)
    if synthetic is not None:
        is_synthetic, reason = synthetic, f"{'--synthetic' if synthetic else '--real'} given ({reason})"
    real = not is_synthetic

    echo("counting parameters and FLOPs ...")
    costs: dict[str, dict] = {}
    for network in plan.networks:
        try:
            costs[network] = network_cost(task, network, plan.overrides)
        except Exception as e:  # noqa: BLE001 - the table still gets the metrics
            logger.warning("could not count the cost of %s: %s", network, e)
    cells = plan.cells()
    echo(f"{len(cells)} cells ({len(plan.networks)} networks × {len(plan.seeds)} seeds"
         f"{f' × {len(plan.folds)} folds' if task.folds else ''}) in {plan.out / 'runs'}")
    results: list[CellResult] = []
    interrupted = False
    try:
        with _stop_children_on_signals():
            results = run_cells(plan, cells, jobs=jobs, echo=echo)
    except KeyboardInterrupt as e:
        interrupted = True
        echo(f"interrupted{f' ({e})' if str(e) else ''}: the running trainings were stopped; rerun the same "
             "command to continue (finished cells are kept, a stopped training resumes from its last checkpoint)")
    if interrupted:
        results = [_result_from_disk(plan, c) for c in cells]
    rows = aggregate_rows(plan, results, costs, real)
    md, csv_path = write_tables(plan, rows, results, real, reason)
    failed = [r for r in results if r.status == "failed"]
    write_json_atomic([{"cell": r.cell.key, "error": r.error, "log": r.log} for r in failed],
                      plan.out / "failures.json")
    echo("")
    echo(md.read_text())
    echo(f"wrote {md} and {csv_path}")
    if failed:
        echo(f"FAILED cells ({len(failed)} of {len(cells)}):")
        for r in failed:
            echo(f"  {r.cell.key}: {r.error}\n    log: {r.log}")
        return EXIT_FAILED
    if interrupted:
        return EXIT_INTERRUPTED
    busy = [r for r in results if r.error.startswith("busy: ")]
    if busy:
        echo(f"BUSY cells ({len(busy)} of {len(cells)}), not run:")
        for r in busy:
            echo(f"  {r.cell.key}: {r.error[len('busy: '):]}")
        return EXIT_FAILED
    return EXIT_OK


def _result_from_disk(plan: Plan, cell: Cell) -> CellResult:
    d = plan.cell_dir(cell)
    if (d / "done.json").is_file():
        done = json.loads((d / "done.json").read_text())
        return CellResult(cell, "skipped", done.get("metrics", {}), done.get("seconds", {}))
    if (d / "failed.json").is_file():
        failed = json.loads((d / "failed.json").read_text())
        return CellResult(cell, "failed", error=f"{failed.get('stage')} exited {failed.get('returncode')}: "
                                                f"{failed.get('error')}", log=failed.get("log", ""))
    return CellResult(cell, "missing")


def _dry_run(plan: Plan, echo: Callable[[str], None]) -> int:
    """Print what would run; nothing is written."""
    echo(f"# prepare (once): check {plan.root} and write {plan.datalist}"
         f"{' (exists, reused)' if plan.datalist.is_file() else ''}")
    echo(shlex.join(["monai-attn", "prepare", plan.task.dataset, "--root", str(plan.root), "--out",
                     str(plan.datalist), "--seed", str(plan.split_seed)]))
    for cell in plan.cells():
        stage = cell_stage(plan.cell_dir(cell))
        echo(f"# {cell.key}: {'finished, skipped' if stage == 'done' else stage}")
        if stage in ("train", "resume"):
            echo(shlex.join(train_command(plan, cell, resume=stage == "resume")))
        if stage != "done":
            echo(shlex.join(evaluate_command(plan, cell)))
    return EXIT_OK


def run_from_args(args) -> int:
    """``monai-attn reproduce`` (see :func:`monai_attn.cli.add_reproduce`)."""
    synthetic = True if args.synthetic else False if args.real else None
    return reproduce(args.dataset, args.root, networks=args.networks, seeds=args.seeds, folds=args.folds,
                     epochs=args.epochs, out=args.out, device=args.device, gpus=args.gpus, jobs=args.jobs,
                     overrides=args.override, checkpoint=args.checkpoint, split_seed=args.split_seed,
                     synthetic=synthetic, skip_bad=args.skip_bad, workers=args.workers, timeout=args.timeout,
                     dry_run=args.dry_run, echo=lambda text: (sys.stdout.write(text + "\n"), sys.stdout.flush()))
