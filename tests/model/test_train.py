"""Training smoke runs: the loss improves, resume continues, bad inputs are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepp.errors import ConfigError
from facepp.model.train import TrainResult, fit, learning_rate
from facepp.vision.align import PreprocessConfig

from .conftest import SIZE, tiny_config


def test_loss_improves(trained: TrainResult) -> None:
    losses = [h.loss for h in trained.history]
    assert len(losses) == 3 and trained.finished
    assert losses[-1] < losses[0]


def test_resume_continues_where_it_stopped(tmp_path: Path, tiny_set: tuple[np.ndarray, np.ndarray]) -> None:
    crops, labels = tiny_set
    path = tmp_path / "run.pt"
    pre = PreprocessConfig(input_size=SIZE)
    first = fit(crops, labels, config=tiny_config(epochs=1), preprocessing=pre, checkpoint_path=path, progress=False)
    assert first.epochs_done == 1
    second = fit(crops, labels, config=tiny_config(epochs=2), preprocessing=pre, checkpoint_path=path, resume=True, progress=False)
    assert second.epochs_done == 2 and len(second.history) == 1


def test_bad_inputs(tmp_path: Path, tiny_set: tuple[np.ndarray, np.ndarray]) -> None:
    crops, labels = tiny_set
    with pytest.raises(ConfigError, match="uint8"):
        fit(crops.astype(np.float32), labels, config=tiny_config(), preprocessing=PreprocessConfig(input_size=SIZE),
            checkpoint_path=tmp_path / "x.pt", progress=False)
    with pytest.raises(ConfigError):
        tiny_config(epochs=0)


def test_learning_rate_schedule() -> None:
    assert learning_rate(1.0, 0.0, 0.1) == pytest.approx(0.01)
    assert learning_rate(1.0, 0.1, 0.1) == pytest.approx(1.0)
    assert learning_rate(1.0, 1.0, 0.1) == pytest.approx(0.0)


def test_fine_tune_init_checks_architecture(trained: TrainResult, tmp_path: Path, tiny_set: tuple[np.ndarray, np.ndarray]) -> None:
    from facepp.errors import CheckpointError

    crops, labels = tiny_set
    pre = PreprocessConfig(input_size=SIZE)
    tuned = fit(crops[:32], labels[:32] // 2, config=tiny_config(epochs=1), preprocessing=pre,
                checkpoint_path=tmp_path / "ft.pt", init_checkpoint=trained.checkpoint, progress=False)
    assert tuned.epochs_done == 1
    with pytest.raises(CheckpointError, match="architecture"):
        fit(crops, labels, config=tiny_config(embedding_dim=8), preprocessing=pre,
            checkpoint_path=tmp_path / "bad.pt", init_checkpoint=trained.checkpoint, progress=False)
