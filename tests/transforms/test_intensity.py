"""LeanNormalizeIntensity(d) equals MONAI's NormalizeIntensity(d) with a fraction of its memory."""
from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import NormalizeIntensity, NormalizeIntensityd

from monai_attn.transforms import LeanNormalizeIntensity, LeanNormalizeIntensityd


@pytest.mark.parametrize("nonzero", [True, False])
@pytest.mark.parametrize("channel_wise", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.int16])
def test_matches_monai(nonzero, channel_wise, dtype):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(3, 17, 13, 11, generator=g) * 50 + 200).to(dtype)
    x[:, :5] = 0
    x[2] = 0  # an all-zero channel
    x[1, 6:] = 7  # a constant region
    expected = NormalizeIntensity(nonzero=nonzero, channel_wise=channel_wise)(x.clone())
    out = LeanNormalizeIntensity(nonzero=nonzero, channel_wise=channel_wise, chunk_size=100)(x.clone())
    torch.testing.assert_close(torch.as_tensor(out).float(), torch.as_tensor(expected).float(), rtol=1e-4, atol=1e-4)


def test_dictionary_version_keeps_metadata_and_works_in_place():
    x = MetaTensor(torch.rand(2, 8, 8, 4) * 10, meta={"filename_or_obj": "a.nii.gz"})
    expected = NormalizeIntensityd("image", nonzero=True, channel_wise=True)({"image": x.clone()})["image"]
    out = LeanNormalizeIntensityd("image", nonzero=True, channel_wise=True)({"image": x, "other": 1})
    torch.testing.assert_close(out["image"].as_tensor(), expected.as_tensor(), rtol=1e-5, atol=1e-5)
    assert out["image"].meta["filename_or_obj"] == "a.nii.gz" and out["other"] == 1
    with pytest.raises(ValueError, match="chunk_size"):
        LeanNormalizeIntensity(chunk_size=0)
