"""Seeded, stable splits with the papers' exact sizes (fake id lists of the real dataset sizes)."""
from __future__ import annotations

import json
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monai_attn.data import (
    ADAPTERS,
    DSB2018,
    ISIC2018,
    ISLES2018,
    BraTS2018,
    kfold_assign,
    split_by_fractions,
    stable_order,
    write_json_atomic,
)
from monai_attn.data.dsb2018 import DSB_FRACTIONS
from monai_attn.data.isic2018 import ISIC_FRACTIONS
from monai_attn.data.isles2018 import ISLES_FRACTIONS

ISIC_IDS = [f"ISIC_{i:07d}" for i in range(2594)]
DSB_IDS = [f"{i:064x}" for i in range(670)]
BRATS_IDS = [f"Brats18_TCIA0{i // 30}_{i:03d}_1" for i in range(210)]
ISLES_IDS = [f"case_{i}" for i in range(1, 95)]


def _sizes(parts):
    return {k: len(v) for k, v in parts.items()}


def test_isic_split_sizes_are_the_papers():
    parts = split_by_fractions(ISIC_IDS, ISIC_FRACTIONS, seed=0)
    assert _sizes(parts) == {"training": 1815, "validation": 259, "test": 520}
    assert set().union(*parts.values()) == set(ISIC_IDS)


def test_dsb_split_sizes_are_the_papers():
    parts = split_by_fractions(DSB_IDS, DSB_FRACTIONS, seed=0)
    assert _sizes(parts) == {"training": 540, "validation": 130}


def test_isles_split_is_07_01_02_of_94():
    parts = split_by_fractions(ISLES_IDS, ISLES_FRACTIONS, seed=0)
    assert _sizes(parts) == {"training": 65, "validation": 9, "test": 20}


def test_brats_five_folds_of_210():
    folds = kfold_assign(BRATS_IDS, 5, seed=0)
    counts = [list(folds.values()).count(k) for k in range(5)]
    assert counts == [42] * 5
    assert set(folds) == set(BRATS_IDS)


def test_adapter_split_methods_match(tmp_path):
    # the adapters' assign_splits use the same protocol (no file system needed beyond the class)
    assert _sizes(ISIC2018.assign_splits(None, ISIC_IDS, 0, None)) == {"training": 1815, "validation": 259, "test": 520}
    assert _sizes(DSB2018.assign_splits(None, DSB_IDS, 0, None)) == {"training": 540, "validation": 130, "test": 0}
    assert _sizes(ISLES2018.assign_splits(None, ISLES_IDS, 0, None)) == {"training": 65, "validation": 9, "test": 20}
    b = BraTS2018.assign_splits(BraTS2018.__new__(BraTS2018), BRATS_IDS, 0, None)
    assert len(b["training"]) == 210 and sorted(set(b["fold"].values())) == [0, 1, 2, 3, 4]
    assert set(ADAPTERS) == {"isic2018", "dsb2018", "brats2018", "isles2018"}


def test_split_independent_of_listing_order_and_seeded():
    shuffled = ISIC_IDS[:]
    random.Random(123).shuffle(shuffled)
    a = split_by_fractions(ISIC_IDS, ISIC_FRACTIONS, seed=7)
    assert a == split_by_fractions(shuffled, ISIC_FRACTIONS, seed=7)
    assert a != split_by_fractions(ISIC_IDS, ISIC_FRACTIONS, seed=8)
    assert kfold_assign(BRATS_IDS, 5, 3) == kfold_assign(BRATS_IDS[::-1], 5, 3)


def test_split_is_pinned():
    # the order is sha256-based: pin a few values so that a change of algorithm is noticed
    order = stable_order(["a", "b", "c", "d"], seed=0)
    assert sorted(order) == ["a", "b", "c", "d"]
    assert order == stable_order(["d", "c", "b", "a"], seed=0)
    assert stable_order(ISLES_IDS, 0)[:3] == stable_order(list(reversed(ISLES_IDS)), 0)[:3]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 400), seed=st.integers(0, 10**6))
def test_split_partitions_any_size(n, seed):
    ids = [f"id{i}" for i in range(n)]
    parts = split_by_fractions(ids, {"training": 0.7, "validation": 0.1, "test": 0.2}, seed)
    flat = [i for p in parts.values() for i in p]
    assert sorted(flat) == sorted(ids)
    assert len(parts["training"]) == (7 * n) // 10 and len(parts["validation"]) == n // 10


def test_split_errors():
    with pytest.raises(ValueError, match="duplicate"):
        split_by_fractions(["a", "a"], {"training": 1})
    with pytest.raises(ValueError, match="sum to at most 1"):
        split_by_fractions(["a"], {"training": 0.8, "validation": 0.5})
    with pytest.raises(ValueError, match="folds"):
        kfold_assign(["a", "b"], 5)
    assert split_by_fractions(["a", "b", "c"], {"training": Fraction(2, 3), "validation": Fraction(1, 3)}) != {}


def test_write_json_atomic(tmp_path):
    out = tmp_path / "sub" / "d.json"
    write_json_atomic({"training": [{"image": "x"}]}, out)
    write_json_atomic({"training": [{"image": "y"}]}, out)
    assert json.loads(out.read_text()) == {"training": [{"image": "y"}]}
    assert [p.name for p in out.parent.iterdir()] == ["d.json"]  # no temporary left over

    class Boom:
        pass

    with pytest.raises(TypeError):
        write_json_atomic({"x": Boom()}, out)
    assert json.loads(out.read_text()) == {"training": [{"image": "y"}]}  # old content intact
    assert [p.name for p in out.parent.iterdir()] == ["d.json"]
