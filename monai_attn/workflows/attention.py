"""Inference extras: attention maps and flip test-time augmentation (TTA) with a per-voxel entropy map.

The bundles' ``inference.json`` wire two pieces:

- :func:`inference_network` wraps the network for the evaluator. With nothing requested it returns the
  network itself (no cost); otherwise an :class:`InferenceOutputs` module whose output holds, as extra
  channels after the prediction, the TTA entropy and the chosen attention maps. Every inferer (the
  slice inferer of the volume bundles included) then assembles them exactly like the prediction.
- :class:`SaveInferenceExtrasd`, the first post-processing step, splits those channels off the
  prediction, brings them back to the input's geometry through the same ``Invertd`` as the prediction
  (so shape and affine equal the input's, also for anisotropic, axis-permuted volumes) and writes
  ``<case>_attention_<block>`` and ``<case>_entropy`` beside it: float NIfTI for volumes, PNG heat maps
  for 2D images. With TTA it also writes ``uncertainty.json``: the mean entropy inside and outside
  the predicted mask per case (``monai-attn report`` shows it).
"""
from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from monai_attn.atomic import atomic_write, write_text_atomic
from monai_attn.networks.attention import AttentionRecorder, attention_blocks, deepest_encoder_block
from monai_attn.overrides import as_bool
from monai_attn.visualize import heat_map

from .outputs import case_name_formatter

__all__ = ["TTA_MODES", "InferenceOutputs", "inference_network", "flip_tta", "vote_entropy",
           "SaveInferenceExtrasd", "attention_file_stem", "uncertainty_summary"]

logger = logging.getLogger(__name__)

TTA_MODES = ("none", "flips")


def vote_entropy(probabilities: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-voxel entropy (bits) of the augmented predictions' votes: ``q`` = the fraction of predictions
    ``> threshold`` (foreground), ``H = -q log2 q - (1-q) log2(1-q)``. 0 where every prediction agrees,
    1 where they split evenly.

    Args:
        probabilities: ``(N, B, C, *spatial)``, one probability map per augmentation.
    """
    q = (probabilities > threshold).float().mean(dim=0)
    h = torch.zeros_like(q)
    mixed = (q > 0) & (q < 1)
    qm = q[mixed]
    h[mixed] = -(qm * torch.log2(qm) + (1 - qm) * torch.log2(1 - qm))
    return h


def flip_tta(network: nn.Module, x: torch.Tensor, logits: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip test-time augmentation: run ``network`` on ``x`` flipped along every subset of its spatial axes
    (4 passes in 2D, 8 in 3D), flip each output back and average the sigmoid probabilities.

    Returns ``(logits of the mean probability, vote entropy)`` (see :func:`vote_entropy`), both
    ``(B, C_out, *spatial)`` float32. ``logits``: the un-flipped pass's output when already computed.
    """
    axes = list(range(2, x.dim()))
    probs = []
    for k in range(len(axes) + 1):
        for dims in itertools.combinations(axes, k):
            if not dims:
                y = logits if logits is not None else network(x)
            else:
                y = torch.flip(network(torch.flip(x, dims)), dims)
            probs.append(torch.sigmoid(y.float()))
    stacked = torch.stack(probs)
    mean = stacked.mean(dim=0).clamp(1e-7, 1 - 1e-7)
    return torch.log(mean) - torch.log1p(-mean), vote_entropy(stacked)


def _block_list(network: nn.Module, blocks) -> list[str]:
    """Requested attention blocks: ``None``/``""`` → the deepest encoder block; ``"all"`` → every block; a
    comma-separated string or a list → those names (checked)."""
    available = list(attention_blocks(network))
    if blocks is None or (isinstance(blocks, str) and not blocks.strip()):
        return [deepest_encoder_block(network)]
    if isinstance(blocks, str):
        if blocks.strip().lower() == "all":
            if not available:
                deepest_encoder_block(network)  # raises the no-attention-block error
            return available
        blocks = [b.strip() for b in blocks.split(",") if b.strip()]
    names = list(blocks)
    unknown = [b for b in names if b not in available]
    if unknown or not names:
        raise ValueError(f"attention_blocks: unknown block(s) {unknown or names!r} of {type(network).__name__}; "
                         f"valid: {', '.join(available) or 'none (no attention block)'}, or 'all'.")
    return names


class InferenceOutputs(nn.Module):
    """The network plus its inference extras as one module: the output is the prediction's channels, then
    (with TTA) one entropy channel per prediction channel, then one channel per attention map.

    With ``tta="flips"`` the prediction channels hold the logits of the flip-averaged probability (so the
    usual sigmoid/threshold post-processing applies unchanged) and the entropy channels the vote entropy
    (:func:`flip_tta`). Attention maps come from the un-flipped pass (:class:`AttentionRecorder`).

    Args:
        network: the segmentation network (logits out).
        attention_blocks: attention map names to add (see :func:`monai_attn.networks.attention_blocks`);
            empty for none.
        tta: ``"none"`` or ``"flips"``.
        flip_rfna: RFNA maps as ``1 - A`` (see :func:`monai_attn.networks.attention_maps`).
    """

    def __init__(self, network: nn.Module, attention_blocks: Sequence[str] = (), tta: str = "none",
                 flip_rfna: bool = False) -> None:
        super().__init__()
        if tta not in TTA_MODES:
            raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}.")
        self.network = network
        self.attention_blocks = list(attention_blocks)
        self.tta = tta
        self.flip_rfna = flip_rfna

    @property
    def extras(self) -> list[str]:
        """Names of the extra outputs after the prediction: ``"entropy"`` (with TTA), ``"attention_<block>"``."""
        return (["entropy"] if self.tta == "flips" else []) + [f"attention_{b}" for b in self.attention_blocks]

    def split(self, output: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(prediction, {extra name: channels})`` of an output of this module (``dim``: the channel axis)."""
        n_maps = len(self.attention_blocks)
        c = (output.shape[dim] - n_maps) // (2 if self.tta == "flips" else 1)
        parts = {"pred": output.narrow(dim, 0, c)}
        start = c
        if self.tta == "flips":
            parts["entropy"] = output.narrow(dim, start, c)
            start += c
        for i, b in enumerate(self.attention_blocks):
            parts[f"attention_{b}"] = output.narrow(dim, start + i, 1)
        return parts.pop("pred"), parts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.attention_blocks:
            with AttentionRecorder(self.network, x.shape, self.attention_blocks, self.flip_rfna) as rec:
                y = self.network(x)
            maps = [rec.maps[b] for b in self.attention_blocks]
        else:
            y, maps = self.network(x), []
        parts = [y.float()]
        if self.tta == "flips":
            mean_logits, entropy = flip_tta(self.network, x, y)
            parts = [mean_logits, entropy]
        return torch.cat(parts + maps, dim=1)


def inference_network(network: nn.Module, save_attention=False, attention_blocks=None, tta: str = "none",
                      flip_rfna=False) -> nn.Module:
    """What the evaluator runs: ``network`` itself when neither attention maps nor TTA are asked for (no
    cost), else :class:`InferenceOutputs`. The bundles' ``inference.json`` call it with their
    ``save_attention`` (default false), ``attention_blocks`` (default: the deepest encoder block; a name,
    comma-separated names, a list, or ``"all"``) and ``tta`` (``"none"`` or ``"flips"``)."""
    tta = str(tta or "none").strip().lower()
    if tta not in TTA_MODES:
        raise ValueError(f"tta: expected one of {', '.join(TTA_MODES)}, got {tta!r}.")
    blocks = _block_list(network, attention_blocks) if as_bool(save_attention, "save_attention") else []
    if not blocks and tta == "none":
        return network
    return InferenceOutputs(network, blocks, tta, as_bool(flip_rfna, "flip_rfna"))


def attention_file_stem(case: str, extra: str) -> str:
    """``<case>_attention_<block>`` (the block name's dots as underscores: ``encoder3_fpa``) or ``<case>_entropy``."""
    return f"{case}_{extra.replace('.', '_')}"


class SaveInferenceExtrasd:
    """Post-processing step: split an :class:`InferenceOutputs` output into the prediction and its extras,
    invert the extras to the input's geometry with ``transform`` (the inference pre-processing, as the
    prediction's ``Invertd``), write them beside the prediction and leave only the prediction under
    ``pred_key``. A no-op when ``network`` is not an :class:`InferenceOutputs` (nothing was asked for).

    Volumes: ``<case>_attention_<block>.nii.gz`` / ``<case>_entropy.nii.gz`` (float32, the inverted
    tensor's affine = the input's). 2D images: PNG heat maps (:func:`~monai_attn.visualize.heat_map`; entropy from 0 to 1 bit).
    With TTA, ``<output_dir>/uncertainty.json`` gains the case's mean entropy inside and outside the
    predicted mask (logits > 0, or < 0 with ``reverse_labels``), in the input's geometry.

    Args:
        network: what :func:`inference_network` returned.
        transform: the invertible inference pre-processing.
        output_dir: the predictions' folder.
        dataset: names the outputs after the case (:func:`~monai_attn.workflows.case_name_formatter`).
        reverse_labels: the network predicts reversed labels (RFNA). Defaults to False.
        image_key, pred_key: keys of the input image and the network output.
    """

    def __init__(self, network: nn.Module, transform, output_dir: str, dataset: str, reverse_labels=False,
                 image_key: str = "image", pred_key: str = "pred") -> None:
        self.network = network
        self.transform = transform
        self.output_dir = Path(output_dir)
        self.formatter = case_name_formatter(dataset)
        self.reverse_labels = as_bool(reverse_labels, "reverse_labels")
        self.image_key, self.pred_key = image_key, pred_key
        self.uncertainty: dict[str, dict] = {}

    def __call__(self, data: dict) -> dict:
        if not isinstance(self.network, InferenceOutputs):
            return data
        from monai.transforms import Invertd

        d = dict(data)
        pred, extras = self.network.split(d[self.pred_key])
        d[self.pred_key] = pred
        names = list(extras)
        mask = (pred > 0) != self.reverse_labels
        key = "_inference_extras"
        d[key] = torch.cat([extras[n].float() for n in names] + [mask.float()], dim=0)
        inverted = Invertd(key, self.transform, orig_keys=self.image_key, nearest_interp=False, to_tensor=True)(d)
        stacked = inverted.pop(key)
        meta = dict(getattr(d[self.image_key], "meta", {}) or {})
        case = self.formatter(meta, self)["subject"]
        arr = np.asarray(stacked.detach().cpu(), dtype=np.float32)
        affine = np.asarray(getattr(stacked, "affine", np.eye(4)), dtype=np.float64)
        start, saved = 0, {}
        for name in names:
            n = extras[name].shape[0]
            saved[name] = str(self._save(arr[start : start + n], affine, attention_file_stem(case, name), name))
            start += n
        d[f"{self.pred_key}_extras_saved_to"] = saved
        if "entropy" in extras:
            self._record(case, arr[: extras["entropy"].shape[0]], arr[-1] > 0.5)
        return d

    def _save(self, values: np.ndarray, affine: np.ndarray, stem: str, name: str) -> Path:
        """Write ``values`` ``(C, *spatial)``: volumes as NIfTI (channels, if several, on a 4th axis), 2D images as
        a heat map (of the channel mean)."""
        import nibabel as nib
        from PIL import Image

        if values.ndim == 4:
            path = self.output_dir / f"{stem}.nii.gz"
            volume = values[0] if values.shape[0] == 1 else np.moveaxis(values, 0, -1)
            image = nib.Nifti1Image(volume.astype(np.float32), affine)
            image.header.set_data_dtype(np.float32)
            atomic_write(path, lambda tmp: nib.save(image, tmp))
        else:
            path = self.output_dir / f"{stem}.png"
            # MONAI's 2D arrays are (W, H): transpose back to the file's rows
            picture = heat_map(values.mean(axis=0).T, vmax=1.0 if name == "entropy" else None)
            atomic_write(path, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))
        logger.info("saved %s", path)
        return path

    def _record(self, case: str, entropy: np.ndarray, mask: np.ndarray) -> None:
        entropy = entropy.mean(axis=0)
        inside, outside = entropy[mask], entropy[~mask]
        self.uncertainty[case] = {
            "entropy_inside": float(inside.mean()) if inside.size else None,
            "entropy_outside": float(outside.mean()) if outside.size else None,
            "voxels_inside": int(mask.sum()),
            "voxels_outside": int((~mask).sum()),
        }
        write_text_atomic(json.dumps(uncertainty_summary(self.uncertainty), indent=2), self.output_dir / "uncertainty.json")


def uncertainty_summary(cases: dict[str, dict]) -> dict:
    """``{"cases": {...}, "summary": {"entropy_inside", "entropy_outside"}}``: voxel-weighted means over the cases."""
    summary = {}
    for side in ("inside", "outside"):
        total = sum(c[f"voxels_{side}"] for c in cases.values() if c[f"entropy_{side}"] is not None)
        weighted = sum(c[f"entropy_{side}"] * c[f"voxels_{side}"] for c in cases.values()
                       if c[f"entropy_{side}"] is not None)
        summary[f"entropy_{side}"] = weighted / total if total else None
        summary[f"voxels_{side}"] = total
    return {"unit": "bits (entropy of the flips' votes)", "cases": cases, "summary": summary}
