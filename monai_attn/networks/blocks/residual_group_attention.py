"""Residual Group Attention block (ResGANet) of FocusNet++ (Kaul et al., ISBI 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import ChannelSELayer
from monai.networks.layers.factories import Act, Conv
from monai.networks.layers.utils import get_act_layer, get_norm_layer

from ..utils import eager_fast_paths

__all__ = [
    "ResidualGroupAttentionBlock",
    "KERAS_LEAKY_RELU",
    "KERAS_BATCH_NORM",
    "check_spatial_dims",
    "pointwise_conv",
]

# Keras defaults of the official FocusNet++ code: LeakyReLU(alpha=0.3), BatchNormalization(momentum=0.99,
# epsilon=1e-3). PyTorch's momentum is 1 - Keras momentum.
KERAS_LEAKY_RELU: tuple = ("leakyrelu", {"negative_slope": 0.3})
KERAS_BATCH_NORM: tuple = ("batch", {"eps": 1e-3, "momentum": 0.01})


def check_spatial_dims(spatial_dims: int) -> None:
    """Raise a clear ``ValueError`` unless ``spatial_dims`` is 2 or 3."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")


def _norm(norm: str | tuple, spatial_dims: int, channels: int) -> nn.Module:
    return get_norm_layer(name=norm, spatial_dims=spatial_dims, channels=channels)


def _has_onednn_fused_conv() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    except (AttributeError, RuntimeError):
        return False


_ONEDNN_FUSED = _has_onednn_fused_conv()


def _foldable(norm: nn.Module) -> bool:
    """Whether ``norm`` is a batch norm with running statistics (foldable into a convolution in eval mode)."""
    return isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.track_running_stats


def _inplace_slope(act: nn.Module) -> float:
    """Negative slope of a (leaky) ReLU activation, -1 for any other activation."""
    if isinstance(act, nn.LeakyReLU):
        return float(act.negative_slope)
    if isinstance(act, nn.ReLU):
        return 0.0
    return -1.0


class ResidualGroupAttentionBlock(nn.Module):
    """Residual Group Attention block (the building block of FocusNet++).

    A 1×1 convolution maps the input to ``width`` channels, which are split into ``groups`` filter
    groups of ``d = width / groups`` channels. Half of the groups learn per-pixel attention
    (BN-act-Conv3, BN-act-Conv3, Conv1×1, sigmoid) for their neighbouring group, which learns
    features through a residual unit (BN-act-Conv3, BN-act-Conv3 plus a Conv1×1-BN-act skip).
    Each attention ⊙ feature product goes through a 1×1 convolution with ``2d`` filters (BN-act),
    the products are concatenated, aggregated by a 1×1 convolution to ``out_channels`` (BN),
    optionally recalibrated by squeeze-and-excitation, and added to the (projected) block input
    before a final activation.

    All groups run at once as grouped convolutions: the attention groups occupy the first half of
    the channels and the feature groups the second half (any assignment is equivalent because the
    preceding 1×1 convolution is learned), so the shared BN-act-Conv3 stages are single
    ``groups=groups`` convolutions and the group-specific 1×1 stages ``groups=groups // 2`` ones.

    In eval mode without autograd (inference) with batch norms, the block runs a fused path that
    computes the same function in fewer, larger operations (see :meth:`_forward_fused`; outputs
    agree to float rounding); training and eval mode with autograd run the formulation above, and so
    does every mode under TorchScript, ``torch.jit.trace``, ``torch.export``, ``torch.onnx.export`` and
    ``torch.compile`` (the fused path is eager-only: :func:`~monai_attn.networks.utils.eager_fast_paths`).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels.
        out_channels: number of output channels.
        width: channels inside the block (the grouped part). Defaults to ``in_channels``, as in the
            official code (``residual_block(y, nb_channels_in, nb_channels_out)``).
        groups: number of filter groups (even: half attention, half features). Defaults to 4.
        act: activation type and arguments. Defaults to LeakyReLU(0.3) (Keras default).
        norm: normalisation type and arguments. Defaults to batch norm with Keras' eps/momentum.
        squeeze_excitation: recalibrate the aggregated output with squeeze-and-excitation (paper).
            The official code omits it. Defaults to True.
        se_reduction: reduction ratio of the squeeze-and-excitation layer (lowered for narrow blocks so
            that at least 8 hidden units remain). Defaults to 16.
        kernel_size: kernel size of the feature/attention convolutions. Defaults to 3.
    """

    __constants__ = ["project_shortcut", "squeeze_excitation"]

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        width: int | None = None,
        groups: int = 4,
        act: str | tuple = KERAS_LEAKY_RELU,
        norm: str | tuple = KERAS_BATCH_NORM,
        squeeze_excitation: bool = True,
        se_reduction: int = 16,
        kernel_size: int | Sequence[int] = 3,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        width = in_channels if width is None else width
        if min(in_channels, out_channels, width) <= 0:
            raise ValueError(
                f"in_channels, out_channels and width must be positive, got {in_channels}, {out_channels}, {width}."
            )
        if groups < 2 or groups % 2:
            raise ValueError(f"groups must be an even number >= 2 (attention/feature pairs), got {groups}.")
        if width % groups:
            raise ValueError(f"width ({width}) must be divisible by groups ({groups}).")
        conv = Conv[Conv.CONV, spatial_dims]
        half, pairs = width // 2, groups // 2
        padding = (kernel_size - 1) // 2 if isinstance(kernel_size, int) else [(k - 1) // 2 for k in kernel_size]

        self.half = half
        self.conv_in = conv(in_channels, width, 1)
        # BN-act-Conv3 twice, shared shape between attention and feature groups: one grouped conv each.
        self.pre = nn.Sequential(
            _norm(norm, spatial_dims, width),
            get_act_layer(act),
            conv(width, width, kernel_size, padding=padding, groups=groups),
            _norm(norm, spatial_dims, width),
            get_act_layer(act),
            conv(width, width, kernel_size, padding=padding, groups=groups),
        )
        self.attention = nn.Sequential(conv(half, half, 1, groups=pairs), Act[Act.SIGMOID]())
        self.feature_skip = nn.Sequential(
            conv(half, half, 1, groups=pairs), _norm(norm, spatial_dims, half), get_act_layer(act)
        )
        self.product = nn.Sequential(
            conv(half, width, 1, groups=pairs), _norm(norm, spatial_dims, width), get_act_layer(act)
        )
        self.aggregate = nn.Sequential(conv(width, out_channels, 1), _norm(norm, spatial_dims, out_channels))
        self.se: nn.Module = (
            ChannelSELayer(spatial_dims, out_channels, r=min(se_reduction, max(1, out_channels // 8)))
            if squeeze_excitation
            else nn.Identity()
        )
        self.shortcut: nn.Module = (
            nn.Sequential(conv(in_channels, out_channels, 1), _norm(norm, spatial_dims, out_channels))
            if in_channels != out_channels
            else nn.Identity()
        )
        self.out_act = get_act_layer(act)
        self.spatial_dims = spatial_dims
        self.spatial_axes: list[int] = list(range(2, 2 + spatial_dims))
        self.squeeze_excitation = squeeze_excitation
        self.padding: list[int] = [padding] * spatial_dims if isinstance(padding, int) else list(padding)
        self.out_channels = out_channels
        self.groups = groups
        self.pairs = pairs
        self.project_shortcut = in_channels != out_channels
        # the inference path folds batch norms (eval-mode statistics) and runs (leaky) ReLUs in place
        self.act_slope = _inplace_slope(self.out_act)
        norms = [self.pre[0], self.pre[3], self.feature_skip[1], self.product[1], self.aggregate[1]]
        norms += [self.shortcut[1]] if self.project_shortcut else []
        self.fusable = all(_foldable(m) for m in norms)
        self.no_padding: list[int] = [0] * spatial_dims
        # whether forward_upsampled(x, 2) can run the first 3×3 convolutions at the input's resolution
        self.polyphase = spatial_dims == 2 and tuple(self.pre[2].kernel_size) == (3, 3)
        # oneDNN convolutions with fused post-ops (the kernels torch.compile uses on the CPU) for the
        # inference path, where the activation is a (leaky) ReLU that oneDNN can fuse
        self.onednn_fused = _ONEDNN_FUSED and self.act_slope >= 0.0
        self.norm_eps: list[float] = [float(getattr(m, "eps", 0.0)) for m in norms]  # TorchScript hides BN's eps
        self._fold_cache: tuple | None = None  # eager-mode cache of the inference path's folded weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fusable and not self.training and not torch.is_grad_enabled() and eager_fast_paths():
            return self._forward_fused(x)
        y = self.conv_in(x)
        z = self.pre(y)
        attention = torch.sigmoid(pointwise_conv(z[:, : self.half], self.attention[0].weight, self.attention[0].bias,
                                                 self.pairs))
        skip = self.feature_skip[0]
        features = z[:, self.half :] + self.feature_skip[2](
            self.feature_skip[1](pointwise_conv(y[:, self.half :], skip.weight, skip.bias, self.pairs))
        )
        product = self.product[0]
        h = self.product[2](self.product[1](pointwise_conv(attention * features, product.weight, product.bias,
                                                           self.pairs)))
        out = self.se(self.aggregate(h))
        return self.out_act(self.shortcut(x) + out)

    def forward_upsampled(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        """``forward(F.interpolate(x, scale_factor=scale, mode="nearest"))``, as FocusNet++'s decoder uses it.

        On the inference path the block's point-wise prefix (the 1×1 convolutions that read the input,
        with their folded batch norms and activations) runs *before* the upsampling, on
        ``scale ** spatial_dims`` times fewer pixels: nearest upsampling commutes with point-wise maps,
        so the result is the same. In 2D with ``scale=2`` the first 3×3 convolutions run at the input's
        resolution too, producing the four output phases as channels that a pixel shuffle interleaves
        (:func:`_polyphase_weight`). Training keeps the literal order (batch statistics are computed on
        the upsampled tensor).
        """
        if self.fusable and not self.training and not torch.is_grad_enabled() and eager_fast_paths():
            return self._forward_fused(x, scale)
        return self.forward(_upsample(x, scale) if scale != 1 else x)

    def _forward_fused(self, x: torch.Tensor, upsample: int = 1) -> torch.Tensor:
        """Inference path (eval mode, no autograd): the same function in fewer, larger operations.

        Batch norms that follow a convolution are folded into it, the attention 1×1 convolution is
        composed with the second 3×3 convolution of the attention groups and the feature skip's 1×1
        convolution with ``conv_in``; activations run in place. Attention and feature groups are
        computed as separate tensors (each a grouped convolution with ``groups // 2`` groups), so no
        operation reads a channel slice (slices of channels-last tensors are slow to read). The folded
        weights are cached in eager mode until a parameter or statistic changes. ``upsample``: the
        input is to be nearest-upsampled by this factor first (see :meth:`forward_upsampled`).
        """
        polyphase = upsample == 2 and self.polyphase
        if torch.jit.is_scripting():
            w = self._fold_weights(polyphase)
        else:
            w = self._cached_fold_weights(polyphase)
        pairs, no_pad = self.pairs, self.no_padding
        t_att = self._conv_unary(x, w[0], w[1], 1, no_pad, "act")
        t_feat = self._conv_unary(x, w[2], w[3], 1, no_pad, "act")
        skip_features = self._conv_unary(x, w[4], w[5], 1, no_pad, "act")
        shortcut = self._conv_unary(x, w[18], w[19], 1, no_pad, "none") if self.project_shortcut else x
        if upsample != 1:  # everything above is point-wise: upsample its (fewer-channel) results instead of x
            skip_features, shortcut = _upsample(skip_features, upsample), _upsample(shortcut, upsample)
        if polyphase:
            # 3×3 convolution of a nearest-×2-upsampled tensor = one low-resolution convolution producing
            # the four output phases as channels, then a pixel shuffle (see _polyphase_weight)
            t_att = F.pixel_shuffle(self._conv_unary(t_att, w[-4], w[-3], pairs, self.padding, "act"), 2)
            t_feat = F.pixel_shuffle(self._conv_unary(t_feat, w[-2], w[-1], pairs, self.padding, "act"), 2)
        else:
            if upsample != 1:
                t_att, t_feat = _upsample(t_att, upsample), _upsample(t_feat, upsample)
            t_att = self._conv_unary(t_att, w[6], w[7], pairs, self.padding, "act")
            t_feat = self._conv_unary(t_feat, w[8], w[9], pairs, self.padding, "act")
        features = self._conv_add_unary(t_feat, skip_features, w[12], w[13], pairs, self.padding, "none")
        h = self._conv_unary(t_att, w[10], w[11], pairs, self.padding, "sigmoid").mul_(features)
        h = self._conv_unary(h, w[14], w[15], 1, no_pad, "act")
        if self.squeeze_excitation:
            out = self._conv_unary(h, w[16], w[17], 1, no_pad, "none")
            fc = self.se.fc
            scale = fc(out.mean(self.spatial_axes)).reshape(out.shape[:2] + (1,) * self.spatial_dims)
            return self._act_(torch.addcmul(shortcut, out, scale))
        return self._conv_add_unary(h, shortcut, w[16], w[17], 1, no_pad, "act")

    def _fold_weights(self, polyphase: bool = False) -> list[torch.Tensor]:
        """The inference path's weights and biases: ``[conv_in (attention half), conv_in (feature half),
        feature skip, conv1 (attention), conv1 (features), conv2 (attention, composed), conv2 (features),
        product, aggregate, shortcut]``, each as weight then bias, with the batch norms folded in; with
        ``polyphase``, then conv1 (attention) and conv1 (features) for a nearest-×2-upsampled input
        (:func:`_polyphase_weight`), used by :meth:`forward_upsampled`."""
        half, width, pairs, eps = self.half, 2 * self.half, self.pairs, self.norm_eps
        bn0, conv1, bn1, conv2 = self.pre[0], self.pre[2], self.pre[3], self.pre[5]
        skip, skip_bn, att = self.feature_skip[0], self.feature_skip[1], self.attention[0]
        w_in = _flat(self.conv_in.weight)
        b_in = _bias(self.conv_in.bias, width, w_in)
        w0, b0 = _fold(w_in, b_in, bn0.running_mean, bn0.running_var, bn0.weight, bn0.bias, eps[0])
        w_skip = _block_diagonal(_flat(skip.weight), pairs)
        w1, b1 = _fold(w_skip @ w_in[half:], w_skip @ b_in[half:] + _bias(skip.bias, half, w_in), skip_bn.running_mean,
                       skip_bn.running_var, skip_bn.weight, skip_bn.bias, eps[2])
        k1, b1c = _fold(conv1.weight, _bias(conv1.bias, width, w_in), bn1.running_mean, bn1.running_var, bn1.weight,
                        bn1.bias, eps[1])
        k2, b2 = conv2.weight, _bias(conv2.bias, width, w_in)
        d = half // pairs
        w_att = _flat(att.weight).reshape(pairs, d, d)
        k_att = torch.bmm(w_att, k2[:half].reshape(pairs, d, -1)).reshape(k2[:half].shape)
        b_att = torch.bmm(w_att, b2[:half].reshape(pairs, d, 1)).reshape(half) + _bias(att.bias, half, w_in)
        product, product_bn = self.product[0], self.product[1]
        wp, bp = _fold(_block_diagonal(_flat(product.weight), pairs), _bias(product.bias, width, w_in),
                       product_bn.running_mean, product_bn.running_var, product_bn.weight, product_bn.bias, eps[3])
        agg, agg_bn = self.aggregate[0], self.aggregate[1]
        wg, bg = _fold(_flat(agg.weight), _bias(agg.bias, self.out_channels, w_in), agg_bn.running_mean,
                       agg_bn.running_var, agg_bn.weight, agg_bn.bias, eps[4])
        out = [w0[:half], b0[:half], w0[half:], b0[half:], w1, b1, k1[:half], b1c[:half], k1[half:], b1c[half:],
               k_att, b_att, k2[half:], b2[half:], wp, bp, wg, bg]
        if self.project_shortcut:
            sc_conv, sc_bn = self.shortcut[0], self.shortcut[1]
            w2, b2s = _fold(_flat(sc_conv.weight), _bias(sc_conv.bias, self.out_channels, w_in), sc_bn.running_mean,
                            sc_bn.running_var, sc_bn.weight, sc_bn.bias, eps[5])
            out += [w2, b2s]
        if polyphase:
            out += [_polyphase_weight(k1[:half]), b1c[:half].repeat_interleave(4),
                    _polyphase_weight(k1[half:]), b1c[half:].repeat_interleave(4)]
        # matrices as 1×1 convolution weights, everything contiguous (oneDNN reorders others on every call)
        ones = [1] * self.spatial_dims
        return [(t.reshape([t.shape[0], t.shape[1]] + ones) if t.dim() == 2 else t).contiguous() for t in out]

    @torch.jit.unused
    def _cached_fold_weights(self, polyphase: bool = False) -> list[torch.Tensor]:
        """:meth:`_fold_weights`, recomputed only when a parameter or buffer of the block changed (eager mode).
        A block is called either upsampled (a decoder block) or not, so one entry suffices."""
        if torch.compiler.is_compiling():  # traced into the compiled graph instead
            return self._fold_weights(polyphase)
        key = (polyphase, *((t.data_ptr(), t._version, t.dtype, t.device) for t in self._fold_sources()))
        if self._fold_cache is None or self._fold_cache[0] != key:
            self._fold_cache = (key, self._fold_weights(polyphase))
        return self._fold_cache[1]

    @torch.jit.unused
    def _fold_sources(self) -> list[torch.Tensor]:
        return [t for name, t in [*self.named_parameters(), *self.named_buffers()] if not name.startswith("se.")]

    def _act_(self, x: torch.Tensor) -> torch.Tensor:
        """The block's activation, in place when it is a (leaky) ReLU."""
        if self.act_slope >= 0.0:
            return F.leaky_relu_(x, self.act_slope) if self.act_slope > 0.0 else F.relu_(x)
        return self.out_act(x)

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int) -> torch.Tensor:
        if self.spatial_dims == 2:
            return F.conv2d(x, weight, bias, padding=self.padding, groups=groups)
        return F.conv3d(x, weight, bias, padding=self.padding, groups=groups)

    @torch.jit.unused
    def _onednn(self, x: torch.Tensor) -> bool:
        """Whether the fused oneDNN convolutions apply to ``x`` (float32 on the CPU; eager mode only)."""
        return self.onednn_fused and x.device.type == "cpu" and x.dtype == torch.float32

    def _apply_unary(self, y: torch.Tensor, attr: str) -> torch.Tensor:
        if attr == "act":
            return self._act_(y)
        if attr == "sigmoid":
            return torch.sigmoid_(y)
        return y

    def _plain_conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int,
                    padding: list[int]) -> torch.Tensor:
        if max(padding) == 0:  # the 1×1 convolutions of the inference path
            return pointwise_conv(x, weight, bias, groups)
        return self._conv(x, weight, bias, groups)

    def _conv_unary(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int,
                    padding: list[int], attr: str) -> torch.Tensor:
        """Convolution followed by ``attr`` ("act": the block's activation, "sigmoid" or "none"): on the
        CPU one oneDNN call with the activation fused as a post-op (one pass over the output fewer)."""
        if not torch.jit.is_scripting():  # (TorchScript cannot type the op's Scalar?[] argument)
            if self._onednn(x):
                return self._onednn_conv(x, weight, bias, groups, padding, attr)
        return self._apply_unary(self._plain_conv(x, weight, bias, groups, padding), attr)

    def _conv_add_unary(self, x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                        groups: int, padding: list[int], attr: str) -> torch.Tensor:
        """``attr(conv(x) + other)``, on the CPU one oneDNN call with the sum and activation fused."""
        if not torch.jit.is_scripting():
            if self._onednn(x) and other.shape == x.shape[:1] + weight.shape[:1] + x.shape[2:]:
                return self._onednn_conv_add(x, other, weight, bias, groups, padding, attr)
        return self._apply_unary(self._plain_conv(x, weight, bias, groups, padding).add_(other), attr)

    @torch.jit.unused
    def _onednn_conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int, padding: list[int],
                     attr: str) -> torch.Tensor:
        """``attr(conv(x))`` as one ``mkldnn::_convolution_pointwise`` call (the fused kernels that
        ``torch.compile`` emits on the CPU)."""
        name, scalars = self._post_op(attr)
        ones = [1] * self.spatial_dims
        return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, ones, ones, groups, name, scalars, "")

    @torch.jit.unused
    def _onednn_conv_add(self, x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         groups: int, padding: list[int], attr: str) -> torch.Tensor:
        """``attr(conv(x) + other)`` with the sum (and a ReLU) fused into one ``mkldnn::_convolution_pointwise.binary``
        call; oneDNN fuses no other activation after a sum, so those run in place afterwards."""
        name, scalars = self._post_op(attr)
        fuse = name == "relu"
        ones = [1] * self.spatial_dims
        y = torch.ops.mkldnn._convolution_pointwise.binary(
            x, other, weight, bias, padding, ones, ones, groups, "add", 1.0, name if fuse else None, scalars, "")
        return y if fuse else self._apply_unary(y, attr)

    @torch.jit.unused
    def _post_op(self, attr: str):  # noqa: ANN202 (eager only)
        if attr == "act":
            return ("leaky_relu", [self.act_slope]) if self.act_slope > 0.0 else ("relu", [])
        return attr, []


def _polyphase_weight(kernel: torch.Tensor) -> torch.Tensor:
    """3×3 weights ``(out, in, 3, 3)`` → ``(4 out, in, 3, 3)``: a convolution (padding 1) of ``x`` with the
    result, pixel-shuffled by 2, equals the convolution of nearest-×2-upsampled ``x`` with ``kernel``.

    Output channel ``4o + 2a + b`` holds output channel ``o`` at rows/columns of parity ``a``/``b``, the
    order ``F.pixel_shuffle`` expects; grouped convolutions keep their groups (each group's outputs stay
    contiguous). Zero padding agrees: padded upsampled rows/columns are padded low-resolution ones.
    """
    # r[a, u, y]: the low-resolution row offset u (-1, 0, +1 as 0, 1, 2) that kernel row y reads for output
    # rows of parity a: output row 2i+a, tap y-1 reads upsampled row 2i+a+y-1 = low-resolution row
    # i + floor((a+y-1)/2)
    r = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]],
                      [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=kernel.dtype, device=kernel.device)
    w = torch.einsum("auy,oiyx,bvx->oabiuv", r, kernel, r)
    return w.reshape(kernel.shape[0] * 4, kernel.shape[1], 3, 3)


def _upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=float(scale), mode="nearest")


def _flat(weight: torch.Tensor) -> torch.Tensor:
    """A 1×1(×1) convolution weight as a matrix ``(out, in)``."""
    return weight.reshape(weight.shape[0], -1)


def _bias(bias: torch.Tensor | None, channels: int, like: torch.Tensor) -> torch.Tensor:
    if bias is None:
        return torch.zeros(channels, dtype=like.dtype, device=like.device)
    return bias


def _fold(
    weight: torch.Tensor,
    bias: torch.Tensor,
    mean: torch.Tensor | None,
    var: torch.Tensor | None,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode batch norm (``mean, var, gamma, beta, eps``) that follows a convolution into its
    weight (any shape, output channels first) and bias."""
    assert mean is not None and var is not None
    scale = torch.rsqrt(var + eps)
    shift = -mean * scale
    if gamma is not None:
        scale = scale * gamma
        shift = shift * gamma
    if beta is not None:
        shift = shift + beta
    shape = [-1] + [1] * (weight.dim() - 1)
    return weight * scale.reshape(shape), bias * scale + shift


def _block_diagonal(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The dense ``(out, in)`` matrix of a grouped point-wise convolution with matrix ``weight`` ``(out, in/groups)``."""
    if groups == 1:
        return weight
    out_g, in_g = weight.shape[0] // groups, weight.shape[1]
    eye = torch.eye(groups, dtype=weight.dtype, device=weight.device).reshape(groups, 1, groups, 1)
    return (weight.reshape(groups, out_g, 1, in_g) * eye).reshape(weight.shape[0], groups * in_g)


def pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int = 1) -> torch.Tensor:
    """A (grouped) 1×1 convolution of ``x`` ``(B, C, *spatial)`` as one dense matrix product, in ``x``'s layout.

    ``weight`` is the convolution weight (``(out, in/groups, 1, ...)``) or its matrix. On the CPU a
    grouped convolution runs as one product with the block-diagonal matrix: PyTorch's CPU kernels
    split grouped 1×1 convolutions into per-group copies and a concatenation (other devices run the
    grouped convolution; so do TorchScript, tracing, export and compilation). Channel-strided inputs (channels-last tensors and their channel slices) are
    multiplied as ``(..., C)`` matrices, without the copy to a contiguous layout that PyTorch's
    single-threaded 1×1 convolution makes; others as ``(B, C, N)`` batches.
    """
    dims = x.dim()
    if not eager_fast_paths() and weight.dim() == dims:
        # TorchScript, tracing, export, compilation: the convolution itself (no layout-dependent branch)
        if dims == 4:
            return F.conv2d(x, weight, bias, groups=groups)
        return F.conv3d(x, weight, bias, groups=groups)
    if groups > 1 and x.device.type != "cpu" and weight.dim() == dims:
        # cuDNN (and the FLOP counter on the meta device) take grouped convolutions as they are
        if dims == 4:
            return F.conv2d(x, weight, bias, groups=groups)
        return F.conv3d(x, weight, bias, groups=groups)
    w = _block_diagonal(_flat(weight), groups)
    if x.stride(1) == 1 and x.shape[1] > 1:
        perm = [0] + list(range(2, dims)) + [1]
        return F.linear(x.permute(perm), w, bias).permute([0, dims - 1] + list(range(1, dims - 1)))
    shape = x.shape
    y = torch.matmul(w, x.reshape(shape[0], shape[1], -1))
    if bias is not None:
        y = y + bias.to(y.dtype).reshape(-1, 1)
    return y.reshape([shape[0], w.shape[0]] + list(shape[2:]))
