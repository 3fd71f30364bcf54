"""Attention maps of every attention block of a network, recorded by forward hooks during one pass.

:func:`attention_maps` runs a network once and returns, for each attention block it contains (FPA,
RFNA, attention gate, scSE, CBAM, global context, FocusNet++'s residual group attention), its
attention map upsampled to the input's spatial size, ``(B, 1, *x.shape[2:])``, named by its
position in the network (``encoder3.fpa``, ``bridge.rfna``, ``decoder1.gate``,
``encoder1.2.group_attention``). Hooks are registered on the blocks' own sub-modules for the pass
only and removed afterwards, so a network that is not asked for its maps pays nothing.

What each block's map is (``docs/networks.md`` explains how to read them):

- ``fpa`` (:class:`~monai_attn.networks.blocks.FalsePositiveAttention`): ``A = σ(W_a3 ...)``, one
  value per channel and voxel; the map is its mean over channels.
- ``rfna`` (:class:`~monai_attn.networks.blocks.ReverseFalseNegativeAttention`): ``A = σ(W_a4[Up(...)] + F)``,
  mean over channels, *as trained* (on reversed labels: high on the background); ``flip_rfna=True``
  shows ``1 - A``.
- ``gate`` (:class:`~monai_attn.networks.blocks.AttentionGate`): the one-channel gate ``a``.
- ``scse`` (:class:`~monai_attn.networks.blocks.ConcurrentSpatialChannelSE`): the spatial squeeze
  ``σ(W_s x)``; the channel squeeze is one weight per channel for the whole image (no spatial map).
- ``cbam`` (:class:`~monai_attn.networks.blocks.ConvolutionalBlockAttention`): the spatial attention
  ``σ(conv([mean_c, max_c]))``; the channel attention (one weight per channel) is not drawn.
- ``gc`` (:class:`~monai_attn.networks.blocks.GlobalContextBlock`): the context pooling weights
  ``softmax(W_k x)`` times the number of feature voxels (1 everywhere = uniform pooling); the
  channel transform is not spatial.
- ``group_attention`` (:class:`~monai_attn.networks.blocks.ResidualGroupAttentionBlock`): the
  per-pixel group attention ``σ(Conv1×1(...))`` of the attention groups, mean over channels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks.attention_gate import AttentionGate
from .blocks.cbam import ConvolutionalBlockAttention
from .blocks.false_positive_attention import FalsePositiveAttention
from .blocks.global_context import GlobalContextBlock
from .blocks.residual_group_attention import ResidualGroupAttentionBlock, pointwise_conv
from .blocks.reverse_false_negative_attention import ReverseFalseNegativeAttention
from .blocks.scse import ConcurrentSpatialChannelSE
from .nets.focusnetpp import FocusNetPP
from .nets.mistakes_unet import MistakesUNet

__all__ = [
    "ATTENTION_KINDS",
    "attention_maps",
    "attention_blocks",
    "deepest_encoder_block",
    "AttentionRecorder",
]

#: block class → the kind that ends its map's name
ATTENTION_KINDS: dict[type, str] = {
    FalsePositiveAttention: "fpa",
    ReverseFalseNegativeAttention: "rfna",
    AttentionGate: "gate",
    ConcurrentSpatialChannelSE: "scse",
    ConvolutionalBlockAttention: "cbam",
    GlobalContextBlock: "gc",
    ResidualGroupAttentionBlock: "group_attention",
}


def _kind(module: nn.Module) -> str | None:
    for cls, kind in ATTENTION_KINDS.items():
        if isinstance(module, cls):
            return kind
    return None


def _position(net: nn.Module, qualname: str, kind: str) -> str:
    """The map's name: the block's position in the network and its kind."""
    parts = qualname.split(".") if qualname else []
    if isinstance(net, MistakesUNet) and parts:
        if parts[0] == "encoder":
            return f"encoder{parts[1]}.{kind}"
        if parts[0] == "bridge":
            return f"bridge.{kind}"
        if parts[0] == "decoder":  # decoder stages run deepest first; name them by resolution level
            return f"decoder{net.depth - 1 - int(parts[1])}.{kind}"
    if isinstance(net, FocusNetPP) and len(parts) >= 2:
        last = len(net.encoder) - 1  # the last encoder "stage" is the bottleneck
        if parts[0] == "encoder":
            stage = int(parts[1])
            return f"bottleneck.{parts[2]}.{kind}" if stage == last else f"encoder{stage}.{parts[2]}.{kind}"
        if parts[0] == "up_blocks":  # up-block k adds the skip of encoder stage last - 1 - k
            return f"decoder{last - 1 - int(parts[1])}.{kind}"
    return f"{qualname}.{kind}" if qualname else kind


def attention_blocks(net: nn.Module) -> dict[str, nn.Module]:
    """The attention blocks of ``net`` by map name, in the order the network registers (and, for the
    networks here, runs) them. A block inside another attention block is not listed separately."""
    found: dict[str, nn.Module] = {}
    inside: list[str] = []
    for qualname, module in net.named_modules():
        kind = _kind(module)
        if kind is None or any(qualname.startswith(p + ".") for p in inside):
            continue
        inside.append(qualname)
        found[_position(net, qualname, kind)] = module
    return found


def deepest_encoder_block(net: nn.Module) -> str:
    """The name of the deepest encoder attention block (the map of PATM's Figure 4): the last block named
    ``encoder*``; without encoder blocks (e.g. attention gates on the decoder skips) the first block in
    order (the deepest decoder one). Raises ``ValueError`` when ``net`` has no attention block."""
    names = list(attention_blocks(net))
    if not names:
        raise ValueError(f"{type(net).__name__} has no attention block (valid kinds: {sorted(set(ATTENTION_KINDS.values()))}).")
    encoder = [n for n in names if n.startswith("encoder")]
    return encoder[-1] if encoder else names[0]


# ----------------------------------------------------------------------------------------------- per-block hooks
# Each function hooks sub-modules of one block and calls ``emit(map)`` with a (B, C, *feature spatial) map.

Emit = Callable[[torch.Tensor], None]
Handles = list[torch.utils.hooks.RemovableHandle]


def _hook_output(module: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor], emit: Emit) -> Handles:
    return [module.register_forward_hook(lambda _m, _i, out: emit(fn(out)))]


def _hook_fpa(block: FalsePositiveAttention, emit: Emit) -> Handles:
    return _hook_output(block.project, torch.sigmoid, emit)  # A = σ(W_a3 ...)


def _hook_rfna(block: ReverseFalseNegativeAttention, emit: Emit) -> Handles:
    main: list[torch.Tensor] = []

    def on_project(_m, _i, out: torch.Tensor) -> None:  # A = σ(Up(W_a4 ...) + F)
        f = main.pop()
        up = F.interpolate(out, size=f.shape[2:], mode=block.interp_mode, align_corners=True)
        emit(torch.sigmoid(up + f))

    return [block.main.register_forward_hook(lambda _m, _i, out: main.append(out)),
            block.project.register_forward_hook(on_project)]


def _hook_gate(block: AttentionGate, emit: Emit) -> Handles:
    return _hook_output(block.psi, torch.sigmoid, emit)


def _hook_scse(block: ConcurrentSpatialChannelSE, emit: Emit) -> Handles:
    return _hook_output(block.spatial_se, torch.sigmoid, emit)


def _hook_cbam(block: ConvolutionalBlockAttention, emit: Emit) -> Handles:
    return _hook_output(block.spatial, torch.sigmoid, emit)


def _gc_weights(logits: torch.Tensor) -> torch.Tensor:
    n = logits[0, 0].numel()
    return torch.softmax(logits.flatten(2).float(), dim=-1).mul(n).reshape(logits.shape)


def _hook_gc(block: GlobalContextBlock, emit: Emit) -> Handles:
    return _hook_output(block.attend, _gc_weights, emit)


def _hook_group_attention(block: ResidualGroupAttentionBlock, emit: Emit) -> Handles:
    att = block.attention[0]

    def fn(z: torch.Tensor) -> torch.Tensor:  # the attention groups' σ(Conv1×1(pre(...)))
        return torch.sigmoid(pointwise_conv(z[:, : block.half], att.weight, att.bias, block.pairs))

    return _hook_output(block.pre, fn, emit)


_HOOKS: dict[str, Callable[..., Handles]] = {
    "fpa": _hook_fpa,
    "rfna": _hook_rfna,
    "gate": _hook_gate,
    "scse": _hook_scse,
    "cbam": _hook_cbam,
    "gc": _hook_gc,
    "group_attention": _hook_group_attention,
}


@contextlib.contextmanager
def _reference_path(blocks: Sequence[nn.Module]) -> Iterator[None]:
    """Run residual group-attention blocks through their reference formulation (their fused inference path
    computes the attention inside one fused convolution, where no hook can see it); restored afterwards."""
    changed = [b for b in blocks if isinstance(b, ResidualGroupAttentionBlock) and b.fusable]
    for b in changed:
        b.fusable = False
    try:
        yield
    finally:
        for b in changed:
            b.fusable = True


def _frame(net: nn.Module, shape: Sequence[int]) -> tuple[list[int], Callable[[torch.Tensor], torch.Tensor]]:
    """The spatial size the network's features refer to and how to crop a map of that size back to the input:
    FocusNet++ (and MistakesUNet) zero-pad their input evenly to a multiple of ``2**stages`` (the extra voxel
    after) and crop their output back."""
    multiple = net.multiple if isinstance(net, FocusNetPP) else net.divisor if isinstance(net, MistakesUNet) else 1
    spatial = [int(s) for s in shape[2:]]
    padded = [-(-s // multiple) * multiple for s in spatial]
    if padded == spatial:
        return spatial, lambda m: m
    starts = [(p - s) // 2 for p, s in zip(padded, spatial)]

    def crop(m: torch.Tensor) -> torch.Tensor:
        for d, (start, size) in enumerate(zip(starts, spatial)):
            m = m.narrow(2 + d, start, size)
        return m

    return padded, crop


class AttentionRecorder:
    """Record the attention maps of ``net``'s blocks during the forward passes run inside the ``with`` block.

    ``maps`` holds, per block name, the block's map (mean over channels) upsampled (bilinear/trilinear)
    to the spatial size of ``input_shape``, ``(B, 1, *spatial)`` float32; a block run more than once keeps
    its last map. Residual group-attention blocks run their reference path while recording (same function
    as the fused inference path, to float rounding). Hooks are removed when the block exits.

    Args:
        net: the network.
        input_shape: shape of the input ``x`` of the passes, ``(B, C, *spatial)``.
        blocks: map names to record (see :func:`attention_blocks`); ``None`` records every block.
        flip_rfna: show RFNA maps as ``1 - A`` (RFNA is trained on reversed labels). Defaults to False.
    """

    def __init__(self, net: nn.Module, input_shape: Sequence[int], blocks: str | Sequence[str] | None = None,
                 flip_rfna: bool = False) -> None:
        available = attention_blocks(net)
        if not available:
            raise ValueError(
                f"{type(net).__name__} has no attention block; attention maps exist for "
                f"{', '.join(c.__name__ for c in ATTENTION_KINDS)}."
            )
        names = list(available) if blocks is None else [blocks] if isinstance(blocks, str) else list(blocks)
        unknown = [n for n in names if n not in available]
        if unknown or not names:
            raise ValueError(f"unknown attention block(s) {unknown or names!r} of {type(net).__name__}; "
                             f"valid: {', '.join(available)}.")
        self.net = net
        self.blocks = {n: available[n] for n in names}
        self.size, self.crop = _frame(net, input_shape)
        self.flip_rfna = flip_rfna
        self.maps: dict[str, torch.Tensor] = {}
        self._handles: Handles = []
        self._stack: contextlib.ExitStack | None = None

    def _emitter(self, name: str, kind: str) -> Emit:
        mode = "bilinear" if len(self.size) == 2 else "trilinear"

        def emit(a: torch.Tensor) -> None:
            m = a.detach().float().mean(dim=1, keepdim=True)
            if kind == "rfna" and self.flip_rfna:
                m = 1.0 - m
            if list(m.shape[2:]) != self.size:
                m = F.interpolate(m, size=self.size, mode=mode, align_corners=False)
            self.maps[name] = self.crop(m)

        return emit

    def __enter__(self) -> AttentionRecorder:
        self.maps = {}
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(_reference_path(list(self.blocks.values())))
        try:
            for name, block in self.blocks.items():
                kind = _kind(block)
                assert kind is not None
                self._handles += _HOOKS[kind](block, self._emitter(name, kind))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._stack is not None:
            self._stack.close()
            self._stack = None


def attention_maps(net: nn.Module, x: torch.Tensor, blocks: str | Sequence[str] | None = None,
                   flip_rfna: bool = False) -> dict[str, torch.Tensor]:
    """Run ``net`` once on ``x`` and return the attention map of each of its attention blocks.

    Example::

        net = FPAUNet(spatial_dims=2, in_channels=4, out_channels=1).eval()
        maps = attention_maps(net, x)                  # {"encoder1.fpa": (B, 1, H, W), ..., "bridge.fpa": ...}
        deepest = maps[deepest_encoder_block(net)]     # PATM's Figure 4

    The pass runs without autograd and in the network's current mode; the network's parameters and
    buffers (e.g. batch-norm running statistics in training mode) are left as they were, and every hook is
    removed before returning. Works on eager modules (hooks cannot be added to TorchScript modules).

    Args:
        net: a network with attention blocks (:data:`ATTENTION_KINDS`), or a block itself.
        x: the input ``(B, C, *spatial)`` (2D or 3D).
        blocks: map name(s) to return (see :func:`attention_blocks`); ``None`` returns every block.
        flip_rfna: return RFNA maps as ``1 - A`` (RFNA is trained on reversed labels, so as trained its
            attention is high on the background). Defaults to False.

    Returns:
        ``{name: map}``, each ``(B, 1, *x.shape[2:])`` float32 on ``x``'s device, in the blocks' order.

    Raises:
        ValueError: ``net`` has no attention block, or ``blocks`` names one it does not have.
    """
    buffers = [(b, b.detach().clone()) for b in net.buffers()] if net.training else []
    recorder = AttentionRecorder(net, x.shape, blocks, flip_rfna)
    try:
        with torch.no_grad(), recorder:
            net(x)
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    missing = [n for n in recorder.blocks if n not in recorder.maps]
    if missing:
        raise ValueError(f"attention block(s) {missing} of {type(net).__name__} did not run in the forward pass.")
    return {n: recorder.maps[n] for n in recorder.blocks}
