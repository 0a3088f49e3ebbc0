"""Layout detection and loading (synthetic folders and the real datasets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepp.data.datasets import detect_layout, load_dataset
from facepp.errors import DatasetError


def test_layouts_are_detected(lfw_like: Path, orl_like: Path) -> None:
    assert detect_layout(lfw_like) == "lfw"
    assert detect_layout(orl_like) == "orl"


def test_orl_natural_order_and_labels(orl_like: Path) -> None:
    ds = load_dataset(orl_like)
    assert ds.identities[:3] == ("s1", "s2", "s3") and ds.identities[-1] == "s12"
    assert len(ds) == 36
    assert [s.label for s in ds.images_of("s10")] == [9, 9, 9]


def test_min_images_and_subset(lfw_like: Path) -> None:
    ds = load_dataset(lfw_like, min_images=2)
    assert set(ds.identities) == {"Alice_Aa", "Carol_Cc", "Dan_Dd", "Eve_Ee"}
    sub = ds.subset(["Eve_Ee", "Alice_Aa"])
    assert sub.identities == ("Eve_Ee", "Alice_Aa") and [s.label for s in sub.samples] == [0, 0, 1, 1, 1]
    with pytest.raises(DatasetError, match="not in dataset"):
        ds.subset(["Nobody"])


def test_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no identity sub-folders"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "empty" / "a").mkdir()
    (tmp_path / "empty" / "a" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="no images"):
        load_dataset(tmp_path / "empty")


def test_real_datasets(data_root: Path) -> None:
    orl = load_dataset(data_root / "orl")
    assert orl.layout == "orl" and len(orl.identities) == 40 and len(orl) == 400
    assert detect_layout(data_root / "lfw") == "lfw"
