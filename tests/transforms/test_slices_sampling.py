"""Axial slice sampling from cached volumes with a foreground/background ratio."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import CacheDataset, DataLoader, MetaTensor
from monai.transforms import Compose, Transform

from monai_attn.transforms import RandAxialSlicesd, SliceAxisFirstd, SliceIndexd, slice_foreground


def _volume(n_slices=20, fg_slices=(5, 6, 7), empty_slices=(0, 1, 19)):
    img = torch.rand(2, 8, 9, n_slices) + 0.1
    for z in empty_slices:
        img[..., z] = 0
    lab = torch.zeros(1, 8, 9, n_slices)
    for z in fg_slices:
        lab[0, 2:4, 3:5, z] = 1
    aff = torch.diag(torch.tensor([-1.0, -1.0, 2.5, 1.0]))
    aff[:3, 3] = torch.tensor([10.0, 20.0, 30.0])
    return {"image": MetaTensor(img, affine=aff), "label": MetaTensor(lab, affine=aff), "id": "c1"}


def test_slice_foreground_indices():
    d = _volume()
    fg, bg = slice_foreground(d["label"], d["image"])
    assert fg.tolist() == [5, 6, 7]
    assert bg.tolist() == [z for z in range(2, 19) if z not in (5, 6, 7)]  # empty slices skipped
    _, bg_all = slice_foreground(d["label"])
    assert 0 in bg_all.tolist() and len(bg_all) == 17


@pytest.mark.parametrize("ratio, expect_fg", [(1.0, 1.0), (0.0, 0.0)])
def test_extreme_ratios(ratio, expect_fg):
    t = RandAxialSlicesd(["image", "label"], num_samples=50, fg_ratio=ratio).set_random_state(0)
    out = t(SliceIndexd()(_volume()))
    frac = np.mean([float(o["label"].sum() > 0) for o in out])
    assert frac == expect_fg
    assert all(o["slice_index"] not in (0, 1, 19) for o in out)


def test_ratio_is_respected_and_seeded():
    vol = SliceIndexd()(_volume())
    t = RandAxialSlicesd(["image", "label"], num_samples=2000, fg_ratio=0.3).set_random_state(1)
    out = t(vol)
    frac = np.mean([o["slice_index"] in (5, 6, 7) for o in out])
    assert abs(frac - 0.3) < 0.04
    a = [o["slice_index"] for o in RandAxialSlicesd(["image", "label"], num_samples=10).set_random_state(3)(vol)]
    b = [o["slice_index"] for o in RandAxialSlicesd(["image", "label"], num_samples=10).set_random_state(3)(vol)]
    assert a == b


def test_slice_content_meta_and_dtype():
    vol = _volume()
    vol["image"] = vol["image"].to(torch.float16)
    vol["label"] = vol["label"].to(torch.uint8)
    out = RandAxialSlicesd(["image", "label"], num_samples=3, fg_ratio=1.0).set_random_state(0)(vol)
    o = out[0]
    k = o["slice_index"]
    assert o["image"].shape == (2, 8, 9) and o["label"].shape == (1, 8, 9)
    assert o["image"].dtype == torch.float32 and o["label"].dtype == torch.float32
    assert torch.allclose(o["image"].as_tensor(), vol["image"][..., k].float())
    assert o["image"].is_contiguous() and o["image"].untyped_storage().nbytes() == 2 * 8 * 9 * 4  # a copy
    aff = o["image"].affine
    assert aff.shape == (3, 3)
    assert torch.allclose(aff, torch.tensor([[-1.0, 0, 10.0], [0, -1.0, 20.0], [0, 0, 1.0]], dtype=aff.dtype))
    assert o["image"].meta["slice_index"] == k and o["id"] == "c1"
    assert "slice_fg" not in o


def test_fallbacks_and_errors():
    no_fg = _volume(fg_slices=())
    out = RandAxialSlicesd(["image", "label"], num_samples=5, fg_ratio=1.0).set_random_state(0)(no_fg)
    assert all(o["label"].sum() == 0 for o in out)  # falls back to background
    all_fg = _volume(n_slices=3, fg_slices=(0, 1, 2), empty_slices=())
    out = RandAxialSlicesd(["image", "label"], num_samples=5, fg_ratio=0.0).set_random_state(0)(all_fg)
    assert all(o["label"].sum() > 0 for o in out)
    with pytest.raises(ValueError, match="fg_ratio"):
        RandAxialSlicesd(["image"], fg_ratio=1.5)
    with pytest.raises(ValueError, match="num_samples"):
        RandAxialSlicesd(["image"], num_samples=0)
    with pytest.raises(ValueError, match="axis"):
        RandAxialSlicesd(["image"], axis=3)


def test_other_axis():
    d = _volume()
    out = RandAxialSlicesd(["image", "label"], num_samples=2, axis=0, fg_ratio=1.0).set_random_state(0)(d)
    assert out[0]["image"].shape == (2, 9, 20) and out[0]["slice_index"] in (2, 3)


class _Count(Transform):
    """Deterministic transform that counts its calls (to see what the cache saves)."""

    calls = 0

    def __call__(self, d):
        type(self).calls += 1
        return d


def test_cache_holds_the_deterministic_part():
    tf = Compose([_Count(), SliceIndexd(), RandAxialSlicesd(["image", "label"], num_samples=4, fg_ratio=0.5)])
    ds = CacheDataset([_volume(), _volume()], tf, progress=False)
    assert _Count.calls == 2 and "slice_fg" in ds._cache[0]
    loader = DataLoader(ds, batch_size=2, num_workers=0)
    for _ in range(3):
        for batch in loader:
            assert batch["image"].shape == (8, 2, 8, 9) and batch["slice_index"].shape == (8,)
    assert _Count.calls == 2  # epochs neither reload nor recompute the volumes


def test_slice_axis_first_keeps_world_coordinates_and_slices():
    d = _volume()
    moved = SliceAxisFirstd(["image", "label"], axis=2)(d)
    assert moved["image"].shape == (2, 20, 8, 9) and moved["image"].is_contiguous()
    a_old, a_new = d["image"].affine.double(), moved["image"].affine.double()
    i, j, k = 3, 4, 7
    assert torch.allclose(a_old @ torch.tensor([i, j, k, 1.0], dtype=torch.float64),
                          a_new @ torch.tensor([k, i, j, 1.0], dtype=torch.float64))
    s_old = RandAxialSlicesd(["image", "label"], num_samples=6, axis=2).set_random_state(5)(SliceIndexd()(d))
    s_new = RandAxialSlicesd(["image", "label"], num_samples=6, axis=0).set_random_state(5)(
        SliceIndexd(axis=0)(moved))
    for a, b in zip(s_old, s_new):
        assert a["slice_index"] == b["slice_index"]
        assert torch.equal(a["image"].as_tensor(), b["image"].as_tensor())
        assert torch.allclose(a["image"].affine, b["image"].affine)
    with pytest.raises(ValueError, match="axis"):
        SliceAxisFirstd(["image"], axis=-1)
