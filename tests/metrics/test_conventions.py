"""Every surface-distance convention, ASSD and surface Dice against its reference library (medpy,
DeepMind's surface-distance, MONAI) on random anisotropic 2D/3D blobs; the fast paths against the
plain grid search; the metric classes and handlers; non-binary inputs refused everywhere."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.handlers import from_engine
from monai.metrics import (
    SurfaceDiceMetric,
    SurfaceDistanceMetric,
    compute_average_surface_distance,
    compute_hausdorff_distance,
    compute_surface_dice,
)

import monai_attn.metrics.surface_distance as sdmod
from monai_attn.metrics import (
    ASSDHandler,
    ASSDMetric,
    HausdorffMetric,
    NormalizedSurfaceDiceMetric,
    SegmentationReport,
    SurfaceDiceHandler,
    average_surface_distance,
    hausdorff_distance,
    surface_dice,
)

medpy_binary = pytest.importorskip("medpy.metric.binary")
deepmind = pytest.importorskip("surface_distance")

CASES = [  # (dims, shape, spacing)
    (2, (26, 31), (0.7, 1.9)),
    (2, (30, 24), (1.0, 1.0)),
    (3, (18, 21, 9), (0.78, 0.78, 3.3)),
    (3, (16, 14, 12), (1.2, 0.6, 2.0)),
]


def blob_pair(seed: int, shape, level: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(2):
        coarse = torch.randn((1, 1, *[max(2, s // 4) for s in shape]), generator=g)
        mode = "bilinear" if len(shape) == 2 else "trilinear"
        m = F.interpolate(coarse, size=shape, mode=mode, align_corners=True)[0, 0] > level
        m[(slice(2, 5),) * len(shape)] = True  # never empty
        out.append(m)
    return out


def deepmind_sd(pred: np.ndarray, gt: np.ndarray, spacing):
    return deepmind.compute_surface_distances(gt, pred, spacing)


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("seed", [0, 1])
def test_each_convention_matches_its_reference_library(case, seed):
    dims, shape, sp = CASES[case]
    a, b = blob_pair(10 * case + seed, shape)
    an, bn = a.numpy(), b.numpy()
    A, B = a[None, None], b[None, None]

    def hd(**kw):
        return hausdorff_distance(A, B, spacing=sp, **kw).item()

    sd = deepmind_sd(an, bn, sp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monai_hd95 = compute_hausdorff_distance(
            A.float(), B.float(), True, percentile=95, spacing=list(sp)
        ).item()
        monai_assd = compute_average_surface_distance(
            A.float(), B.float(), True, True, spacing=list(sp)
        ).item()
        monai_nsd = compute_surface_dice(A.float(), B.float(), [1.5], True, spacing=list(sp)).item()
        monai_nsd_sub = compute_surface_dice(
            A.float(), B.float(), [1.5], True, spacing=list(sp), use_subvoxels=True
        ).item()
    tol = 1e-4
    assert hd(percentile=95) == pytest.approx(monai_hd95, abs=tol)
    assert hd(percentile=95, convention="pooled") == pytest.approx(medpy_binary.hd95(an, bn, sp), abs=tol)
    assert hd(convention="pooled") == pytest.approx(medpy_binary.hd(an, bn, sp), abs=tol)
    assert hd(percentile=95, convention="surface") == pytest.approx(
        deepmind.compute_robust_hausdorff(sd, 95), abs=tol
    )
    assert hd(convention="surface") == pytest.approx(deepmind.compute_robust_hausdorff(sd, 100), abs=tol)
    assert hd(percentile=50, convention="surface") == pytest.approx(
        deepmind.compute_robust_hausdorff(sd, 50), abs=tol
    )
    asd = average_surface_distance(A, B, spacing=sp).item()
    assert asd == pytest.approx(monai_assd, abs=tol)
    assert average_surface_distance(A, B, spacing=sp, convention="pooled").item() == pytest.approx(
        medpy_binary.assd(an, bn, sp), abs=tol
    )
    assert average_surface_distance(A, B, spacing=sp, convention="surface").item() == pytest.approx(
        float(np.mean(deepmind.compute_average_surface_distance(sd))), abs=tol
    )
    nsd = surface_dice(A, B, 1.5, spacing=sp).item()
    assert nsd == pytest.approx(deepmind.compute_surface_dice_at_tolerance(sd, 1.5), abs=1e-6)
    assert nsd == pytest.approx(monai_nsd_sub, abs=1e-6)
    assert surface_dice(A, B, 1.5, spacing=sp, convention="monai").item() == pytest.approx(
        monai_nsd, abs=1e-6
    )
    # the conventions differ by definition, not by accident
    assert len({round(hd(percentile=95, convention=c), 4) for c in ("monai", "pooled", "surface")}) > 1


def test_stray_false_positive_separates_the_conventions():
    # a lesion and a stray false-positive blob far away: "monai" and "surface" take the larger
    # directed percentile (dominated by the blob), "pooled" dilutes it among both surfaces
    gt = torch.zeros(1, 1, 60, 60, 8, dtype=torch.bool)
    gt[..., 10:30, 10:30, 2:6] = True
    pred = gt.clone()
    pred[..., 50:56, 50:56, 3:6] = True
    sp = (1.0, 1.0, 2.0)
    v = {
        c: hausdorff_distance(pred, gt, percentile=95, spacing=sp, convention=c).item()
        for c in ("monai", "pooled", "surface")
    }
    assert v["monai"] > 25 and v["surface"] > 25 and v["pooled"] < 1.0
    sd = deepmind_sd(pred[0, 0].numpy(), gt[0, 0].numpy(), sp)
    assert v["surface"] == pytest.approx(deepmind.compute_robust_hausdorff(sd, 95), abs=1e-4)
    assert v["pooled"] == pytest.approx(medpy_binary.hd95(pred[0, 0].numpy(), gt[0, 0].numpy(), sp), abs=1e-4)


@pytest.mark.parametrize("convention", ["monai", "pooled", "surface"])
def test_batches_with_per_image_spacing_equal_single_calls(convention):
    pairs = [blob_pair(s, (14, 16, 8)) for s in range(3)]
    P = torch.stack([torch.stack([~p, p]) for p, _ in pairs])  # one-hot [3, 2, ...]
    G = torch.stack([torch.stack([~g, g]) for _, g in pairs])
    spacing = [[1.0, 1.0, 2.0], [0.5, 0.7, 3.0], [1.0, 1.0, 2.0]]
    for fn, kw in (
        (hausdorff_distance, {"percentile": 95}),
        (average_surface_distance, {}),
        (surface_dice, {"tolerance": 1.0}),
    ):
        batch = fn(P, G, spacing=spacing, convention=convention, include_background=True, **kw)
        assert batch.shape == (3, 2)
        for i in range(3):
            one = fn(
                P[i : i + 1],
                G[i : i + 1],
                spacing=spacing[i],
                convention=convention,
                include_background=True,
                **kw,
            )
            assert torch.allclose(batch[i], one[0], atol=1e-5), (fn.__name__, i)


@pytest.mark.parametrize("convention", ["monai", "pooled", "surface"])
@pytest.mark.parametrize("dims", [2, 3])
def test_fast_paths_equal_the_plain_grid_search(monkeypatch, convention, dims):
    shape = (40, 36) if dims == 2 else (20, 22, 10)
    sp = (0.8, 1.3) if dims == 2 else (0.8, 0.8, 2.5)
    pairs = [blob_pair(s, shape, level=0.3) for s in range(4)]
    P = torch.stack([p for p, _ in pairs])[:, None]
    G = torch.stack([g for _, g in pairs])[:, None]
    P[0, 0, -3:, -3:] = True  # far-away stray blobs: points left for the last stage
    kw = {"spacing": sp, "convention": convention}
    fast = (hausdorff_distance(P, G, percentile=95, **kw), average_surface_distance(P, G, **kw))
    monkeypatch.setattr(sdmod, "_BRUTE_PAIRS", 0)  # dense pass, then the grid for the rest
    mixed = (hausdorff_distance(P, G, percentile=95, **kw), average_surface_distance(P, G, **kw))
    monkeypatch.setattr(sdmod, "_DENSE_FIRST", False)  # the grid search alone
    plain = (hausdorff_distance(P, G, percentile=95, **kw), average_surface_distance(P, G, **kw))
    for f, m, p in zip(fast, mixed, plain):
        assert torch.allclose(f, p, atol=1e-5) and torch.allclose(m, p, atol=1e-5)


def test_small_ball_budget_hands_points_to_the_grid(monkeypatch):
    p, g = blob_pair(3, (30, 30, 12), level=0.4)
    ref = hausdorff_distance(
        p[None, None], g[None, None], spacing=(1, 1, 2), convention="pooled", percentile=90
    )
    monkeypatch.setattr(sdmod, "_BRUTE_PAIRS", 0)
    small = hausdorff_distance(
        p[None, None], g[None, None], spacing=(1, 1, 2), convention="pooled", percentile=90, max_pairs=64
    )
    assert torch.allclose(ref, small, atol=1e-5)


def test_empty_masks_in_every_function():
    z = torch.zeros(2, 1, 10, 10, dtype=torch.bool)
    m = z.clone()
    m[1, 0, 2:5, 2:5] = True
    diag = math.hypot(10, 10)
    for conv in ("monai", "pooled", "surface"):
        hd, code = hausdorff_distance(m, z, convention=conv, return_empty=True)
        assert hd[:, 0].tolist() == pytest.approx([0.0, diag]) and code[:, 0].tolist() == [3, 2]
        assert average_surface_distance(z, m, convention=conv, empty="nan")[1, 0].isnan()
        assert surface_dice(m, z, 1.0, convention=conv)[:, 0].tolist() == [1.0, 0.0]


def test_surface_dice_tolerance_per_class_and_errors():
    a, b = blob_pair(5, (20, 20))
    P = torch.stack([a, b])[None]
    G = torch.stack([b, a])[None]
    two = surface_dice(P, G, [0.0, 3.0], include_background=True)
    assert two[0, 0] == surface_dice(P[:, :1], G[:, :1], 0.0, include_background=True)[0, 0]
    assert two[0, 1] == surface_dice(P[:, 1:], G[:, 1:], 3.0, include_background=True)[0, 0]
    with pytest.raises(ValueError, match="one per class"):
        surface_dice(P, G, [1.0, 2.0, 3.0], include_background=True)
    with pytest.raises(ValueError, match="finite"):
        surface_dice(P, G, -1.0)
    with pytest.raises(ValueError, match="convention"):
        hausdorff_distance(P, G, convention="medpy")
    with pytest.raises(ValueError, match="euclidean"):
        hausdorff_distance(P, G, convention="surface", distance_metric="chessboard")


def test_metric_classes_match_monai_metrics():
    pairs = [blob_pair(s, (16, 18, 8)) for s in range(2)]
    P = torch.stack([torch.stack([~p, p]) for p, _ in pairs]).float()
    G = torch.stack([torch.stack([~g, g]) for _, g in pairs]).float()
    sp = [0.9, 0.9, 2.0]
    ours = ASSDMetric()
    ours(P, G, spacing=sp)
    ref = SurfaceDistanceMetric(symmetric=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref(P, G, spacing=sp)
    assert ours.aggregate().item() == pytest.approx(ref.aggregate().item(), abs=1e-5)
    for conv, sub in (("surface", True), ("monai", False)):
        nsd = NormalizedSurfaceDiceMetric([1.0], convention=conv)
        nsd(P, G, spacing=sp)
        ref = SurfaceDiceMetric([1.0], use_subvoxels=sub)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref(P, G, spacing=sp)
        assert nsd.aggregate().item() == pytest.approx(ref.aggregate().item(), abs=1e-5)
    hd = HausdorffMetric(percentile=95, convention="pooled")
    hd(P, G, spacing=sp)
    expected = np.mean([medpy_binary.hd95(p.numpy(), g.numpy(), sp) for p, g in pairs])
    assert hd.aggregate().item() == pytest.approx(expected, abs=1e-4)


def test_handlers_pass_spacing_and_convention():
    from tests.metrics.test_metric_handlers import SPACING, make_items, run_evaluator

    ev, items = run_evaluator(
        {
            "assd": ASSDHandler(output_transform=from_engine(["pred", "label"])),
            "nsd": SurfaceDiceHandler(1.0, output_transform=from_engine(["pred", "label"])),
        }
    )
    preds = torch.stack([i["image"].as_tensor() for i in make_items()])
    labels = torch.stack([i["label"].as_tensor() for i in make_items()])
    assert ev.state.metrics["assd"] == pytest.approx(
        average_surface_distance(preds, labels, spacing=SPACING).mean().item(), rel=1e-5
    )
    assert ev.state.metrics["nsd"] == pytest.approx(
        surface_dice(preds, labels, 1.0, spacing=SPACING).mean().item(), rel=1e-5
    )


@pytest.mark.parametrize("bad", [255.0, 0.5, 2.0, float("nan")])
def test_metric_classes_and_report_refuse_non_binary(bad):
    p = torch.zeros(1, 1, 8, 8)
    p[..., 2:5, 2:5] = 1
    q = p.clone()
    q[..., 6, 6] = bad
    for metric in (HausdorffMetric(), ASSDMetric(), NormalizedSurfaceDiceMetric(1.0), SegmentationReport()):
        with pytest.raises(ValueError, match="binary mask"):
            metric(q, p)
        with pytest.raises(ValueError, match="binary mask"):
            metric(p, q)


def test_report_of_0_255_boxes_raises_instead_of_perfect_scores():
    p = torch.zeros(1, 1, 16, 16)
    t = torch.zeros(1, 1, 16, 16)
    p[..., 1:4, 1:4] = 255
    t[..., 10:14, 10:14] = 255
    with pytest.raises(ValueError, match="255"):
        SegmentationReport()(p, t)
    rep = SegmentationReport()
    rep(p > 0, t > 0)
    row = rep.rows()[0]
    assert row["dice"] == 0.0 and row["hd95"] > 8


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("convention", ["monai", "pooled", "surface"])
def test_cuda_matches_cpu_for_every_convention(convention):
    pairs = [blob_pair(s, (24, 20, 10)) for s in range(3)]
    P = torch.stack([p for p, _ in pairs])[:, None]
    G = torch.stack([g for _, g in pairs])[:, None]
    sp = (0.8, 0.8, 2.5)
    for fn, kw in (
        (hausdorff_distance, {"percentile": 95}),
        (average_surface_distance, {}),
        (surface_dice, {"tolerance": 1.0}),
    ):
        cpu = fn(P, G, spacing=sp, convention=convention, **kw)
        gpu = fn(P.cuda(), G.cuda(), spacing=sp, convention=convention, **kw)
        assert gpu.device.type == "cuda"
        assert torch.allclose(cpu, gpu.cpu(), atol=1e-4), fn.__name__
