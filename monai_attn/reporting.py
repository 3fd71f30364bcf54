"""Markdown reports from bundle runs: metric tables, training curves and mistake overlays.

``monai-attn report RUN_DIR`` works on any bundle run folder (the ``--bundle_root`` of a run): it reads
``eval/metrics.json`` (written by ``evaluate.json``), the TensorBoard logs under ``eval/``, the
overlay PNGs in ``eval/overlays/``, the attention panels in ``eval/attention/`` (image | mistakes |
attention map of the deepest encoder block) and, when inference ran with ``--tta flips``, the
entropy summary ``predictions/uncertainty.json``, and writes ``RUN_DIR/report.md`` plus ``RUN_DIR/curves.png``.
:func:`render_screenshot` draws a report (tables, curves, overlays) into one PNG, e.g. the README's
``docs/images/report.png`` from ``demo_output``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from .metrics import read_lesions_csv, read_report_json
from .visualize import plot_curves, read_scalars

__all__ = ["metrics_table", "hd95_label", "run_section", "write_run_report", "build_report", "dsb_verdict", "render_screenshot",
           "attention_panels", "uncertainty_line", "lesion_lines"]

logger = logging.getLogger(__name__)

_LABELS = {"dice": "Dice", "iou": "IoU", "precision": "precision", "recall": "recall", "fpr": "FP rate",
           "fnr": "FN rate", "hd95": "HD95 (mm)"}


#: how the unit recorded in a metrics JSON (``settings.hd95_units``) is shown in a column header
_UNITS = {"mm": "mm", "pixels": "pixels", "pixel": "pixels", "px": "pixels", "voxels": "voxels"}


def hd95_label(units: str | None) -> str:
    """The HD95 column header for the unit a metrics JSON records: ``HD95 (mm)``, ``HD95 (pixels)``, or
    ``HD95`` when the unit is not one of these (e.g. the generic "physical units of the spacing")."""
    unit = _UNITS.get(str(units).strip().lower()) if units else None
    return f"HD95 ({unit})" if unit else "HD95"


def _report_units(metrics_json: Path) -> str | None:
    try:
        return read_report_json(metrics_json).get("settings", {}).get("hd95_units")
    except (ValueError, OSError, AttributeError):
        return None


def metrics_table(summaries: dict[str, dict], metrics=tuple(_LABELS), units: str | None = "mm") -> str:
    """A markdown table, one row per named summary (``{metric: {"mean", "std", "n"}}``), mean ± std;
    ``units`` names the unit of HD95 in its header (see :func:`hd95_label`)."""
    labels = {**_LABELS, "hd95": hd95_label(units)}
    lines = ["| | cases | " + " | ".join(labels[m] for m in metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]
    for name, summary in summaries.items():
        n = max((int(summary[m].get("n", 0)) for m in metrics if m in summary), default=0)
        cells = []
        for m in metrics:
            v = summary.get(m)
            cells.append("—" if not v or v.get("mean") is None else f"{v['mean']:.3f} ± {v.get('std', 0.0):.3f}")
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _link(path: str) -> str:
    """A markdown link target: in ``<...>`` when it holds spaces (a bare one would not render)."""
    return f"<{path}>" if any(c.isspace() for c in path) else path


def _class_summary(metrics_json: Path) -> dict:
    from .errors import BadInputError

    try:
        summary = read_report_json(metrics_json)["summary"]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BadInputError(metrics_json, f"not a readable metrics JSON ({type(e).__name__}: {str(e)[:200]})",
                            "run evaluate.json again to write it") from e
    return summary.get("class_0") or summary.get("all") or next(iter(summary.values()), {})


def run_section(run_dir: str | Path, title: str, rel_to: str | Path, extra_rows: dict | None = None) -> str:
    """The markdown section of one run: metrics table, curves, overlays (paths relative to ``rel_to``)."""
    run_dir, rel_to = Path(run_dir), Path(rel_to)
    parts = [f"## {title}", ""]
    metrics_json = run_dir / "eval" / "metrics.json"
    if metrics_json.is_file():
        rows = {"model": _class_summary(metrics_json), **(extra_rows or {})}
        parts += [metrics_table(rows, units=_report_units(metrics_json)), ""]
    else:
        parts += [f"_No `{metrics_json.relative_to(run_dir)}`: run `evaluate.json` first._", ""]
    curves = plot_curves(read_scalars(run_dir / "eval"), run_dir / "curves.png", title=title)
    if curves:
        parts += [f"![training curves]({_link(os.path.relpath(curves, rel_to))})", ""]
    overlays = sorted((run_dir / "eval" / "overlays").glob("*.png"))
    if overlays:
        parts += ["Overlays: image | ground truth | prediction with **true positives green, false positives "
                  "red, false negatives blue**.", ""]
        parts += [f"![{p.stem}]({_link(os.path.relpath(p, rel_to))})" for p in overlays] + [""]
    panels = attention_panels(run_dir)
    if panels:
        parts += ["Attention (the layout of PATM's Figure 4): image | prediction with mistakes coloured | attention "
                  "map of the deepest encoder block (dark: low, bright: high; RFNA as trained, on reversed labels, "
                  "see docs/networks.md).", ""]
        parts += [f"![{p.stem}]({_link(os.path.relpath(p, rel_to))})" for p in panels] + [""]
    line = uncertainty_line(run_dir)
    if line:
        parts += [line, ""]
    parts += lesion_lines(run_dir / "eval" / "lesions.csv")
    return "\n".join(parts)


def lesion_lines(lesions_csv: str | Path) -> list[str]:
    """Markdown lines on the lesion-wise mistakes of ``eval/lesions.csv`` (written by
    ``evaluate.json``): lesions found, missed ones by size bin, false-positive lesions."""
    if not Path(lesions_csv).is_file():
        return []
    rows = read_lesions_csv(lesions_csv)
    gt = [r for r in rows if r["kind"] == "gt"]
    missed = [r for r in gt if not r["detected"]]
    n_fp = len(rows) - len(gt)
    lines = [f"Lesions (connected components, `eval/lesions.csv`): {len(gt) - len(missed)} of {len(gt)} found, "
             f"{len(missed)} missed, {n_fp} false-positive lesions.", ""]
    if missed:
        lines += ["| missed lesions, by size | missed | of |", "|---|---:|---:|"]
        for label in dict.fromkeys(r["size_bin"] for r in sorted(gt, key=lambda r: r["volume"])):
            in_bin = [r for r in gt if r["size_bin"] == label]
            lines.append(f"| {label} | {sum(not r['detected'] for r in in_bin)} | {len(in_bin)} |")
        lines.append("")
    return lines


def attention_panels(run_dir: str | Path) -> list[Path]:
    """The attention panels of a run (``eval/attention/*.png``, written by ``evaluate.json``'s overlay saver)."""
    return sorted((Path(run_dir) / "eval" / "attention").glob("*.png"))


def uncertainty_line(run_dir: str | Path) -> str | None:
    """One sentence with the mean flip-TTA entropy inside and outside the predicted masks, from the
    ``uncertainty.json`` that inference with ``--tta flips`` writes (``predictions/`` or ``eval/`` of the run);
    None when there is none."""
    import json

    for folder in ("predictions", "eval"):
        path = Path(run_dir) / folder / "uncertainty.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
            summary, cases = data["summary"], data["cases"]
        except (ValueError, KeyError, TypeError) as e:
            logger.warning("%s: unreadable uncertainty summary (%s)", path, e)
            continue

        def fmt(v) -> str:
            return "—" if v is None else f"**{v:.3f}**"

        return (f"Flip test-time augmentation (`--tta flips`, {len(cases)} case(s) in `{folder}/`): mean entropy of "
                f"the flips' votes {fmt(summary.get('entropy_inside'))} bits inside the predicted mask, "
                f"{fmt(summary.get('entropy_outside'))} bits outside (0: all flips agree, 1: evenly split).")
    return None


def write_run_report(run_dir: str | Path, screenshot: str | Path | None = None) -> Path:
    """``monai-attn report RUN_DIR``: write ``RUN_DIR/report.md`` for one bundle run (and, with
    ``screenshot``, a PNG picture of it: :func:`render_screenshot`)."""
    from .errors import MissingInputError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MissingInputError(run_dir, "run folder not found", "pass a bundle run's --bundle_root")
    if not (run_dir / "eval").is_dir():
        raise MissingInputError(run_dir, "no eval/ folder", "train and evaluate with this --bundle_root first")
    path = run_dir / "report.md"
    text = f"# Report: {run_dir.name}\n\n" + run_section(run_dir, run_dir.name, run_dir)
    path.write_text(text)
    if screenshot is not None:
        render_screenshot(run_dir, screenshot)
    return path


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def dsb_verdict(model_dice: float, otsu_dice: float) -> str:
    """The demo's sentence comparing the trained network with the Otsu baseline on the DSB test half."""
    head = f"DSB test half: trained FocusNet++-lite Dice **{model_dice:.3f}**, Otsu baseline Dice **{otsu_dice:.3f}**."
    if model_dice > otsu_dice:
        return f"{head} The trained network beats the Otsu baseline."
    return (f"{head} The trained network does **not** beat the Otsu baseline in this run: a few dozen CPU steps on "
            "crops of one image are far from the paper's 540 training images and 50 epochs, while this evenly lit "
            "image suits a global threshold (see `demo.log`, and train longer with `--dsb-epochs`).")


def build_report(out: str | Path, timings: dict, settings: dict, overrides: dict | None = None,
                 notes: dict | None = None) -> Path:
    """The demo's ``report.md``: BraTS-like volumes (FPA) and the real DSB image (FocusNet++-lite vs Otsu).

    Sections whose run folder (``out/brats/run``, ``out/dsb/run``) is missing are left out; ``overrides``
    (``{bundle: {key: value}}``) and ``notes`` (``{bundle: text}``) list the demo's departures from the
    bundles' defaults.
    """
    out = Path(out)
    lines = [
        "# monai_attn demo report", "",
        "Everything below ran on this machine's CPU through the real bundles "
        "(`python -m monai.bundle run`). Sizes and epochs are chosen for a ~10 minute budget: "
        "**nothing here claims paper-level accuracy.**", "",
    ]
    dsb_line = None
    dsb_metrics = out / "dsb" / "run" / "eval" / "metrics.json"
    otsu = out / "dsb" / "otsu_metrics.json"
    if dsb_metrics.is_file() and otsu.is_file():
        dsb_line = dsb_verdict(_class_summary(dsb_metrics)["dice"]["mean"], _class_summary(otsu)["dice"]["mean"])
        lines += [dsb_line, ""]
    lines += ["| setting | value |", "|---|---|", *[f"| {k} | {_fmt(v)} |" for k, v in settings.items()],
              *[f"| time: {k} | {v:.0f} s |" for k, v in timings.items()], ""]
    for bundle, values in (overrides or {}).items():
        lines += [f"Overrides of `{bundle}` (command line of `python -m monai.bundle run`): "
                  + ", ".join(f"`--{k} {_fmt(v)}`" for k, v in values.items()) + ".", ""]
        if notes and notes.get(bundle):
            lines += [notes[bundle], ""]
    for run_dir, title, extra in report_sections(out):
        lines.append(run_section(run_dir, title, out, extra_rows=extra))
        if dsb_line and run_dir == out / "dsb" / "run":
            lines += [dsb_line, ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


DEMO_TITLES = {
    "brats": "BraTS-like synthetic volumes: FPA U-Net, held-out fold, volumetric inference",
    "dsb": "Real DSB 2018 image: FocusNet++-lite, trained on the left half, tested on the right half",
}


def report_sections(folder: str | Path) -> list[tuple[Path, str, dict]]:
    """``(run_dir, title, extra_rows)`` of each run shown by a report of ``folder``: a bundle run folder
    (one with ``eval/``) is one section; a demo output folder has ``brats/run`` and ``dsb/run`` (the latter
    with the Otsu baseline's row)."""
    folder = Path(folder)
    if (folder / "eval").is_dir():
        return [(folder, folder.name, {})]
    sections = []
    for part, title in DEMO_TITLES.items():
        run = folder / part / "run"
        if run.is_dir():
            otsu = folder / part / "otsu_metrics.json"
            extra = {"Otsu threshold (same test half)": _class_summary(otsu)} if otsu.is_file() else {}
            sections.append((run, title, extra))
    return sections


def _table_cells(summaries: dict[str, dict], metrics=tuple(_LABELS),
                 units: str | None = "mm") -> tuple[list[str], list[list[str]]]:
    labels = {**_LABELS, "hd95": hd95_label(units)}
    header = ["", "cases", *[labels[m] for m in metrics]]
    rows = []
    for name, summary in summaries.items():
        n = max((int(summary[m].get("n", 0)) for m in metrics if m in summary), default=0)
        cells = [name, str(n)]
        for m in metrics:
            v = summary.get(m)
            cells.append("—" if not v or v.get("mean") is None else f"{v['mean']:.3f}")
        rows.append(cells)
    return header, rows


def render_screenshot(folder: str | Path, path: str | Path, max_overlays: int = 2, dpi: int = 72) -> Path:
    """Draw a report into one PNG: per section (see :func:`report_sections`) its metrics table (means), its
    training curves and its first ``max_overlays`` overlays. Reproducible from a run's (or the demo's)
    output folder, e.g. ``render_screenshot("demo_output", "docs/images/report.png")``.

    Curves are (re)drawn from the TensorBoard logs like :func:`run_section` does; sections without
    metrics, curves or overlays leave them out. Raises ``FileNotFoundError`` when ``folder`` holds no run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    folder = Path(folder)
    sections = report_sections(folder)
    if not sections:
        raise FileNotFoundError(f"{folder}: neither a bundle run folder (with eval/) nor a demo output folder")
    panels = []  # (title, table or None, curves image or None, [overlay images], [attention panels])
    for run_dir, title, extra in sections:
        metrics_json = run_dir / "eval" / "metrics.json"
        table = _table_cells({"model": _class_summary(metrics_json), **extra},
                             units=_report_units(metrics_json)) if metrics_json.is_file() else None
        curves = plot_curves(read_scalars(run_dir / "eval"), run_dir / "curves.png", title=title)
        overlays = sorted((run_dir / "eval" / "overlays").glob("*.png"))[:max_overlays]
        attention = attention_panels(run_dir)[:max_overlays]
        panels.append((title, table, Image.open(curves).convert("RGB") if curves else None,
                       [Image.open(p).convert("RGB") for p in overlays],
                       [Image.open(p).convert("RGB") for p in attention]))

    # one row per block: heights in inches at a 12-inch width
    width = 12.0
    blocks: list[tuple[str, object, float]] = []
    for title, table, curves, overlays, attention in panels:
        blocks.append(("title", title, 0.45))
        if table:
            blocks.append(("table", table, 0.3 * (len(table[1]) + 1) + 0.1))
        if curves is not None:
            blocks.append(("image", curves, width * curves.height / curves.width))
        for row in (overlays, attention):  # attention panels: image | mistakes | attention map (PATM Figure 4)
            if row:
                blocks.append(("overlays", row, min(3.2, width / len(row) * max(o.height / o.width for o in row))))
    blocks.insert(0, ("heading", "monai_attn report (overlays: image | truth | true positives green, "
                      "false positives red, false negatives blue;\nattention panels: image | mistakes | attention map of the deepest "
                      "encoder block)", 0.7))
    heights = [h for _, _, h in blocks]
    fig = plt.figure(figsize=(width, sum(heights)))
    grid = fig.add_gridspec(len(blocks), 1, height_ratios=heights, hspace=0.05, left=0.01, right=0.99, top=0.99,
                            bottom=0.01)
    for i, (kind, content, _) in enumerate(blocks):
        if kind == "overlays":
            sub = grid[i].subgridspec(1, len(content), wspace=0.02)
            for j, img in enumerate(content):
                ax = fig.add_subplot(sub[j])
                ax.imshow(img, interpolation="nearest")
                ax.axis("off")
            continue
        ax = fig.add_subplot(grid[i])
        ax.axis("off")
        if kind in ("heading", "title"):
            ax.text(0.0, 0.5, content, fontsize=13 if kind == "heading" else 12, weight="bold", va="center")
        elif kind == "table":
            header, rows = content
            first = 0.24
            widths = [first] + [(1 - first) / (len(header) - 1)] * (len(header) - 1)
            tab = ax.table(cellText=rows, colLabels=header, colWidths=widths, loc="center", cellLoc="center")
            tab.auto_set_font_size(False)
            tab.set_fontsize(10)
            tab.scale(1, 1.2)
        else:
            ax.imshow(content, interpolation="antialiased")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
