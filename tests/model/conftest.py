"""Fixtures for the model tests: a tiny synthetic classification set and a trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepp.model.train import TrainResult, fit
from facepp.vision.align import PreprocessConfig
from tests.helpers.model import SIZE, tiny_config


@pytest.fixture(scope="session")
def tiny_set() -> tuple[np.ndarray, np.ndarray]:
    """4 classes x 12 crops (32x32): a class-specific pattern plus noise."""
    rng = np.random.default_rng(7)
    patterns = rng.integers(0, 256, size=(4, SIZE, SIZE, 3))
    labels = np.repeat(np.arange(4), 12)
    noise = rng.normal(0, 25, size=(len(labels), SIZE, SIZE, 3))
    crops = np.clip(patterns[labels] + noise, 0, 255).astype(np.uint8)
    return crops, labels


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_set: tuple[np.ndarray, np.ndarray]) -> TrainResult:
    crops, labels = tiny_set
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return fit(crops, labels, config=tiny_config(), preprocessing=PreprocessConfig(input_size=SIZE), checkpoint_path=path, progress=False)


@pytest.fixture()
def checkpoint_copy(trained: TrainResult, tmp_path: Path) -> Path:
    target = tmp_path / "copy.pt"
    target.write_bytes(trained.checkpoint.read_bytes())
    return target
