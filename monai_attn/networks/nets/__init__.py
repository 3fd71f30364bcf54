"""Network families."""
from .focusnetpp import FocusNetPP
from .mistakes_unet import (
    MISTAKES_ATTENTIONS,
    MISTAKES_PRESETS,
    AttentionSpec,
    FPAUNet,
    MistakesUNet,
    RFNAUNet,
)

__all__ = ["FocusNetPP"]
__all__ += ["MistakesUNet", "FPAUNet", "RFNAUNet", "AttentionSpec", "MISTAKES_ATTENTIONS", "MISTAKES_PRESETS"]
