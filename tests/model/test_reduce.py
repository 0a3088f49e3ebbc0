"""facepp reduce: a PCA of a model's outputs folded into its last layers gives the projected embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from facepp.cli import main
from facepp.errors import ConfigError
from facepp.model import Embedder, build_backbone, load_checkpoint, save_checkpoint
from facepp.model.reduce import fit_projection, fold_projection, training_embeddings
from facepp.vision import PreprocessConfig, preset_for
from facepp.vision.align import to_tensor
from training.participant.local import initial_weights
from training.participant.spec import TrainingSpec, fine_tuning

SIZE = 32


def _untrained(arch: str = "mobilefacenet-tiny", dim: int = 32) -> nn.Module:
    """A seeded network whose tail is not the identity: BatchNorm statistics and affine drawn at random."""
    torch.manual_seed(0)
    model = build_backbone(arch, embedding_dim=dim, input_size=SIZE)
    with torch.no_grad():
        model.bn.running_mean.normal_(0, 0.3)
        model.bn.running_var.uniform_(0.2, 3.0)
        model.bn.weight.uniform_(0.5, 2.0)
        model.bn.bias.normal_(0, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32-d checkpoint cropping ORL's centre, calibrated, with two validation identities."""
    metadata = {
        "architecture": "mobilefacenet-tiny", "embedding_dim": 32, "input_size": SIZE,
        "preprocessing": preset_for("orl", input_size=SIZE).to_dict(),
        "threshold": 0.5, "thresholds": {"far_0.01": 0.5}, "calibration": {"far": 0.01},
        "validation_identities": ["s39", "s40"],
    }
    path = tmp_path_factory.mktemp("reduce") / "source.pt"
    return save_checkpoint(path, model_state=_untrained().state_dict(), metadata=metadata)


def _standardised(model: nn.Module, crops: np.ndarray) -> nn.Module:
    """``model`` with its last BatchNorm's statistics measured on ``crops``, as training leaves them:
    the un-normalised outputs then vary about as much as they average, as a trained model's do."""
    model.bn.train()
    model.bn.momentum = 1.0
    with torch.no_grad():
        model(to_tensor(crops.reshape(-1, SIZE, SIZE, 3)))
    return model.eval()


def test_folded_model_embeds_the_projection_of_each_view(rng: np.random.Generator) -> None:
    """Each view's output is normalised before the views are summed, so the fold must hold per view."""
    crops = rng.integers(0, 256, size=(48, 2, SIZE, SIZE, 3), dtype=np.uint8)  # two test-time views per face
    source = Embedder(_standardised(_untrained(), crops), PreprocessConfig(input_size=SIZE))
    units = source.view_outputs(crops).numpy()  # (faces, 2 views x 2 mirrors, 32), unit norm
    assert units.shape == (48, 4, 32)
    projection = fit_projection(units.reshape(-1, 32), 12)
    reduced = Embedder(fold_projection(source.model, projection), PreprocessConfig(input_size=SIZE))

    views = projection.apply(units)  # project each view's embedding, then compare as the embedder does
    views /= np.linalg.norm(views, axis=2, keepdims=True)
    expected = views.sum(axis=1)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = reduced.embed_crops(crops)
    assert got.shape == (48, 12)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    raw = source.view_outputs(crops, raw=True).numpy()
    np.testing.assert_allclose(reduced.view_outputs(crops, raw=True).numpy(), projection.apply(raw), atol=1e-4)
    assert 0.0 < projection.explained_variance < 1.0


def test_projection_keeps_the_top_components(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2000, 6)) * np.array([5.0, 3.0, 1.0, 0.1, 0.1, 0.1])
    projection = fit_projection(x, 2)
    np.testing.assert_allclose(np.abs(projection.components), np.eye(6)[:2], atol=0.05)
    np.testing.assert_allclose(projection.components @ projection.components.T, np.eye(2), atol=1e-12)
    assert projection.explained_variance == pytest.approx(34 / 35.03, abs=0.01)
    assert projection.apply(x).shape == (2000, 2)


def test_bad_dimensions_and_models_are_refused(rng: np.random.Generator) -> None:
    x = rng.standard_normal((50, 8))
    for dim in (0, 9):
        with pytest.raises(ConfigError, match="principal components"):
            fit_projection(x, dim)

    class Pooled(nn.Module):  # a network ending in global pooling, no GDC tail
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)

    with pytest.raises(ConfigError, match="does not end in a linear `embed` layer and a BatchNorm1d `bn`"):
        fold_projection(Pooled(), fit_projection(x, 4))
    with pytest.raises(ConfigError, match="takes 8-d embeddings, the model gives 32"):
        fold_projection(_untrained(), fit_projection(x, 4))
    with pytest.raises(ConfigError, match="more than 8 fitted embeddings"):
        fit_projection(x[:8], 8)


def test_reduce_command_writes_a_plain_smaller_checkpoint(checkpoint: Path, data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "m8.pt"
    argv = ["-q", "reduce", "--model", str(checkpoint), "--dim", "8", "--data", str(data_root / "orl"), "--out", str(out),
            "--threads", "1", "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    payload, source = load_checkpoint(out), load_checkpoint(checkpoint)
    meta = payload["metadata"]
    assert meta["embedding_dim"] == 8 and meta["validation_identities"] == ["s39", "s40"]
    assert not {"threshold", "thresholds", "calibration"} & set(meta)  # 32-d thresholds do not hold for 8-d scores
    reduction = meta["reduction"]
    assert reduction["source_digest"] == source["digest"] and reduction["source_dim"] == 32 and reduction["dim"] == 8
    assert reduction["identities"] == 38 and reduction["images"] == 380 and reduction["excluded_validation_identities"] == 2
    assert reduction["fitted_embeddings"] == 2 * 380 and 0 < reduction["explained_variance"] <= 1
    assert meta["parameters"] == sum(p.numel() for p in build_backbone("mobilefacenet-tiny", embedding_dim=8,
                                                                          input_size=SIZE).parameters())

    # The reduced file outputs the projection of the source model's outputs, fitted on the same training faces.
    big = Embedder.from_checkpoint(checkpoint)
    embeddings, counts = training_embeddings(big, data_root / "orl", exclude=("s39", "s40"), cache_dir=tmp_path / "cache")
    assert counts == {"identities": 38, "images": 380}
    projection = fit_projection(embeddings, 8)
    assert projection.explained_variance == pytest.approx(reduction["explained_variance"], abs=1e-6)
    crops, ok = big.for_dataset("orl").crops_of([data_root / "orl" / "s40" / f"{i}.pgm" for i in (1, 2)])
    small = Embedder.from_checkpoint(out).for_dataset("orl")
    np.testing.assert_allclose(small.view_outputs(crops, raw=True).numpy(),
                               projection.apply(big.view_outputs(crops, raw=True).numpy()), atol=1e-4)
    faces = [str(data_root / "orl" / "s40" / "1.pgm")]
    assert main(["-q", "embed", "--model", str(out), "--mode", "center", *faces, "--out", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["dim"] == 8
    spec = fine_tuning(TrainingSpec(total_rounds=1, participants=("a", "b"), seed=0), out)  # federation --init
    assert spec.train.embedding_dim == 8 and np.isfinite(initial_weights(spec.train, spec.input_size, out)).all()


@pytest.mark.parametrize("dim, message", [("32", "--dim must be between 1 and 31 (the source model is 32-d), got 32"),
                                          ("0", "--dim must be between 1 and 31 (the source model is 32-d), got 0"),
                                          ("4", "embedding_dim must be >= 8, got 4")])
def test_reduce_command_refuses_bad_dims_in_one_line(checkpoint: Path, data_root: Path, tmp_path: Path, dim: str,
                                                     message: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.pt"
    assert main(["reduce", "--model", str(checkpoint), "--dim", dim, "--data", str(data_root / "orl"), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"facepp: error: {message}"
    assert not out.exists()
