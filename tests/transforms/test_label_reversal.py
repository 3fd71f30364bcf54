"""Label reversal for RFNA (Xu et al., BMVC 2020): reversed training targets, un-reversed predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Activationsd, AsDiscreted, Compose

from monai_attn.transforms import (
    ReverseLabel,
    ReverseLabelD,
    ReverseLabeld,
    UnreverseLogits,
    UnreverseLogitsd,
    UnreverseLogitsDict,
)


def test_reverse_label_numpy_torch_bool_and_metatensor():
    label = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    out = ReverseLabel()(label)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[1, 0], [0, 1]])
    np.testing.assert_array_equal(ReverseLabel()(label.astype(bool)), [[True, False], [False, True]])
    t = torch.tensor([[0.0, 1.0, 0.25]])
    torch.testing.assert_close(ReverseLabel()(t), torch.tensor([[1.0, 0.0, 0.75]]))  # soft labels too
    assert torch.equal(ReverseLabel()(torch.tensor([True, False])), torch.tensor([False, True]))
    meta = MetaTensor(torch.tensor([[[0.0, 1.0]]]), affine=torch.diag(torch.tensor([2.0, 2.0, 1.0, 1.0])))
    reversed_meta = ReverseLabel()(meta)
    assert isinstance(reversed_meta, MetaTensor)
    assert torch.equal(reversed_meta.affine, meta.affine)
    assert torch.equal(reversed_meta.as_tensor(), torch.tensor([[[1.0, 0.0]]]))
    assert torch.equal(ReverseLabel()(ReverseLabel()(t)), t)  # an involution


def test_reverse_label_rejects_non_binary_labels():
    with pytest.raises(ValueError, match=r"values in \[0, 1\], got values in \[0.0, 4.0\]"):
        ReverseLabel()(np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="numpy array or torch tensor"):
        ReverseLabel()([0, 1])
    np.testing.assert_array_equal(ReverseLabel(check_range=False)(np.array([0, 2])), [1, -1])


def test_dictionary_versions_and_aliases():
    data = {"image": torch.ones(1, 2, 2), "label": torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])}
    out = ReverseLabeld("label")(data)
    assert torch.equal(out["label"], torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]))
    assert out["image"] is data["image"] and torch.equal(data["label"][0, 0], torch.tensor([0.0, 1.0]))
    assert ReverseLabelD is ReverseLabeld and UnreverseLogitsDict is UnreverseLogitsd
    with pytest.raises(KeyError):
        ReverseLabeld("mask")(data)
    assert ReverseLabeld("mask", allow_missing_keys=True)(data).keys() == data.keys()


def test_unreverse_logits_gives_foreground_logits_or_probabilities():
    z = torch.randn(2, 1, 4, 4)  # logits of the reversed (background) class
    fg = UnreverseLogits()(z)
    torch.testing.assert_close(torch.sigmoid(fg), 1 - torch.sigmoid(z))
    p = torch.sigmoid(z)
    torch.testing.assert_close(UnreverseLogits(probabilities=True)(p), 1 - p)
    np.testing.assert_allclose(UnreverseLogits()(np.array([1.5, -2.0])), [-1.5, 2.0])
    with pytest.raises(ValueError, match="numpy array or torch tensor"):
        UnreverseLogits()(1.0)


def test_post_transforms_hide_the_reversal_from_evaluation():
    """A reversed-label model followed by UnreverseLogitsd gives the same discrete foreground as a
    normal model, so the evaluation chain (sigmoid, threshold, metrics) is unchanged."""
    label = (torch.rand(1, 1, 8, 8) > 0.5).float()
    reversed_target = ReverseLabeld("label")({"label": label})["label"]
    reversed_logits = 4 * (2 * reversed_target - 1)  # a perfect RFNA: confident on the reversed target
    evaluation = Compose([Activationsd("pred", sigmoid=True), AsDiscreted("pred", threshold=0.5)])
    post = Compose([UnreverseLogitsd("pred"), evaluation])
    assert torch.equal(post({"pred": reversed_logits[0]})["pred"], label[0])
    post_probabilities = Compose(
        [
            Activationsd("pred", sigmoid=True),
            UnreverseLogitsd("pred", probabilities=True),
            AsDiscreted("pred", threshold=0.5),
        ]
    )
    assert torch.equal(post_probabilities({"pred": reversed_logits[0]})["pred"], label[0])
