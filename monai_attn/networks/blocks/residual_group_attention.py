"""Residual Group Attention block (ResGANet) of FocusNet++ (Kaul et al., ISBI 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import ChannelSELayer
from monai.networks.layers.factories import Act, Conv
from monai.networks.layers.utils import get_act_layer, get_norm_layer

__all__ = ["ResidualGroupAttentionBlock", "KERAS_LEAKY_RELU", "KERAS_BATCH_NORM", "check_spatial_dims"]

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_in(x)
        z = self.pre(y)
        attention = self.attention(z[:, : self.half])
        features = z[:, self.half :] + self.feature_skip(y[:, self.half :])
        out = self.se(self.aggregate(self.product(attention * features)))
        return self.out_act(self.shortcut(x) + out)

