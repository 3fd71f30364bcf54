"""Pictures for reports: mistake overlays (the PATM paper's way of showing errors), attention panels
(image | mistakes | attention map, the layout of PATM's Figure 4) and training curves."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["MISTAKE_COLOURS", "mistake_overlay", "save_overlay", "heat_map", "save_attention_panel", "read_scalars",
           "plot_curves", "OverlaySaver"]

logger = logging.getLogger(__name__)

#: RGB colours of the overlay: true positives, false positives (over-segmentation), false negatives (missed)
MISTAKE_COLOURS = {"tp": (0, 200, 0), "fp": (255, 0, 0), "fn": (0, 90, 255)}


def _grey_to_rgb(image: np.ndarray) -> np.ndarray:
    """Scale a 2D image to uint8 grey (1st–99th percentile window) and stack it to RGB."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    scaled = np.clip((image - lo) / max(float(hi - lo), 1e-8), 0, 1)
    grey = (scaled * 255).astype(np.uint8)
    return np.stack([grey] * 3, axis=-1)


def mistake_overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """An RGB uint8 picture of ``image`` with true positives green, false positives red and false
    negatives blue (:data:`MISTAKE_COLOURS`); ``alpha`` blends the colours over the image (1: opaque).

    Args:
        image: 2D grey image (H, W) or RGB (H, W, 3).
        truth, pred: 2D masks (non-zero = foreground) of the same (H, W).
    """
    truth, pred = np.asarray(truth) > 0, np.asarray(pred) > 0
    if truth.shape != pred.shape or truth.ndim != 2:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} must be 2D masks of one shape")
    image = np.asarray(image)
    rgb = image.astype(np.uint8) if image.ndim == 3 and image.shape[-1] == 3 else _grey_to_rgb(image)
    if rgb.shape[:2] != truth.shape:
        raise ValueError(f"image {rgb.shape[:2]} and masks {truth.shape} differ in size")
    out = rgb.astype(np.float32)
    for name, mask in (("tp", truth & pred), ("fp", pred & ~truth), ("fn", truth & ~pred)):
        out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(MISTAKE_COLOURS[name], np.float32)
    return out.round().astype(np.uint8)


def save_overlay(path: str | Path, image: np.ndarray, truth: np.ndarray, pred: np.ndarray,
                 title: str | None = None) -> Path:
    """Save a three-panel PNG: image | ground truth (green) | prediction with mistakes coloured.

    The right panel is :func:`mistake_overlay` with ``alpha=1`` so its colours are exact.
    """

    base = _grey_to_rgb(image) if np.asarray(image).ndim == 2 else np.asarray(image, np.uint8)
    gt = base.copy()
    gt[np.asarray(truth) > 0] = MISTAKE_COLOURS["tp"]
    return _save_panels(path, [base, gt, mistake_overlay(image, truth, pred)], title)


def _save_panels(path: str | Path, panels: list[np.ndarray], title: str | None) -> Path:
    """Save equally sized RGB ``panels`` side by side (4-pixel gaps) under an optional one-line ``title``."""
    from PIL import Image, ImageDraw

    h, w = panels[0].shape[:2]
    gap, header = 4, 16 if title else 0
    canvas = Image.new("RGB", (len(panels) * w + (len(panels) - 1) * gap, h + header), (255, 255, 255))
    for i, panel in enumerate(panels):
        canvas.paste(Image.fromarray(panel), (i * (w + gap), header))
    if title:
        ImageDraw.Draw(canvas).text((2, 2), title, fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def heat_map(values: np.ndarray, vmax: float | None = None, cmap: str = "inferno") -> np.ndarray:
    """An RGB uint8 heat map of a 2D array: 0 → the colour map's start, ``vmax`` (default: 1, or the
    maximum when it exceeds 1, e.g. for global-context weights) → its end."""
    from matplotlib import colormaps

    values = np.nan_to_num(np.asarray(values, dtype=np.float32))
    top = vmax if vmax is not None else max(1.0, float(values.max()) if values.size else 1.0)
    scaled = np.clip(values / max(top, 1e-12), 0.0, 1.0)
    return (colormaps[cmap](scaled)[..., :3] * 255).round().astype(np.uint8)


def save_attention_panel(path: str | Path, image: np.ndarray, truth: np.ndarray, pred: np.ndarray,
                         attention: np.ndarray, title: str | None = None) -> Path:
    """Save a three-panel PNG in the layout of PATM's Figure 4: image | prediction with mistakes coloured
    (:func:`mistake_overlay`) | attention map (:func:`heat_map`). All arrays are 2D (H, W) (image may be RGB)."""

    base = _grey_to_rgb(image) if np.asarray(image).ndim == 2 else np.asarray(image, np.uint8)
    attention = np.asarray(attention, dtype=np.float32)
    if attention.shape != base.shape[:2]:
        raise ValueError(f"attention map {attention.shape} and image {base.shape[:2]} differ in size")
    return _save_panels(path, [base, mistake_overlay(image, truth, pred), heat_map(attention)], title)


def read_scalars(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series in the TensorBoard event files under ``log_dir``: ``{tag: [(step, value), ...]}``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            series.setdefault(tag, []).extend((e.step, float(e.value)) for e in acc.Scalars(tag))
    return {tag: sorted(points) for tag, points in series.items()}


def plot_curves(series: dict[str, Sequence[tuple[int, float]]], path: str | Path, title: str = "") -> Path | None:
    """Plot each series against its step into one PNG (one panel per tag); None when there is nothing."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3), squeeze=False)
    for ax, (tag, points) in zip(axes[0], series.items()):
        steps, values = zip(*points)
        ax.plot(steps, values, marker="." if len(points) < 50 else None)
        ax.set_title(tag)
        ax.set_xlabel("epoch" if "val" in tag or "epoch" in tag.lower() else "iteration")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _case_name(item: dict, fallback: str) -> str:
    meta = getattr(item.get("image"), "meta", None) or item.get("image_meta_dict") or {}
    source = meta.get("filename_or_obj") if isinstance(meta, dict) else None
    if isinstance(source, (list, tuple)):
        source = source[0] if source else None
    if not source:
        return fallback
    path = Path(str(source))
    name = path.name.split(".")[0]
    # BraTS files are <case>_<modality>: the case folder names the case
    return path.parent.name if path.parent.name and name.startswith(path.parent.name) else name


class OverlaySaver:
    """Ignite handler: save :func:`save_overlay` PNGs of an evaluator's outputs (image | truth | mistakes).

    For volumes, the slice along ``slice_axis`` with the most ground truth (or predicted foreground
    when the truth is empty) is shown.
    Attach to a MONAI ``SupervisedEvaluator`` (``val_handlers``); its postprocessed outputs must hold
    ``image``, ``label`` and binary ``pred`` of the same spatial shape.

    With ``network`` (a network with attention blocks), each drawn case also gets an attention panel
    (:func:`save_attention_panel`: image | mistakes | attention map, PATM's Figure 4) in
    ``<output_dir>/../attention/<case>_attention_<block>.png``: the map of ``attention_block`` (default:
    the deepest encoder block) from one extra pass of ``network`` over the shown image or slice (the
    network's input, ``image``). RFNA maps are shown as trained (reversed labels). Networks without
    attention blocks draw no panel.

    Args:
        output_dir: folder of the PNGs (``<case>.png``).
        max_cases: how many cases to draw per run. Defaults to 8.
        channel: image channel shown (e.g. 2 = T1ce for BraTS). Defaults to 0.
        slice_axis: spatial axis sliced for volumes. Defaults to 2 (axial in RAS).
        network: draw attention panels with this network. Defaults to None (no panels).
        attention_block: the attention map drawn. Defaults to the deepest encoder block.
        attention_dir: folder of the attention panels. Defaults to ``output_dir``'s sibling ``attention``.
    """

    def __init__(self, output_dir: str, max_cases: int = 8, channel: int = 0, slice_axis: int = 2,
                 network=None, attention_block: str | None = None, attention_dir: str | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.max_cases, self.channel, self.slice_axis = max_cases, channel, slice_axis
        self.saved: list[Path] = []
        self.network = network
        self.attention_block = attention_block
        self.attention_dir = Path(attention_dir) if attention_dir else self.output_dir.parent / "attention"

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, lambda _: self.saved.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine) -> None:
        output = engine.state.output
        for item in output if isinstance(output, list) else [output]:
            if len(self.saved) >= self.max_cases:
                return
            self.save_item(item, f"case_{engine.state.iteration:03d}_{len(self.saved)}")

    def save_item(self, item: dict, fallback_name: str) -> Path:
        def arr(x):
            return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)

        channels, truth, pred = arr(item["image"]), arr(item["label"])[0], arr(item["pred"])[0]
        image = channels[min(self.channel, channels.shape[0] - 1)]
        k = None
        if image.ndim == 3:
            other = tuple(a for a in range(3) if a != self.slice_axis)
            # the slice with the most ground truth (or, without any, the most predicted foreground)
            shown = truth > 0 if (truth > 0).any() else pred > 0
            k = int(np.argmax(shown.sum(axis=other)))
            image, truth, pred = (np.take(v, k, axis=self.slice_axis) for v in (image, truth, pred))
            title = f"{_case_name(item, fallback_name)}, slice {k}"
        else:
            title = _case_name(item, fallback_name)
        # MONAI arrays are (x, y): transpose so rows run top to bottom as in the file viewers
        path = save_overlay(self.output_dir / f"{title.split(',')[0]}.png", image.T, truth.T, pred.T, title=title)
        self.saved.append(path)
        if self.network is not None:
            self.save_attention(channels if k is None else np.take(channels, k, axis=1 + self.slice_axis),
                                image, truth, pred, title)
        return path

    def save_attention(self, network_input: np.ndarray, image: np.ndarray, truth: np.ndarray, pred: np.ndarray,
                       title: str) -> Path | None:
        """Draw the attention panel of one 2D case (``network_input``: (C, H, W), the others (H, W))."""
        import torch

        from monai_attn.networks.attention import attention_blocks, attention_maps, deepest_encoder_block

        if not attention_blocks(self.network):
            return None
        block = self.attention_block or deepest_encoder_block(self.network)
        device = next(self.network.parameters()).device
        x = torch.as_tensor(network_input, dtype=torch.float32, device=device)[None]
        was_training = self.network.training
        self.network.eval()
        try:
            attention = attention_maps(self.network, x, block)[block][0, 0].cpu().numpy()
        except ValueError as e:  # e.g. an input too small for the network: the panel is an extra, not a failure
            logger.warning("no attention panel for %s: %s", title, e)
            return None
        finally:
            self.network.train(was_training)
        name = f"{title.split(',')[0]}_attention_{block.replace('.', '_')}"
        return save_attention_panel(self.attention_dir / f"{name}.png", image.T, truth.T, pred.T, attention.T,
                                    title=f"{title}: image | mistakes | attention {block}")
