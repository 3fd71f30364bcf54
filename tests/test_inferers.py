"""BatchedSliceInferer gives MONAI SliceInferer's output (and metadata) without sliding windows."""
from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SliceInferer

from monai_attn.inferers import BatchedSliceInferer


class Net(torch.nn.Module):
    def __init__(self, cin: int = 3, cout: int = 2):
        super().__init__()
        self.conv = torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x, scale: float = 1.0):
        self.calls.append(tuple(x.shape))
        return self.conv(x) * scale


@pytest.mark.parametrize("spatial_dim", [0, 1, 2])
@pytest.mark.parametrize("pad", [0, 5])
def test_matches_monai_slice_inferer(spatial_dim, pad):
    torch.manual_seed(0)
    net = Net()
    x = MetaTensor(torch.randn(1, 3, 12, 10, 7), affine=torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0])))
    x.meta["filename_or_obj"] = "case.nii.gz"
    plane = [s for i, s in enumerate(x.shape[2:]) if i != spatial_dim]
    roi = (plane[0] + pad, plane[1] + pad)
    with torch.no_grad():
        expected = SliceInferer(roi_size=roi, spatial_dim=spatial_dim, sw_batch_size=3)(x, net)
        net.calls.clear()
        out = BatchedSliceInferer(roi_size=roi, spatial_dim=spatial_dim, sw_batch_size=3)(x, net)
    torch.testing.assert_close(out.as_tensor(), expected.as_tensor(), rtol=1e-5, atol=1e-6)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "case.nii.gz"
    torch.testing.assert_close(out.affine, x.affine)
    n = x.shape[2 + spatial_dim]
    assert [c[0] for c in net.calls] == [3] * (n // 3) + ([n % 3] if n % 3 else [])  # batches of slices
    assert all(c[2:] == roi for c in net.calls)  # padded to roi_size
    assert out.is_contiguous()


def test_larger_slices_use_sliding_windows_and_args_reach_the_network():
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(2, 3, 20, 16, 4)
    with torch.no_grad():
        expected = SliceInferer(roi_size=(8, 8), spatial_dim=2, sw_batch_size=4)(x, net, scale=2.0)
        out = BatchedSliceInferer(roi_size=(8, 8), spatial_dim=2, sw_batch_size=4)(x, net, scale=2.0)
        torch.testing.assert_close(out, expected)
        whole = BatchedSliceInferer(roi_size=None, spatial_dim=2, sw_batch_size=4)(x, net, scale=2.0)
        torch.testing.assert_close(whole, torch.stack([net(x[..., d], 2.0) for d in range(4)], dim=-1))


def test_devices_and_buffer_dtype():
    net = Net()
    x = torch.randn(1, 3, 8, 8, 5)
    with torch.no_grad():
        out = BatchedSliceInferer(spatial_dim=2, sw_batch_size=2, sw_device="cpu", device="cpu",
                                  buffer_dtype="float16")(x, net)
    assert out.dtype == torch.float16 and out.shape == (1, 2, 8, 8, 5)


def test_bad_arguments_and_outputs():
    with pytest.raises(ValueError, match="spatial_dim"):
        BatchedSliceInferer(spatial_dim=3)
    with pytest.raises(ValueError, match="sw_batch_size"):
        BatchedSliceInferer(sw_batch_size=0)
    with pytest.raises(ValueError, match="roi_size"):
        BatchedSliceInferer(roi_size=(8, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, C, H, W, D\)"):
        BatchedSliceInferer()(torch.zeros(1, 3, 8, 8), Net())
    with pytest.raises(TypeError, match="only tensor outputs"):
        BatchedSliceInferer()(torch.zeros(1, 3, 4, 4, 2), lambda x: (x, x))


def test_importable_by_short_name_for_bundles():
    from monai.bundle import ConfigParser

    import monai_attn  # noqa: F401

    parser = ConfigParser({"imports": ["$import monai_attn"],
                           "inferer": {"_target_": "BatchedSliceInferer", "roi_size": [160, 160], "spatial_dim": 2,
                                       "sw_batch_size": 8}})
    assert isinstance(parser.get_parsed_content("inferer"), BatchedSliceInferer)
