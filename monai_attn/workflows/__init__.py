"""Functions that the bundles' configs call, one module per concern.

Bundle configs only wire these together (as ``monai_attn.workflows.<name>``); every decision that
needs logic lives here, tested:

- :mod:`.datalists`: prepare a datalist from a raw download, read a split or fold of one;
- :mod:`.inputs`: the cases of an inference input folder;
- :mod:`.processing`: inference pre-processing without labels, RFNA label reversal, post-processing;
- :mod:`.outputs`: the output folder check, case names, the atomic segmentation writer;
- :mod:`.weights`: safe weight loading; :mod:`.checkpoints`: training state, resume, best model, a
  training folder that is never overwritten or mixed; :mod:`.rng`: the random state a resume restores;
- :mod:`.atomic`: checkpoints that are never half-written;
- :mod:`.keep_going`: the loader that skips and lists the cases that fail;
- :mod:`.progress`: a progress bar counting cases (quiet under ``CI=true`` or without a terminal);
- :mod:`.attention`: attention maps and flip TTA with an entropy map, written beside the predictions.
"""
from monai_attn.overrides import as_bool, check_overrides

from .atomic import AtomicDiskSaver, use_atomic_saving
from .attention import InferenceOutputs, SaveInferenceExtrasd, flip_tta, inference_network, vote_entropy
from .checkpoints import (
    TrainingDirError,
    attach_training_state,
    checkpoints,
    key_metric_tracker,
    latest_checkpoint,
    prepare_training_dir,
    release_training_dir,
)
from .datalists import datalist_items, prepare_datalist
from .inputs import IMAGE_SUFFIXES, VOLUME_SUFFIXES, inference_items
from .keep_going import (
    CaseFailure,
    CaseFailures,
    KeepGoingDataLoader,
    SkipFailedCases,
    describe_failure,
    run_keep_going,
)
from .outputs import SaveSegmentationd, case_name_formatter, check_output_dir
from .processing import (
    image_inference_preprocessing,
    segmentation_postprocessing,
    volume_inference_preprocessing,
    with_label_reversal,
)
from .progress import CaseProgressBar, show_progress
from .rng import TrainingRNG
from .weights import load_network_weights

__all__ = [
    "prepare_datalist",
    "datalist_items",
    "inference_items",
    "check_output_dir",
    "load_network_weights",
    "with_label_reversal",
    "segmentation_postprocessing",
    "latest_checkpoint",
    "checkpoints",
    "AtomicDiskSaver",
    "use_atomic_saving",
    "attach_training_state",
    "prepare_training_dir",
    "release_training_dir",
    "TrainingDirError",
    "TrainingRNG",
    "as_bool",
    "volume_inference_preprocessing",
    "case_name_formatter",
    "SaveSegmentationd",
    "image_inference_preprocessing",
    "key_metric_tracker",
    "VOLUME_SUFFIXES",
    "IMAGE_SUFFIXES",
    "CaseFailure",
    "CaseFailures",
    "describe_failure",
    "SkipFailedCases",
    "KeepGoingDataLoader",
    "run_keep_going",
    "CaseProgressBar",
    "show_progress",
    "check_overrides",
    "inference_network",
    "InferenceOutputs",
    "SaveInferenceExtrasd",
    "flip_tta",
    "vote_entropy",
]
