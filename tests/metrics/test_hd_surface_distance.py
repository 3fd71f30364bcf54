"""hausdorff_distance: parity with MONAI's compute_hausdorff_distance, hand-computed cases,
empty-mask policy, chunking/cell-size invariance, devices."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monai.metrics import HausdorffDistanceMetric, compute_hausdorff_distance
from scipy.ndimage import binary_erosion

from monai_attn.metrics import hausdorff_distance, mask_edges, prepare_spacing_tensor


def blobs(seed: int, n: int, shape: tuple[int, ...], level: float, cell: int) -> torch.Tensor:
    """``n`` random blob masks: smooth noise (coarse noise upsampled) thresholded at ``level``."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn((n, 1, *[max(2, s // cell) for s in shape]), generator=g)
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    return F.interpolate(coarse, size=shape, mode=mode, align_corners=True)[:, 0] > level


def monai_hd(p, t, **kw) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns on empty masks
        return compute_hausdorff_distance(p.float(), t.float(), **kw)


SPACINGS_2D = [None, (1.0, 2.5), (0.7, 0.7)]
SPACINGS_3D = [None, (0.8, 1.3, 3.0), (2.0, 1.0, 1.0)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    dims=st.sampled_from([2, 3]),
    level=st.floats(-0.6, 1.2),
    cell=st.sampled_from([3, 4, 6]),
    percentile=st.sampled_from([None, 95, 100, 50]),
    directed=st.booleans(),
    spacing_idx=st.integers(0, 3),
    metric=st.sampled_from(["euclidean", "euclidean", "taxicab", "chessboard"]),
)
def test_matches_monai_on_random_blobs(seed, dims, level, cell, percentile, directed, spacing_idx, metric):
    shape = (24, 24) if dims == 2 else (12, 12, 12)
    b = 3
    p = blobs(seed, 2 * b, shape, level, cell)
    t = blobs(seed + 1, 2 * b, shape, level + 0.2, cell)
    p, t = p.reshape(b, 2, *shape), t.reshape(b, 2, *shape)  # 2 classes
    spacings = SPACINGS_2D if dims == 2 else SPACINGS_3D
    if spacing_idx == 3:  # one spacing per image
        spacing = [list(spacings[(i % 2) + 1]) for i in range(b)]
    else:
        spacing = spacings[spacing_idx]
        spacing = list(spacing) if spacing is not None else None
    kw = dict(
        include_background=True,
        percentile=percentile,
        directed=directed,
        spacing=spacing,
        distance_metric=metric,
    )
    ref = monai_hd(p, t, **kw)
    ours, codes = hausdorff_distance(p, t, return_empty=True, **kw)
    nonempty = codes == 0
    assert torch.equal(nonempty, torch.isfinite(ref))  # MONAI is finite exactly where both are non-empty
    assert torch.allclose(ours[nonempty], ref[nonempty], atol=1e-3, rtol=0), (ours, ref)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), level=st.floats(-0.5, 0.8), dims=st.sampled_from([2, 3]))
def test_cell_size_and_chunking_do_not_change_values(seed, level, dims):
    shape = (24, 24) if dims == 2 else (12, 12, 12)
    p = blobs(seed, 2, shape, level, 4)[:, None]
    t = blobs(seed + 7, 2, shape, level, 4)[:, None]
    ref = hausdorff_distance(p, t, include_background=True, percentile=95, spacing=[1.5] * dims)
    for cell, max_pairs in [(1, 50), (2, 200), (16, 1 << 20)]:
        out = hausdorff_distance(
            p,
            t,
            include_background=True,
            percentile=95,
            spacing=[1.5] * dims,
            cell_size=cell,
            max_pairs=max_pairs,
        )
        assert torch.allclose(out, ref, atol=1e-5, equal_nan=True)


def test_far_apart_masks_exercise_the_coarse_search():
    # the prediction is a small blob far from the truth: no neighbour cell holds the answer
    p = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    t = torch.zeros_like(p)
    p[0, 0, 2:5, 2:6] = True
    t[0, 0, 50:60, 40:62] = True
    for kw in (dict(), dict(percentile=95), dict(directed=True), dict(spacing=(0.5, 3.0))):
        ref = monai_hd(p, t, include_background=True, **kw)
        ours = hausdorff_distance(p, t, include_background=True, cell_size=2, **kw)
        assert torch.allclose(ours, ref, atol=1e-4), kw


# -------------------------------------------------------------------------------------------------
# hand-computed cases
# -------------------------------------------------------------------------------------------------
def test_two_single_pixels():
    p = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
    t = torch.zeros_like(p)
    p[0, 0, 2, 3] = True
    t[0, 0, 7, 9] = True
    assert hausdorff_distance(p, t).item() == pytest.approx(math.sqrt(5**2 + 6**2))
    assert hausdorff_distance(p, t, spacing=(0.5, 2.0)).item() == pytest.approx(math.hypot(2.5, 12.0))
    assert hausdorff_distance(p, t, distance_metric="taxicab").item() == 11
    assert hausdorff_distance(p, t, distance_metric="chessboard").item() == 6


def test_square_and_shifted_square():
    # A: rows 2..5, cols 2..5; B: rows 2..5, cols 5..8. Edge-to-edge distances from A (12 edge
    # pixels): column 2 -> 3 (x4), column 3 -> 2 (x2), column 4 -> 1 (x2), column 5 -> 0 (x4).
    a = torch.zeros(1, 1, 10, 12, dtype=torch.bool)
    b = torch.zeros_like(a)
    a[0, 0, 2:6, 2:6] = True
    b[0, 0, 2:6, 5:9] = True
    assert hausdorff_distance(a, b).item() == pytest.approx(3.0)
    assert hausdorff_distance(a, b, percentile=95).item() == pytest.approx(3.0)
    # sorted: [0,0,0,0,1,1,2,2,3,3,3,3]; rank 0.5 * 11 = 5.5 -> between 1 and 2
    assert hausdorff_distance(a, b, percentile=50, directed=True).item() == pytest.approx(1.5)
    assert hausdorff_distance(a, b, percentile=0, directed=True).item() == pytest.approx(0.0)
    # anisotropic: columns are 2 units wide
    assert hausdorff_distance(a, b, spacing=(1.0, 2.0)).item() == pytest.approx(6.0)


def test_border_voxels_are_edges_like_monai():
    full = torch.ones(1, 1, 5, 5, dtype=torch.bool)
    corner = torch.zeros_like(full)
    corner[0, 0, 0, 0] = True
    # every border pixel of the full mask is an edge: the farthest is (4, 4)
    assert hausdorff_distance(full, corner).item() == pytest.approx(math.sqrt(32))
    assert hausdorff_distance(full, corner).item() == pytest.approx(
        monai_hd(full, corner, include_background=True).item()
    )


def test_mask_edges_equals_scipy_erosion_xor():
    m = blobs(3, 4, (20, 17), 0.1, 3)
    ours = mask_edges(m[:, None])
    ref = np.stack([binary_erosion(x.numpy()) ^ x.numpy() for x in m])
    assert np.array_equal(ours[:, 0].numpy(), ref)
    m3 = blobs(4, 2, (9, 11, 8), 0.0, 3)
    ref3 = np.stack([binary_erosion(x.numpy()) ^ x.numpy() for x in m3])
    assert np.array_equal(mask_edges(m3, spatial_dims=3).numpy(), ref3)


def test_zero_one_numbers_are_masks_like_bool():
    p = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    t = torch.zeros(1, 1, 8, 8)
    p[0, 0, 1, 1] = 1
    t[0, 0, 1, 2] = 1.0
    assert hausdorff_distance(p, t).item() == pytest.approx(1.0)
    assert hausdorff_distance(p.bool(), t.bool()).item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "value, found, fix",
    [
        (255.0, "255", "> 0"),  # ISIC masks as stored on disk
        (0.7, "0.7", "> 0.5"),  # probabilities
        (2.0, "2", "== label"),  # a label map
        (float("nan"), "NaN", "AsDiscrete"),
        (float("inf"), "Inf", "AsDiscrete"),
    ],
)
def test_non_binary_masks_raise_with_what_was_found_and_the_fix(value, found, fix):
    p = torch.zeros(1, 1, 8, 8)
    p[0, 0, 2:4, 2:4] = 1.0
    p[0, 0, 6, 6] = value
    t = (p == 1).float()
    with pytest.raises(ValueError, match="binary mask") as err:
        hausdorff_distance(p, t)
    assert found in str(err.value) and fix in str(err.value) and "y_pred" in str(err.value)
    with pytest.raises(ValueError, match="`y`"):
        hausdorff_distance(t, p)


def test_disjoint_0_255_boxes_are_refused_not_scored_perfect():
    # the example: MONAI reads == 1 as foreground, so two disjoint 0/255 boxes look
    # "both empty" (HD 0, Dice 1); here they raise, and binarized they score as disjoint boxes
    p = torch.zeros(1, 1, 16, 16)
    t = torch.zeros(1, 1, 16, 16)
    p[..., 1:4, 1:4] = 255
    t[..., 10:14, 10:14] = 255
    with pytest.raises(ValueError, match="0/255"):
        hausdorff_distance(p, t)
    assert hausdorff_distance(p > 0, t > 0).item() > 8


# -------------------------------------------------------------------------------------------------
# empty masks
# -------------------------------------------------------------------------------------------------
def test_empty_policies():
    shape = (1, 1, 30, 40)
    empty = torch.zeros(shape, dtype=torch.bool)
    lesion = torch.zeros(shape, dtype=torch.bool)
    lesion[0, 0, 10:14, 10:15] = True
    diag = math.hypot(30 * 0.5, 40 * 2.0)
    kw = dict(spacing=(0.5, 2.0), percentile=95)
    assert hausdorff_distance(empty, empty, **kw).item() == 0.0
    assert hausdorff_distance(empty, lesion, **kw).item() == pytest.approx(diag)  # missed lesion
    assert hausdorff_distance(lesion, empty, **kw).item() == pytest.approx(diag)  # false detection
    assert math.isnan(hausdorff_distance(empty, lesion, empty="nan", **kw).item())
    assert math.isinf(hausdorff_distance(empty, lesion, empty="inf", **kw).item())
    assert hausdorff_distance(empty, lesion, empty=123.0, **kw).item() == 123.0
    assert hausdorff_distance(empty, empty, empty="nan", **kw).item() == 0.0
    batch_p = torch.cat([lesion, empty, lesion, empty])
    batch_t = torch.cat([lesion, lesion, empty, empty])
    _, codes = hausdorff_distance(batch_p, batch_t, return_empty=True)
    assert codes.flatten().tolist() == [0, 1, 2, 3]
    # the diagonal is larger than any distance two voxels can have
    far_p, far_t = torch.zeros(shape, dtype=torch.bool), torch.zeros(shape, dtype=torch.bool)
    far_p[0, 0, 0, 0] = far_t[0, 0, -1, -1] = True
    assert hausdorff_distance(far_p, far_t, **kw).item() < diag


def test_missed_lesion_raises_our_mean_but_monai_drops_it():
    g = torch.Generator().manual_seed(0)
    shape = (32, 32)
    gt = torch.zeros(4, 1, *shape, dtype=torch.bool)
    for i in range(4):
        r0, c0 = (int(v) for v in torch.randint(4, 20, (2,), generator=g))
        gt[i, 0, r0 : r0 + 8, c0 : c0 + 9] = True
    pred = torch.roll(gt, shifts=1, dims=-1)  # a decent segmentation ...
    pred[3] = False  # ... that misses the lesion of the last image
    monai_metric = HausdorffDistanceMetric(include_background=True, percentile=95)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monai_metric(pred.float(), gt.float())
    monai_all = monai_metric.aggregate().item()
    ours_all = hausdorff_distance(pred, gt, include_background=True, percentile=95)
    ours_mean = ours_all.mean().item()
    good_only = ours_all[:3].mean().item()
    # MONAI: the missed lesion is NaN and silently left out, so the mean equals the good cases'
    assert monai_all == pytest.approx(good_only)
    # ours: the missed lesion costs the image diagonal, so the mean goes up
    assert ours_all[3].item() == pytest.approx(math.hypot(*shape))
    assert ours_mean > good_only
    # and the MONAI-compatible policy reproduces MONAI
    nan_policy = hausdorff_distance(pred, gt, include_background=True, percentile=95, empty="nan")
    assert math.isnan(nan_policy[3].item())
    assert torch.nanmean(nan_policy).item() == pytest.approx(monai_all)


# -------------------------------------------------------------------------------------------------
# arguments, inputs, devices
# -------------------------------------------------------------------------------------------------
def test_background_channel_dropped_only_when_several():
    m = blobs(5, 3, (16, 16), 0.0, 4).reshape(1, 3, 16, 16)
    n = blobs(6, 3, (16, 16), 0.0, 4).reshape(1, 3, 16, 16)
    assert hausdorff_distance(m, n).shape == (1, 2)
    assert hausdorff_distance(m, n, include_background=True).shape == (1, 3)
    assert hausdorff_distance(m[:, :1], n[:, :1]).shape == (1, 1)
    ref = monai_hd(m, n)
    assert torch.allclose(hausdorff_distance(m, n, empty="nan"), ref, atol=1e-4, equal_nan=True)


def test_numpy_and_metatensor_inputs():
    from monai.data import MetaTensor

    p = blobs(8, 2, (16, 16), 0.0, 4)[:, None]
    t = blobs(9, 2, (16, 16), 0.0, 4)[:, None]
    ref = hausdorff_distance(p, t, percentile=95)
    assert torch.allclose(hausdorff_distance(p.numpy(), t.numpy(), percentile=95), ref)
    assert torch.allclose(
        hausdorff_distance(MetaTensor(p.float()), MetaTensor(t.float()), percentile=95), ref
    )


def test_spacing_forms():
    assert prepare_spacing_tensor(None, 2, 3).tolist() == [[1.0] * 3] * 2
    assert prepare_spacing_tensor(2, 2, 2).tolist() == [[2.0, 2.0]] * 2
    assert prepare_spacing_tensor([1, 2, 3], 2, 3).tolist() == [[1.0, 2.0, 3.0]] * 2
    assert prepare_spacing_tensor([[1, 2], [3, 4]], 2, 2).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert prepare_spacing_tensor([[1], [3]], 2, 2).tolist() == [[1.0, 1.0], [3.0, 3.0]]
    assert prepare_spacing_tensor(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), 2, 2).tolist() == [[1, 2], [3, 4]]
    assert prepare_spacing_tensor(np.array([0.5, 0.5]), 3, 2).shape == (3, 2)
    for bad in ([1, 2], [[1, 2, 3]], [[1, 2], [1, 2], [1, 2]], -1.0, [1, 0, 1], [[1, 2], 3]):
        with pytest.raises(ValueError):
            prepare_spacing_tensor(bad, 2, 3)


def test_argument_errors():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="same shapes"):
        hausdorff_distance(x, torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="three dimensions"):
        hausdorff_distance(torch.zeros(4, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="percentile"):
        hausdorff_distance(x, x, percentile=101)
    with pytest.raises(ValueError, match="distance_metric"):
        hausdorff_distance(x, x, distance_metric="cosine")
    with pytest.raises(ValueError, match="empty"):
        hausdorff_distance(x, x, empty="zero")


def test_large_batch_is_one_call_and_matches_per_image():
    m = blobs(11, 40, (32, 32), 0.3, 6)[:, None]
    n = blobs(12, 40, (32, 32), 0.3, 6)[:, None]
    batched = hausdorff_distance(m, n, percentile=95)
    single = torch.cat([hausdorff_distance(m[i : i + 1], n[i : i + 1], percentile=95) for i in range(40)])
    assert torch.allclose(batched, single)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    m = blobs(13, 6, (12, 14, 10), 0.0, 3)[:, None]
    n = blobs(14, 6, (12, 14, 10), 0.1, 3)[:, None]
    for kw in (dict(percentile=95), dict(spacing=(0.5, 1.0, 2.5)), dict(directed=True, percentile=50)):
        cpu = hausdorff_distance(m, n, **kw)
        gpu = hausdorff_distance(m.cuda(), n.cuda(), **kw)
        assert gpu.device.type == "cuda"
        assert torch.allclose(gpu.cpu(), cpu, atol=1e-4, equal_nan=True)
