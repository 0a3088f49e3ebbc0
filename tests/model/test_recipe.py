"""Training-set selection keeps evaluation identities out."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepp.data.protocol import identities_in_pairs, read_pairs
from facepp.errors import DatasetError
from facepp.model.recipe import IdentitySelection, people_file_names, select_training_set


def test_lfw_training_set_is_disjoint_from_devtest_pairs(data_root: Path) -> None:
    lfw = data_root / "lfw"
    pairs_file = lfw / "pairsDevTest.txt"
    train = select_training_set(lfw, IdentitySelection(exclude_pairs=(pairs_file,)))
    test_ids = identities_in_pairs(read_pairs(pairs_file, lfw))
    assert not set(train.identities) & test_ids
    assert len(train.identities) == 5749 - len(test_ids)
    dev_train = select_training_set(lfw, IdentitySelection(include=people_file_names(lfw / "peopleDevTrain.txt"), min_images=2))
    assert not set(dev_train.identities) & test_ids and len(dev_train.identities) == 1184


def test_orl_selection_and_errors(data_root: Path) -> None:
    orl = data_root / "orl"
    train = select_training_set(orl, IdentitySelection(include=tuple(f"s{k}" for k in range(1, 31))))
    assert train.identities[-1] == "s30" and len(train) == 300
    with pytest.raises(DatasetError, match="not in"):
        select_training_set(orl, IdentitySelection(include=("s99",)))
    with pytest.raises(DatasetError, match="fewer than two"):
        select_training_set(orl, IdentitySelection(include=("s1", "s2"), exclude=("s1",)))
