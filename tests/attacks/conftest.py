"""Attack-lab fixtures: a tiny victim (32-px crops of real ORL faces, a tiny backbone) and its exact update."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from attacks.server_view import ServerHoldings, encrypted_round
from attacks.victim import FaceBatch, global_weights, load_batch, local_update, plaintext_update, public_faces
from facepp.vision.align import preset_for
from tests.helpers.attacks import tiny_spec
from training.participant.local import local_trainer
from training.participant.spec import TrainingSpec


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def orl(data_root: Path) -> Path:
    path = data_root / "orl"
    if not path.is_dir():
        pytest.skip(f"no ORL dataset under {data_root}")
    return path


@pytest.fixture(scope="session")
def spec() -> TrainingSpec:
    return tiny_spec()


@pytest.fixture(scope="session")
def batch(orl: Path, spec: TrainingSpec, tmp_path_factory: pytest.TempPathFactory) -> FaceBatch:
    preprocessing = preset_for("orl", input_size=spec.input_size, mode="center")
    return load_batch(orl, people=2, preprocessing=preprocessing, seed=0, cache_dir=tmp_path_factory.mktemp("crops"))


@pytest.fixture(scope="session")
def prior(orl: Path, spec: TrainingSpec, batch: FaceBatch) -> np.ndarray:
    return public_faces(orl, exclude=batch.people, count=20, preprocessing=preset_for("orl", input_size=spec.input_size,
                                                                                      mode="center"))


@pytest.fixture(scope="session")
def public(orl: Path, spec: TrainingSpec, batch: FaceBatch, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Every image of the other people: the prior of the learned inversion and of its baseline."""
    return public_faces(orl, exclude=batch.people, count=400, cache_dir=tmp_path_factory.mktemp("public"),
                        preprocessing=preset_for("orl", input_size=spec.input_size, mode="center"))


@pytest.fixture(scope="session")
def weights(spec: TrainingSpec) -> np.ndarray:
    return global_weights(spec, None)


@pytest.fixture(scope="session")
def update(spec: TrainingSpec, batch: FaceBatch, weights: np.ndarray) -> np.ndarray:
    return plaintext_update(local_update(spec, batch, weights), weights, spec)


@pytest.fixture(scope="session")
def holdings(tmp_path_factory: pytest.TempPathFactory, spec: TrainingSpec, batch: FaceBatch,
             weights: np.ndarray) -> ServerHoldings:
    """Everything a real parameter server holds after the tiny victim's encrypted round."""
    trainer = local_trainer(spec, batch.crops, batch.labels, 0)
    return encrypted_round(tmp_path_factory.mktemp("round") / "round", spec=spec, weights=weights, trainer=trainer)
