"""LFW protocol files and built pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepp.data.datasets import load_dataset
from facepp.data.protocol import build_pairs, identities_in_pairs, read_pairs, read_people
from facepp.errors import DatasetError


def test_read_pairs_with_fold_header(lfw_like: Path) -> None:
    pairs = read_pairs(lfw_like / "pairs.txt", lfw_like)
    assert [p.same for p in pairs] == [True, False, True, False]
    assert [p.fold for p in pairs] == [0, 0, 1, 1]
    assert pairs[1].path_b.name == "Bob_Bb_0001.jpg"
    assert identities_in_pairs(pairs) == {"Alice_Aa", "Bob_Bb", "Carol_Cc", "Dan_Dd", "Eve_Ee"}


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("ten\nA 1 2\n", "header"), ("1\nA 1\n", "expected 'name i j'"), ("1\nNobody_Xx 1 2\n", "missing")],
)
def test_bad_pairs_files(tmp_path: Path, lfw_like: Path, text: str, message: str) -> None:
    (tmp_path / "p.txt").write_text(text)
    with pytest.raises(DatasetError, match=message):
        read_pairs(tmp_path / "p.txt", lfw_like)


def test_real_view1_pairs_and_people(data_root: Path) -> None:
    lfw = data_root / "lfw"
    pairs = read_pairs(lfw / "pairsDevTest.txt", lfw)
    assert len(pairs) == 1000 and sum(p.same for p in pairs) == 500
    folds = np.array([p.fold for p in pairs])
    assert set(folds) == set(range(10)) and all(np.sum(folds == k) == 100 for k in range(10))
    full = read_pairs(lfw / "pairs.txt", lfw, check_exists=False)
    assert len(full) == 6000 and {p.fold for p in full} == set(range(10))
    people = read_people(lfw / "peopleDevTrain.txt")
    assert len(people) == 4038 and people[0] == ("AJ_Cook", 1)
    assert len(read_people(lfw / "people.txt")) == 5749


def test_build_pairs_balanced_and_seeded(orl_like: Path) -> None:
    ds = load_dataset(orl_like)
    a = build_pairs(ds, rng=np.random.default_rng(0))
    b = build_pairs(ds, rng=np.random.default_rng(0))
    assert a == b
    genuine = [p for p in a if p.same]
    assert len(genuine) == 12 * 3 and len(a) == 2 * len(genuine)
    assert all(p.path_a.parent != p.path_b.parent for p in a if not p.same)
    assert len({(p.path_a, p.path_b) for p in a}) == len(a)
