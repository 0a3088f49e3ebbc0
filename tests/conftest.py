"""Shared fixtures: dataset location and seeded randomness."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The datasets folder (``$FACEPP_DATA``); skips the test when it is unset or absent."""
    value = os.environ.get("FACEPP_DATA")
    if not value:
        pytest.skip("FACEPP_DATA is not set: point it at the datasets folder (CI uses ../shared/data)")
    root = Path(value)
    if not root.is_dir():
        pytest.skip(f"FACEPP_DATA={value} is not a directory")
    return root


@pytest.fixture()
def rng() -> np.random.Generator:
    """A seeded generator, so every test is reproducible."""
    return np.random.default_rng(1234)
