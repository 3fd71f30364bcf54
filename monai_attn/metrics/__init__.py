"""Segmentation metrics: exact batched Hausdorff distance / HD95 on any device, the papers'
evaluation table (Dice, IoU, precision, recall, FP/FN rates, HD95) and ignite handlers.

See docs/metrics.md for the exact definitions, units and empty-mask conventions.
"""

from .handlers import (
    ASSDHandler,
    HausdorffHandler,
    SegmentationReportHandler,
    SurfaceDiceHandler,
    spacing_from_meta,
)
from .hausdorff import EMPTY_CODES, ASSDMetric, HausdorffMetric, NormalizedSurfaceDiceMetric
from .lesions import BRATS_2023_RULES, lesion_report, read_lesions_csv, write_lesions_csv
from .patm import PATM_KEYS, PatmHandler, PatmMetric, patm_scores, patm_slice_mask, patm_slice_scores
from .report import REPORT_METRICS, SegmentationReport, read_report_csv, read_report_json
from .surface_distance import (
    CONVENTIONS,
    EMPTY_POLICIES,
    average_surface_distance,
    check_binary,
    hausdorff_distance,
    mask_edges,
    prepare_spacing_tensor,
    surface_dice,
)

__all__ = [
    "ASSDHandler",
    "ASSDMetric",
    "BRATS_2023_RULES",
    "CONVENTIONS",
    "EMPTY_CODES",
    "EMPTY_POLICIES",
    "HausdorffHandler",
    "HausdorffMetric",
    "NormalizedSurfaceDiceMetric",
    "PATM_KEYS",
    "PatmHandler",
    "PatmMetric",
    "REPORT_METRICS",
    "SegmentationReport",
    "SegmentationReportHandler",
    "SurfaceDiceHandler",
    "average_surface_distance",
    "check_binary",
    "hausdorff_distance",
    "lesion_report",
    "mask_edges",
    "patm_scores",
    "patm_slice_mask",
    "patm_slice_scores",
    "prepare_spacing_tensor",
    "read_report_csv",
    "read_lesions_csv",
    "read_report_json",
    "spacing_from_meta",
    "surface_dice",
    "write_lesions_csv",
]
