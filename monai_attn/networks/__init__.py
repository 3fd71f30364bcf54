"""Networks and their building blocks (``blocks/`` one file per block, ``nets/`` one file per family)."""
from .blocks import *  # noqa: F401,F403
from .nets import *  # noqa: F401,F403
