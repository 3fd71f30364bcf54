"""FocusNet++ (Kaul et al., ISBI 2021) as a MONAI network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv, Dropout, Pool
from monai.networks.layers.utils import get_act_layer, get_norm_layer

from ..blocks.residual_group_attention import (
    KERAS_BATCH_NORM,
    KERAS_LEAKY_RELU,
    ResidualGroupAttentionBlock,
    check_spatial_dims,
)
from ..utils import crop_padding, eager_fast_paths, pad_to_multiple

__all__ = ["FocusNetPP", "FOCUSNETPP_FILTERS", "FOCUSNETPP_LITE_FILTERS"]

# (stem, stage 1, stage 2, stage 3, stage 4, bottleneck): the official code's widths.
FOCUSNETPP_FILTERS: tuple = (32, 48, 96, 156, 256, 512)
# The paper's DSB 2018 model "reduces the filters" to ~1.84 M parameters without listing them;
# these widths (the official ones scaled by ~0.5, kept divisible by 4) give 1,849,031 trainable
# parameters without SE (1.86 M counted as Keras does, with BN statistics) and 1,882,229 with SE.
FOCUSNETPP_LITE_FILTERS: tuple = (16, 24, 48, 76, 124, 248)


class _SideOutput(nn.Module):
    """Conv1×1-norm-act-Conv1×1-sigmoid, then nearest upsampling to full resolution.

    The official code upsamples *before* the 1×1 convolutions. Every layer here is point-wise and
    nearest upsampling by an integer factor replicates each pixel equally often (so batch-norm
    statistics are unchanged), hence upsampling the result afterwards is exactly equivalent and
    ``scale**spatial_dims`` times cheaper.
    """

    def __init__(self, spatial_dims: int, in_channels: int, hidden: int, out_channels: int, scale: int, act, norm):
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.head = nn.Sequential(
            conv(in_channels, hidden, 1),
            get_norm_layer(name=norm, spatial_dims=spatial_dims, channels=hidden),
            get_act_layer(act),
            conv(hidden, out_channels, 1),
            nn.Sigmoid(),
        )
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(x)
        if self.scale > 1:
            y = F.interpolate(y, scale_factor=float(self.scale), mode="nearest")
        return y


class FocusNetPP(nn.Module):
    """FocusNet++: attentive aggregation of residual group-attention blocks.

    Kaul, Pears, Dai, Murray-Smith, Manandhar, "FocusNet++: Attentive Aggregated Transformations
    for Efficient and Accurate Medical Image Segmentation", ISBI 2021, https://arxiv.org/abs/1912.02079.

    A U-Net-like encoder–decoder built from :class:`ResidualGroupAttentionBlock`. Encoder: a 5×5
    stem convolution, then stages of residual group-attention blocks separated by max-pooling
    (``blocks`` per stage, the first widening to ``filters[i]``), and a bottleneck followed by
    dropout. Decoder: nearest ×2 upsampling, a block narrowing to the skip's width, the encoder
    feature *added* (not concatenated), then a 3×3 convolution + ReLU. Every decoder scale emits a
    side output (Conv-norm-act-Conv-sigmoid) upsampled to full size; the side outputs are
    concatenated and fused by Conv1×1-norm-act-Conv1×1 into the output map.

    The defaults reproduce the official Keras code (widths 32-48-96-156-256-512, LeakyReLU 0.3,
    Keras batch-norm constants) plus the paper's squeeze-and-excitation, which that code lacks;
    with ``squeeze_excitation=False`` and 3→1 channels the network has 7,771,723 trainable
    parameters, exactly as the official code.

    Input sizes need not be multiples of ``2 ** (len(filters) - 2)``: the input is zero-padded
    (evenly on both sides) to the next multiple and the output cropped back, so the output always
    has the input's spatial shape.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels (3 for ISIC RGB, 1 for DSB grey).
        out_channels: number of output channels (1 for binary segmentation).
        filters: widths ``(stem, stage_1, ..., stage_n, bottleneck)``, each divisible by ``groups``.
            Defaults to :data:`FOCUSNETPP_FILTERS` ``(32, 48, 96, 156, 256, 512)``.
        blocks: residual group-attention blocks per encoder stage and in the bottleneck
            (``len(filters) - 1`` entries). Defaults to ``(1, 3, 3, 3, 2)``.
        side_channels: hidden widths of the side outputs, deepest first (``len(filters) - 3``
            entries). Defaults to ``(128, 64, 32)``.
        head_channels: widths of the 3×3 + ReLU convolutions of the full-resolution decoder scale.
            Defaults to ``(16, 9, 3)``.
        fusion_channels: hidden width of the fusion head. Defaults to 32.
        groups: filter groups per block (even). Defaults to 4.
        act: activation of the blocks and heads. Defaults to ``("leakyrelu", {"negative_slope": 0.3})``.
        norm: normalisation. Defaults to ``("batch", {"eps": 1e-3, "momentum": 0.01})`` (Keras' values).
        dropout: dropout probability after the bottleneck. Defaults to 0.5.
        squeeze_excitation: squeeze-and-excitation in every block (paper). Defaults to True.
        se_reduction: squeeze-and-excitation reduction ratio. Defaults to 16.
        sigmoid_head: apply the paper's final sigmoid; by default the network returns logits
            (use MONAI losses with ``sigmoid=True``). Defaults to False.
        channels_last: on the CPU, run everything after the stem in channels-last memory format
            (oneDNN's grouped convolutions are about twice as fast in it); the output has the memory
            format of the input. A speed setting only: parameters and results are the same (up to
            float rounding). Defaults to True.

    In eval mode without autograd (inference), every block runs a fused path that folds its
    batch norms into the convolutions (see :class:`ResidualGroupAttentionBlock`), and each decoder
    block takes the low-resolution map and upsamples after its point-wise layers (and, in 2D, its
    first 3×3 convolutions; :meth:`ResidualGroupAttentionBlock.forward_upsampled`): the same outputs.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 1,
        filters: Sequence[int] = FOCUSNETPP_FILTERS,
        blocks: Sequence[int] = (1, 3, 3, 3, 2),
        side_channels: Sequence[int] = (128, 64, 32),
        head_channels: Sequence[int] = (16, 9, 3),
        fusion_channels: int = 32,
        groups: int = 4,
        act: str | tuple = KERAS_LEAKY_RELU,
        norm: str | tuple = KERAS_BATCH_NORM,
        dropout: float = 0.5,
        squeeze_excitation: bool = True,
        se_reduction: int = 16,
        sigmoid_head: bool = False,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        filters, blocks = tuple(filters), tuple(blocks)
        side_channels, head_channels = tuple(side_channels), tuple(head_channels)
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}.")
        if len(filters) < 4:
            raise ValueError(f"filters needs a stem, at least two stages and a bottleneck, got {filters}.")
        if len(blocks) != len(filters) - 1 or min(blocks) < 1:
            raise ValueError(f"blocks needs {len(filters) - 1} positive entries (one per stage), got {blocks}.")
        if len(side_channels) != len(filters) - 3:
            raise ValueError(f"side_channels needs {len(filters) - 3} entries for filters={filters}, got {side_channels}.")
        if len(head_channels) < 1 or min(head_channels) < 1:
            raise ValueError(f"head_channels needs at least one positive width, got {head_channels}.")
        bad = [f for f in filters[1:] if f <= 0 or f % groups]
        if bad:
            raise ValueError(f"every block width in filters must be a positive multiple of groups={groups}, got {bad}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")

        conv = Conv[Conv.CONV, spatial_dims]
        self.spatial_dims = spatial_dims
        self.multiple = 2 ** (len(filters) - 2)
        self.sigmoid_head = sigmoid_head
        self.channels_last = channels_last

        def block(cin: int, cout: int, width: int | None = None) -> ResidualGroupAttentionBlock:
            return ResidualGroupAttentionBlock(
                spatial_dims, cin, cout, width=width, groups=groups, act=act, norm=norm,
                squeeze_excitation=squeeze_excitation, se_reduction=se_reduction,
            )  # fmt: skip

        # Encoder: stages[0] works at full resolution, each later stage after a max-pool; the last
        # "stage" is the bottleneck.
        self.stem = conv(in_channels, filters[0], 5, padding=2)
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)
        stages = []
        for i, n in enumerate(blocks):
            cin, cout = filters[i], filters[i + 1]
            stages.append(nn.Sequential(block(cin, cout), *[block(cout, cout) for _ in range(n - 1)]))
        self.encoder = nn.ModuleList(stages)
        self.dropout = Dropout[Dropout.DROPOUT, spatial_dims](dropout)

        # Decoder, deepest first: a block narrowing to the skip width, add the skip, 3×3 conv + ReLU.
        skip_widths = filters[1:-1][::-1]
        self.up_blocks = nn.ModuleList()
        self.merge_convs = nn.ModuleList()
        self.side_outputs = nn.ModuleList()
        prev = filters[-1]
        for level, skip in enumerate(skip_widths):
            self.up_blocks.append(block(prev, skip))
            last = level == len(skip_widths) - 1
            widths = head_channels if last else (skip,)
            layers: list[nn.Module] = []
            cin = skip
            for w in widths:
                layers += [conv(cin, w, 3, padding=1), nn.ReLU(inplace=True)]
                cin = w
            self.merge_convs.append(nn.Sequential(*layers))
            if last:
                self.side_outputs.append(nn.Sequential(conv(cin, out_channels, 1), nn.Sigmoid()))
            else:
                scale = 2 ** (len(skip_widths) - 1 - level)
                self.side_outputs.append(
                    _SideOutput(spatial_dims, cin, side_channels[level], out_channels, scale, act, norm)
                )
            prev = cin
        self.fusion = nn.Sequential(
            conv(out_channels * len(skip_widths), fusion_channels, 1),
            get_norm_layer(name=norm, spatial_dims=spatial_dims, channels=fusion_channels),
            get_act_layer(act),
            conv(fusion_channels, out_channels, 1),
        )

    @classmethod
    def lite(cls, spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 1, **kwargs) -> FocusNetPP:
        """The reduced-filter FocusNet++ used for DSB 2018 (:data:`FOCUSNETPP_LITE_FILTERS`, ≈1.85 M params)."""
        kwargs.setdefault("filters", FOCUSNETPP_LITE_FILTERS)
        kwargs.setdefault("side_channels", (64, 32, 16))
        return cls(spatial_dims, in_channels, out_channels, **kwargs)

    def _pad(self, x: torch.Tensor, always: bool = False) -> tuple[torch.Tensor, list[int]]:
        """Zero-pad every spatial dim to a multiple of ``self.multiple``; return the pad list for cropping."""
        return pad_to_multiple(x, self.multiple, always)

    def _crop(self, y: torch.Tensor, pads: list[int], always: bool = False) -> torch.Tensor:
        return crop_padding(y, pads, always)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # eager: the speed settings below; exported, traced, scripted or compiled: the plain formulation, with
        # the padding always in the graph (sizes stay symbolic, see pad_to_multiple)
        eager = eager_fast_paths()
        x, pads = self._pad(x, not eager)
        skips: list[torch.Tensor] = []
        h = self.stem(x)
        to_channels_last = eager and self.channels_last and h.device.type == "cpu"
        if to_channels_last:
            # oneDNN's grouped convolutions run about twice as fast on channels-last tensors (pooling and
            # upsampling keep the format)
            h = h.contiguous(memory_format=torch.channels_last if self.spatial_dims == 2 else torch.channels_last_3d)
        for i, stage in enumerate(self.encoder):
            if i > 0:
                h = self.pool(h)
            h = stage(h)
            skips.append(h)
        h = self.dropout(skips.pop())

        sides: list[torch.Tensor] = []
        for up_block, merge, side in zip(self.up_blocks, self.merge_convs, self.side_outputs):
            h = merge(up_block.forward_upsampled(h, 2) + skips.pop())  # nearest ×2, then the block
            sides.append(side(h))
        out = self.fusion(torch.cat(sides, dim=1))
        if self.sigmoid_head:
            out = torch.sigmoid(out)
        if to_channels_last and x.is_contiguous() and not out.is_contiguous():
            out = out.contiguous()
        return self._crop(out, pads, not eager)
