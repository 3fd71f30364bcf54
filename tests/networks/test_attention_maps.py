"""Attention maps (monai_attn.networks.attention_maps): every block type and network, 2D and 3D.

Each block's recorded map is compared with the block's formula written out by hand from its own
layers (independent of the hooks), upsampled the same way; the networks are checked for names, shapes,
finite values, an unchanged output and state, and no hook left behind (TorchScript still works)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_attn.networks import (
    FocusNetPP,
    MistakesUNet,
    attention_blocks,
    attention_maps,
    deepest_encoder_block,
)
from monai_attn.networks.attention import AttentionRecorder
from monai_attn.networks.blocks import (
    AttentionGate,
    ConcurrentSpatialChannelSE,
    ConvolutionalBlockAttention,
    DoubleConv,
    FalsePositiveAttention,
    GlobalContextBlock,
    ResidualGroupAttentionBlock,
    ReverseFalseNegativeAttention,
)

pytestmark = pytest.mark.usefixtures("one_thread_quiet")


def _up(a: torch.Tensor, size) -> torch.Tensor:
    a = a.mean(dim=1, keepdim=True)
    if list(a.shape[2:]) == list(size):
        return a
    return F.interpolate(a, size=list(size), mode="bilinear" if len(size) == 2 else "trilinear", align_corners=False)


def _randomise_norms(net: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial batch-norm statistics, so eval-mode batch norms are not identities."""
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net


def _no_hooks(net: torch.nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


# ----------------------------------------------------------------------------------- blocks vs their formulas


def _fpa_ref(b: FalsePositiveAttention, x):
    a = b.context(b.expand(x))
    a = b.context(a) if b.shared_weights else b.context_2(a)
    return torch.sigmoid(b.project(a))


def _rfna_ref(b: ReverseFalseNegativeAttention, x):
    f = b.main(x)
    a = b.project(b.squeeze(b.reduce(f)))
    return torch.sigmoid(F.interpolate(a, size=f.shape[2:], mode=b.interp_mode, align_corners=True) + f)


def _scse_ref(b: ConcurrentSpatialChannelSE, x):
    return torch.sigmoid(b.spatial_se(x))


def _cbam_ref(b: ConvolutionalBlockAttention, x):
    xc = x * torch.sigmoid(b.mlp(b.avg_pool(x)) + b.mlp(b.max_pool(x)))
    return torch.sigmoid(b.spatial(torch.cat([xc.mean(1, keepdim=True), xc.amax(1, keepdim=True)], 1)))


def _gc_ref(b: GlobalContextBlock, x):
    logits = b.attend(x)
    n = logits[0, 0].numel()
    return torch.softmax(logits.flatten(2), -1).reshape(logits.shape) * n


def _rga_ref(b: ResidualGroupAttentionBlock, x):
    z = b.pre(b.conv_in(x))  # the paper's order: BN-act-Conv3 twice, then the attention Conv1×1 and sigmoid
    conv = F.conv2d if x.dim() == 4 else F.conv3d
    return torch.sigmoid(conv(z[:, : b.half], b.attention[0].weight, b.attention[0].bias, groups=b.pairs))


BLOCKS = {
    "fpa": (lambda d: FalsePositiveAttention(d, 4, 8, strides=2, dilation=2, shared_weights=False), 4, _fpa_ref),
    "rfna": (lambda d: ReverseFalseNegativeAttention(d, 4, 8, strides=2, downsample=2), 4, _rfna_ref),
    "scse": (lambda d: ConcurrentSpatialChannelSE(d, 8, reduction=2), 8, _scse_ref),
    "cbam": (lambda d: ConvolutionalBlockAttention(d, 8, reduction=2), 8, _cbam_ref),
    "gc": (lambda d: GlobalContextBlock(d, 8), 8, _gc_ref),
    "group_attention": (lambda d: _randomise_norms(ResidualGroupAttentionBlock(d, 8, 8, groups=4)), 8, _rga_ref),
}


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_block_map_is_the_blocks_attention(kind, spatial_dims):
    make, c_in, ref = BLOCKS[kind]
    block = make(spatial_dims).eval()
    x = torch.randn(2, c_in, *([12, 10, 8][:spatial_dims]))
    with torch.no_grad():
        before = block(x)
        expected = _up(ref(block, x), x.shape[2:])
    maps = attention_maps(block, x)
    assert list(maps) == [kind]
    m = maps[kind]
    assert m.shape == (2, 1, *x.shape[2:]) and m.dtype == torch.float32 and torch.isfinite(m).all()
    torch.testing.assert_close(m, expected, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(block(x), before, rtol=0, atol=0)  # output unchanged
    assert _no_hooks(block)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_attention_gate_map_is_the_gate(spatial_dims):
    """The gate's map is the ``a`` of ``s' = a ⊙ s + s``: recovered from the block's output where s ≠ 0."""
    gate = AttentionGate(spatial_dims, 6, 4).eval()
    g, s = torch.randn(2, 6, *([8] * spatial_dims)), torch.randn(2, 4, *([8] * spatial_dims))
    with torch.no_grad(), AttentionRecorder(gate, s.shape) as rec:
        out = gate(g, s)
    a = rec.maps["gate"]
    assert a.shape == (2, 1, *s.shape[2:])
    torch.testing.assert_close(out, s + s * a, rtol=1e-5, atol=1e-6)
    assert _no_hooks(gate)


def test_scse_map_recovered_from_the_output():
    """scSE: y = cSE(x) + x ⊙ σ(W_s x); the spatial map follows from y, x and MONAI's channel SE layer."""
    block = ConcurrentSpatialChannelSE(2, 8, reduction=2).eval()
    x = torch.rand(1, 8, 9, 7) + 0.5  # away from zero
    with torch.no_grad():
        recovered = ((block(x) - block.channel_se(x)) / x).mean(1, keepdim=True)
    torch.testing.assert_close(attention_maps(block, x)["scse"], recovered, rtol=1e-4, atol=1e-5)


def test_rfna_flip_shows_one_minus_the_trained_map():
    block = ReverseFalseNegativeAttention(2, 4, 8, downsample=2).eval()
    x = torch.randn(1, 4, 16, 16)
    trained, flipped = attention_maps(block, x)["rfna"], attention_maps(block, x, flip_rfna=True)["rfna"]
    torch.testing.assert_close(flipped, 1 - trained)


# ----------------------------------------------------------------------------------------------------- networks


def _mistakes(kind: str, spatial_dims: int) -> tuple[MistakesUNet, torch.Tensor]:
    kwargs = {"attention_kwargs": {"downsample": 2}} if kind == "rfna" else {}  # small inputs suffice
    net = MistakesUNet(spatial_dims, 2, 1, width=8, attention=kind, **kwargs)
    side = 32 if spatial_dims == 2 else 24
    return net, torch.randn(1, 2, *([side] * spatial_dims))


EXPECTED_NAMES = {
    "fpa": ["encoder1.fpa", "encoder2.fpa", "encoder3.fpa", "bridge.fpa"],
    "rfna": ["encoder1.rfna", "encoder2.rfna", "encoder3.rfna", "bridge.rfna"],
    "gate": ["decoder2.gate", "decoder1.gate", "decoder0.gate"],
    "scse": ["encoder0.scse", "encoder1.scse", "encoder2.scse", "decoder2.scse", "decoder1.scse", "decoder0.scse"],
    "cbam": ["encoder0.cbam", "encoder1.cbam", "encoder2.cbam", "bridge.cbam",
             "decoder2.cbam", "decoder1.cbam", "decoder0.cbam"],
    "gc": ["encoder0.gc", "encoder1.gc", "encoder2.gc", "bridge.gc", "decoder2.gc", "decoder1.gc", "decoder0.gc"],
}
DEEPEST = {"fpa": "encoder3.fpa", "rfna": "encoder3.rfna", "gate": "decoder2.gate", "scse": "encoder2.scse",
           "cbam": "encoder2.cbam", "gc": "encoder2.gc"}


def _check_network(net: torch.nn.Module, x: torch.Tensor, names: list[str]) -> dict:
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        before = net(x)
    maps = attention_maps(net, x)
    assert list(maps) == names
    for name, m in maps.items():
        assert m.shape == (x.shape[0], 1, *x.shape[2:]), name
        assert torch.isfinite(m).all(), name
        assert m.std() > 0, name  # a real map, not a constant
    with torch.no_grad():
        torch.testing.assert_close(net(x), before, rtol=0, atol=0)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert _no_hooks(net)
    # the recorded pass computes the network's output too (FocusNet++: its reference path, to rounding)
    with torch.no_grad(), AttentionRecorder(net, x.shape) as rec:
        torch.testing.assert_close(net(x), before, rtol=1e-4, atol=1e-4)
    assert set(rec.maps) == set(names) and _no_hooks(net)
    return maps


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("kind", sorted(EXPECTED_NAMES))
def test_mistakes_unet_maps(kind, spatial_dims):
    net, x = _mistakes(kind, spatial_dims)
    net.eval()
    _check_network(net, x, EXPECTED_NAMES[kind])
    assert deepest_encoder_block(net) == DEEPEST[kind]
    # selecting one block returns only it, equal to the same block's map from the full set
    one = attention_maps(net, x, blocks=DEEPEST[kind])
    assert list(one) == [DEEPEST[kind]]
    torch.testing.assert_close(one[DEEPEST[kind]], attention_maps(net, x)[DEEPEST[kind]])


def _focus(spatial_dims: int) -> FocusNetPP:
    return _randomise_norms(FocusNetPP(spatial_dims, 1, 1, filters=(4, 8, 8, 8), blocks=(1, 2, 1),
                                       side_channels=(4,), head_channels=(4,), fusion_channels=4))


FOCUS_NAMES = ["encoder0.0.group_attention", "encoder1.0.group_attention", "encoder1.1.group_attention",
               "bottleneck.0.group_attention", "decoder1.group_attention", "decoder0.group_attention"]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_focusnetpp_maps(spatial_dims):
    net = _focus(spatial_dims).eval()
    x = torch.randn(2, 1, *([10, 7, 9][:spatial_dims]))  # not multiples of 4: padded inside, maps cropped back
    maps = _check_network(net, x, FOCUS_NAMES)
    assert deepest_encoder_block(net) == "encoder1.1.group_attention"
    assert all(b.fusable for b in net.modules() if isinstance(b, ResidualGroupAttentionBlock))  # fast path restored
    # the map of a padded input equals the map of the explicitly zero-padded input, cropped back
    per_dim = [(1, 1), (0, 1), (1, 2)][:spatial_dims]  # 10 -> 12, 7 -> 8, 9 -> 12: evenly, the extra voxel after
    padded = F.pad(x, [p for pair in reversed(per_dim) for p in pair])  # F.pad lists the last dim first

    def crop(m):
        for d, (before, after) in enumerate(per_dim):
            m = m.narrow(2 + d, before, m.shape[2 + d] - before - after)
        return m

    full = attention_maps(net, padded)
    for name in FOCUS_NAMES:
        torch.testing.assert_close(maps[name], crop(full[name]), rtol=1e-5, atol=1e-6)
    # the encoder's first block map is the block's formula at full resolution (no resampling)
    with torch.no_grad():
        ref = crop(_rga_ref(net.encoder[0][0], net.stem(padded)).mean(1, keepdim=True))
    torch.testing.assert_close(maps["encoder0.0.group_attention"], ref, rtol=1e-4, atol=1e-5)


def test_training_mode_state_is_left_unchanged():
    """In training mode the pass would update batch-norm statistics: attention_maps restores them."""
    net = _focus(2).train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    maps = attention_maps(net, torch.randn(2, 1, 16, 16))
    assert all(torch.isfinite(m).all() for m in maps.values())
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert net.training and _no_hooks(net)


def test_torchscript_unaffected_after_maps():
    for net, x in ((_focus(2).eval(), torch.randn(1, 1, 16, 16)), (_mistakes("fpa", 2)[0].eval(), torch.randn(1, 2, 32, 32))):
        attention_maps(net, x)
        scripted = torch.jit.script(net)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), net(x), rtol=1e-4, atol=1e-4)


def test_export_unaffected_after_maps():
    net, x = _mistakes("gate", 2)
    net.eval()
    attention_maps(net, x)
    exported = torch.export.export(net, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), net(x), rtol=1e-5, atol=1e-5)


def test_hooks_removed_when_the_forward_fails():
    net, _ = _mistakes("fpa", 2)
    with pytest.raises(ValueError, match="expected input of shape"):
        attention_maps(net, torch.randn(1, 3, 32, 32))
    assert _no_hooks(net)


def test_errors_name_the_valid_blocks():
    net, x = _mistakes("cbam", 2)
    with pytest.raises(ValueError, match="encoder0.cbam"):
        attention_maps(net, x, blocks=["encoder9.cbam"])
    with pytest.raises(ValueError, match="no attention block"):
        attention_maps(DoubleConv(2, 1, 2), torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="no attention block"):
        deepest_encoder_block(MistakesUNet(2, 1, 1, width=4))
    assert list(attention_blocks(MistakesUNet(2, 1, 1, width=4))) == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_maps_on_cuda_match_the_cpu_and_amp_extras_are_finite():
    from monai_attn.workflows.attention import InferenceOutputs

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    cases = [(_focus(2).eval(), torch.randn(2, 1, 20, 20)), (_focus(3).eval(), torch.randn(1, 1, 12, 10, 9)),
             (_mistakes("fpa", 2)[0].eval(), torch.randn(2, 2, 32, 32)),
             (_mistakes("rfna", 3)[0].eval(), torch.randn(1, 2, 24, 24, 24))]
    for net, x in cases:
        cpu = attention_maps(net, x)
        net.cuda()
        gpu = attention_maps(net, x.cuda())
        assert list(gpu) == list(cpu) and _no_hooks(net)
        for name in cpu:
            assert gpu[name].device.type == "cuda"
            torch.testing.assert_close(gpu[name].cpu(), cpu[name], rtol=1e-3, atol=1e-3)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            out = InferenceOutputs(net, list(cpu)[-1:], tta="flips")(x.cuda())
            _, extras = InferenceOutputs(net, list(cpu)[-1:], tta="flips").split(out, dim=1)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
        assert 0 <= extras["entropy"].min() and extras["entropy"].max() <= 1
