"""Label reversal for Reverse False Negative Attention (Xu et al., "Learning to Pay Attention to
Mistakes", BMVC 2020).

RFNA networks are trained on *reversed* binary labels (foreground 0, background 1), so their
sigmoid output is the background probability. :class:`ReverseLabeld` reverses the training
targets; :class:`UnreverseLogitsd` turns the network's reversed output back into foreground
logits (``-z``, since ``σ(-z) = 1 - σ(z)``) or foreground probabilities (``1 - p``). Put the latter
first in the post-transforms and the rest of the evaluation/inference chain (``Activationsd``,
``AsDiscreted``, metrics, ``SaveImaged``) never needs to know that the network was trained reversed.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

__all__ = [
    "ReverseLabel",
    "ReverseLabeld",
    "ReverseLabelD",
    "ReverseLabelDict",
    "UnreverseLogits",
    "UnreverseLogitsd",
    "UnreverseLogitsD",
    "UnreverseLogitsDict",
]


class ReverseLabel(Transform):
    """Reverse a binary (or soft, in [0, 1]) label: ``1 - y`` (``not y`` for boolean labels).

    Args:
        check_range: raise a ``ValueError`` when the label has values outside [0, 1] (e.g. a
            multi-class label map that should first be binarised). Defaults to True.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, check_range: bool = True) -> None:
        self.check_range = check_range

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        if isinstance(img, torch.Tensor):
            if img.dtype == torch.bool:
                return torch.logical_not(img)
        elif isinstance(img, np.ndarray):
            if img.dtype == np.bool_:
                return np.logical_not(img)
        else:
            raise ValueError(f"ReverseLabel expects a numpy array or torch tensor, got {type(img).__name__}.")
        if self.check_range and img.size != 0 and (img.min() < 0 or img.max() > 1):
            raise ValueError(
                f"ReverseLabel expects a binary label with values in [0, 1], got values in "
                f"[{float(img.min())}, {float(img.max())}]; binarise the label first (e.g. with a label-map "
                "transform or AsDiscrete(threshold=0.5))."
            )
        return 1 - img


class UnreverseLogits(Transform):
    """Turn the output of a network trained on reversed labels back into foreground scores.

    Logits become ``-z`` (foreground logits, ``σ(-z) = 1 - σ(z)``); probabilities become ``1 - p``.

    Args:
        probabilities: the input holds probabilities (e.g. after ``Activationsd(sigmoid=True)``)
            rather than logits. Defaults to False (logits, what the networks return).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, probabilities: bool = False) -> None:
        self.probabilities = probabilities

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        if not isinstance(img, (torch.Tensor, np.ndarray)):
            raise ValueError(
                f"UnreverseLogits expects a numpy array or torch tensor, got {type(img).__name__}."
            )
        return 1 - img if self.probabilities else -img


class ReverseLabeld(MapTransform):
    """Dictionary version of :class:`ReverseLabel`: reverse the training targets of an RFNA network.

    Args:
        keys: keys of the labels to reverse.
        check_range: raise a ``ValueError`` for values outside [0, 1]. Defaults to True.
        allow_missing_keys: do not raise when a key is missing. Defaults to False.
    """

    backend = ReverseLabel.backend

    def __init__(
        self, keys: KeysCollection, check_range: bool = True, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reverser = ReverseLabel(check_range=check_range)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.reverser(d[key])
        return d


class UnreverseLogitsd(MapTransform):
    """Dictionary version of :class:`UnreverseLogits`: a post-transform for RFNA predictions.

    Args:
        keys: keys of the predictions (e.g. ``"pred"``).
        probabilities: the predictions are probabilities rather than logits. Defaults to False.
        allow_missing_keys: do not raise when a key is missing. Defaults to False.
    """

    backend = UnreverseLogits.backend

    def __init__(
        self, keys: KeysCollection, probabilities: bool = False, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.unreverser = UnreverseLogits(probabilities=probabilities)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.unreverser(d[key])
        return d


ReverseLabelD = ReverseLabelDict = ReverseLabeld
UnreverseLogitsD = UnreverseLogitsDict = UnreverseLogitsd
