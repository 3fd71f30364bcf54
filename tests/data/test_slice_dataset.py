"""VolumeSliceDataset: PATM's slice-level training set over cached volumes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_attn.data import VolumeSliceDataset, patm_slice_augmentation


def _volume(seed: int, d: int = 10):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(2, 12, 9, d, generator=g)
    image[:, :, :, 0] = -1.0  # slice 0: no content (nothing above the modality mean)
    label = torch.zeros(1, 12, 9, d)
    label[0, 3:6, 2:5, 2:5] = 1  # slices 2-4: tumour
    label[0, 1, 1, 6] = 1  # slice 6: a single pixel counts as no tumour
    return {"image": image, "label": label, "id": f"case{seed}"}


def _identity(d):
    return dict(d)


def test_selection_counts_and_items():
    data = [_volume(0), _volume(1)]
    tumour_only = VolumeSliceDataset(data, _identity, selection="patm", bg_fraction=0.0)
    assert len(tumour_only) == 6 and sorted(set(tumour_only.volumes())) == [0, 1]
    content = VolumeSliceDataset(data, _identity, selection="patm", bg_fraction=1.0)
    assert len(content) == 2 * 9  # every slice but the empty slice 0
    assert len(VolumeSliceDataset(data, _identity, selection="content")) == 18
    assert len(VolumeSliceDataset(data, _identity, selection="all")) == 20
    half = VolumeSliceDataset(data, _identity, selection="patm", bg_fraction=0.5, seed=3)
    assert 6 <= len(half) <= 18
    again = VolumeSliceDataset(data, _identity, selection="patm", bg_fraction=0.5, seed=3)
    assert torch.equal(half.index, again.index)  # the random half is drawn once, from the seed
    for i in range(len(tumour_only)):
        item = tumour_only[i]
        v, k = tumour_only.index[i].tolist()
        assert item["id"] == f"case{v}" and item["slice_index"] == k and k in (2, 3, 4)
        assert torch.equal(item["image"], data[v]["image"][..., k]) and item["image"].dtype == torch.float32
        assert torch.equal(item["label"], data[v]["label"][..., k])
    item["image"].zero_()  # items are copies: the cache is untouched
    assert not torch.equal(tumour_only.images[v][k], item["image"])


def test_float16_cache_gives_float32_items():
    data = [_volume(0)]
    ds = VolumeSliceDataset(data, _identity, selection="all", cache_dtype="float16")
    assert ds.images[0].dtype == torch.float16
    item = ds[3]
    assert item["image"].dtype == torch.float32
    assert torch.allclose(item["image"], data[0]["image"][..., 3], atol=2e-3)


def test_augmentations():
    item = {"image": torch.arange(2 * 4 * 5.0).reshape(2, 4, 5), "label": torch.arange(20.0).reshape(1, 4, 5)}
    seen = set()
    t = patm_slice_augmentation("hflip")
    t.set_random_state(0)
    for _ in range(40):
        out = t(dict(item))
        flipped = torch.equal(out["image"], item["image"].flip(1))
        assert flipped or torch.equal(out["image"], item["image"])  # only the left-right (H) axis
        assert torch.equal(out["label"], item["label"].flip(1) if flipped else item["label"])
        seen.add(flipped)
    assert seen == {True, False}
    t = patm_slice_augmentation("flips")
    t.set_random_state(0)
    outs = {tuple(t(dict(item))["label"].flatten().tolist()) for _ in range(60)}
    assert len(outs) == 4  # none, either flip, both
    assert patm_slice_augmentation("none")(dict(item))["image"] is item["image"]
    with pytest.raises(ValueError, match="augmentation"):
        patm_slice_augmentation("rotate")


def test_errors():
    with pytest.raises(ValueError, match="selection"):
        VolumeSliceDataset([_volume(0)], _identity, selection="foreground")
    with pytest.raises(ValueError, match="empty"):
        VolumeSliceDataset([], _identity)
    with pytest.raises(ValueError, match=r"\(C, H, W, D\)"):
        VolumeSliceDataset([{"image": torch.zeros(2, 4, 4), "label": torch.zeros(1, 4, 4)}], _identity)


def test_loader_mixes_volumes():
    data = [_volume(s) for s in range(4)]
    ds = VolumeSliceDataset(data, _identity, selection="all")
    loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert len(batches) == 40 // 16 and all(b["image"].shape == (16, 2, 12, 9) for b in batches)
    assert all(len(set(b["id"])) > 1 for b in batches)
    assert np.unique(np.concatenate([b["slice_index"].numpy() for b in batches])).size > 1


def test_threaded_caching_keeps_the_order_and_shows_progress(capsys):
    """Volumes cached by threads give the same slices, in datalist order, as the calling thread alone; the
    caching bar is drawn when asked for and not otherwise (``None``: not in a test's captured stderr)."""
    data = [_volume(s) for s in range(4)]
    one = VolumeSliceDataset(data, _identity, selection="patm", bg_fraction=0.5, seed=1, progress=False)
    assert "caching volumes" not in capsys.readouterr().err
    threads = VolumeSliceDataset(data, _identity, selection="patm", bg_fraction=0.5, seed=1, num_workers=3,
                                 progress=True)
    assert "caching volumes" in capsys.readouterr().err
    assert torch.equal(one.index, threads.index)
    for a, b in zip(one.images, threads.images):
        assert a.shape == (10, 2, 12, 9) and a.is_contiguous() and torch.equal(a, b)
    VolumeSliceDataset(data, _identity, selection="all")
    assert "caching volumes" not in capsys.readouterr().err
