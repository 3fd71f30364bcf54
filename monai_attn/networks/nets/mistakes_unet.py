"""One U-Net backbone for "Learning to Pay Attention to Mistakes" (Xu et al., BMVC 2020).

:class:`MistakesUNet` is the paper's 2D/3D U-Net (instance norm, linear up-sampling, bias-free
convolutions, 32 → 64 → 128 → 256 channels, a bridge at the deepest level). Every attention
mechanism of the paper is a block from :mod:`monai_attn.networks.blocks`, plugged in by name
through :data:`MISTAKES_ATTENTIONS`; the paper's networks are presets (:data:`MISTAKES_PRESETS`,
:meth:`MistakesUNet.preset`, :class:`FPAUNet`, :class:`RFNAUNet`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn
from monai.networks.blocks import UpSample
from monai.networks.layers.factories import Conv

from ..blocks.attention_gate import AttentionGate
from ..blocks.cbam import ConvolutionalBlockAttention
from ..blocks.conv_units import DEFAULT_ACT, DEFAULT_NORM, DoubleConv, check_positive, check_spatial_dims
from ..blocks.false_positive_attention import FalsePositiveAttention
from ..blocks.global_context import GlobalContextBlock
from ..blocks.reverse_false_negative_attention import ReverseFalseNegativeAttention
from ..blocks.scse import ConcurrentSpatialChannelSE
from ..utils import crop_padding, eager_fast_paths, pad_to_multiple

__all__ = ["MistakesUNet", "FPAUNet", "RFNAUNet", "AttentionSpec", "MISTAKES_ATTENTIONS", "MISTAKES_PRESETS"]

DEPTH = 3  # stride-2 stages: inputs are padded to a multiple of 2**DEPTH
BRIDGE = DEPTH + 1  # encoder position of the bridge (encoder levels are 0..DEPTH)


@dataclass(frozen=True)
class AttentionSpec:
    """How an attention block plugs into :class:`MistakesUNet`.

    Attributes:
        kind: ``"block"`` replaces a double convolution (called as
            ``block(spatial_dims, in_channels, out_channels, strides=, main_dilation=, act=, norm=,
            dropout=, **kwargs)``); ``"post"`` follows a double convolution
            (``block(spatial_dims, channels, **kwargs)``); ``"gate"`` gates a decoder skip
            (``block(spatial_dims, gate_channels, skip_channels, act=, norm=, **kwargs)``).
        block: the block class.
        encoder_stages: default encoder positions (levels ``0..3``; ``4`` is the bridge).
        decoder_stages: default decoder levels (``0..2``; level ``l`` is the decoder double
            convolution at the resolution of encoder level ``l``, or the skip it receives for gates).
        defaults: default keyword arguments of the block inside the network.
        passes: network arguments forwarded to the block (``"act"``, ``"norm"``).
        where: one line for the docs: where the block sits in the paper / official code.
    """

    kind: str
    block: Callable[..., nn.Module]
    encoder_stages: tuple[int, ...]
    decoder_stages: tuple[int, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    passes: tuple[str, ...] = ()
    where: str = ""


#: The attention registry: name → :class:`AttentionSpec`. Add an entry to plug in a new block.
MISTAKES_ATTENTIONS: dict[str, AttentionSpec] = {
    "fpa": AttentionSpec(
        "block",
        FalsePositiveAttention,
        encoder_stages=(1, 2, 3, 4),
        decoder_stages=(),
        defaults={"dilation": 9, "expansion": 4},
        passes=("act", "norm"),
        where="replaces the double convs of encoder levels 1-3 and of the bridge",
    ),
    "rfna": AttentionSpec(
        "block",
        ReverseFalseNegativeAttention,
        encoder_stages=(1, 2, 3, 4),
        decoder_stages=(),
        defaults={"expansion": 8, "downsample": 8},
        passes=("act", "norm"),
        where="replaces the double convs of encoder levels 1-3 and of the bridge",
    ),
    "gate": AttentionSpec(
        "gate",
        AttentionGate,
        encoder_stages=(),
        decoder_stages=(0, 1, 2),
        passes=("act", "norm"),
        where="gates the three decoder skips, with the up-sampled deeper feature as gating signal",
    ),
    "scse": AttentionSpec(
        "post",
        ConcurrentSpatialChannelSE,
        encoder_stages=(0, 1, 2),
        decoder_stages=(0, 1, 2),
        defaults={"reduction": 8},
        where="after the double convs of encoder levels 0-2 and of the three decoder levels",
    ),
    "cbam": AttentionSpec(
        "post",
        ConvolutionalBlockAttention,
        encoder_stages=(0, 1, 2, 4),
        decoder_stages=(0, 1, 2),
        defaults={"reduction": 16},
        passes=("act",),
        where="after the double convs of encoder levels 0-2, the bridge and the three decoder levels",
    ),
    "gc": AttentionSpec(
        "post",
        GlobalContextBlock,
        encoder_stages=(0, 1, 2, 4),
        decoder_stages=(0, 1, 2),
        defaults={"reduction": 8},
        passes=("act",),
        where="after the double convs of encoder levels 0-2, the bridge and the three decoder levels",
    ),
}

#: The paper's networks (Tables 1, 5, 6) as keyword arguments of :class:`MistakesUNet`.
MISTAKES_PRESETS: dict[str, dict[str, Any]] = {
    "unet": {},
    "wunet": {"width": 64},
    "aunet": {"attention": "gate"},
    "cscunet": {"attention": "scse"},
    "cbamunet": {"attention": "cbam"},
    "gcnunet": {"attention": "gc"},
    "d6unet": {"dilation": 6},
    "d9unet": {"dilation": 9},
    "fpa": {"attention": "fpa"},
    "rfna": {"attention": "rfna"},
}

# arguments that MistakesUNet sets itself, per block kind
_SET_BY_NETWORK = {
    "block": {"spatial_dims", "in_channels", "out_channels", "strides", "main_dilation", "dropout"},
    "post": {"spatial_dims", "channels"},
    "gate": {"spatial_dims", "gate_channels", "skip_channels"},
}


def _stages(name: str, stages: Sequence[int] | None, default: tuple[int, ...], limit: int) -> frozenset:
    if stages is None:
        return frozenset(default)
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence):
        raise ValueError(f"{name} must be a sequence of ints in 0..{limit - 1}, got {stages!r}.")
    bad = [s for s in stages if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < limit]
    if bad or len(set(stages)) != len(stages):
        raise ValueError(f"{name} must be distinct ints in 0..{limit - 1}, got {list(stages)!r}.")
    return frozenset(stages)


class _SkipIdentity(nn.Module):
    """The no-op gate: returns the skip feature unchanged."""

    def forward(self, g: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return s


class _DecoderStage(nn.Module):
    """Up-sample the deeper feature ×2, (optionally) gate the skip with it, concatenate, convolve."""

    def __init__(self, upsample: nn.Module, gate: nn.Module, conv: nn.Module) -> None:
        super().__init__()
        self.upsample = upsample
        self.gate = gate
        self.conv = conv

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.upsample(x)
        return self.conv(torch.cat([x, self.gate(x, skip)], dim=1))


class MistakesUNet(nn.Module):
    """The U-Net of Xu et al., "Learning to Pay Attention to Mistakes", BMVC 2020, with every
    attention mechanism of the paper (and its baselines) as a pluggable block.

    Backbone (2D or 3D): a double conv ``in_channels → width`` (level 0), three levels of double
    convs whose first conv has stride 2 (``width·2, width·4, width·8`` channels), a double-conv
    bridge at the deepest level (same resolution as level 3), three decoder levels that up-sample
    ×2 (bilinear/trilinear, ``align_corners=True``), concatenate the skip of the same resolution and
    apply a double conv (``width·4, width·2, width``), and a 1×1 head. Convolutions are 3×3 and
    bias-free, each followed by norm (affine instance norm) and activation (ReLU). With
    ``in_channels=4, out_channels=1, width=32`` and no attention it has 3,129,248 parameters (the
    paper's 3.13 M). Unlike the official code, the bridge is never up-sampled and cropped back: the
    decoder starts from the bridge at the deepest level.

    ``attention`` picks a block of :data:`MISTAKES_ATTENTIONS`:

    - ``"fpa"``: :class:`~monai_attn.networks.blocks.FalsePositiveAttention` replaces the double
      convs of encoder levels 1-3 and of the bridge (4.20 M parameters; paper 4.2 M).
    - ``"rfna"``: :class:`~monai_attn.networks.blocks.ReverseFalseNegativeAttention` at the same
      places, with ``expansion=8`` so that the count matches the paper's 5.63 M (the paper's text
      says ×4, which gives 4.40 M; see ``docs/networks.md``). Train it on reversed labels
      (:class:`~monai_attn.transforms.ReverseLabeld`) and post-process its output with
      :class:`~monai_attn.transforms.UnreverseLogitsd`.
    - ``"gate"``: :class:`~monai_attn.networks.blocks.AttentionGate` on the three decoder skips
      (AUnet).
    - ``"scse"``: :class:`~monai_attn.networks.blocks.ConcurrentSpatialChannelSE` after encoder
      levels 0-2 and the decoder levels (CSCUnet).
    - ``"cbam"`` / ``"gc"``: :class:`~monai_attn.networks.blocks.ConvolutionalBlockAttention` /
      :class:`~monai_attn.networks.blocks.GlobalContextBlock` after encoder levels 0-2, the bridge
      and the decoder levels (CBAMUnet / GCNUnet).

    Input sizes need not be multiples of 8 (three stride-2 stages): as in
    :class:`~monai_attn.networks.nets.FocusNetPP`, the input is zero-padded (evenly on both sides) to
    the next multiple of 8 and the output cropped back, so the output always has the input's spatial
    shape. With RFNA blocks (or other blocks whose instance norm runs at a reduced resolution) at
    least one input side must be larger than :attr:`min_largest_side` (64 for the paper's RFNA at the
    bridge: its attention branch works at 1/64 of the input); :meth:`check_input_size` raises a
    ``ValueError`` naming this rule before any work (``forward`` calls it). The network returns logits.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels (4 for BraTS and ISLES in the paper).
        out_channels: number of output channels (1 for the paper's binary tasks).
        width: channels of level 0; level ``l`` has ``width·2**l``. Defaults to 32 (64 for WUnet).
        attention: name of the attention block (a key of :data:`MISTAKES_ATTENTIONS`: ``"fpa"``,
            ``"rfna"``, ``"gate"``, ``"scse"``, ``"cbam"``, ``"gc"``), or ``None`` for the plain
            U-Net. Defaults to None.
        attention_stages: encoder positions that get the block: levels ``0..3`` and ``4`` for the
            bridge. ``None`` uses the paper's placement listed above. Must be empty for ``"gate"``.
        decoder_attention_stages: decoder levels ``0..2`` that get the block (for ``"gate"``, the
            skips that are gated; for ``"fpa"``/``"rfna"``, the decoder double convs they replace).
            ``None`` uses the paper's placement listed above.
        attention_kwargs: extra keyword arguments for the block, merged over the registry's defaults,
            e.g. ``{"dilation": 6}`` for FPA or ``{"expansion": 4}`` for the RFNA of the paper's text.
        dilation: dilation of the double convs of encoder levels 1-3 (the D6/D9 U-Net baselines use
            6/9; it also dilates the main branch of FPA/RFNA blocks there). Defaults to 1.
        act: activation type and arguments. Defaults to ``("relu", {"inplace": True})``.
        norm: normalisation type and arguments. Defaults to ``("instance", {"affine": True})``.
        dropout: dropout ratio after every normalisation of the double convs. Defaults to 0.
        unreverse_output: return ``-logits``: the foreground logits of a network trained on reversed
            labels (RFNA; the same as :class:`~monai_attn.transforms.UnreverseLogitsd` on the output).
            Adds no parameter, so a checkpoint trained without it loads; the bundles' exported RFNA models
            use it (``export_network_def``). Defaults to False.

    Raises:
        ValueError: for a bad argument (spatial_dims not 2/3, unknown attention, non-positive width or
            channels, stages out of range, unknown ``attention_kwargs`` keys, dropout not in [0, 1)).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        width: int = 32,
        attention: str | None = None,
        attention_stages: Sequence[int] | None = None,
        decoder_attention_stages: Sequence[int] | None = None,
        attention_kwargs: Mapping[str, Any] | None = None,
        dilation: int = 1,
        act: str | tuple | None = DEFAULT_ACT,
        norm: str | tuple | None = DEFAULT_NORM,
        dropout: float = 0.0,
        unreverse_output: bool = False,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("width", width),
            ("dilation", dilation),
        ):
            check_positive(name, value)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}.")

        spec: AttentionSpec | None = None
        if attention is not None:
            key = attention.lower() if isinstance(attention, str) else attention
            if key not in MISTAKES_ATTENTIONS:
                raise ValueError(
                    f"unknown attention {attention!r}; valid: None, "
                    + ", ".join(map(repr, MISTAKES_ATTENTIONS))
                    + "."
                )
            attention, spec = key, MISTAKES_ATTENTIONS[key]
        if spec is None:
            if attention_stages or decoder_attention_stages or attention_kwargs:
                raise ValueError(
                    "attention_stages, decoder_attention_stages and attention_kwargs need an attention "
                    f"(one of {', '.join(map(repr, MISTAKES_ATTENTIONS))}); attention is None."
                )
            enc, dec, kwargs = frozenset(), frozenset(), {}
        else:
            enc = _stages("attention_stages", attention_stages, spec.encoder_stages, BRIDGE + 1)
            dec = _stages("decoder_attention_stages", decoder_attention_stages, spec.decoder_stages, DEPTH)
            if spec.kind == "gate" and enc:
                raise ValueError(
                    "attention='gate' sits on the decoder skips: leave attention_stages empty and choose the "
                    f"gated skips with decoder_attention_stages (levels 0..{DEPTH - 1}); got {sorted(enc)}."
                )
            kwargs = {**spec.defaults, **(attention_kwargs or {})}
            allowed = (
                set(inspect.signature(spec.block).parameters) - _SET_BY_NETWORK[spec.kind] - set(spec.passes)
            )
            unknown = sorted(set(kwargs) - allowed)
            if unknown:
                raise ValueError(
                    f"attention_kwargs {unknown} not accepted by {spec.block.__name__} in MistakesUNet; "
                    f"valid: {sorted(allowed)}."
                )
            kwargs.update({k: v for k, v in (("act", act), ("norm", norm)) if k in spec.passes})

        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.attention_name: str = attention if attention is not None else "none"
        self.unreverse_output = bool(unreverse_output)
        self.depth = DEPTH
        self.divisor = 2**DEPTH
        # blocks that instance-normalise at 1/downsample of their feature map (RFNA) need more than one voxel
        # there: a (padded) input side larger than 2**level * downsample; the strictest block sets the rule
        size_limits = [0]
        widths = [width * 2**level for level in range(DEPTH + 1)]

        def conv_stage(
            position: int, c_in: int, c_out: int, strides: int, dil: int, decoder: bool
        ) -> nn.Module:
            wanted = spec is not None and position in (dec if decoder else enc)
            if wanted and spec.kind == "block":
                conv = spec.block(
                    spatial_dims, c_in, c_out, strides=strides, main_dilation=dil, dropout=dropout, **kwargs
                )
            else:
                conv = DoubleConv(spatial_dims, c_in, c_out, strides, dil, act, norm, dropout)
            if getattr(conv, "check_size", False):
                size_limits.append(2 ** min(position, DEPTH) * int(conv.downsample))
            stage = nn.Sequential()
            stage.add_module("conv", conv)
            if wanted and spec.kind == "post":
                stage.add_module("attention", spec.block(spatial_dims, c_out, **kwargs))
            return stage

        self.encoder = nn.ModuleList(
            [
                conv_stage(
                    level,
                    in_channels if level == 0 else widths[level - 1],
                    widths[level],
                    1 if level == 0 else 2,
                    1 if level == 0 else dilation,
                    decoder=False,
                )
                for level in range(DEPTH + 1)
            ]
        )
        self.bridge = conv_stage(BRIDGE, widths[DEPTH], widths[DEPTH], 1, 1, decoder=False)
        decoder = []
        for level in reversed(range(DEPTH)):  # deepest first
            up_channels, skip_channels = widths[level + 1], widths[level]
            if spec is not None and spec.kind == "gate" and level in dec:
                gate: nn.Module = spec.block(spatial_dims, up_channels, skip_channels, **kwargs)
            else:
                gate = _SkipIdentity()
            upsample = UpSample(
                spatial_dims, scale_factor=2, mode="nontrainable", interp_mode="linear", align_corners=True
            )
            conv = conv_stage(level, up_channels + skip_channels, widths[level], 1, 1, decoder=True)
            decoder.append(_DecoderStage(upsample, gate, conv))
        self.decoder = nn.ModuleList(decoder)
        self.head = Conv[Conv.CONV, spatial_dims](widths[0], out_channels, kernel_size=1, bias=False)
        #: at least one input side, padded to a multiple of 8, must be larger than this (0: no limit)
        self.min_largest_side: int = max(size_limits)

    @classmethod
    def preset(
        cls, name: str, spatial_dims: int = 2, in_channels: int = 4, out_channels: int = 1, **overrides: Any
    ) -> MistakesUNet:
        """Build one of the paper's networks by name (a key of :data:`MISTAKES_PRESETS`).

        Args:
            name: ``"unet"``, ``"wunet"``, ``"aunet"``, ``"cscunet"``, ``"cbamunet"``, ``"gcnunet"``,
                ``"d6unet"``, ``"d9unet"``, ``"fpa"`` or ``"rfna"`` (case-insensitive).
            spatial_dims: number of spatial dimensions. Defaults to 2 (the paper).
            in_channels: number of input channels. Defaults to 4 (the paper).
            out_channels: number of output channels. Defaults to 1 (the paper).
            overrides: any other :class:`MistakesUNet` argument, overriding the preset.
        """
        key = name.lower() if isinstance(name, str) else name
        if key not in MISTAKES_PRESETS:
            raise ValueError(f"unknown preset {name!r}; valid: {', '.join(map(repr, MISTAKES_PRESETS))}.")
        kwargs = {**MISTAKES_PRESETS[key], **overrides}
        return MistakesUNet(spatial_dims, in_channels, out_channels, **kwargs)

    def check_input_size(self, shape: list[int]) -> None:
        """Raise a ``ValueError`` naming the rule unless an input of ``shape`` (``(B, C, *spatial)``) fits:
        ``in_channels`` channels, ``spatial_dims`` spatial sizes and, with RFNA blocks, at least one
        spatial size (padded to a multiple of 8) larger than :attr:`min_largest_side`. ``forward`` calls
        it before any work (in eager mode and TorchScript; exported graphs take the sizes as given)."""
        shape = [int(s) for s in shape]
        if len(shape) != self.spatial_dims + 2 or shape[1] != self.in_channels:
            raise ValueError(
                f"MistakesUNet: expected input of shape (B, {self.in_channels}, {self.spatial_dims} spatial dims), got {shape}."
            )
        padded = [-(-s // self.divisor) * self.divisor for s in shape[2:]]
        if self.min_largest_side > 0 and max(padded) <= self.min_largest_side:
            raise ValueError(
                f"MistakesUNet(attention='{self.attention_name}'): at least one spatial size of the input must be larger "
                f"than {self.min_largest_side} (the attention branch works at 1/{self.min_largest_side} of the input and "
                f"instance norm needs more than one voxel there), got input shape {shape}. Use a larger roi_size or "
                "patch, or attention_kwargs={'downsample': 4} (or 2), or attention_stages without the deep levels."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eager = eager_fast_paths()
        if eager or torch.jit.is_scripting():  # concrete sizes: check them before any work
            self.check_input_size(x.shape)
        # zero-pad to a multiple of 8 and crop back; exported, traced, scripted or compiled graphs always
        # pad (a no-op for multiples) so that their size arithmetic stays symbolic
        x, pads = pad_to_multiple(x, self.divisor, not eager)
        skips: list[torch.Tensor] = []
        for level, stage in enumerate(self.encoder):
            x = stage(x)
            if level < self.depth:  # the deepest level feeds the bridge only
                skips.append(x)
        x = self.bridge(x)
        for i, stage in enumerate(self.decoder):
            x = stage(x, skips[self.depth - 1 - i])
        out = crop_padding(self.head(x), pads, not eager)
        return -out if self.unreverse_output else out


class FPAUNet(MistakesUNet):
    """:class:`MistakesUNet` with False Positive Attention (``attention="fpa"``) in the encoder.

    Xu et al., "Learning to Pay Attention to Mistakes", BMVC 2020: 4,200,608 parameters for
    ``in_channels=4, out_channels=1`` (paper: 4.2 M). Arguments as in :class:`MistakesUNet`;
    ``attention_kwargs`` may set the FPA ``dilation`` (6, 9 or 12; default 9), ``expansion``
    (default 4), ``depthwise`` and ``shared_weights``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        width: int = 32,
        attention_stages: Sequence[int] | None = None,
        decoder_attention_stages: Sequence[int] | None = None,
        attention_kwargs: Mapping[str, Any] | None = None,
        dilation: int = 1,
        act: str | tuple | None = DEFAULT_ACT,
        norm: str | tuple | None = DEFAULT_NORM,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            spatial_dims,
            in_channels,
            out_channels,
            width=width,
            attention="fpa",
            attention_stages=attention_stages,
            decoder_attention_stages=decoder_attention_stages,
            attention_kwargs=attention_kwargs,
            dilation=dilation,
            act=act,
            norm=norm,
            dropout=dropout,
        )


class RFNAUNet(MistakesUNet):
    """:class:`MistakesUNet` with Reverse False Negative Attention (``attention="rfna"``) in the encoder.

    Xu et al., "Learning to Pay Attention to Mistakes", BMVC 2020: 5,677,984 parameters for
    ``in_channels=4, out_channels=1`` (paper: 5.63 M; ``attention_kwargs={"expansion": 4}`` gives the
    ×4 of the paper's text: 4,403,616; see ``docs/networks.md``). Train on reversed labels
    (:class:`~monai_attn.transforms.ReverseLabeld`) and turn the output back into foreground logits
    with :class:`~monai_attn.transforms.UnreverseLogitsd` (or build it with ``unreverse_output=True``). Needs an input side larger than 64 (the
    attention branch at the bridge works at 1/64 of the input; :meth:`MistakesUNet.check_input_size`).
    Arguments as in :class:`MistakesUNet`.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        width: int = 32,
        attention_stages: Sequence[int] | None = None,
        decoder_attention_stages: Sequence[int] | None = None,
        attention_kwargs: Mapping[str, Any] | None = None,
        dilation: int = 1,
        act: str | tuple | None = DEFAULT_ACT,
        norm: str | tuple | None = DEFAULT_NORM,
        dropout: float = 0.0,
        unreverse_output: bool = False,
    ) -> None:
        super().__init__(
            spatial_dims,
            in_channels,
            out_channels,
            width=width,
            attention="rfna",
            attention_stages=attention_stages,
            decoder_attention_stages=decoder_attention_stages,
            attention_kwargs=attention_kwargs,
            dilation=dilation,
            act=act,
            norm=norm,
            dropout=dropout,
            unreverse_output=unreverse_output,
        )
