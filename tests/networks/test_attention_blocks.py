"""The attention blocks of "Paying Attention to Mistakes" (Xu et al., BMVC 2020) on their own:
formulas against hand-written references, parameter counts, 2D/3D shapes, TorchScript, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_attn.networks.blocks import (
    AttentionGate,
    ConcurrentSpatialChannelSE,
    ConvolutionalBlockAttention,
    DoubleConv,
    FalsePositiveAttention,
    GlobalContextBlock,
    ReverseFalseNegativeAttention,
)

pytestmark = pytest.mark.usefixtures("one_thread_quiet")


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _blocks(spatial_dims: int) -> list[tuple[torch.nn.Module, int, int]]:
    """(block, in_channels, out_channels) for every block, small sizes."""
    return [
        (FalsePositiveAttention(spatial_dims, 8, 16, strides=2), 8, 16),
        (ReverseFalseNegativeAttention(spatial_dims, 8, 16, strides=2, downsample=2), 8, 16),
        (ConcurrentSpatialChannelSE(spatial_dims, 16), 16, 16),
        (ConvolutionalBlockAttention(spatial_dims, 16), 16, 16),
        (GlobalContextBlock(spatial_dims, 16), 16, 16),
        (DoubleConv(spatial_dims, 8, 16, strides=2), 8, 16),
    ]


# ---------------------------------------------------------------------------------------------- shapes, script


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_block_shapes_and_torchscript(spatial_dims):
    side = 16 if spatial_dims == 2 else 8
    for block, c_in, c_out in _blocks(spatial_dims):
        block.eval()
        x = torch.randn(2, c_in, *([side] * spatial_dims))
        strided = isinstance(block, (FalsePositiveAttention, ReverseFalseNegativeAttention, DoubleConv))
        expected = (2, c_out, *([side // 2 if strided else side] * spatial_dims))
        with torch.no_grad():
            y = block(x)
            assert y.shape == expected, type(block).__name__
            torch.testing.assert_close(torch.jit.script(block)(x), y, rtol=1e-5, atol=1e-5)
    gate = AttentionGate(spatial_dims, 32, 16).eval()
    g, s = torch.randn(2, 32, *([side] * spatial_dims)), torch.randn(2, 16, *([side] * spatial_dims))
    with torch.no_grad():
        assert gate(g, s).shape == s.shape
        torch.testing.assert_close(torch.jit.script(gate)(g, s), gate(g, s))


def test_double_conv_is_bias_free_and_strided_first():
    block = DoubleConv(2, 4, 32, strides=2, dilation=6)
    convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2), (1, 1)]
    assert [c.dilation for c in convs] == [(6, 6), (6, 6)]
    assert all(c.bias is None for c in convs)
    assert n_params(block) == 4 * 32 * 9 + 32 * 32 * 9 + 2 * 2 * 32


# ---------------------------------------------------------------------------------------------- FPA


def test_fpa_parameter_count_and_options():
    main = 128 * 256 * 9 + 256 * 256 * 9 + 4 * 256
    attention = 128 * 1024 + 1024 * 9 + 2 * 1024 + 1024 * 256  # W_a1, shared depth-wise W_a2 + norm, W_a3
    assert n_params(FalsePositiveAttention(2, 128, 256, strides=2)) == main + attention
    unshared = FalsePositiveAttention(2, 128, 256, strides=2, shared_weights=False)
    assert n_params(unshared) == main + attention + 1024 * 9 + 2 * 1024
    dense = FalsePositiveAttention(2, 128, 256, expansion=1, depthwise=False)
    assert n_params(dense) == main + 128 * 256 + 256 * 256 * 9 + 2 * 256 + 256 * 256
    dilations = {
        m.dilation for m in FalsePositiveAttention(3, 4, 8, dilation=12).modules() if hasattr(m, "dilation")
    }
    assert (12, 12, 12) in dilations


def test_fpa_output_is_f_times_a_plus_f():
    torch.manual_seed(0)
    block = FalsePositiveAttention(2, 4, 8, strides=2, dilation=6).eval()
    x = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        f = block.main(x)
        a = block.context(block.expand(x))
        a = torch.sigmoid(block.project(block.context(a)))  # shared weights: same unit twice
        torch.testing.assert_close(block(x), f * a + f)
        block.project.weight.zero_()  # A = σ(0) = 1/2
        torch.testing.assert_close(block(x), 1.5 * f)


# ---------------------------------------------------------------------------------------------- RFNA


def test_rfna_parameter_count():
    main = 128 * 256 * 9 + 256 * 256 * 9 + 4 * 256
    for expansion, downsample, n_dw in ((4, 8, 2), (8, 8, 2), (4, 4, 1), (4, 2, 0)):
        hidden = expansion * 256
        attention = 256 * hidden + n_dw * (hidden * 9 + 2 * hidden) + hidden * 256
        block = ReverseFalseNegativeAttention(
            2, 128, 256, strides=2, expansion=expansion, downsample=downsample
        )
        assert n_params(block) == main + attention


def test_rfna_matches_the_paper_order_and_residual():
    """A = σ{W_a4[UpSample(W_a3 W_a2 W_a1 F)] + F}, Y = F ⊙ A + F; W_a4 runs before the up-sampling
    in the block, which must equal the paper's order (1×1 conv and linear interpolation commute)."""
    torch.manual_seed(0)
    block = ReverseFalseNegativeAttention(2, 4, 8).eval()
    x = torch.randn(2, 4, 20, 28)  # not multiples of 8: the branch is up-sampled to F's exact size
    with torch.no_grad():
        f = block.main(x)
        low = block.squeeze(block.reduce(f))
        assert low.shape[2:] == (3, 4)
        up = F.interpolate(low, size=f.shape[2:], mode="bilinear", align_corners=True)
        a = torch.sigmoid(block.project(up) + f)  # paper order: W_a4 after UpSample
        torch.testing.assert_close(block(x), f * a + f, rtol=1e-5, atol=1e-6)
        block.project.weight.zero_()  # A = σ(F): the residual inside the sigmoid
        torch.testing.assert_close(block(x), f + f * torch.sigmoid(f))


def test_rfna_3d_uses_trilinear_and_rejects_too_small_maps():
    block = ReverseFalseNegativeAttention(3, 2, 4).eval()
    assert block.interp_mode == "trilinear"
    with torch.no_grad():
        assert block(torch.randn(1, 2, 9, 8, 8)).shape == (1, 4, 9, 8, 8)
        with pytest.raises(ValueError, match=r"spatial size \[8, 8, 8\] is too small.*exceed 8"):
            block(torch.randn(1, 2, 8, 8, 8))
        no_norm = ReverseFalseNegativeAttention(3, 2, 4, norm=None)  # nothing to check without instance norm
        assert no_norm(torch.randn(1, 2, 4, 4, 4)).shape == (1, 4, 4, 4, 4)


# ---------------------------------------------------------------------------------------------- gate, scSE, CBAM, GC


def test_attention_gate_formula_and_count():
    torch.manual_seed(0)
    gate = AttentionGate(2, 256, 128).eval()
    # W_g, W_x to 64 channels + affine IN each, psi to 1 channel + affine IN, all bias-free
    assert n_params(gate) == 256 * 64 + 128 * 64 + 2 * (2 * 64) + 64 + 2
    g, s = torch.randn(2, 256, 8, 8), torch.randn(2, 128, 8, 8)
    with torch.no_grad():
        a = torch.sigmoid(gate.psi(torch.relu(gate.w_g(g) + gate.w_x(s))))
        assert a.shape == (2, 1, 8, 8)
        torch.testing.assert_close(gate(g, s), a * s + s)
        gate.psi.conv.weight.zero_()  # constant map → instance norm 0 → a = 1/2
        torch.testing.assert_close(gate(g, s), 1.5 * s)


def test_scse_is_spatial_plus_channel_squeeze_excitation():
    torch.manual_seed(0)
    block = ConcurrentSpatialChannelSE(2, 32)
    assert n_params(block) == (32 * 4 + 4) + (4 * 32 + 32) + 32  # MONAI ChannelSELayer (r=8) + 1×1 to 1
    x = torch.randn(2, 32, 8, 8)
    fc = block.channel_se.fc
    with torch.no_grad():
        channel = torch.sigmoid(fc[2](torch.relu(fc[0](x.mean(dim=(2, 3))))))[:, :, None, None]
        spatial = torch.sigmoid(F.conv2d(x, block.spatial_se.weight))
        torch.testing.assert_close(block(x), x * channel + x * spatial)


def test_cbam_against_reference():
    torch.manual_seed(0)
    block = ConvolutionalBlockAttention(2, 32)
    assert n_params(block) == 2 * 32 * 2 + 2 * 9  # reduction 16, 3×3 spatial conv
    x = torch.randn(2, 32, 8, 8)
    w1, w2 = block.mlp[0].weight, block.mlp[2].weight

    def mlp(v):
        return F.conv2d(torch.relu(F.conv2d(v, w1)), w2)

    with torch.no_grad():
        xc = x * torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
        pooled = torch.cat([xc.mean(1, keepdim=True), xc.max(1, keepdim=True)[0]], 1)
        expected = xc * torch.sigmoid(F.conv2d(pooled, block.spatial.weight, padding=1)) + x
        torch.testing.assert_close(block(x), expected)


def test_global_context_against_reference():
    torch.manual_seed(0)
    block = GlobalContextBlock(2, 32)
    assert n_params(block) == 32 + 32 * 4 + 2 * 4 + 4 * 32  # layer norm (GroupNorm, 1 group) on 4 channels
    x = torch.randn(2, 32, 6, 5)
    with torch.no_grad():
        w = torch.softmax(F.conv2d(x, block.attend.weight).flatten(1), dim=1)  # (B, HW)
        context = torch.einsum("bcn,bn->bc", x.flatten(2), w)[:, :, None, None]
        hidden = F.conv2d(context, block.transform[0].weight)
        hidden = F.layer_norm(hidden.squeeze(-1).squeeze(-1), (4,))[:, :, None, None]
        hidden = (
            hidden * block.transform[1].weight[None, :, None, None]
            + block.transform[1].bias[None, :, None, None]
        )
        att = F.conv2d(torch.relu(hidden), block.transform[3].weight)
        torch.testing.assert_close(block(x), att * x + x, rtol=1e-5, atol=1e-6)
    assert n_params(GlobalContextBlock(2, 8)) == 8 + 8 * 4 + 2 * 4 + 4 * 8  # at least 4 hidden channels


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: FalsePositiveAttention(1, 4, 8), "spatial_dims must be 2 or 3"),
        (lambda: FalsePositiveAttention(2, 4, 8, dilation=0), "dilation must be a positive integer"),
        (lambda: FalsePositiveAttention(2, 4, 8, expansion=0), "expansion must be a positive integer"),
        (lambda: ReverseFalseNegativeAttention(2, 4, 0), "out_channels must be a positive integer"),
        (
            lambda: ReverseFalseNegativeAttention(2, 4, 8, downsample=3),
            r"downsample must be one of \[2, 4, 8\]",
        ),
        (lambda: AttentionGate(2, 0, 8), "gate_channels must be a positive integer"),
        (lambda: ConcurrentSpatialChannelSE(2, 4), r"reduction \(8\) must not exceed channels \(4\)"),
        (
            lambda: ConvolutionalBlockAttention(2, 16, spatial_kernel_size=4),
            "spatial_kernel_size must be odd",
        ),
        (lambda: GlobalContextBlock(2, 16, norm="instance"), "instance norm on the single-voxel context"),
        (lambda: GlobalContextBlock(2, 1), "channels must be at least 2"),
        (lambda: DoubleConv(4, 4, 8), "spatial_dims must be 2 or 3"),
    ],
)
def test_block_errors(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()
