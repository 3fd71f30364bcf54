"""Building blocks, each usable on its own in any MONAI network."""
from .attention_gate import AttentionGate
from .cbam import ConvolutionalBlockAttention
from .conv_units import DoubleConv
from .false_positive_attention import FalsePositiveAttention
from .global_context import GlobalContextBlock
from .residual_group_attention import ResidualGroupAttentionBlock
from .reverse_false_negative_attention import ReverseFalseNegativeAttention
from .scse import ConcurrentSpatialChannelSE

__all__ = ["ResidualGroupAttentionBlock"]
__all__ += [
    "AttentionGate",
    "ConcurrentSpatialChannelSE",
    "ConvolutionalBlockAttention",
    "DoubleConv",
    "FalsePositiveAttention",
    "GlobalContextBlock",
    "ReverseFalseNegativeAttention",
]
