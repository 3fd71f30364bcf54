"""Concurrent spatial and channel squeeze-and-excitation (the CSCUnet baseline of Xu et al., BMVC 2020)."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import ChannelSELayer
from monai.networks.layers.factories import Conv

from .conv_units import check_positive, check_spatial_dims

__all__ = ["ConcurrentSpatialChannelSE"]


class ConcurrentSpatialChannelSE(nn.Module):
    """Concurrent spatial and channel squeeze-and-excitation, scSE (Roy, Navab and Wachinger,
    MICCAI 2018), as used by the CSCUnet baseline of Xu et al., "Learning to Pay Attention to
    Mistakes", BMVC 2020::

        y = x ⊙ σ(W_s x)  +  x ⊙ SE(x)

    The spatial squeeze ``W_s`` is a bias-free 1×1 convolution to one channel; the channel
    squeeze is MONAI's :class:`~monai.networks.blocks.ChannelSELayer` (global average pooling,
    FC–ReLU–FC–sigmoid with reduction ``reduction``). The two recalibrated maps are added, as in
    the official code (no extra residual).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        channels: number of input (and output) channels.
        reduction: reduction ratio of the channel squeeze-and-excitation. Defaults to 8.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 8) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive("channels", channels)
        check_positive("reduction", reduction)
        if reduction > channels:
            raise ValueError(f"reduction ({reduction}) must not exceed channels ({channels}).")
        self.channel_se = ChannelSELayer(spatial_dims, channels, r=reduction)
        self.spatial_se = Conv[Conv.CONV, spatial_dims](channels, 1, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.channel_se(x), x, torch.sigmoid(self.spatial_se(x)))
