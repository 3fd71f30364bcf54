"""Convolutional block attention module (the CBAMUnet baseline of Xu et al., BMVC 2020)."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv, Pool
from monai.networks.layers.utils import get_act_layer

from .conv_units import DEFAULT_ACT, check_positive, check_spatial_dims

__all__ = ["ConvolutionalBlockAttention"]


class ConvolutionalBlockAttention(nn.Module):
    """Convolutional block attention module, CBAM (Woo et al., ECCV 2018), as used by the
    CBAMUnet baseline of Xu et al., "Learning to Pay Attention to Mistakes", BMVC 2020::

        x_c = x ⊙ σ(MLP(avgpool x) + MLP(maxpool x))                 channel attention
        y   = x_c ⊙ σ(conv([mean_c x_c, max_c x_c])) + x             spatial attention, residual

    The shared MLP is two bias-free 1×1 convolutions with an activation between them (reduction
    ``reduction``); the spatial convolution maps the two pooled maps to one channel with a bias-free
    ``spatial_kernel_size`` kernel. The residual ``+ x`` follows the official code.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        channels: number of input (and output) channels.
        reduction: reduction ratio of the channel MLP (at least one hidden channel). Defaults to 16.
        spatial_kernel_size: kernel size of the spatial attention convolution (odd). Defaults to 3.
        act: activation of the channel MLP. Defaults to ReLU.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        reduction: int = 16,
        spatial_kernel_size: int = 3,
        act: str | tuple = DEFAULT_ACT,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive("channels", channels)
        check_positive("reduction", reduction)
        check_positive("spatial_kernel_size", spatial_kernel_size)
        if spatial_kernel_size % 2 == 0:
            raise ValueError(f"spatial_kernel_size must be odd, got {spatial_kernel_size}.")
        conv = Conv[Conv.CONV, spatial_dims]
        hidden = max(channels // reduction, 1)
        self.avg_pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](1)
        self.max_pool = Pool[Pool.ADAPTIVEMAX, spatial_dims](1)
        self.mlp = nn.Sequential(
            conv(channels, hidden, kernel_size=1, bias=False),
            get_act_layer(act),
            conv(hidden, channels, kernel_size=1, bias=False),
        )
        self.spatial = conv(
            2, 1, kernel_size=spatial_kernel_size, padding=spatial_kernel_size // 2, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        # one MLP pass over the stacked average- and max-pooled descriptors
        pooled = self.mlp(torch.cat([self.avg_pool(x), self.max_pool(x)], dim=0))
        xc = x * torch.sigmoid(pooled[:b] + pooled[b:])
        s = torch.cat([xc.mean(dim=1, keepdim=True), xc.amax(dim=1, keepdim=True)], dim=1)
        return torch.addcmul(x, xc, torch.sigmoid(self.spatial(s)))
