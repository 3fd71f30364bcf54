"""Additive attention gate on a U-Net skip connection (the AUnet baseline of Xu et al., BMVC 2020)."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.utils import get_act_layer

from .conv_units import DEFAULT_ACT, DEFAULT_NORM, check_positive, check_spatial_dims, conv_norm_act

__all__ = ["AttentionGate"]


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al., "Attention U-Net", MIDL 2018) as used by the AUnet
    baseline of Xu et al., "Learning to Pay Attention to Mistakes", BMVC 2020::

        a = σ(N(ψ(act(N(W_g g) + N(W_x s)))))        s' = a ⊙ s + s

    ``W_g`` and ``W_x`` are 1×1 convolutions to ``inter_channels`` (half the skip width by
    default), each followed by a norm; ``ψ`` is a 1×1 convolution to one channel followed by a
    norm and a sigmoid. Unlike MONAI's :class:`~monai.networks.nets.attentionunet.AttentionBlock`
    (batch norm, ``a ⊙ s``) the norm is configurable and the gate keeps the residual ``+ s`` of the
    official code. Convolutions are bias-free (a bias before a norm is dead weight); with the
    default affine instance norm every parameter is trained.

    ``g`` (the gating signal, e.g. the up-sampled deeper decoder feature) and ``s`` (the skip
    feature) must have the same spatial size.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        gate_channels: channels of the gating signal ``g``.
        skip_channels: channels of the skip feature ``s`` (and of the output).
        inter_channels: channels of the intermediate map. Defaults to ``max(skip_channels // 2, 1)``.
        act: activation type and arguments. Defaults to ReLU.
        norm: normalisation type and arguments. Defaults to affine instance norm.
    """

    def __init__(
        self,
        spatial_dims: int,
        gate_channels: int,
        skip_channels: int,
        inter_channels: int | None = None,
        act: str | tuple | None = DEFAULT_ACT,
        norm: str | tuple | None = DEFAULT_NORM,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive("gate_channels", gate_channels)
        check_positive("skip_channels", skip_channels)
        inter = max(skip_channels // 2, 1) if inter_channels is None else inter_channels
        check_positive("inter_channels", inter)
        self.w_g = conv_norm_act(spatial_dims, gate_channels, inter, 1, act=None, norm=norm)
        self.w_x = conv_norm_act(spatial_dims, skip_channels, inter, 1, act=None, norm=norm)
        self.act = get_act_layer(act) if act is not None else nn.Identity()
        self.psi = conv_norm_act(spatial_dims, inter, 1, 1, act=None, norm=norm)

    def forward(self, g: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(self.psi(self.act(self.w_g(g) + self.w_x(s))))
        return torch.addcmul(s, s, a)  # a ⊙ s + s
