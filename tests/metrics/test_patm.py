"""patm_scores against an independent reference written from the official PATM functions.

The reference follows moucheng2017/Pay_Attention_To_Mistakes literally: ``test()`` feeds one slice at a time as a
``(1, 1, H, W)`` array; ``segmentation_scores`` builds the 2x2 confusion histogram and averages
``2 * diag / (row + col + 1e-8)`` over both classes; the rates carry 1e-10 guards; ``hd95`` is medpy's
``__surface_distances`` on the 4D arrays (4D cross footprint, one-voxel erosion) pooled both ways, and is only
computed when both masks have more than one pixel.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

from monai_attn.metrics import PatmHandler, PatmMetric, patm_scores, patm_slice_mask


def _official_slice(pred2d: np.ndarray, label2d: np.ndarray) -> tuple[float, float, float, float | None]:
    out = pred2d[None, None].astype(np.int32)  # the test loader's batch of 1: (1, 1, H, W)
    lab = label2d[None, None].astype(np.int32)
    hist = np.bincount(2 * lab.flatten() + out.flatten(), minlength=4).reshape(2, 2)
    iou = float(np.nanmean(2 * np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) + 1e-8)))
    tn, fp, fn, tp = hist.ravel()
    fn_rate = (fn + 1e-10) / (tp + fn + 1e-10)
    fp_rate = (fp + 1e-10) / (tn + fp + 1e-10)
    hd = None
    if (out == 1).sum() > 1 and (lab == 1).sum() > 1:
        fp4 = generate_binary_structure(4, 1)

        def surface_distances(result, reference):
            result, reference = result.astype(bool), reference.astype(bool)
            rb = result ^ binary_erosion(result, structure=fp4, iterations=1)
            fb = reference ^ binary_erosion(reference, structure=fp4, iterations=1)
            return distance_transform_edt(~fb)[rb]

        hd = float(np.percentile(np.hstack((surface_distances(out, lab), surface_distances(lab, out))), 95))
    return iou, fp_rate, fn_rate, hd


def _official(pred: np.ndarray, label: np.ndarray) -> dict:
    """pred/label (B, 1, H, W[, D]) -> means over every slice (HD over the slices where it was computed)."""
    if pred.ndim == 4:  # 2D images: one slice each
        pred, label = pred[..., None], label[..., None]
    vals = [_official_slice(pred[b, 0, ..., d], label[b, 0, ..., d])
            for b in range(pred.shape[0]) for d in range(pred.shape[-1])]
    hds = [v[3] for v in vals if v[3] is not None]
    return {"iou": np.mean([v[0] for v in vals]), "fp_rate": np.mean([v[1] for v in vals]),
            "fn_rate": np.mean([v[2] for v in vals]), "hd95": np.mean(hds) if hds else math.nan,
            "slices": len(vals), "hd95_slices": len(hds)}


def _blobs(shape, seed, p=0.15):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g) < p
    # smooth a little so slices hold blobs, some slices empty
    x = torch.nn.functional.max_pool3d(x.float(), 3, 1, 1) if len(shape) == 5 else x.float()
    return x


def _check(pred, label):
    ours = patm_scores(pred, label)
    ref = _official(np.asarray(pred), np.asarray(label))
    assert ours["slices"] == ref["slices"] and ours["hd95_slices"] == ref["hd95_slices"]
    for k in ("iou", "fp_rate", "fn_rate", "hd95"):
        if math.isnan(ref[k]):
            assert math.isnan(ours[k])
        else:
            assert ours[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-12), k
    return ours


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_volumes_match_official_rules(seed):
    label = _blobs((2, 1, 20, 18, 7), seed, 0.02)
    pred = _blobs((2, 1, 20, 18, 7), seed + 100, 0.03)
    label[0, ..., 0] = 0  # a slice without tumour
    pred[1, ..., 2] = 0  # an empty prediction on a tumour slice
    _check(pred, label)


def test_hand_built_slices():
    label = torch.zeros(1, 1, 6, 12, 5)
    pred = torch.zeros_like(label)
    # slice 0: no tumour, no prediction -> IoU 0.5 (background Dice 1, foreground 0), FN rate 1, FP rate ~0
    # slice 1: single-pixel label, prediction on it -> HD not defined
    label[0, 0, 2, 2, 1] = 1
    pred[0, 0, 2, 2, 1] = 1
    # slice 2: tumour, empty prediction -> FN rate 1, foreground Dice 0
    label[0, 0, 1:3, 1:3, 2] = 1
    # slice 3: label two pixels, prediction a line of 11 -> pooled distances 0,0,0,0,1..9 -> HD95 8.4
    label[0, 0, 0, 0:2, 3] = 1
    pred[0, 0, 0, 0:11, 3] = 1
    # slice 4: single-pixel prediction against a tumour -> HD not defined
    label[0, 0, 3:5, 3:5, 4] = 1
    pred[0, 0, 0, 0, 4] = 1
    ours = _check(pred, label)
    assert ours["slices"] == 5 and ours["hd95_slices"] == 1
    assert ours["hd95"] == pytest.approx(8.4)
    empty = patm_scores(pred[..., :1], label[..., :1])
    assert empty["iou"] == pytest.approx(0.5) and empty["fn_rate"] == 1.0 and empty["fp_rate"] == pytest.approx(1e-10 / 72)
    assert math.isnan(empty["hd95"]) and empty["hd95_slices"] == 0
    missed = patm_scores(pred[..., 2:3], label[..., 2:3])  # background Dice 2*68/(68+72), foreground 0
    assert missed["iou"] == pytest.approx(68 / 140) and missed["fn_rate"] == pytest.approx(1.0)


def test_every_foreground_pixel_is_surface():
    """The official 4D arrays make every mask pixel a surface pixel: a small square inside a large one gives another
    HD95 than the boundary-only (2D medpy) rule would (boundaries 3 px apart everywhere; interiors overlap)."""
    label = torch.zeros(1, 1, 16, 16)
    pred = torch.zeros_like(label)
    label[0, 0, 2:13, 2:13] = 1
    pred[0, 0, 5:10, 5:10] = 1
    ours = _check(pred, label)
    a, b = pred[0, 0].numpy().astype(bool), label[0, 0].numpy().astype(bool)
    fp2 = generate_binary_structure(2, 1)

    def border(x):
        return x ^ binary_erosion(x, structure=fp2)

    boundary_only = np.percentile(np.hstack([distance_transform_edt(~border(b))[border(a)],
                                             distance_transform_edt(~border(a))[border(b)]]), 95)
    assert boundary_only == pytest.approx(3 * 2 ** 0.5) and ours["hd95"] != pytest.approx(boundary_only)


def test_2d_batches_and_shapes():
    label = _blobs((3, 1, 10, 10), 5, 0.3)
    pred = _blobs((3, 1, 10, 10), 6, 0.3)
    ours = _check(pred, label)
    assert ours["slices"] == 3
    with pytest.raises(ValueError, match="binary"):
        patm_scores(torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match="same shape"):
        patm_scores(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))


def test_metric_pools_slices_over_cases():
    label = _blobs((3, 1, 12, 12, 4), 7, 0.05)
    pred = _blobs((3, 1, 12, 12, 4), 8, 0.05)
    m = PatmMetric()
    m(pred[:2], label[:2])
    m(pred[2:], label[2:])
    pooled = m.aggregate()
    whole = patm_scores(pred, label)
    for k in ("iou", "fp_rate", "fn_rate", "hd95"):
        assert pooled[k] == pytest.approx(whole[k], rel=1e-12)
    cases = m.per_case()
    assert len(cases) == 3 and cases[2]["iou"] == pytest.approx(patm_scores(pred[2:], label[2:])["iou"])
    m.reset()
    assert m.aggregate()["slices"] == 0


def test_official_slice_selection():
    image = torch.full((2, 8, 8, 6), -1.0)
    label = torch.zeros(1, 8, 8, 6)
    image[:, 2:4, 2:4, 1:5] = 1.0  # brain content in slices 1-4 of both channels
    image[1, :, :, 4] = -1.0  # slice 4: one modality empty -> never kept
    label[0, 2:4, 2, 1] = 1  # slice 1: 2 tumour pixels -> always kept
    label[0, 2, 2, 2] = 1  # slice 2: 1 pixel -> counts as without tumour
    label[0, 2:4, 2:4, 4] = 1  # slice 4: tumour but no content -> dropped
    keep_all = patm_slice_mask(image, label, bg_fraction=1.0, generator=0)
    assert keep_all.tolist() == [False, True, True, True, False, False]
    keep_none = patm_slice_mask(image, label, bg_fraction=0.0, generator=0)
    assert keep_none.tolist() == [False, True, False, False, False, False]
    half = np.mean([patm_slice_mask(image, label, 0.5, generator=s)[2:4].mean() for s in range(400)])
    assert 0.4 < half < 0.6
    with pytest.raises(ValueError, match="bg_fraction"):
        patm_slice_mask(image, label, 1.5)


def test_handler_writes_summary(tmp_path):
    from ignite.engine import Engine

    label = _blobs((2, 1, 10, 10, 4), 3, 0.1)
    pred = _blobs((2, 1, 10, 10, 4), 4, 0.1)
    image = torch.ones(2, 2, 10, 10, 4)
    # the second batch as a MONAI evaluator hands it over: decollated lists of channel-first items
    batches = [(pred[:1], label[:1], image[:1]), ([pred[1]], [label[1]], [image[1]])]
    engine = Engine(lambda e, b: b)
    PatmHandler(output_dir=tmp_path, slices="official", bg_fraction=1.0).attach(engine, "patm")
    engine.run(batches)
    data = json.loads((tmp_path / "patm_metrics.json").read_text())
    assert data["summary"]["iou"] == pytest.approx(patm_scores(pred, label)["iou"])  # all slices have content
    assert engine.state.metrics["patm"] == pytest.approx(data["summary"]["iou"])
    assert engine.state.metrics["patm_fn_rate"] == pytest.approx(patm_scores(pred, label)["fn_rate"])
    assert len(data["cases"]) == 2 and "official" in data["slices"] and "Dice" in data["convention"]


@pytest.mark.parametrize("seed", [0, 3])
def test_hd95_equals_medpy_on_the_official_array_shapes(seed):
    """The official hd95 is medpy's, called on the test loader's (1, 1, H, W) arrays: medpy itself agrees."""
    medpy_binary = pytest.importorskip("medpy.metric.binary")
    label = _blobs((1, 1, 24, 20, 6), seed, 0.03)
    pred = _blobs((1, 1, 24, 20, 6), seed + 50, 0.03)
    checked = 0
    for d in range(label.shape[-1]):
        p, y = pred[..., d].numpy(), label[..., d].numpy()  # (1, 1, H, W)
        if p.sum() > 1 and y.sum() > 1:
            ours = patm_scores(pred[..., d:d + 1], label[..., d:d + 1])["hd95"]
            assert ours == pytest.approx(medpy_binary.hd95(p, y), rel=1e-12)
            checked += 1
    assert checked >= 3
