"""HausdorffMetric: a drop-in for MONAI's HausdorffDistanceMetric, plus the empty-mask policy."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from monai.metrics import HausdorffDistanceMetric

from monai_attn.metrics import HausdorffMetric, hausdorff_distance


def blobs(seed: int, n: int, shape, level: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn((n, 1, *[max(2, s // 4) for s in shape]), generator=g)
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    return F.interpolate(coarse, size=shape, mode=mode, align_corners=True)[:, 0] > level


def onehot_pair(seed: int, b: int = 3, shape=(20, 20)):
    """Batch-first one-hot [B, 2, ...] (background + one foreground class), non-empty."""
    fg_p = blobs(seed, b, shape, 0.2)
    fg_t = blobs(seed + 1, b, shape, 0.2)
    fg_p[:, 1:4, 1:4] = True  # never empty
    fg_t[:, 2:5, 2:5] = True
    return torch.stack([~fg_p, fg_p], 1).float(), torch.stack([~fg_t, fg_t], 1).float()


def run_monai(metric, *batches, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p, t in batches:
            metric(p, t, **kw)
        return metric.aggregate()


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(percentile=95),
        dict(percentile=95, directed=True),
        dict(include_background=True, reduction="mean_batch"),
        dict(percentile=95, reduction="none"),
    ],
)
def test_same_values_as_monai_metric(kw):
    batches = [onehot_pair(1), onehot_pair(5)]
    ours = HausdorffMetric(**kw)
    ref = HausdorffDistanceMetric(**kw)
    for p, t in batches:
        out = ours(p, t, spacing=[0.5, 1.5])
        assert out.shape == (3, 2 if kw.get("include_background") else 1)
    assert torch.allclose(ours.aggregate(), run_monai(ref, *batches, spacing=[0.5, 1.5]), atol=1e-4)
    assert ours.get_buffer().shape[0] == 6


def test_get_not_nans_and_empty_counts():
    p, t = onehot_pair(2, b=4)
    p[1, 1] = 0  # missed lesion
    p[1, 0] = 1
    t[2, 1] = 0  # false detection on an empty image
    t[2, 0] = 1
    p[3, 1] = 0  # both empty
    p[3, 0] = 1
    t[3, 1] = 0
    t[3, 0] = 1
    m = HausdorffMetric(percentile=95, get_not_nans=True)
    m(p, t)
    value, not_nans = m.aggregate()
    assert not_nans.item() == 4  # the penalty is a value, not a NaN
    per_case = m.get_buffer()[:, 0]
    diag = math.hypot(20, 20)
    assert per_case[1].item() == pytest.approx(diag) and per_case[2].item() == pytest.approx(diag)
    assert per_case[3].item() == 0.0
    assert value.item() == pytest.approx(per_case.mean().item())
    counts = m.empty_counts()
    assert counts == {"cases": 4, "pred_empty": 1, "gt_empty": 1, "both_empty": 1}
    assert m.empty_codes()[:, 0].tolist() == [0, 1, 2, 3]
    value2, nn2, counts2 = m.aggregate(with_counts=True)
    assert counts2 == counts and torch.equal(nn2, not_nans)

    # MONAI-compatible: NaN for the one-sided empty cases, left out of the mean
    m_nan = HausdorffMetric(percentile=95, get_not_nans=True, empty="nan")
    m_nan(p, t)
    v_nan, nn_nan = m_nan.aggregate()
    assert nn_nan.item() == 2
    assert v_nan.item() == pytest.approx(per_case[[0, 3]].mean().item())
    assert m_nan.aggregate(with_counts=True)[-1] == counts

    m.reset()
    assert m.get_buffer() is None and m.empty_counts()["cases"] == 0


def test_list_input_with_per_image_spacing():
    p, t = onehot_pair(3, b=2)
    spacing = [[1.0, 2.0], [0.5, 0.5]]
    batched = HausdorffMetric(reduction="none")(p, t, spacing=spacing)
    listed = HausdorffMetric(reduction="none")(list(p), list(t), spacing=spacing)
    assert torch.allclose(batched, listed)
    # different shapes: computed one by one, each with its own spacing
    small_p, small_t = onehot_pair(4, b=1, shape=(12, 16))
    mixed = HausdorffMetric()
    out = mixed([p[0], small_p[0]], [t[0], small_t[0]], spacing=spacing)
    assert out[0].item() == pytest.approx(batched[0].item())
    assert out[1].item() == pytest.approx(hausdorff_distance(small_p, small_t, spacing=[0.5, 0.5]).item())


def test_default_spacing_and_ignore_index_like_monai():
    p, t = onehot_pair(6)
    assert torch.allclose(
        HausdorffMetric(spacing=(2.0, 1.0))(p, t), HausdorffMetric()(p, t, spacing=(2.0, 1.0))
    )
    # a 3-class label map: ignore class 2 as MONAI does
    lab_p = torch.randint(0, 3, (2, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    lab_t = torch.randint(0, 3, (2, 1, 16, 16), generator=torch.Generator().manual_seed(1))
    oh_p = F.one_hot(lab_p[:, 0], 3).permute(0, 3, 1, 2).float()
    oh_t = F.one_hot(lab_t[:, 0], 3).permute(0, 3, 1, 2).float()
    ours = HausdorffMetric(ignore_index=2, reduction="none")(oh_p, oh_t)
    ref = run_monai(HausdorffDistanceMetric(ignore_index=2, reduction="none"), (oh_p, oh_t))
    assert torch.allclose(ours, ref, atol=1e-4, equal_nan=True)
    assert torch.isnan(ours[:, 1]).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        HausdorffMetric(empty="ignore")
    with pytest.raises(ValueError, match="three dimensions"):
        HausdorffMetric()(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="call the metric"):
        HausdorffMetric().aggregate()
