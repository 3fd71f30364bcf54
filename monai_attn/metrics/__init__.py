"""Segmentation metrics: exact batched Hausdorff distance / HD95 on any device, the papers'
evaluation table (Dice, IoU, precision, recall, FP/FN rates, HD95) and ignite handlers.

See docs/metrics.md for the exact definitions, units and empty-mask conventions.
"""

from .handlers import HausdorffHandler, SegmentationReportHandler, spacing_from_meta
from .hausdorff import EMPTY_CODES, HausdorffMetric
from .patm import PATM_KEYS, PatmHandler, PatmMetric, patm_scores, patm_slice_mask, patm_slice_scores
from .report import REPORT_METRICS, SegmentationReport, read_report_csv, read_report_json
from .surface_distance import EMPTY_POLICIES, hausdorff_distance, mask_edges, prepare_spacing_tensor

__all__ = [
    "EMPTY_CODES",
    "EMPTY_POLICIES",
    "HausdorffHandler",
    "HausdorffMetric",
    "PATM_KEYS",
    "PatmHandler",
    "PatmMetric",
    "REPORT_METRICS",
    "SegmentationReport",
    "SegmentationReportHandler",
    "hausdorff_distance",
    "mask_edges",
    "patm_scores",
    "patm_slice_mask",
    "patm_slice_scores",
    "prepare_spacing_tensor",
    "read_report_csv",
    "read_report_json",
    "spacing_from_meta",
]
