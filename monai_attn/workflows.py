"""Functions that the bundles' configs call: datalists, splits, inference inputs, safe weights.

Bundle configs only wire these together; every decision that needs logic lives here, tested.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

__all__ = [
    "prepare_datalist",
    "datalist_items",
    "inference_items",
    "check_output_dir",
    "load_network_weights",
    "with_label_reversal",
    "segmentation_postprocessing",
    "latest_checkpoint",
    "attach_training_state",
    "volume_inference_preprocessing",
    "case_name_formatter",
    "SaveSegmentationd",
    "image_inference_preprocessing",
    "key_metric_tracker",
    "VOLUME_SUFFIXES",
    "IMAGE_SUFFIXES",
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


def datalist_items(datalist_file: str, split: str = "training", fold: int | None = None) -> list[dict]:
    """Items of one split of a datalist, with absolute paths.

    For cross-validation datalists (BraTS: every case in ``training`` with a ``fold``), pass ``fold``:
    ``"training"`` gives the other folds and ``"validation"``/``"test"`` the held-out fold.
    """
    from monai_attn.data import load_datalist, select_fold

    if split not in ("training", "validation", "test"):
        raise ValueError(f"split must be 'training', 'validation' or 'test', got {split!r}")
    if fold is not None and int(fold) >= 0:
        train, held_out = select_fold(load_datalist(datalist_file, "training"), int(fold))
        items = train if split == "training" else held_out
    else:
        items = load_datalist(datalist_file, split)
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
        raise FileNotFoundError(f"{folder}: missing modality file(s) {missing} (expected <case>_<modality>.nii.gz "
                                f"for {list(_BRATS_MODALITIES)})")
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
        raise FileNotFoundError(f"{folder}: missing perfusion map folder(s) {missing} "
                                "(expected SMIR.Brain.XX.O.CT_<MAP>.<id>/...nii)")
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
    """
    if datalist:
        items = datalist_items(datalist, split, fold)
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


def latest_checkpoint(ckpt_dir: str, prefix: str = "checkpoint") -> str | None:
    """The newest ``<prefix>*.pt`` in ``ckpt_dir`` (by the epoch/iteration number in its name), or None."""
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return None

    def number(p: Path) -> int:
        m = re.search(r"=(\d+)\.pt$", p.name)
        return int(m.group(1)) if m else -1

    found = sorted(folder.glob(f"{prefix}*.pt"), key=lambda p: (number(p), p.stat().st_mtime))
    return str(found[-1]) if found else None


def attach_training_state(trainer, ckpt_dir: str, save_dict: dict, resume: bool = False, save_interval: int = 1,
                          n_saved: int = 1, prefix: str = "checkpoint", save: bool = True) -> str | None:
    """Checkpoint the full training state and optionally resume from it.

    Attaches MONAI's ``CheckpointSaver`` writing ``<ckpt_dir>/<prefix>_key_metric... / <prefix>_epoch=N.pt``
    (model, optimizer, scheduler and trainer state every ``save_interval`` epochs, ``n_saved`` kept).
    It is attached here rather than listed in the trainer's handlers because ``save_dict`` holds the
    trainer itself (a config reference cycle otherwise). With ``resume``, the newest checkpoint is
    restored through MONAI's ``CheckpointLoader`` (``weights_only=True``) before the first epoch, so
    training continues from the saved epoch with the saved optimizer/scheduler state.

    ``save=False`` only resumes (for the non-zero ranks of a distributed run).

    Returns the checkpoint resumed from, or None.
    """
    from monai.handlers import CheckpointLoader, CheckpointSaver

    path = latest_checkpoint(ckpt_dir, prefix) if resume else None
    if resume and path is None:
        logger.warning("resume requested but no %s*.pt in %s: starting from scratch", prefix, ckpt_dir)
    if path is not None:
        CheckpointLoader(load_path=path, load_dict=save_dict, map_location="cpu").attach(trainer)
        logger.info("resuming from %s", path)
    if save:
        CheckpointSaver(save_dir=ckpt_dir, save_dict=save_dict, file_prefix=prefix, save_interval=save_interval,
                        epoch_level=True, n_saved=n_saved).attach(trainer)
    return path


def volume_inference_preprocessing(roi_size: Sequence[int], axcodes: str = "RAS", image_key: str = "image"):
    """Image-only version of the volume evaluation pipeline (no label needed), invertible by ``Invertd``:
    load (NIfTI via nibabel, NRRD/MHA via ITK), channel first, orientation, per-modality non-zero
    z-score, in-plane centre crop/pad to ``roi_size``."""
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        Orientationd,
        ResizeWithPadOrCropd,
    )

    from monai_attn.transforms import LeanNormalizeIntensityd, LoadVolumed

    return Compose([
        LoadVolumed(image_key),
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
    Pillow, channel first, RGB (alpha dropped, grey repeated), scale 0..255 to [0, 1], resize to
    ``image_size`` (bilinear, anti-aliased). The resize is recorded, so ``Invertd`` brings a
    prediction back to the file's original resolution.
    """
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        LoadImaged,
        Resized,
        ScaleIntensityRanged,
    )

    from monai_attn.transforms import EnsureRGBd

    return Compose([
        LoadImaged(image_key, reader="PILReader", image_only=True),
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

