"""Networks and their building blocks (``blocks/`` one file per block, ``nets/`` one file per family)."""
from .attention import ATTENTION_KINDS, attention_blocks, attention_maps, deepest_encoder_block  # noqa: F401
from .blocks import *  # noqa: F401,F403
from .nets import *  # noqa: F401,F403
