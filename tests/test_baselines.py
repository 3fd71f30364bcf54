"""Otsu threshold against hand-made bimodal data and the real DSB sample."""
from __future__ import annotations

import numpy as np
import pytest

from monai_attn.baselines import otsu_segment, otsu_threshold
from monai_attn.sample_data import load_dsb2018_sample


def test_two_level_image_splits_between_levels():
    img = np.array([10.0] * 70 + [200.0] * 30)
    t = otsu_threshold(img)
    assert 10 < t < 200
    assert otsu_segment(img).sum() == 30


def test_bimodal_threshold_separates_the_modes():
    rng = np.random.default_rng(0)
    low, high = rng.normal(50, 5, 5000), rng.normal(150, 5, 2000)
    t = otsu_threshold(np.concatenate([low, high]))
    # every threshold in the empty gap maximises the between-class variance; it must separate the modes
    assert low.max() <= t < high.min()


def test_constant_image_rejected():
    with pytest.raises(ValueError, match="two distinct"):
        otsu_threshold(np.ones((4, 4)))


def test_otsu_on_real_dsb_sample_is_a_reasonable_baseline():
    image, mask = load_dsb2018_sample()
    pred = otsu_segment(image).astype(bool)
    truth = mask.astype(bool)
    dice = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert 0.5 < dice < 0.99  # a real baseline, not perfect
