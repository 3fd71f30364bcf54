"""Pictures for reports: mistake overlays (the PATM paper's way of showing errors) and training curves."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["MISTAKE_COLOURS", "mistake_overlay", "save_overlay", "read_scalars", "plot_curves", "OverlaySaver"]

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
    from PIL import Image, ImageDraw

    base = _grey_to_rgb(image) if np.asarray(image).ndim == 2 else np.asarray(image, np.uint8)
    gt = base.copy()
    gt[np.asarray(truth) > 0] = MISTAKE_COLOURS["tp"]
    panels = [base, gt, mistake_overlay(image, truth, pred)]
    h, w = base.shape[:2]
    gap, header = 4, 16 if title else 0
    canvas = Image.new("RGB", (3 * w + 2 * gap, h + header), (255, 255, 255))
    for i, panel in enumerate(panels):
        canvas.paste(Image.fromarray(panel), (i * (w + gap), header))
    if title:
        ImageDraw.Draw(canvas).text((2, 2), title, fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


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

    Args:
        output_dir: folder of the PNGs (``<case>.png``).
        max_cases: how many cases to draw per run. Defaults to 8.
        channel: image channel shown (e.g. 2 = T1ce for BraTS). Defaults to 0.
        slice_axis: spatial axis sliced for volumes. Defaults to 2 (axial in RAS).
    """

    def __init__(self, output_dir: str, max_cases: int = 8, channel: int = 0, slice_axis: int = 2) -> None:
        self.output_dir = Path(output_dir)
        self.max_cases, self.channel, self.slice_axis = max_cases, channel, slice_axis
        self.saved: list[Path] = []

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

        image, truth, pred = arr(item["image"]), arr(item["label"])[0], arr(item["pred"])[0]
        image = image[min(self.channel, image.shape[0] - 1)]
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
        return path
