"""Federated fine-tuning: a federation starts from a checkpoint and keeps its architecture and metadata."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facepp.crypto.paillier.encrypted_vector import EncryptedVector
from facepp.crypto.paillier.secret_cipher import VectorCipher
from facepp.crypto.paillier.secret_key import SecretKey
from facepp.model import build_backbone, save_checkpoint
from facepp.model.checkpoint import load_checkpoint
from facepp.model.train import TrainConfig
from facepp.models import shipped_model
from facepp.vision.align import preset_for, to_tensor
from training.cli import main as federation_main
from training.fedavg import average_from_sum
from training.participant.local import build_model, flat_weights, initial_weights
from training.participant.spec import TrainingSpec
from training.simulation.simulate import SimulationConfig, simulate


def _checkpoint(path: Path) -> Path:
    """A small landmark-crop checkpoint standing in for a pretrained model."""
    torch.manual_seed(5)
    model = build_backbone("mobilefacenet-tiny", embedding_dim=32, input_size=32)
    pre = preset_for("orl", input_size=32, mode="landmarks")
    meta = {"architecture": "mobilefacenet-tiny", "embedding_dim": 32, "input_size": 32, "preprocessing": pre.to_dict(),
            "threshold": None, "thresholds": {}}
    return save_checkpoint(path, model_state=model.state_dict(), metadata=meta)


def _decrypt(federation: Path, name: str) -> np.ndarray:
    secret = SecretKey.load(federation / "participants" / name / "secret_key.json")
    vector = EncryptedVector.from_bytes((federation / "server" / "state" / "models" / "model-00000.bin").read_bytes(),
                                        secret.public_key)
    with VectorCipher(secret, vector.plan, workers=1) as cipher:
        return average_from_sum(cipher.decrypt(vector))


def test_initial_weights_come_from_the_checkpoint(tmp_path: Path) -> None:
    init = _checkpoint(tmp_path / "init.pt")
    config = TrainConfig(backbone="mobilefacenet-tiny", embedding_dim=32)
    expected = build_backbone("mobilefacenet-tiny", embedding_dim=32, input_size=32)
    expected.load_state_dict(load_checkpoint(init)["model"])
    assert np.array_equal(initial_weights(config, 32, init), flat_weights(expected))
    assert not np.array_equal(initial_weights(config, 32), flat_weights(expected))
    from facepp.errors import CheckpointError

    with pytest.raises(CheckpointError, match="architecture"):
        initial_weights(TrainConfig(backbone="mobilefacenet", embedding_dim=32), 32, init)


@pytest.mark.slow
def test_encrypted_fine_tuning_keeps_the_architecture_and_crop(data_root: Path, tmp_path: Path) -> None:
    init = _checkpoint(tmp_path / "init.pt")
    report = simulate(SimulationConfig(data=data_root / "orl", participants=2, rounds=1, local_epochs=1, init=init,
                                       train=TrainConfig(batch_size=32, lr=1e-3, num_threads=1),
                                       workdir=tmp_path / "sim"))
    assert report["rounds"] == 1 and not report["plaintext_leak_found"]
    final = load_checkpoint(tmp_path / "sim" / "federation" / "participants" / "org1" / "global_model.pt")["metadata"]
    assert (final["architecture"], final["embedding_dim"], final["input_size"]) == ("mobilefacenet-tiny", 32, 32)
    assert final["preprocessing"]["mode"] == "landmarks" and final["inference_preprocessing"]["mode"] == "landmarks"
    assert final["federation"]["init"] == {"name": "init.pt", "sha256": hashlib.sha256(init.read_bytes()).hexdigest()}


@pytest.mark.slow
def test_the_federation_starts_from_the_shipped_model_by_default(tmp_path: Path) -> None:
    assert federation_main(["-q", "--dir", str(tmp_path / "fed"), "--participants", "a,b", "--rounds", "1"]) == 0
    spec = TrainingSpec.from_json((tmp_path / "fed" / "participants" / "a" / "training.json").read_text())
    shipped = load_checkpoint(shipped_model())
    meta = shipped["metadata"]
    assert (spec.train.backbone, spec.train.embedding_dim, spec.input_size) == (
        meta["architecture"], meta["embedding_dim"], meta["input_size"])
    assert spec.mode == meta["preprocessing"]["mode"] and spec.init is not None
    assert spec.init["sha256"] == hashlib.sha256(shipped_model().read_bytes()).hexdigest()
    model = build_model(spec.train, spec.input_size)
    model.load_state_dict(shipped["model"])
    start = _decrypt(tmp_path / "fed", "a")
    assert np.max(np.abs(start - flat_weights(model))) < 1e-4  # the fixed-point encoding's step, no more
    assert json.loads((tmp_path / "fed" / "server" / "federation.json").read_text())  # the server got its config


def test_a_fine_tune_starts_its_private_head_from_the_class_means(tmp_path: Path) -> None:
    """Weight imprinting: before its first step, a fine-tune's head classifies the local faces
    as the starting model sees them; a from-scratch trainer keeps its random head."""
    from facepp.model import build_head
    from facepp.model.train import imprint_head
    from training.participant.local import FaceTrainer, build_model, load_flat_weights

    init = _checkpoint(tmp_path / "init.pt")
    config = TrainConfig(backbone="mobilefacenet-tiny", embedding_dim=32, batch_size=8, lr=1e-9, num_threads=1)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 6)
    crops = np.clip(rng.integers(0, 256, size=(4, 32, 32, 3))[labels] + rng.normal(0, 8, size=(24, 32, 32, 3)),
                    0, 255).astype(np.uint8)
    weights = initial_weights(config, 32, init)
    model = build_model(config, 32)
    load_flat_weights(model, weights)
    expected = build_head("cosface", embedding_dim=32, num_classes=4)
    imprint_head(expected, model, crops, labels)
    model.eval()
    with torch.no_grad():
        cosine = expected.cosine(model.forward_raw(to_tensor(crops)))
    assert (cosine.argmax(1).numpy() == labels).all()

    for imprint in (True, False):
        trainer = FaceTrainer(crops, labels, config=config, input_size=32, total_rounds=1, imprint=imprint)
        trainer.train(weights, 1)  # lr ~ 0: the head stays where it started
        assert torch.allclose(trainer.head.weight, expected.weight, atol=1e-4) is imprint


def test_a_fine_tune_keeps_the_start_models_batchnorm_statistics(tmp_path: Path) -> None:
    """A fine-tune's spec freezes BatchNorm: its running statistics come back unchanged from a
    round, the trained weights do not; a from-scratch spec updates the statistics."""
    from training.participant.local import FaceTrainer, federated_tensors
    from training.participant.spec import fine_tuning

    init = _checkpoint(tmp_path / "init.pt")
    scratch = TrainingSpec(total_rounds=1, participants=("a", "b"), seed=0,
                           train=TrainConfig(backbone="mobilefacenet-tiny", embedding_dim=32, batch_size=8, num_threads=1))
    tuned = fine_tuning(scratch, init)
    assert tuned.train.freeze_bn and not scratch.train.freeze_bn
    assert TrainingSpec.from_json(tuned.to_json()).train.freeze_bn  # the participants agree on it
    labels = np.repeat(np.arange(4), 6)
    crops = np.random.default_rng(0).integers(0, 256, size=(24, 32, 32, 3)).astype(np.uint8)
    weights = initial_weights(tuned.train, 32, init)
    stats = np.concatenate([np.full(v.numel(), name.endswith(("running_mean", "running_var")))
                            for name, v in federated_tensors(build_model(tuned.train, 32))])
    for spec in (tuned, scratch):
        trainer = FaceTrainer(crops, labels, config=spec.train, input_size=32, total_rounds=1, imprint=True)
        after = trainer.train(weights, 1).weights
        assert np.array_equal(after[stats], weights[stats]) is spec.train.freeze_bn
        assert not np.array_equal(after[~stats], weights[~stats])
