"""The performance paths (issue 8) compute the same functions as the reference formulations:
shifted depth-wise convolution, point-wise products, the fused inference path of the residual
group-attention block (with its weight cache), FocusNet++'s channels-last switch."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_attn.networks import FalsePositiveAttention, FocusNetPP, ResidualGroupAttentionBlock
from monai_attn.networks.blocks.conv_units import depthwise_conv_shifted
from monai_attn.networks.blocks.residual_group_attention import pointwise_conv


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("kernel, dilation", [(3, 1), (3, 4), (3, 9), (5, 2), (3, 40)])
def test_depthwise_conv_shifted_equals_conv(dims, kernel, dilation):
    torch.manual_seed(0)
    shape = (2, 6, 13, 11) if dims == 2 else (1, 5, 9, 7, 8)
    x = torch.randn(shape)
    w = torch.randn(shape[1], 1, *([kernel] * dims))
    conv = F.conv2d if dims == 2 else F.conv3d
    expected = conv(x, w, padding=dilation * (kernel - 1) // 2, dilation=dilation, groups=shape[1])
    torch.testing.assert_close(depthwise_conv_shifted(x, w, dilation), expected, rtol=1e-5, atol=1e-5)
    xc = x.contiguous(memory_format=torch.channels_last if dims == 2 else torch.channels_last_3d)
    torch.testing.assert_close(depthwise_conv_shifted(xc, w, dilation), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "channel_slice", "nchw_slice"])
def test_pointwise_conv_equals_conv(groups, layout):
    torch.manual_seed(0)
    big = torch.randn(2, 16, 7, 5)
    if layout == "channels_last":
        big = big.contiguous(memory_format=torch.channels_last)
    x = big[:, 4:12] if layout.endswith("slice") else big[:, :8]
    if layout == "channel_slice":
        x = big.contiguous(memory_format=torch.channels_last)[:, 4:12]
    w, b = torch.randn(12, 8 // groups, 1, 1), torch.randn(12)
    expected = F.conv2d(x, w, b, groups=groups)
    torch.testing.assert_close(pointwise_conv(x, w, b, groups), expected, rtol=1e-5, atol=1e-5)


def _randomise(module: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)


@pytest.mark.parametrize(
    "dims, cin, cout, kwargs",
    [
        (2, 16, 24, {}),
        (2, 24, 24, {"groups": 2}),
        (2, 16, 32, {"groups": 8, "squeeze_excitation": False}),
        (2, 16, 16, {"act": "relu"}),
        (2, 16, 16, {"act": "gelu"}),
        (3, 8, 16, {}),
    ],
)
def test_fused_block_equals_reference(dims, cin, cout, kwargs):
    torch.manual_seed(0)
    block = ResidualGroupAttentionBlock(dims, cin, cout, **kwargs).eval()
    _randomise(block)
    x = torch.randn((2, cin) + (9,) * dims)
    with torch.no_grad():
        fused = block(x)
        assert block._fold_cache is not None  # the inference path ran
        block.fusable = False
        reference = block(x)
        block.fusable = True
        cl = torch.channels_last if dims == 2 else torch.channels_last_3d
        fused_cl = block(x.contiguous(memory_format=cl))
        # the same inference path without oneDNN's fused post-ops (other devices, TorchScript)
        onednn, block.onednn_fused = block.onednn_fused, False
        plain = block(x)
        plain_cl = block(x.contiguous(memory_format=cl))
        block.onednn_fused = onednn
    assert block.onednn_fused == (kwargs.get("act") != "gelu")  # oneDNN fuses only (leaky) ReLU here
    for out in (fused, fused_cl, plain, plain_cl):
        torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)
    # with autograd (or in train mode) the reference path runs, same values in eval mode
    torch.testing.assert_close(block(x).detach(), reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dims, cin, cout", [(2, 16, 8), (2, 8, 8), (2, 24, 16), (3, 8, 4)])
def test_forward_upsampled_equals_upsample_then_block(dims, cin, cout):
    # the inference path runs the point-wise prefix before the nearest upsampling (FocusNet++'s decoder)
    torch.manual_seed(0)
    block = ResidualGroupAttentionBlock(dims, cin, cout).eval()
    _randomise(block)
    x = torch.randn((2, cin) + (5,) * dims)
    upsampled = F.interpolate(x, scale_factor=2.0, mode="nearest")
    cl = torch.channels_last if dims == 2 else torch.channels_last_3d
    with torch.no_grad():
        fast = block.forward_upsampled(x, 2)
        # the inference path ran, with polyphase weights in 2D (the cache key starts with that flag)
        assert block._fold_cache is not None and block._fold_cache[0][0] == (dims == 2)
        fast_cl = block.forward_upsampled(x.contiguous(memory_format=cl), 2)
        block.onednn_fused = False  # the plain inference path (other devices, TorchScript)
        plain = block.forward_upsampled(x, 2)
        block.fusable = False
        reference = block(upsampled)
        block.fusable = True
    assert block.polyphase == (dims == 2)  # 2D: the first 3×3 convolutions run at the input's resolution
    assert fast.shape == reference.shape == (2, cout) + (10,) * dims
    for out in (fast, fast_cl, plain):
        torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)
    # with autograd the literal order runs (train-mode batch statistics see the upsampled tensor)
    block.train()
    torch.manual_seed(1)
    trained = block.forward_upsampled(x, 2)
    torch.testing.assert_close(trained, block(upsampled), rtol=1e-5, atol=1e-6)


def test_fused_weight_cache_follows_parameter_changes():
    torch.manual_seed(0)
    block = ResidualGroupAttentionBlock(2, 8, 8).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        first = block(x)
        block.pre[3].running_var.mul_(4.0)  # a buffer changes in place
        block.aggregate[0].weight.add_(0.1)  # and a parameter (e.g. an optimiser step)
        changed = block(x)
        block.fusable = False
        reference = block(x)
    assert not torch.allclose(first, changed)
    torch.testing.assert_close(changed, reference, rtol=1e-4, atol=1e-5)
    # a state dict load refreshes it too
    other = ResidualGroupAttentionBlock(2, 8, 8).eval()
    with torch.no_grad():
        other(x)
        other.load_state_dict(block.state_dict())
        torch.testing.assert_close(other(x), reference, rtol=1e-4, atol=1e-5)


def test_fused_weight_cache_survives_eval_calls():
    # evaluators call network.eval() before every batch: that must not throw the folded weights away
    block = ResidualGroupAttentionBlock(2, 8, 8).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        block(x)
        cached = block._fold_cache[1]
        block.eval()
        block(x)
    assert block._fold_cache[1] is cached


def test_block_state_dict_layout_unchanged():
    block = ResidualGroupAttentionBlock(2, 16, 24)
    keys = list(block.state_dict())
    assert "conv_in.weight" in keys and "pre.2.weight" in keys and "attention.0.weight" in keys
    assert not any("cache" in k or "fold" in k for k in keys)


def test_focusnetpp_channels_last_is_a_speed_setting_only():
    torch.manual_seed(0)
    net = FocusNetPP(2, 2, 3, filters=(8, 8, 16, 16, 24, 32), side_channels=(8, 8, 8), head_channels=(8, 4),
                     fusion_channels=8).eval()
    _randomise(net)
    x = torch.randn(2, 2, 32, 48)
    with torch.no_grad():
        fast = net(x)
        net.channels_last = False
        plain = net(x)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
    assert fast.is_contiguous()  # returned in the input's layout, also with several output channels


def test_fpa_shifted_context_only_for_cpu_inference():
    torch.manual_seed(0)
    block = FalsePositiveAttention(2, 4, 8, strides=2, dilation=3).eval()
    x = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        fast = block(x)
        block.shifted_context = False
        reference = block(x)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
    # not depth-wise: no shifted path
    assert not FalsePositiveAttention(2, 4, 8, depthwise=False).shifted_context
    # independent second unit
    two = FalsePositiveAttention(2, 4, 8, shared_weights=False).eval()
    with torch.no_grad():
        a = two(x)
        two.shifted_context = False
        torch.testing.assert_close(a, two(x), rtol=1e-5, atol=1e-5)
