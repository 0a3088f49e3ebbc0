"""Fixtures for the vision tests: real face images and non-face images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepp.data.images import read_image


@pytest.fixture(scope="module")
def orl_face(data_root: Path) -> np.ndarray:
    """A 92x112 ORL tight crop (grey, replicated to RGB)."""
    return read_image(data_root / "orl" / "s1" / "1.pgm")


@pytest.fixture(scope="module")
def lfw_face(data_root: Path) -> np.ndarray:
    """A 250x250 deep-funneled LFW image."""
    return read_image(data_root / "lfw" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")


@pytest.fixture()
def noise_image(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
