"""Checkpoints: atomic round trip, metadata, refusal of corrupt, tampered or foreign files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from facepp.errors import CheckpointError, NoFaceError
from facepp.model import Embedder, load_checkpoint, update_metadata
from facepp.model.train import TrainResult


def test_round_trip_gives_same_embeddings(trained: TrainResult, tiny_set: tuple[np.ndarray, np.ndarray]) -> None:
    crops, _ = tiny_set
    payload = load_checkpoint(trained.checkpoint)
    meta = payload["metadata"]
    assert meta["architecture"] == "mobilefacenet" and meta["embedding_dim"] == 16 and meta["input_size"] == 32
    assert meta["preprocessing"]["input_size"] == 32 and meta["inference_preprocessing"]["mode"] == "detect"
    assert {"head", "optimizer", "train_state"} <= set(payload)
    a = Embedder.from_checkpoint(trained.checkpoint).embed_crops(crops[:5])
    b = Embedder.from_checkpoint(trained.checkpoint).embed_crops(crops[:5])
    assert a.shape == (5, 16) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)
    assert not list(trained.checkpoint.parent.glob("*.tmp"))


def test_update_metadata_threshold(checkpoint_copy: Path) -> None:
    assert Embedder.from_checkpoint(checkpoint_copy).threshold is None
    update_metadata(checkpoint_copy, {"threshold": 0.42, "thresholds": {"far_0.001": 0.42}})
    assert Embedder.from_checkpoint(checkpoint_copy).threshold == pytest.approx(0.42)


def test_truncated_checkpoint_is_refused(checkpoint_copy: Path) -> None:
    data = checkpoint_copy.read_bytes()
    checkpoint_copy.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_checkpoint(checkpoint_copy)


def test_tampered_weights_are_refused(checkpoint_copy: Path) -> None:
    payload = torch.load(checkpoint_copy, weights_only=True)
    name = next(iter(payload["model"]))
    payload["model"][name] = payload["model"][name] + 0.5
    torch.save(payload, checkpoint_copy)
    with pytest.raises(CheckpointError, match="digest mismatch"):
        Embedder.from_checkpoint(checkpoint_copy)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("kind", ["pickle-gadget", "foreign-dict", "missing", "text"])
def test_foreign_files_are_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bad.pt"
    if kind == "pickle-gadget":
        torch.save({"format": "facepp-checkpoint", "evil": _Evil()}, path)
    elif kind == "foreign-dict":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    elif kind == "text":
        path.write_bytes(pickle.dumps("hello", protocol=2) + b"junk")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_embed_raw_images(trained: TrainResult, data_root: Path) -> None:
    from facepp.data.images import read_image

    embedder = Embedder.from_checkpoint(trained.checkpoint)
    vectors = embedder.embed([read_image(data_root / "orl" / "s2" / "1.pgm")])
    assert vectors.shape == (1, 16)
    with pytest.raises(NoFaceError):
        embedder.embed([np.full((100, 100, 3), 200, np.uint8)])


def test_views_are_summed_before_normalising(trained: TrainResult, tiny_set: tuple[np.ndarray, np.ndarray]) -> None:
    crops, _ = tiny_set
    embedder = Embedder.from_checkpoint(trained.checkpoint)
    a, b = embedder.embed_crops(crops[:5]), embedder.embed_crops(crops[5:10])
    both = embedder.embed_crops(np.stack([crops[:5], crops[5:10]], axis=1))
    expected = (a + b) / np.linalg.norm(a + b, axis=1, keepdims=True)
    np.testing.assert_allclose(both, expected, atol=1e-5)
    np.testing.assert_allclose(embedder.embed_crops(crops[:5, None]), a, atol=1e-6)


def test_new_checkpoints_infer_at_the_default_scales(trained: TrainResult) -> None:
    from facepp.vision.align import DEFAULT_TTA_SCALES

    embedder = Embedder.from_checkpoint(trained.checkpoint)
    assert embedder.preprocessor.config.tta_scales == DEFAULT_TTA_SCALES
    assert list(load_checkpoint(trained.checkpoint)["metadata"]["preprocessing"]["tta_scales"]) == [1.0]
