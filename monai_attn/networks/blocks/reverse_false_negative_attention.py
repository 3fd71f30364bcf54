"""Reverse False Negative Attention (RFNA) of Xu et al., "Learning to Pay Attention to Mistakes", BMVC 2020."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv

from ..utils import eager_fast_paths
from .conv_units import (
    DEFAULT_ACT,
    DEFAULT_NORM,
    DoubleConv,
    check_positive,
    check_spatial_dims,
    conv_norm_act,
    is_instance_norm,
)

__all__ = ["ReverseFalseNegativeAttention"]

_RATIOS = {2: 0, 4: 1, 8: 2}  # attention down-sampling ratio -> number of depth-wise convs after W_a1


class ReverseFalseNegativeAttention(nn.Module):
    """Reverse False Negative Attention block: a U-Net double convolution followed by a
    coarse attention branch (a smaller effective receptive field on the background). Trained on
    reversed labels (foreground 0, background 1; see :mod:`monai_attn.transforms.label_reversal`),
    it implicitly steers the network towards false positives.

    From Xu, Oxtoby, Alexander and Jacob, "Learning to Pay Attention to Mistakes", BMVC 2020::

        F = W_m2[W_m1(X)]                                      main branch (first conv strided)
        A = σ{ W_a4[ UpSample( W_a3 W_a2 W_a1 (F) ) ] + F }    attention branch, after F
        Y = F ⊙ A + F

    ``W_a1`` is a 1×1 stride-2 convolution expanding ``F`` to ``expansion × out_channels``
    channels; ``W_a2`` and ``W_a3`` are 3×3 stride-2 depth-wise conv–norm–act units, so the branch
    works at 1/8 of the resolution of ``F``; ``UpSample`` is bilinear (2D) / trilinear (3D) back to
    the exact size of ``F`` (no cropping for sizes that are not multiples of 8); ``W_a4`` is a 1×1
    convolution back to ``out_channels``. The residual ``+ F`` inside the sigmoid is part of the
    design. ``downsample=4`` drops ``W_a3``, ``downsample=2`` also drops ``W_a2`` (paper ablation).

    ``W_a4`` is evaluated *before* the up-sampling: a 1×1 convolution and linear interpolation
    (whose weights sum to one) commute, so the result equals the paper's order at 1/64 (2D) of the
    cost.

    Instance normalisation needs more than one voxel: with it, ``F`` must have a spatial side
    larger than ``downsample`` (checked in ``forward``, with a clear ``ValueError``).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels.
        out_channels: number of output channels.
        strides: stride of the first main convolution. Defaults to 1.
        expansion: channel expansion ratio of ``W_a1``. Defaults to 4 (the paper's description);
            :class:`~monai_attn.networks.nets.MistakesUNet` uses 8 to reproduce the paper's
            parameter count (see ``docs/networks.md``).
        downsample: down-sampling ratio of the attention branch, 8, 4 or 2. Defaults to 8.
        main_dilation: dilation of the main-branch convolutions. Defaults to 1.
        act: activation type and arguments. Defaults to ReLU.
        norm: normalisation type and arguments. Defaults to affine instance norm.
        dropout: dropout ratio in the main branch. Defaults to 0 (none).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        strides: int = 1,
        expansion: int = 4,
        downsample: int = 8,
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
            ("expansion", expansion),
            ("main_dilation", main_dilation),
        ):
            check_positive(name, value)
        if downsample not in _RATIOS or isinstance(downsample, bool):
            raise ValueError(f"downsample must be one of {sorted(_RATIOS)}, got {downsample!r}.")
        hidden = expansion * out_channels
        conv = Conv[Conv.CONV, spatial_dims]

        self.main = DoubleConv(
            spatial_dims, in_channels, out_channels, strides, main_dilation, act, norm, dropout
        )
        self.reduce = conv(out_channels, hidden, kernel_size=1, stride=2, bias=False)  # W_a1
        depthwise = [
            conv_norm_act(spatial_dims, hidden, hidden, 3, 2, 1, hidden, act, norm)  # W_a2, W_a3
            for _ in range(_RATIOS[downsample])
        ]
        self.squeeze: nn.Module = nn.Sequential(*depthwise) if depthwise else nn.Identity()
        self.project = conv(hidden, out_channels, kernel_size=1, bias=False)  # W_a4
        self.interp_mode = "bilinear" if spatial_dims == 2 else "trilinear"
        self.downsample = downsample
        # instance norm after W_a2/W_a3 needs more than one voxel at 1/downsample resolution
        self.check_size = bool(depthwise) and is_instance_norm(self.squeeze)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.main(x)
        size = f.shape[2:]
        if self.check_size and (torch.jit.is_scripting() or eager_fast_paths()):  # concrete sizes only
            voxels = 1
            for s in size:
                voxels *= (s + self.downsample - 1) // self.downsample
            if voxels <= 1:
                raise ValueError(
                    f"ReverseFalseNegativeAttention: feature map of spatial size {list(size)} is too small; the attention "
                    f"branch works at 1/{self.downsample} of it and instance norm needs more than one voxel there, so at least "
                    f"one side must exceed {self.downsample} (in MistakesUNet, with the block at the bridge: an input side larger "
                    f"than {8 * self.downsample})."
                )
        a = self.project(self.squeeze(self.reduce(f)))
        a = F.interpolate(a, size=size, mode=self.interp_mode, align_corners=True)
        a = torch.sigmoid_(a.add_(f))
        return torch.addcmul(f, f, a)  # F ⊙ A + F
