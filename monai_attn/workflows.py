"""Functions that the bundles' configs call: datalists, splits, inference inputs, safe weights.

Bundle configs only wire these together; every decision that needs logic lives here, tested.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from ignite.handlers.checkpoint import BaseSaveHandler
from monai.data import DataLoader as MonaiDataLoader
from monai.data import list_data_collate

from monai_attn.overrides import check_overrides

__all__ = [
    "prepare_datalist",
    "datalist_items",
    "inference_items",
    "check_output_dir",
    "load_network_weights",
    "with_label_reversal",
    "segmentation_postprocessing",
    "latest_checkpoint",
    "checkpoints",
    "AtomicDiskSaver",
    "use_atomic_saving",
    "attach_training_state",
    "as_bool",
    "volume_inference_preprocessing",
    "case_name_formatter",
    "SaveSegmentationd",
    "image_inference_preprocessing",
    "key_metric_tracker",
    "VOLUME_SUFFIXES",
    "IMAGE_SUFFIXES",
    "CaseFailure",
    "CaseFailures",
    "describe_failure",
    "SkipFailedCases",
    "KeepGoingDataLoader",
    "run_keep_going",
    "check_overrides",
]

logger = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")
_ISLES_MAPS = ("CBF", "MTT", "CBV", "Tmax")


def prepare_datalist(dataset: str, dataset_dir: str | None = None, datalist: str | None = None,
                     out_dir: str = "eval", seed: int = 0, folds: int | None = None) -> str:
    """Return the path of a datalist JSON for a bundle run.

    With ``datalist`` (a JSON written by ``monai-attn prepare``) it is checked and returned. With
    ``dataset_dir`` (a raw download), the dataset's adapter verifies it and writes
    ``<out_dir>/datalist_<dataset>.json`` (nothing is written when the integrity check fails).
    """
    from monai_attn.data import get_adapter

    if datalist:
        path = Path(datalist).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: datalist not found (set 'datalist' to a JSON from `monai-attn prepare`)")
        return str(path)
    if not dataset_dir:
        raise ValueError("set either 'dataset_dir' (the raw download) or 'datalist' (a prepared JSON), "
                         "e.g. --dataset_dir /data/MICCAI_BraTS_2018_Data_Training")
    out = Path(out_dir) / f"datalist_{dataset}.json"
    data, report, _ = get_adapter(dataset, dataset_dir).prepare(out, seed=seed, folds=folds)
    if data is None:
        raise ValueError(f"{dataset_dir}: the integrity check failed, nothing was prepared:\n{report.format()}")
    return str(out)


def datalist_items(datalist_file: str, split: str = "training", fold: int | None = None,
                   required_keys: Sequence[str] = ("image", "label"), check_files: bool = True) -> list[dict]:
    """Items of one split of a datalist, with absolute paths; every item must hold ``required_keys``
    and, with ``check_files``, every listed file must exist (see :func:`monai_attn.data.load_datalist`).
    Evaluation passes ``check_files=False``: a missing file then fails only its case, which
    :class:`KeepGoingDataLoader` skips and lists.

    For cross-validation datalists (BraTS: every case in ``training`` with a ``fold``), pass ``fold``:
    ``"training"`` gives the other folds and ``"validation"``/``"test"`` the held-out fold.
    """
    from monai_attn.data import load_datalist, select_fold

    if split not in ("training", "validation", "test"):
        raise ValueError(f"split must be 'training', 'validation' or 'test', got {split!r}")
    if fold is not None and int(fold) >= 0:
        train, held_out = select_fold(load_datalist(datalist_file, "training", required_keys=required_keys,
                                                    check_files=check_files), int(fold))
        items = train if split == "training" else held_out
    else:
        items = load_datalist(datalist_file, split, required_keys=required_keys, check_files=check_files)
    if not items:
        raise ValueError(f"{datalist_file}: the {split!r} split is empty")
    return items


def _strip_suffix(name: str, suffixes: Sequence[str]) -> str | None:
    lower = name.lower()
    for s in suffixes:
        if lower.endswith(s):
            return name[: -len(s)]
    return None


def _brats_case(folder: Path) -> dict | None:
    found: dict[str, Path] = {}
    for f in folder.iterdir():
        stem = _strip_suffix(f.name, VOLUME_SUFFIXES)
        if stem is None:
            continue
        m = re.match(r"^(?P<case>.+)_(?P<mod>flair|t1|t1ce|t2)$", stem, re.IGNORECASE)
        if m:
            found[m.group("mod").lower()] = f
    if not found:
        return None
    missing = [m for m in _BRATS_MODALITIES if m not in found]
    if missing:
        # kept, with the expected file name: loading reports "file not found" and the run goes on
        ref = next(iter(found.values()))
        stem = _strip_suffix(ref.name, VOLUME_SUFFIXES) or ref.name
        case, suffix = stem.rsplit("_", 1)[0], ref.name[len(stem):]
        for m in missing:
            found[m] = folder / f"{case}_{m}{suffix}"
        logger.warning("%s: missing modality file(s) %s (expected <case>_<modality>.nii.gz for %s)", folder,
                       [found[m].name for m in missing], list(_BRATS_MODALITIES))
    return {"id": folder.name, "image": [str(found[m]) for m in _BRATS_MODALITIES]}


def _isles_case(folder: Path) -> dict | None:
    found: dict[str, Path] = {}
    for sub in folder.iterdir():
        m = re.match(r"^SMIR\.Brain\.XX\.O\.CT_(?P<map>CBF|CBV|MTT|Tmax)\.\d+$", sub.name, re.IGNORECASE)
        if m and sub.is_dir():
            files = sorted(f for f in sub.iterdir() if _strip_suffix(f.name, VOLUME_SUFFIXES) is not None)
            if files:
                found[m.group("map").upper().replace("TMAX", "Tmax")] = files[0]
    if not found:
        return None
    missing = [m for m in _ISLES_MAPS if m not in found]
    if missing:
        # kept with a placeholder path: loading reports "file not found" and the run goes on
        for m in missing:
            found[m] = folder / f"SMIR.Brain.XX.O.CT_{m}.<id>" / "<missing>.nii"
        logger.warning("%s: missing perfusion map folder(s) %s (expected SMIR.Brain.XX.O.CT_<MAP>.<id>/...nii)",
                       folder, missing)
    return {"id": folder.name, "image": [str(found[m]) for m in _ISLES_MAPS]}


def _images_2d(folder: Path) -> list[dict]:
    items = []
    for f in sorted(folder.rglob("*")):
        if f.is_file() and _strip_suffix(f.name, IMAGE_SUFFIXES) is not None and "masks" not in f.parts \
                and not f.name.endswith(("_segmentation.png", "_seg.png")):
            items.append({"id": _strip_suffix(f.name, IMAGE_SUFFIXES), "image": str(f)})
    return items


def inference_items(dataset: str, input_dir: str | None = None, datalist: str | None = None,
                    split: str = "test", fold: int | None = None) -> list[dict]:
    """Cases to run inference on: a folder in the dataset's raw layout, or a datalist split.

    ``input_dir`` may hold case folders (BraTS ``<case>/<case>_{flair,t1,t1ce,t2}.nii.gz`` in NIfTI,
    NRRD or MHA; ISLES ``case_<n>/SMIR.Brain.XX.O.CT_<MAP>.<id>/*.nii``), be one case folder, or
    hold 2D images (ISIC/DSB; searched recursively, masks skipped). Labels are not needed.

    A case with a missing modality, or a datalist path that does not exist, is kept (with a
    warning): loading it fails with "file not found", and :class:`KeepGoingDataLoader` skips it
    and lists it at the end, so the other cases are still processed.
    """
    if datalist:
        items = datalist_items(datalist, split, fold, required_keys=("image",), check_files=False)
        return [{k: v for k, v in it.items() if k in ("id", "image")} for it in items]
    if not input_dir:
        raise ValueError("set either 'input_dir' (a folder of cases) or 'datalist' for inference")
    root = Path(input_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: input folder does not exist")
    if dataset in ("isic2018", "dsb2018"):
        items = _images_2d(root)
    else:
        reader: Callable[[Path], dict | None] = _brats_case if dataset == "brats2018" else _isles_case
        items = [it for it in [reader(root)] if it] or [
            it for d in sorted(p for p in root.iterdir() if p.is_dir()) for it in [reader(d)] if it
        ]
    if not items:
        raise ValueError(f"{root}: no {dataset} cases found (see docs/bundles.md for the expected layout)")
    logger.info("inference: %d %s case(s) under %s", len(items), dataset, root)
    return items


def check_output_dir(output_dir: str, inputs: Sequence[dict] | None = None) -> str:
    """Create ``output_dir`` and refuse one that is not writable or that holds any input file."""
    out = Path(output_dir).expanduser().resolve()
    for it in inputs or []:
        images = it["image"] if isinstance(it["image"], (list, tuple)) else [it["image"]]
        for img in images:
            folder = Path(img).resolve().parent
            if folder.is_relative_to(out):  # the input's folder or one of its ancestors
                raise ValueError(f"{out}: output folder contains the input {img}; choose a separate folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{out}: cannot create the output folder ({e.strerror})") from e
    if not os.access(out, os.W_OK):
        raise ValueError(f"{out}: output folder is not writable")
    return str(out)


def load_network_weights(network: torch.nn.Module, path: str, key: str = "model", strict: bool = True,
                         map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a checkpoint into ``network`` safely (``weights_only=True``), with clear errors.

    Accepts a bare state dict or a dictionary holding one under ``key`` (as MONAI's
    ``CheckpointSaver`` writes). Mismatching keys or shapes are named in the error.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint not found (train first, or set 'ckpt_path')")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle payloads and corrupt files both end here
        raise ValueError(f"{p}: not a loadable weights-only checkpoint ({type(e).__name__}: {str(e)[:300]})") from e
    state = ckpt.get(key, ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise ValueError(f"{p}: no state dict found (expected a dict or a dict with key {key!r})")
    target = network.module if hasattr(network, "module") else network
    own = target.state_dict()
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(v.shape)} vs network {tuple(own[k].shape)}"
              for k, v in state.items() if k in own and hasattr(v, "shape") and v.shape != own[k].shape]
    if shapes or (strict and (missing or unexpected)):
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es): " + "; ".join(shapes[:5]))
        if missing:
            parts.append(f"{len(missing)} missing key(s): {missing[:5]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {unexpected[:5]}")
        raise ValueError(f"{p}: checkpoint does not fit {type(target).__name__} — " + " | ".join(parts))
    target.load_state_dict(state, strict=strict)
    return network


def with_label_reversal(transform: Callable, enabled: bool, keys: str | Sequence[str] = "label") -> Callable:
    """``transform`` followed by :class:`~monai_attn.transforms.ReverseLabeld` when ``enabled`` (RFNA)."""
    from monai.transforms import Compose

    from monai_attn.transforms import ReverseLabeld

    return Compose([transform, ReverseLabeld(keys)]) if enabled else transform


def segmentation_postprocessing(reverse_labels: bool = False, threshold: float = 0.5, pred_key: str = "pred",
                                label_key: str | None = "label") -> Callable:
    """Logits → binary mask: un-reverse RFNA outputs (when trained on reversed labels), sigmoid,
    threshold. ``label_key`` is cast to the same dtype so MONAI metrics can compare them."""
    from monai.transforms import Activationsd, AsDiscreted, Compose, EnsureTyped

    from monai_attn.transforms import UnreverseLogitsd

    steps: list = [UnreverseLogitsd(pred_key)] if reverse_labels else []
    steps += [Activationsd(pred_key, sigmoid=True), AsDiscreted(pred_key, threshold=threshold)]
    if label_key:
        steps.append(EnsureTyped(label_key, dtype=torch.float32, allow_missing_keys=True))
    return Compose(steps)


def _checkpoint_number(path: Path) -> int:
    m = re.search(r"=(\d+)\.pt$", path.name)
    return int(m.group(1)) if m else -1


def checkpoints(ckpt_dir: str, prefix: str = "checkpoint") -> list[str]:
    """The ``<prefix>*.pt`` files in ``ckpt_dir``, newest first (by the epoch/iteration number in
    their names, then by modification time). Temporary files of an interrupted write are not listed."""
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return []
    found = sorted(folder.glob(f"{prefix}*.pt"), key=lambda p: (_checkpoint_number(p), p.stat().st_mtime))
    return [str(p) for p in reversed(found)]


def latest_checkpoint(ckpt_dir: str, prefix: str = "checkpoint") -> str | None:
    """The newest ``<prefix>*.pt`` in ``ckpt_dir`` (by the epoch/iteration number in its name), or None."""
    found = checkpoints(ckpt_dir, prefix)
    return found[0] if found else None


def _loadable_checkpoint(ckpt_dir: str, prefix: str) -> str | None:
    """The newest checkpoint that loads with ``weights_only=True``; older ones are tried when the newest
    is truncated or corrupt (e.g. written by a version without atomic saving). A checkpoint that holds
    anything but tensors and plain containers is refused (``BadInputError``), never unpickled."""
    from monai_attn.errors import BadInputError

    for path in checkpoints(ckpt_dir, prefix):
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            if "weights_only" in str(e) or "Weights only load failed" in str(e):
                raise BadInputError(path, "refused: the checkpoint holds objects other than weights (loading it "
                                          "could run code); weights_only=True loading failed",
                                    "delete it if you did not write it yourself") from e
            logger.warning("%s: cannot load this checkpoint (%s: %s); trying an older one", path, type(e).__name__,
                           str(e)[:200])
            continue
        return path
    return None


class AtomicDiskSaver(BaseSaveHandler):
    """ignite ``Checkpoint`` save handler that never leaves a half-written or missing checkpoint.

    Each checkpoint is written to a temporary name in the same folder, flushed to disk and renamed
    into place. ignite asks to remove a superseded checkpoint *before* saving the new one; here the
    removal waits until the new file is in place, so a kill (even SIGKILL) at any moment leaves at
    least one complete checkpoint to resume from.

    Args:
        dirname: the checkpoint folder.
        filename: a fixed file name (e.g. ``"model.pt"`` for the best model), else ignite's names.
    """

    def __init__(self, dirname: str | os.PathLike, filename: str | None = None) -> None:
        self.dirname = Path(dirname)
        self.filename = filename
        self._superseded: list[str] = []

    def __call__(self, checkpoint, filename: str, metadata=None) -> None:
        name = self.filename or filename
        self.dirname.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())

        _atomic_write(self.dirname / name, write)
        for old in self._superseded:
            if old != name:
                (self.dirname / old).unlink(missing_ok=True)
        self._superseded = []

    def remove(self, filename: str) -> None:
        self._superseded.append(self.filename or filename)


def use_atomic_saving(saver) -> object:
    """Make a MONAI ``CheckpointSaver`` (all of its checkpoints) or an ignite ``Checkpoint`` save
    through :class:`AtomicDiskSaver`. Returns ``saver``."""
    from ignite.handlers import Checkpoint, DiskSaver

    targets = [saver] if isinstance(saver, Checkpoint) else [
        getattr(saver, a, None) for a in ("_final_checkpoint", "_key_metric_checkpoint", "_interval_checkpoint")]
    for ckpt in targets:
        handler = getattr(ckpt, "save_handler", None)
        if isinstance(handler, DiskSaver):
            ckpt.save_handler = AtomicDiskSaver(handler.dirname, getattr(handler, "filename", None))
    return saver


def as_bool(value, name: str = "value") -> bool:
    """``value`` as a bool; strings from a command line (``--resume true``, ``False``, ``0``, ``yes``)
    are read by their meaning, so ``"false"`` is ``False`` (a non-empty string would be truthy)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes", "y", "on"):
            return True
        if text in ("false", "0", "no", "n", "off", "", "none"):
            return False
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return bool(value)


def attach_training_state(trainer, ckpt_dir: str, save_dict: dict, resume: bool = False, save_interval: int = 1,
                          n_saved: int = 1, prefix: str = "checkpoint", save: bool = True) -> str | None:
    """Checkpoint the full training state and optionally resume from it.

    Attaches MONAI's ``CheckpointSaver`` writing ``<ckpt_dir>/<prefix>_checkpoint_epoch=N.pt``
    (model, optimizer, scheduler and trainer state every ``save_interval`` epochs, ``n_saved`` kept),
    saving atomically (:class:`AtomicDiskSaver`: a kill never leaves a truncated checkpoint, and the
    previous one is deleted only once the new one is complete). ignite ``Checkpoint`` objects in
    ``save_dict`` (e.g. :func:`key_metric_tracker`, the best-model saver) are made atomic too.
    It is attached here rather than listed in the trainer's handlers because ``save_dict`` holds the
    trainer itself (a config reference cycle otherwise).

    With ``resume``, the newest loadable checkpoint is restored through MONAI's ``CheckpointLoader``
    (``weights_only=True``) before the first epoch, so training continues from the saved epoch with
    the saved optimizer/scheduler state up to the same ``max_epochs``; the resumed checkpoint counts
    among the ``n_saved`` kept, so it is deleted when superseded. ``resume`` may be a string from
    the command line (``--resume true`` / ``false``, see :func:`as_bool`).

    ``save=False`` only resumes (for the non-zero ranks of a distributed run).

    Returns the checkpoint resumed from, or None.
    """
    from ignite.handlers import Checkpoint
    from monai.handlers import CheckpointLoader, CheckpointSaver

    resume = as_bool(resume, "resume")
    for value in save_dict.values():
        if isinstance(value, Checkpoint):
            use_atomic_saving(value)
    path = _loadable_checkpoint(ckpt_dir, prefix) if resume else None
    if resume and path is None:
        logger.warning("resume requested but no %s*.pt in %s: starting from scratch", prefix, ckpt_dir)
    if path is not None:
        CheckpointLoader(load_path=path, load_dict=save_dict, map_location="cpu").attach(trainer)
        logger.info("resuming from %s", path)
    if save:
        saver = CheckpointSaver(save_dir=ckpt_dir, save_dict=save_dict, file_prefix=prefix,
                                save_interval=save_interval, epoch_level=True, n_saved=n_saved)
        use_atomic_saving(saver)
        if path is not None and saver._interval_checkpoint is not None and _checkpoint_number(Path(path)) >= 0:
            # the saver's list of kept files starts with the resumed one (a new process knows none)
            saver._interval_checkpoint.load_state_dict(
                {"_saved": [(_checkpoint_number(Path(path)), Path(path).name)]})
        saver.attach(trainer)
    return path


def volume_inference_preprocessing(roi_size: Sequence[int], axcodes: str = "RAS", image_key: str = "image",
                                   in_channels: int | None = None):
    """Image-only version of the volume evaluation pipeline (no label needed), invertible by ``Invertd``:
    load (NIfTI via nibabel, NRRD/MHA via ITK) with :class:`~monai_attn.transforms.LoadVolumed`'s
    checks (``in_channels`` modality files per case), channel first, orientation, per-modality
    non-zero z-score, in-plane centre crop/pad to ``roi_size``."""
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        Orientationd,
        ResizeWithPadOrCropd,
    )

    from monai_attn.transforms import LeanNormalizeIntensityd, LoadVolumed

    return Compose([
        LoadVolumed(image_key, modalities=in_channels),
        EnsureChannelFirstd(image_key),
        Orientationd(image_key, axcodes=axcodes, labels=None),
        LeanNormalizeIntensityd(image_key, nonzero=True, channel_wise=True),
        ResizeWithPadOrCropd(image_key, spatial_size=(*tuple(roi_size), -1)),
        EnsureTyped(image_key),
    ])


def case_name_formatter(dataset: str) -> Callable[[dict, object], dict]:
    """``SaveImaged(output_name_formatter=...)`` naming outputs after the case, not the first modality:
    BraTS ``<case>/<case>_flair.nii.gz`` → ``<case>``; ISLES ``case_<n>/SMIR...CT_CBF.<id>/...nii`` →
    ``case_<n>``; 2D images → the file's stem."""
    levels = {"brats2018": 1, "isles2018": 2}.get(dataset, 0)

    def formatter(metadict: dict, saver: object) -> dict:
        path = Path(str(metadict.get("filename_or_obj", "case")))
        if levels:
            subject = path.parents[levels - 1].name
        else:
            subject = _strip_suffix(path.name, IMAGE_SUFFIXES + VOLUME_SUFFIXES) or path.stem
        return {"subject": subject, "idx": metadict.get("patch_index")}

    return formatter


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(tmp)`` to a temporary name in the same folder, then rename into place."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # keeps the extension, which writers read
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class SaveSegmentationd:
    """Save a predicted label map next to nothing it came from: ``<output_dir>/<case><postfix>``.

    Volumes (3 spatial dims) are written as uint8 NIfTI with the prediction's affine (after
    ``Invertd``, the input's); 2D images as 0/255 PNG. Files are written to a temporary name and
    renamed into place, so an interrupted run never leaves a half-written output; an existing input
    file is never overwritten. MONAI's ``SaveImaged(resample=False)`` is avoided because it fails on
    permuted (non-RAS, e.g. LPS-with-swapped-axes) affines.

    Args:
        keys: the prediction key (channel-first, one channel).
        output_dir: destination folder (create/check it with :func:`check_output_dir`).
        dataset: names outputs after the case (see :func:`case_name_formatter`).
        postfix: appended to the case name. Defaults to ``"_seg"``.
    """

    def __init__(self, keys: str = "pred", output_dir: str = "predictions", dataset: str = "brats2018",
                 postfix: str = "_seg") -> None:
        self.key = keys
        self.output_dir = Path(output_dir)
        self.formatter = case_name_formatter(dataset)
        self.postfix = postfix

    def __call__(self, data: dict) -> dict:
        import nibabel as nib
        import numpy as np
        from PIL import Image

        pred = data[self.key]
        meta = dict(getattr(pred, "meta", {}) or {})
        arr = np.asarray(pred.detach().cpu() if isinstance(pred, torch.Tensor) else pred)
        if arr.ndim not in (3, 4) or arr.shape[0] != 1:
            raise ValueError(f"{meta.get('filename_or_obj', '?')}: expected a one-channel 2D/3D prediction, "
                             f"got shape {arr.shape}")
        labels = (arr[0] > 0).astype(np.uint8)
        subject = self.formatter(meta, self)["subject"]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if labels.ndim == 3:
            affine = np.asarray(getattr(pred, "affine", np.eye(4)), dtype=np.float64)
            path = self.output_dir / f"{subject}{self.postfix}.nii.gz"
            image = nib.Nifti1Image(labels, affine)
            image.header.set_data_dtype(np.uint8)
            writer = lambda tmp: nib.save(image, tmp)  # noqa: E731
        else:
            path = self.output_dir / f"{subject}{self.postfix}.png"
            # MONAI's PIL reader gives (W, H) arrays: transpose back to the file's (H, W) rows
            writer = lambda tmp: Image.fromarray(labels.T * 255).save(tmp, format="PNG")  # noqa: E731
        source = meta.get("filename_or_obj")
        if source and Path(str(source)).resolve() == path.resolve():
            raise ValueError(f"{path}: refusing to overwrite the input file")
        _atomic_write(path, writer)
        logger.info("saved %s", path)
        data[f"{self.key}_saved_to"] = str(path)
        return data


def image_inference_preprocessing(image_size: Sequence[int] = (256, 256), image_key: str = "image"):
    """Image-only version of the 2D (ISIC 2018 / DSB 2018) pipeline, for inference without masks.

    The same steps, with the same arguments, as the image branch of
    :func:`monai_attn.transforms.isic2018_transforms` / ``dsb2018_transforms(train=False)``: load with
    Pillow (:class:`~monai_attn.transforms.LoadImage2Dd`: checked to be a readable 2D image), channel first, RGB (alpha dropped, grey repeated), scale 0..255 to [0, 1], resize to
    ``image_size`` (bilinear, anti-aliased). The resize is recorded, so ``Invertd`` brings a
    prediction back to the file's original resolution.
    """
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        Resized,
        ScaleIntensityRanged,
    )

    from monai_attn.transforms import EnsureRGBd, LoadImage2Dd

    return Compose([
        LoadImage2Dd(image_key),
        EnsureChannelFirstd(image_key),
        EnsureRGBd(image_key),
        ScaleIntensityRanged(image_key, a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True),
        Resized(image_key, spatial_size=tuple(image_size), mode="bilinear", anti_aliasing=True),
        EnsureTyped(image_key, dtype=torch.float32),
    ])


def key_metric_tracker(saver):
    """The best-model bookkeeping of a MONAI ``CheckpointSaver(save_key_metric=True)``, as an object with
    ``state_dict``/``load_state_dict``, to be put in :func:`attach_training_state`'s ``save_dict``.

    Without it, a resumed run forgets the best score so far and its first validation overwrites the
    best checkpoint (e.g. ``models/model.pt``) even when it is worse. With it, the score of the saved
    best model is checkpointed with the training state and restored on ``resume``.
    """
    tracker = getattr(saver, "_key_metric_checkpoint", None)
    if tracker is None:
        raise ValueError(f"{type(saver).__name__}: not a CheckpointSaver with save_key_metric=True")
    return tracker



# ------------------------------------------------------------------------------ keep going past bad cases
@dataclass(frozen=True)
class CaseFailure:
    """One case that could not be loaded or preprocessed: its id, the file at fault and the problem."""

    case: str
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.case}: {self.file}: {self.message}"


class CaseFailures:
    """The cases skipped during a run (filled by :class:`KeepGoingDataLoader`), in the order met."""

    def __init__(self) -> None:
        self.items: list[CaseFailure] = []

    def add(self, failure: CaseFailure) -> None:
        self.items.append(failure)
        logger.error("skipping case %s", failure)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def format(self) -> str:
        """``"N case(s) failed:"`` then one ``case: file: problem`` line per failure."""
        return f"{len(self.items)} case(s) failed and were skipped:\n" + "\n".join(f"  {f}" for f in self.items)


def describe_failure(item: object, error: BaseException, index: int = 0) -> CaseFailure:
    """A :class:`CaseFailure` for ``item`` (a datalist item) whose loading raised ``error``.

    The file and problem come from the :class:`~monai_attn.errors.BadInputError` in the error's
    chain when there is one; otherwise the innermost error is reported against the item's images.
    """
    from monai_attn.errors import find_bad_input

    images = item.get("image") if isinstance(item, dict) else None
    paths = [str(p) for p in (images if isinstance(images, (list, tuple)) else [images]) if p is not None]
    case = item.get("id") if isinstance(item, dict) else None
    if not case and paths:
        first = Path(paths[0])
        case = _strip_suffix(first.name, VOLUME_SUFFIXES + IMAGE_SUFFIXES) or first.name
    bad = find_bad_input(error)
    if bad is not None:
        message = bad.problem + (f" — {bad.hint}" if bad.hint else "")
        return CaseFailure(str(case or f"item {index}"), bad.path, message)
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    return CaseFailure(str(case or f"item {index}"), ", ".join(paths) or "?",
                       f"{type(root).__name__}: {str(root)[:300]}")


class _Failed:
    """What a :class:`SkipFailedCases` item becomes when it cannot be loaded (picklable)."""

    def __init__(self, failure: CaseFailure) -> None:
        self.failure = failure


class _Collated:
    """A batch of the good items (``None`` when there are none) and the failures met in it."""

    def __init__(self, data, failures: list) -> None:
        self.data = data
        self.failures = failures


class _SkippingCollate:
    """Collate function (picklable, for worker processes) that sets failed items aside."""

    def __init__(self, collate_fn: Callable) -> None:
        self.collate_fn = collate_fn

    def __call__(self, batch: list) -> _Collated:
        failures = [b.failure for b in batch if isinstance(b, _Failed)]
        good = [b for b in batch if not isinstance(b, _Failed)]
        return _Collated(self.collate_fn(good) if good else None, failures)


class SkipFailedCases(torch.utils.data.Dataset):
    """Map-style dataset wrapper: an item whose loading/preprocessing raises becomes a failure
    record (:func:`describe_failure`) instead of an exception. Used by :class:`KeepGoingDataLoader`."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            return self.dataset[index]
        except Exception as e:  # noqa: BLE001 - recorded, listed at the end of the run
            data = getattr(self.dataset, "data", None)
            item = data[index] if data is not None and not callable(data) else None
            return _Failed(describe_failure(item, e, index))


class KeepGoingDataLoader(MonaiDataLoader):
    """A MONAI ``DataLoader`` that skips the cases whose loading or preprocessing fails.

    Each failure (case id, file, problem) is logged when met and recorded in :attr:`failures`;
    the good cases are batched as usual, so an evaluator over this loader processes (and saves)
    every good case. :func:`run_keep_going` then lists the failures and exits non-zero.

    The loader has no length (``len()`` raises ``TypeError``): the number of batches is known only
    at the end. MONAI engines and ignite then end the epoch when the loader is exhausted.

    Args:
        dataset: a map-style dataset, e.g. ``monai.data.Dataset(items, transform)``.
        failures: where to record the failures (a new :class:`CaseFailures` by default).
        kwargs: the other ``DataLoader`` arguments (``batch_size``, ``num_workers``, ``collate_fn``...).
    """

    def __init__(self, dataset, failures: CaseFailures | None = None, **kwargs) -> None:
        collate_fn = kwargs.pop("collate_fn", None) or list_data_collate
        super().__init__(SkipFailedCases(dataset), collate_fn=_SkippingCollate(collate_fn), **kwargs)
        self.failures = failures if failures is not None else CaseFailures()

    def __len__(self) -> int:
        raise TypeError("KeepGoingDataLoader has no length: failed cases are skipped")

    def __bool__(self) -> bool:
        return True

    def __iter__(self):
        for batch in super().__iter__():
            for failure in batch.failures:
                self.failures.add(failure)
            if batch.data is not None:
                yield batch.data


def run_keep_going(engine, failures: CaseFailures | None = None) -> None:
    """Run ``engine`` (an evaluator over a :class:`KeepGoingDataLoader`), then list every failed
    case and end with ``SystemExit`` (exit status 1) if there was any.

    This is the ``run`` step of the bundles' ``inference.json`` / ``evaluate.json``: the good
    cases are all processed and written, and ``python -m monai.bundle run`` exits non-zero with
    the list of failures at the end of its output.
    """
    failures = failures if failures is not None else getattr(engine.data_loader, "failures", CaseFailures())
    try:
        engine.run()
    except Exception:
        if not len(failures):
            raise
        logger.exception("the run stopped")
    if len(failures):
        text = failures.format()
        logger.error("%s", text)
        raise SystemExit(text)
