"""monai_attn: FocusNet++ and Paying-Attention-to-Mistakes as MONAI components.

Importing the package imports every submodule, so that MONAI's ``ComponentLocator`` (which
only scans modules already in ``sys.modules`` whose names start with ``monai``) resolves short
``_target_`` names such as ``FocusNetPP`` after ``"imports": ["$import monai_attn"]``.
"""

__version__ = "0.1.0"

from . import data, inferers, losses, metrics, networks, papers, schedules, transforms, visualize, workflows  # noqa: E402,F401
from .inferers import *  # noqa: E402,F401,F403
from .losses import *  # noqa: E402,F401,F403
from .metrics import *  # noqa: E402,F401,F403
from .networks import *  # noqa: E402,F401,F403
from .transforms import *  # noqa: E402,F401,F403
