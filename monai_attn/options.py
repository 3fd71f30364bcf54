"""What a bundle run can be told: every top-level key of a bundle config, its default and its meaning.

``monai-attn options BUNDLE_DIR [CONFIG]`` prints the table; ``python -m monai.bundle run ... --help``
prints it for the configs of that command line, and a misspelt override's error points to it.

The meanings live in one place, :data:`OPTION_HELP` (one line per key, shared by the four bundles:
a key means the same in every bundle that has it). ``tests/test_options.py`` fails when a config gains
a key without a meaning here, or when a meaning outlives its key.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

__all__ = ["OPTION_HELP", "OPTION_HELP_BY_CONFIG", "CONFIG_SETS", "describe", "config_files", "list_options",
           "option_rows", "format_options", "options_command"]

#: the repository's bundles (a bundle may be named by its folder name under it)
BUNDLES_DIR = Path(__file__).resolve().parents[1] / "bundles"

#: config name -> the files a run of it merges, left to right (as the bundle docs run them)
CONFIG_SETS = {
    "train": ("train.json",),
    "evaluate": ("train.json", "evaluate.json"),
    "inference": ("inference.json",),
    "multi_gpu_train": ("train.json", "multi_gpu_train.json"),
}

#: key -> one-line meaning. Sections and components (dicts with ``_target_``) are overridden part by part:
#: ``--optimizer#lr 1e-3``, ``--train#dataloader#batch_size 8``.
OPTION_HELP: dict[str, str] = {
    # where things are
    "imports": "modules the config's expressions use (not an option)",
    "bundle_root": "the run's folder: models/, eval/ and predictions/ go under it",
    "ckpt_dir": "where checkpoints and the best model (model.pt) are written",
    "ckpt_path": "the weights to load (a checkpoint written by training)",
    "output_dir": "where logs, the datalist, metrics and overlays go",
    "dataset_name": "which dataset adapter reads the data (isic2018, dsb2018, brats2018, isles2018)",
    "dataset_dir": "the raw download, checked and turned into a datalist (MONAI's dataset_dir property)",
    "input_dir": "older name of dataset_dir (used when dataset_dir is empty)",
    "datalist": "a datalist JSON from `monai-attn prepare` (instead of dataset_dir)",
    "datalist_file": "the datalist actually used: datalist, or the one prepared from dataset_dir",
    "split": "inference from a datalist: which list (training, validation, test)",
    "fold": "cross-validation fold held out for validation (BraTS); -1: the datalist's own split",
    "eval_split": "evaluation: which split is scored (validation, test)",
    "seed": "random seed (determinism, datalist split, sampling)",
    "resume": "continue the run in ckpt_dir from its latest checkpoint",
    "overwrite": "move a finished run in ckpt_dir aside (models/previous-<time>/) and train afresh",
    "device": "torch device (default: cuda:0 when available, else cpu)",
    # data
    "in_channels": "input channels of the network (RGB: 3; BraTS/ISLES: 4 modalities)",
    "image_size": "2D bundles: images are resized to this (H, W) for the network",
    "roi_size": "volume bundles: in-plane size (H, W) slices are cropped/padded to",
    "slice_axis": "inference: the axis (of the RAS-oriented volume) slices are taken along; 2 = axial",
    "batch_size": "training batch size (2D slices or images per step)",
    "val_batch_size": "validation batch size",
    "num_workers": "DataLoader worker processes",
    "cache_rate": "share of the validation cases cached in memory (CacheDataset)",
    "cache_dtype": "dtype of the cached training volumes (float16 halves the memory)",
    "augment": "training augmentation on (flips/rotations)",
    "augmentation": "training augmentation of the slices (PATM: hflip)",
    "slice_selection": "which training slices are used (patm: the paper's rule; content; all)",
    "bg_slice_fraction": "share of slices without tumour kept for training (PATM rule)",
    "patm_slices": "slices PATM's official metrics score (official: the paper's preprocessing choice; all)",
    # network and training
    "network_name": "PATM network preset: fpa, rfna, unet, wunet, aunet, cscunet, cbamunet, gcnunet, d6unet, d9unet",
    "reverse_labels": "train on reversed labels (RFNA; derived from network_name) and un-reverse the output",
    "network_def": "the network (a component: change it or its arguments with --network_def#arg)",
    "network": "the network moved to the device (not an option)",
    "export_network_def": "the network as exported (ONNX/TorchScript): fused fast paths off, RFNA output un-reversed",
    "bn_momentum": "BatchNorm momentum of the network",
    "squeeze_excitation": "FocusNet++: squeeze-and-excitation in the residual blocks (the official code has it)",
    "num_epochs": "training epochs",
    "learning_rate": "initial learning rate",
    "weight_decay": "optimizer weight decay",
    "lr_milestones": "epochs at which the learning rate is multiplied by lr_gamma",
    "lr_gamma": "learning-rate factor at each milestone",
    "lr_warmup_epochs": "epochs of linear learning-rate warm-up (0: none)",
    "val_interval": "validate every N epochs",
    "amp": "mixed precision: float16 autocast on CUDA, bfloat16 on the CPU (--amp true)",
    "loss": "the loss (a component: --loss#arg to change an argument)",
    "optimizer": "the optimizer (a component: --optimizer#lr ...)",
    "lr_scheduler": "the learning-rate schedule (a component)",
    "train": "training section: dataset, dataloader, inferer, handlers, trainer (--train#... to change parts)",
    "validate": "validation/evaluation section: dataset, dataloader, inferer, metrics, handlers, evaluator",
    # inference
    "sw_batch_size": "slices per forward pass when segmenting a volume",
    "threshold": "probability above which a pixel is foreground",
    "output_postfix": "appended to a case's name for its mask file",
    "save_attention": "also write the attention maps beside each prediction",
    "attention_blocks": "which attention maps to write: a block name, comma-separated names, or all",
    "tta": "test-time augmentation: none, or flips (averaged, plus an entropy map)",
    "progress": "draw progress bars (default: in a terminal, not under CI=true)",
    "inference_network": "the network as run at inference (attention maps, TTA; not an option)",
    "items": "the cases found in dataset_dir (or the datalist split; not an option)",
    "checked_output_dir": "output_dir, created and checked (not an option)",
    "overlay_channel": "evaluation overlays: the image channel shown",
    "max_overlays": "evaluation overlays: how many cases get a PNG",
    # MONAI workflow properties and steps
    "dataset": "the Dataset of the cases (MONAI's dataset property; not an option)",
    "preprocessing": "inference pre-processing (MONAI's preprocessing property)",
    "postprocessing": "inference post-processing: activation, threshold, inversion, saving",
    "dataloader": "the inference DataLoader (skips and lists cases that fail to load)",
    "inferer": "the inferer (MONAI's inferer property)",
    "autocast_inferer": "the inferer under bfloat16 autocast when amp is on for a CPU device (not an option)",
    "handlers": "inference event handlers (logging, progress bar)",
    "evaluator": "the evaluation/inference engine (MONAI's evaluator property)",
    "initialize": "steps run before the run: override checks, determinism, weights (not an option)",
    "run": "the run's steps (not an option)",
    "finalize": "steps run after the run (not an option)",
}

#: meanings that differ in one config (config name -> key -> meaning)
OPTION_HELP_BY_CONFIG: dict[str, dict[str, str]] = {
    "inference": {
        "dataset_dir": "the folder of cases to segment, in the dataset's layout (MONAI's dataset_dir property)",
        "output_dir": "where the predictions (and attention/entropy maps) are written",
        "fold": "inference from a cross-validation datalist: the fold whose held-out cases are segmented; -1: none",
        "num_workers": "DataLoader worker processes (0: load in the main process)",
    },
}


def _bundle_configs(bundle: str | os.PathLike) -> Path:
    """The ``configs`` folder of ``bundle``: a bundle folder, its configs folder, or a bundle's name."""
    path = Path(bundle).expanduser()
    if not path.exists() and not path.is_absolute() and (BUNDLES_DIR / path).is_dir():
        path = BUNDLES_DIR / path
    for cand in (path / "configs", path):
        if (cand / "train.json").is_file() or (cand / "inference.json").is_file():
            return cand
    raise FileNotFoundError(f"{path}: not a bundle folder (expected configs/train.json or configs/inference.json)")


def config_files(bundle: str | os.PathLike, config: str) -> list[Path]:
    """The files of ``config`` (``train``, ``evaluate``, ``inference``, ``multi_gpu_train``, with or without
    ``.json``) of ``bundle``, merged left to right as the bundle docs run them."""
    name = Path(str(config)).name.removesuffix(".json")
    if name not in CONFIG_SETS:
        raise ValueError(f"{config}: unknown config; expected one of {', '.join(CONFIG_SETS)}")
    folder = _bundle_configs(bundle)
    files = [folder / f for f in CONFIG_SETS[name]]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: config file not found")
    return files


def _default(value: Any, width: int = 60) -> str:
    """A config value as a short, readable default."""
    if isinstance(value, dict):
        target = value.get("_target_")
        text = f"{str(target).rsplit('.', 1)[-1]}(...)" if target else "{" + ", ".join(list(value)[:4]) + (
            ", ...}" if len(value) > 4 else "}")
    elif isinstance(value, list) and any(isinstance(v, (dict, list)) or str(v).startswith("$") for v in value):
        text = f"[{len(value)} items]"
    elif isinstance(value, str) and value.startswith(("$", "@", "%")):
        text = value
    else:
        text = json.dumps(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def list_options(bundle: str | os.PathLike, config: str = "inference") -> list[tuple[str, str, str]]:
    """``(key, default, meaning)`` for every top-level key of the merged ``config`` of ``bundle``, in the
    config's order; the meaning is ``"?"`` for a key :data:`OPTION_HELP` does not know."""
    from monai.bundle import ConfigParser

    merged = ConfigParser.load_config_files([str(f) for f in config_files(bundle, config)])
    return option_rows(merged, config)


def option_rows(merged: dict, config: str = "") -> list[tuple[str, str, str]]:
    """``(key, default, meaning)`` for the top-level keys of a merged config dict; ``config`` (e.g.
    ``"inference.json"``, the last file of the command line) picks the config-specific meanings."""
    name = Path(str(config)).name.removesuffix(".json")
    meanings = {**OPTION_HELP, **OPTION_HELP_BY_CONFIG.get(name, {})}
    return [(key, _default(value), meanings.get(key, "?")) for key, value in merged.items()
            if "#" not in key and key != "_meta_"]


def format_options(rows: Sequence[tuple[str, str, str]], title: str = "") -> str:
    """The rows as an aligned text table under ``title``."""
    kw = max([len(r[0]) for r in rows] + [3])
    dw = max([len(r[1]) for r in rows] + [7])
    lines = [title] if title else []
    lines.append(f"  {'key':<{kw}}  {'default':<{dw}}  meaning")
    lines += [f"  {k:<{kw}}  {d:<{dw}}  {m}" for k, d, m in rows]
    return "\n".join(lines)


def options_command(bundle: str | os.PathLike) -> str:
    """The ``monai-attn options`` command line for ``bundle`` (a configs folder or bundle folder)."""
    folder = _bundle_configs(bundle)
    return f"monai-attn options {folder.parent if folder.name == 'configs' else folder}"


def describe(bundle: str | os.PathLike, configs: Sequence[str] | None = None) -> str:
    """The option tables of ``configs`` of ``bundle`` (default: train, evaluate and inference; evaluate lists
    only what it adds to or changes in train)."""
    folder = _bundle_configs(bundle)
    names = list(configs) if configs else [n for n in ("train", "evaluate", "inference")
                                           if all((folder / f).is_file() for f in CONFIG_SETS[n])]
    parts = []
    for name in names:
        name = Path(str(name)).name.removesuffix(".json")
        rows = list_options(folder, name)
        files = " + ".join(CONFIG_SETS.get(name, (name,)))
        title = f"{files} (python -m monai.bundle run --config_file ... --<key> <value>):"
        if name == "evaluate" and not configs:
            base = dict((k, d) for k, d, _ in list_options(folder, "train"))
            rows = [r for r in rows if base.get(r[0]) != r[1]]
            title = f"{files}: what evaluate.json adds to or changes in train.json:"
        parts.append(format_options(rows, title))
    return "\n\n".join(parts)
