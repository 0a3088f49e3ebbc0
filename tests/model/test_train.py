"""Training smoke runs: the loss improves, resume continues, bad inputs are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepp.errors import ConfigError
from facepp.model.train import EpochStats, TrainConfig, TrainResult, fit, learning_rate
from facepp.vision.align import PreprocessConfig

from tests.helpers.model import SIZE, tiny_config


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


def test_weight_average_is_published_and_survives_resume(tmp_path: Path, tiny_set: tuple[np.ndarray, np.ndarray]) -> None:
    import torch

    from facepp.model.checkpoint import load_checkpoint

    crops, labels = tiny_set
    pre = PreprocessConfig(input_size=SIZE)
    straight = tmp_path / "straight.pt"
    fit(crops, labels, config=tiny_config(epochs=2, ema=0.9), preprocessing=pre, checkpoint_path=straight, progress=False)
    payload = load_checkpoint(straight)
    published, raw = payload["model"], payload["raw_model"]
    assert any(not torch.equal(published[k], raw[k]) for k in published if published[k].is_floating_point())

    def crash_in_epoch_2(stats: EpochStats, model: object) -> None:
        if stats.epoch == 2:
            raise KeyboardInterrupt

    resumed = tmp_path / "resumed.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(crops, labels, config=tiny_config(epochs=2, ema=0.9), preprocessing=pre, checkpoint_path=resumed,
            callbacks=[crash_in_epoch_2], progress=False)
    fit(crops, labels, config=tiny_config(epochs=2, ema=0.9), preprocessing=pre, checkpoint_path=resumed, resume=True, progress=False)
    again = load_checkpoint(resumed)
    for key, value in published.items():
        assert torch.allclose(again["model"][key].float(), value.float(), atol=1e-6), key


def test_ema_decay_must_be_below_one() -> None:
    with pytest.raises(ConfigError, match="ema"):
        tiny_config(ema=1.0)


def test_augment_presets_are_valid_and_keep_range() -> None:
    import torch

    from facepp.model.augment import AUGMENT_PRESETS, augment_batch

    x = torch.rand(8, 3, SIZE, SIZE) * 2 - 1
    for name, preset in AUGMENT_PRESETS.items():
        out = augment_batch(x, preset, torch.Generator().manual_seed(0))
        assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1, name
    assert torch.allclose(augment_batch(x, AUGMENT_PRESETS["none"], torch.Generator().manual_seed(0)), x, atol=1e-5)


@pytest.mark.parametrize(("trained_mode", "inference_mode"), [("center", "landmarks"), ("detect", "detect"), ("landmarks", "landmarks")])
def test_inference_preprocessing_follows_the_training_crops(trained_mode: str, inference_mode: str) -> None:
    """Photos are aligned by landmarks onto the training framing, unless the model was
    trained on Haar crops. Inference picks the largest face, whatever training did."""
    from facepp.model.backbone import build_backbone
    from facepp.model.train import model_metadata
    from facepp.vision.align import DEFAULT_TTA_SCALES, preset_for

    preprocessing = preset_for("lfw", input_size=32, mode=trained_mode)
    meta = model_metadata(build_backbone("mobilefacenet-tiny", input_size=32), config=TrainConfig(), preprocessing=preprocessing)
    inference = meta["inference_preprocessing"]
    assert inference["mode"] == inference_mode and inference["pick"] == "largest"
    assert inference["fallback_center"] is False and tuple(inference["tta_scales"]) == DEFAULT_TTA_SCALES
    assert meta["preprocessing"]["pick"] == "central"
