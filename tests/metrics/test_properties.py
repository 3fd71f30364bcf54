"""Property-based tests (hypothesis) of the metrics: Hausdorff distance / HD95 and the report's Dice are
symmetric, zero (Dice: one) on identical masks, invariant to translating both masks, and distances scale
with the voxel spacing while Dice does not depend on it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monai_attn.metrics import SegmentationReport, hausdorff_distance

SETTINGS = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
BOX = {2: (7, 8), 3: (5, 4, 4)}  # size of the region the random masks are drawn in
MARGIN = 3  # free voxels around that region, room for translations that never reach the image border


@st.composite
def mask_pairs(draw):
    """Two random masks (either may be empty) in a small box, the box's dimensionality, and a canvas offset."""
    dims = draw(st.sampled_from([2, 3]))
    shape = BOX[dims]
    a = draw(arrays(np.bool_, shape))
    b = draw(arrays(np.bool_, shape))
    return dims, a, b


def _canvas(mask: np.ndarray, offset) -> torch.Tensor:
    """``mask`` placed at ``offset`` in a zero canvas of the box size plus twice the margin; ``[1, 1, ...]``."""
    out = np.zeros(tuple(s + 2 * MARGIN for s in mask.shape), bool)
    out[tuple(slice(o, o + s) for o, s in zip(offset, mask.shape))] = mask
    return torch.from_numpy(out)[None, None]


def _hd(a, b, percentile=None, spacing=None) -> float:
    return float(hausdorff_distance(a, b, include_background=True, percentile=percentile, spacing=spacing)[0, 0])


def _dice(a, b, spacing=None) -> float:
    rep = SegmentationReport(include_background=True, spacing=spacing)
    rep(a.float(), b.float())
    return rep.rows()[0]["dice"]


@SETTINGS
@given(mask_pairs(), st.sampled_from([None, 95]))
def test_hausdorff_is_symmetric(pair, percentile):
    dims, a, b = pair
    centre = (MARGIN,) * dims
    ta, tb = _canvas(a, centre), _canvas(b, centre)
    assert _hd(ta, tb, percentile) == pytest.approx(_hd(tb, ta, percentile), rel=1e-6, abs=1e-6)
    assert _dice(ta, tb) == pytest.approx(_dice(tb, ta), abs=1e-12)


@SETTINGS
@given(mask_pairs(), st.sampled_from([None, 95]))
def test_identical_masks_give_zero_distance_and_dice_one(pair, percentile):
    dims, a, _ = pair
    ta = _canvas(a, (MARGIN,) * dims)
    assert _hd(ta, ta.clone(), percentile) == 0.0
    assert _dice(ta, ta.clone()) == 1.0  # also when both are empty (the report's convention)


@SETTINGS
@given(mask_pairs(), st.data())
def test_translating_both_masks_changes_nothing(pair, data):
    dims, a, b = pair
    # any shift that keeps the box at least one voxel from the image border (the border counts as an edge)
    shift = tuple(data.draw(st.integers(1, 2 * MARGIN - 1), label=f"offset{d}") for d in range(dims))
    centre = (MARGIN,) * dims
    ta, tb = _canvas(a, centre), _canvas(b, centre)
    sa, sb = _canvas(a, shift), _canvas(b, shift)
    for percentile in (None, 95):
        assert _hd(sa, sb, percentile) == pytest.approx(_hd(ta, tb, percentile), rel=1e-6, abs=1e-6)
    assert _dice(sa, sb) == pytest.approx(_dice(ta, tb), abs=1e-12)


@SETTINGS
@given(mask_pairs(), st.floats(0.25, 4.0), st.sampled_from([None, 95]))
def test_distances_scale_with_the_spacing_dice_does_not(pair, scale, percentile):
    dims, a, b = pair
    centre = (MARGIN,) * dims
    ta, tb = _canvas(a, centre), _canvas(b, centre)
    base = (1.0, 0.5, 2.0)[:dims]  # anisotropic voxels, all scaled by the same factor
    scaled = tuple(scale * s for s in base)
    assert _hd(ta, tb, percentile, scaled) == pytest.approx(scale * _hd(ta, tb, percentile, base), rel=1e-5,
                                                              abs=1e-5)
    assert _dice(ta, tb, scaled) == _dice(ta, tb, base)
