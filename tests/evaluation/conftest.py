"""Fixtures for the evaluation tests: hand-made score lists with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture()
def separable() -> tuple[np.ndarray, np.ndarray]:
    """Genuine scores all above impostor scores."""
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    return scores, labels


@pytest.fixture()
def overlapping() -> tuple[np.ndarray, np.ndarray]:
    """One impostor (0.75) above two genuine scores (0.7, 0.5)."""
    scores = np.array([0.9, 0.8, 0.7, 0.5, 0.75, 0.4, 0.3, 0.2])
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    return scores, labels


@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of an untrained 32-px network (enough to exercise the CLI end to end)."""

    import torch

    from facepp.model import build_backbone, save_checkpoint
    from facepp.vision import PreprocessConfig, preset_for

    torch.manual_seed(0)
    model = build_backbone("mobilefacenet", embedding_dim=32, input_size=32)
    path = tmp_path_factory.mktemp("cli") / "untrained.pt"
    metadata = {
        "architecture": "mobilefacenet",
        "embedding_dim": 32,
        "input_size": 32,
        "preprocessing": preset_for("orl", input_size=32).to_dict(),
        "inference_preprocessing": PreprocessConfig(input_size=32).to_dict(),
        "threshold": None,
    }
    return save_checkpoint(path, model_state=model.state_dict(), metadata=metadata)
