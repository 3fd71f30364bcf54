"""False Positive Attention (FPA) of Xu et al., "Learning to Pay Attention to Mistakes", BMVC 2020."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv

from ..utils import eager_fast_paths
from .conv_units import (
    DEFAULT_ACT,
    DEFAULT_NORM,
    DoubleConv,
    check_positive,
    check_spatial_dims,
    conv_norm_act,
    depthwise_conv_shifted,
)

__all__ = ["FalsePositiveAttention"]


class FalsePositiveAttention(nn.Module):
    """False Positive Attention block: a U-Net double convolution with a parallel, wide-context
    attention branch that steers the network towards false positives (a larger effective
    receptive field on the foreground).

    From Xu, Oxtoby, Alexander and Jacob, "Learning to Pay Attention to Mistakes", BMVC 2020::

        F = W_m2[W_m1(X)]                        main branch (3×3 conv–norm–act twice, first strided)
        A = σ(W_a3[W_a2[W_a1(X)]])               attention branch, in parallel on X
        Y = F ⊙ A + F

    ``W_a1`` is a 1×1 convolution expanding to ``expansion × out_channels`` channels (carrying the
    stride, as in the official code), ``W_a2`` a 3×3 **dilated** conv–norm–act (depth-wise by
    default) applied twice, with shared weights by default, and ``W_a3`` a 1×1 convolution back to
    ``out_channels``. All convolutions are bias-free. With ``in_channels=128, out_channels=256,
    strides=2`` the attention branch adds ``128·1024 + 9·1024 + 2·1024 + 1024·256`` parameters.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels.
        out_channels: number of output channels.
        strides: stride of the first main convolution and of ``W_a1``. Defaults to 1.
        dilation: dilation of the attention convolution ``W_a2`` (the paper uses 6, 9 or 12).
            Defaults to 9 (the official experiments).
        expansion: channel expansion ratio of ``W_a1`` (paper: 2, 4, 8 with depth-wise ``W_a2``;
            1, 2 without). Defaults to 4.
        depthwise: make ``W_a2`` depth-wise (``groups = channels``). Defaults to True.
        shared_weights: apply the same ``W_a2`` conv–norm–act unit twice (paper default); ``False``
            uses two independent units (as in the official code). Defaults to True.
        main_dilation: dilation of the main-branch convolutions. Defaults to 1.
        act: activation type and arguments. Defaults to ReLU.
        norm: normalisation type and arguments. Defaults to affine instance norm.
        dropout: dropout ratio in the main branch. Defaults to 0 (none).
    """

    __constants__ = ["shared_weights", "shifted_context"]

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        strides: int = 1,
        dilation: int = 9,
        expansion: int = 4,
        depthwise: bool = True,
        shared_weights: bool = True,
        main_dilation: int = 1,
        act: str | tuple | None = DEFAULT_ACT,
        norm: str | tuple | None = DEFAULT_NORM,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("strides", strides),
            ("dilation", dilation),
            ("expansion", expansion),
            ("main_dilation", main_dilation),
        ):
            check_positive(name, value)
        hidden = expansion * out_channels
        conv = Conv[Conv.CONV, spatial_dims]
        groups = hidden if depthwise else 1

        self.main = DoubleConv(
            spatial_dims, in_channels, out_channels, strides, main_dilation, act, norm, dropout
        )
        self.expand = conv(in_channels, hidden, kernel_size=1, stride=strides, bias=False)  # W_a1
        self.context = conv_norm_act(spatial_dims, hidden, hidden, 3, 1, dilation, groups, act, norm)  # W_a2
        # second W_a2 pass: the same unit when weights are shared, else an independent one
        self.context_2: nn.Module = (
            nn.Identity()
            if shared_weights
            else conv_norm_act(spatial_dims, hidden, hidden, 3, 1, dilation, groups, act, norm)
        )
        self.project = conv(hidden, out_channels, kernel_size=1, bias=False)  # W_a3
        self.shared_weights = shared_weights
        # CPU inference computes the dilated depth-wise W_a2 by shifted multiply-adds (see forward)
        self.shifted_context = depthwise and all(hasattr(m, "adn") for m in (self.context, self.context_2)
                                                 if not isinstance(m, nn.Identity))
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.main(x)
        a = self.expand(x)
        if self.shifted_context and x.device.type == "cpu" and not torch.is_grad_enabled() and eager_fast_paths():
            # eager CPU inference: the dilated depth-wise convolution as shifted multiply-adds (same function,
            # several times faster than oneDNN's dilated depth-wise kernel; not under export, tracing,
            # scripting or compilation, whose graphs would freeze the shifts' extents)
            a = self.context.adn(depthwise_conv_shifted(a, self.context.conv.weight, self.dilation))
            if self.shared_weights:
                a = self.context.adn(depthwise_conv_shifted(a, self.context.conv.weight, self.dilation))
            else:
                a = self.context_2.adn(depthwise_conv_shifted(a, self.context_2.conv.weight, self.dilation))
        else:
            a = self.context(a)
            a = self.context(a) if self.shared_weights else self.context_2(a)
        a = torch.sigmoid(self.project(a))
        return torch.addcmul(f, f, a)  # F ⊙ A + F
