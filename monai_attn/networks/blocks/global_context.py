"""Global context block (the GCNUnet baseline of Xu et al., BMVC 2020)."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer, get_norm_layer

from .conv_units import DEFAULT_ACT, check_positive, check_spatial_dims

__all__ = ["GlobalContextBlock"]

# LayerNorm over the (C, 1, ..., 1) context, as in GCNet: GroupNorm with one group is exactly that.
CONTEXT_NORM: tuple = ("group", {"num_groups": 1})


class GlobalContextBlock(nn.Module):
    """Global context block (Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation
    Networks and Beyond", ICCVW 2019), as used by the GCNUnet baseline of Xu et al., "Learning to
    Pay Attention to Mistakes", BMVC 2020::

        w   = softmax_over_space(W_k x)                    context weights (bias-free 1×1 conv to 1 channel)
        ctx = Σ_p w_p x_p                                   (B, C, 1, ...) global context
        att = W_2 act(N(W_1 ctx))                           bias-free 1×1 convs C → C/r → C
        y   = att ⊙ x + x

    The official code normalises the ``(C/r, 1, 1)`` context with an instance norm, which is
    degenerate on a single voxel (its output is the constant shift, so ``W_1`` never learns). The
    default here is GCNet's layer norm over the context channels (GroupNorm with one group: the
    same number of parameters).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        channels: number of input (and output) channels.
        reduction: reduction ratio of the transform; at least ``min(4, channels)`` hidden channels are
            kept (normalising fewer values is degenerate). Defaults to 8.
        norm: normalisation of the hidden context, which has one voxel (instance norm is rejected).
            Defaults to ``("group", {"num_groups": 1})``, i.e. layer norm.
        act: activation type and arguments. Defaults to ReLU.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        reduction: int = 8,
        norm: str | tuple | None = CONTEXT_NORM,
        act: str | tuple | None = DEFAULT_ACT,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive("channels", channels)
        check_positive("reduction", reduction)
        conv = Conv[Conv.CONV, spatial_dims]
        # at least min(4, channels) hidden channels: normalising one or two values is degenerate
        hidden = max(channels // reduction, min(4, channels))
        if norm is not None and hidden < 2:
            raise ValueError(
                f"GlobalContextBlock: channels must be at least 2 with a context norm, got {channels}."
            )
        norm_layer = (
            get_norm_layer(name=norm, spatial_dims=spatial_dims, channels=hidden)
            if norm is not None
            else nn.Identity()
        )
        if isinstance(norm_layer, nn.modules.instancenorm._InstanceNorm):
            raise ValueError(
                "GlobalContextBlock: instance norm on the single-voxel context is degenerate (constant output); "
                "use a norm over channels such as ('group', {'num_groups': 1}) (the default) or None."
            )
        self.attend = conv(channels, 1, kernel_size=1, bias=False)
        self.transform = nn.Sequential(
            conv(channels, hidden, kernel_size=1, bias=False),
            norm_layer,
            get_act_layer(act) if act is not None else nn.Identity(),
            conv(hidden, channels, kernel_size=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[1]
        weights = torch.softmax(self.attend(x).flatten(2), dim=-1)  # (B, 1, N)
        context = torch.matmul(x.flatten(2), weights.transpose(1, 2))  # (B, C, 1)
        context = context.view([b, c] + [1] * (x.dim() - 2))
        return torch.addcmul(x, x, self.transform(context))  # att ⊙ x + x
