"""Shared convolution units: conv–norm–act and the U-Net double convolution.

Thin wrappers around MONAI's :class:`~monai.networks.blocks.Convolution` (layer factories pick the
2D/3D layers), with the conventions of the Paying-Attention-to-Mistakes backbone (Xu et al., BMVC
2020): bias-free 3×3 convolutions, affine instance normalisation, ReLU.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution

__all__ = [
    "DEFAULT_ACT",
    "DEFAULT_NORM",
    "DoubleConv",
    "conv_norm_act",
    "check_positive",
    "check_spatial_dims",
    "is_instance_norm",
    "depthwise_conv_shifted",
]

DEFAULT_ACT: tuple = ("relu", {"inplace": True})
DEFAULT_NORM: tuple = ("instance", {"affine": True})


def check_spatial_dims(spatial_dims: object) -> None:
    """Raise a clear ``ValueError`` unless ``spatial_dims`` is 2 or 3."""
    if spatial_dims not in (2, 3) or isinstance(spatial_dims, bool):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")


def check_positive(name: str, value: object) -> None:
    """Raise a clear ``ValueError`` unless ``value`` is a positive ``int`` (``bool`` excluded)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def is_instance_norm(module: nn.Module) -> bool:
    """Whether ``module`` contains an instance-normalisation layer (which needs more than one voxel)."""
    return any(isinstance(m, nn.modules.instancenorm._InstanceNorm) for m in module.modules())


def conv_norm_act(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    strides: int = 1,
    dilation: int = 1,
    groups: int = 1,
    act: str | tuple | None = DEFAULT_ACT,
    norm: str | tuple | None = DEFAULT_NORM,
    dropout: float | None = None,
) -> Convolution:
    """A bias-free convolution followed by norm, dropout and activation ("same" padding).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels.
        out_channels: number of output channels.
        kernel_size: convolution kernel size. Defaults to 3.
        strides: convolution stride. Defaults to 1.
        dilation: convolution dilation (padding grows with it). Defaults to 1.
        groups: convolution groups (``in_channels`` for a depth-wise convolution). Defaults to 1.
        act: activation type and arguments, ``None`` for none. Defaults to ReLU.
        norm: normalisation type and arguments, ``None`` for none. Defaults to affine instance norm.
        dropout: dropout ratio, ``None`` or 0 for none. Defaults to none.
    """
    return Convolution(
        spatial_dims,
        in_channels,
        out_channels,
        strides=strides,
        kernel_size=kernel_size,
        act=act,
        norm=norm,
        dropout=dropout if dropout else None,
        dilation=dilation,
        groups=groups,
        bias=False,
    )


class DoubleConv(nn.Sequential):
    """Two 3×3 conv–norm–act units; the first one may be strided (the U-Net stage of Xu et al.).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels.
        out_channels: number of output channels (of both convolutions).
        strides: stride of the first convolution. Defaults to 1.
        dilation: dilation of both convolutions (the D6/D9 U-Net baselines). Defaults to 1.
        act: activation type and arguments. Defaults to ReLU.
        norm: normalisation type and arguments. Defaults to affine instance norm.
        dropout: dropout ratio after each normalisation. Defaults to 0 (none).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        strides: int = 1,
        dilation: int = 1,
        act: str | tuple | None = DEFAULT_ACT,
        norm: str | tuple | None = DEFAULT_NORM,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        self.add_module(
            "conv_0",
            conv_norm_act(
                spatial_dims, in_channels, out_channels, 3, strides, dilation, 1, act, norm, dropout
            ),
        )
        self.add_module(
            "conv_1",
            conv_norm_act(spatial_dims, out_channels, out_channels, 3, 1, dilation, 1, act, norm, dropout),
        )


def depthwise_conv_shifted(x: torch.Tensor, weight: torch.Tensor, dilation: int) -> torch.Tensor:
    """Depth-wise convolution with "same" zero padding, computed as a sum of shifted, scaled copies.

    Equals ``F.conv{2,3}d(x, weight, padding=dilation * (k - 1) // 2, dilation=dilation,
    groups=channels)`` for an odd kernel size ``k`` (``weight``: ``(C, 1, k, ...)``). On the CPU,
    oneDNN's dilated depth-wise kernels are several times slower than undilated ones; here each
    tap is one multiply-add over the region it reaches (taps that fall entirely into the padding
    are skipped), which costs the same for any dilation.

    Args:
        x: input ``(B, C, *spatial)``.
        weight: depth-wise weight ``(C, 1, k, ...)`` with the same odd ``k`` along every axis.
        dilation: dilation of the kernel.
    """
    spatial = x.dim() - 2
    channels, k = weight.shape[0], weight.shape[2]
    taps = weight.reshape(channels, -1)
    shape = [1, channels] + [1] * spatial
    n_taps = taps.shape[1]
    center = (n_taps - 1) // 2
    out = x * taps[:, center].reshape(shape)
    for tap in range(n_taps):
        if tap == center:
            continue
        dst, src = out, x
        rest, reaches = tap, True
        for axis in range(spatial - 1, -1, -1):  # the last axis varies fastest in the flattened taps
            offset = (rest % k - (k - 1) // 2) * dilation
            rest = rest // k
            size = x.shape[2 + axis]
            if abs(offset) >= size:
                reaches = False
                break
            dst = dst.narrow(2 + axis, max(0, -offset), size - abs(offset))
            src = src.narrow(2 + axis, max(0, offset), size - abs(offset))
        if reaches:
            dst.addcmul_(src, taps[:, tap].reshape(shape))
    return out
