"""monai_attn.transforms"""
from .channels import EnsureRGB, EnsureRGBd
from .intensity import LeanNormalizeIntensity, LeanNormalizeIntensityd
from .io import (
    CheckSameSized,
    LoadImage2Dd,
    LoadUnionMask,
    LoadUnionMaskd,
    LoadVolumed,
    check_image_2d_file,
    check_input_file,
    pil_to_8bit,
)
from .label_reversal import (
    ReverseLabel,
    ReverseLabelD,
    ReverseLabeld,
    ReverseLabelDict,
    UnreverseLogits,
    UnreverseLogitsD,
    UnreverseLogitsd,
    UnreverseLogitsDict,
)
from .labels import BRATS_ET, BRATS_REGIONS, BRATS_TC, BRATS_WT, ISLES_LESION, SelectLabels, SelectLabelsd
from .pipelines import (
    BRATS_LABEL_VALUES,
    ISIC_MASK_VALUES,
    ISLES_LABEL_VALUES,
    brats2018_eval_transforms,
    brats2018_train_transforms,
    dsb2018_transforms,
    isic2018_transforms,
    isles2018_eval_transforms,
    isles2018_train_transforms,
    slice_sampling,
    volume_preprocess,
)
from .slices import RandAxialSlicesd, SliceAxisFirstd, SliceIndexd, slice_foreground

__all__: list = []
__all__ += [
    "EnsureRGB", "EnsureRGBd", "LoadUnionMask", "LoadUnionMaskd", "LoadVolumed",
    "SelectLabels", "SelectLabelsd", "BRATS_ET", "BRATS_TC", "BRATS_WT", "BRATS_REGIONS", "ISLES_LESION",
    "SliceAxisFirstd", "SliceIndexd", "RandAxialSlicesd", "slice_foreground",
    "volume_preprocess", "slice_sampling", "brats2018_train_transforms", "brats2018_eval_transforms",
    "isles2018_train_transforms", "isles2018_eval_transforms", "isic2018_transforms", "dsb2018_transforms",
]
__all__ += ["LeanNormalizeIntensity", "LeanNormalizeIntensityd"]
__all__ += ["BRATS_LABEL_VALUES", "ISLES_LABEL_VALUES", "ISIC_MASK_VALUES"]
__all__ += ["LoadImage2Dd", "CheckSameSized", "pil_to_8bit", "check_input_file", "check_image_2d_file"]
__all__ += [
    "ReverseLabel",
    "ReverseLabelD",
    "ReverseLabelDict",
    "ReverseLabeld",
    "UnreverseLogits",
    "UnreverseLogitsD",
    "UnreverseLogitsDict",
    "UnreverseLogitsd",
]
