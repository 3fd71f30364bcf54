"""FocusNet++: shapes, gradients, parameter counts (vs the official code / paper), TorchScript, errors."""
from __future__ import annotations

import pytest
import torch
from monai.utils import set_determinism

from monai_attn.networks import FocusNetPP, ResidualGroupAttentionBlock
from monai_attn.networks.nets.focusnetpp import FOCUSNETPP_LITE_FILTERS

# small widths for fast shape/gradient tests; the default widths are checked by parameter count
TINY = dict(filters=(8, 8, 16, 16, 24, 32), side_channels=(8, 8, 8), head_channels=(8, 4), fusion_channels=8)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def n_bn_stats(model: torch.nn.Module) -> int:
    return sum(b.numel() for name, b in model.named_buffers() if "running_" in name)


def test_parameter_count_matches_official_code():
    # official Keras code (no SE): 7,771,723 trainable; Keras' 7.80 M (paper Table 2) adds BN statistics
    net = FocusNetPP(2, 3, 1, squeeze_excitation=False)
    assert n_params(net) == 7_771_723
    assert n_params(net) + n_bn_stats(net) == 7_803_739
    assert round((n_params(net) + n_bn_stats(net)) / 1e6, 2) == 7.80
    # the paper's squeeze-and-excitation adds 120,580 parameters
    assert n_params(FocusNetPP(2, 3, 1)) == 7_892_303


def test_lite_parameter_count_near_paper():
    lite = FocusNetPP.lite(squeeze_excitation=False)
    assert tuple(lite.encoder[-1][0].shortcut[0].out_channels for _ in [0]) == (FOCUSNETPP_LITE_FILTERS[-1],)
    assert n_params(lite) == 1_849_031
    assert abs(n_params(lite) - 1.84e6) / 1.84e6 < 0.01
    assert n_params(FocusNetPP.lite()) == 1_882_229


@pytest.mark.parametrize("sigmoid_head", [False, True])
def test_default_network_2d_256(sigmoid_head):
    net = FocusNetPP(2, 3, 1, sigmoid_head=sigmoid_head).eval()
    with torch.no_grad():
        y = net(torch.randn(2, 3, 256, 256))
    assert y.shape == (2, 1, 256, 256)
    if sigmoid_head:
        assert y.min() >= 0 and y.max() <= 1
    else:
        assert y.min() < 0 or y.max() > 1 or torch.isfinite(y).all()


def test_3d_shape_and_multiclass():
    net = FocusNetPP(3, 2, 3, **TINY).eval()
    with torch.no_grad():
        y = net(torch.randn(2, 2, 32, 32, 32))
    assert y.shape == (2, 3, 32, 32, 32)


@pytest.mark.parametrize("shape", [(37, 50), (16, 17)])
def test_sizes_not_divisible_are_padded_and_cropped(shape):
    net = FocusNetPP(2, 1, 1, **TINY).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, *shape)).shape == (1, 1, *shape)


def test_padding_matches_explicit_zero_padding():
    set_determinism(0)
    net = FocusNetPP(2, 1, 1, **TINY).eval()
    x = torch.randn(1, 1, 30, 32)
    padded = torch.nn.functional.pad(x, (0, 0, 1, 1))  # 30 -> 32, one row each side
    with torch.no_grad():
        assert torch.allclose(net(x), net(padded)[:, :, 1:-1], atol=1e-6)
    set_determinism(None)


def test_gradients_reach_every_parameter():
    # eval mode: in train mode a freshly initialised batch norm outputs exactly zero-mean channels, so
    # squeeze-and-excitation's pooled input, and hence its first layer's gradient, can vanish at init
    set_determinism(0)
    net = FocusNetPP(2, 3, 1, dropout=0.0, **TINY).eval()
    net(torch.randn(2, 3, 32, 32)).square().mean().backward()
    set_determinism(None)
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    zero = [n for n, p in net.named_parameters() if float(p.grad.abs().sum()) == 0]
    assert not zero


def test_torchscript_round_trip(tmp_path):
    net = FocusNetPP(2, 3, 1, **TINY).eval()
    scripted = torch.jit.script(net)
    torch.jit.save(scripted, str(tmp_path / "net.ts"))
    loaded = torch.jit.load(str(tmp_path / "net.ts"))
    x = torch.randn(2, 3, 40, 36)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-5)


def test_determinism():
    outs = []
    for _ in range(2):
        set_determinism(seed=7)
        net = FocusNetPP(2, 1, 1, **TINY).eval()
        with torch.no_grad():
            outs.append(net(torch.ones(1, 1, 32, 32)))
    set_determinism(None)
    assert torch.equal(outs[0], outs[1])


def test_groups_run_as_grouped_convolutions():
    block = ResidualGroupAttentionBlock(2, 32, 48)
    grouped = [m.groups for m in block.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert sorted(set(grouped)) == [2, 4]
    # the shared BN-act-Conv3 stages are single convolutions with 4 groups of 8 channels
    assert block.pre[2].groups == 4 and block.pre[2].in_channels == 32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(spatial_dims=4), "spatial_dims must be 2 or 3"),
        (dict(filters=(32, 48, 96, 150, 256, 512)), "multiple of groups=4"),
        (dict(groups=3), "multiple of groups=3"),
        (dict(blocks=(1, 1)), "blocks needs 5"),
        (dict(dropout=1.5), "dropout"),
        (dict(in_channels=0), "positive"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = dict(spatial_dims=2, in_channels=3, out_channels=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        FocusNetPP(**args)


def test_block_bad_groups():
    with pytest.raises(ValueError, match="even"):
        ResidualGroupAttentionBlock(2, 16, 16, groups=3)
    with pytest.raises(ValueError, match="divisible"):
        ResidualGroupAttentionBlock(2, 18, 16, groups=4)
